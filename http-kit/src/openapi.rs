//! What every service's OpenAPI document shares.

use events::values::TextRule;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response};

/// Declares the `bearer` security scheme (an access token, a JWT, in `Authorization`):
/// `#[openapi(..., modifiers(&http_kit::openapi::BearerAuth))]`.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Calls `f` with every operation of every path.
pub fn each_operation(openapi: &mut OpenApi, mut f: impl FnMut(&mut Operation)) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            f(op);
        }
    }
}

/// The answers every operation can give besides its own, listed on each so that the document
/// is the whole truth (a client generated from it handles them; a fuzzer checks them), all
/// with the one error body `{"error":{"code","message"}}` (the `Error` schema):
///
/// - 400 `invalid_*` when the operation takes parameters or a body (a malformed id, a wrong
///   type, a NUL character, JSON that does not parse);
/// - 401 `unauthorized` when it needs a bearer token;
/// - 408 `request_timeout`, 413 `payload_too_large`, 415 `unsupported_media_type` and 422
///   `invalid_body` (JSON of the wrong shape) when it takes a body;
/// - 503 `unavailable` (with `Retry-After`) from every operation: the database is down or a
///   read is not caught up.
///
/// The error responses an operation already lists keep their descriptions and get the body.
/// `#[openapi(..., modifiers(&http_kit::openapi::CommonResponses))]`, after the others.
pub struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert("Error".to_owned(), RefOr::T(error_schema()));
        each_operation(openapi, |op| {
            let has_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let mut add = vec![("503", "unavailable: try again after `Retry-After` seconds")];
            if has_input {
                add.push(("400", "a parameter or the body is malformed"));
            }
            if secured {
                add.push(("401", "unauthorized: no, or no valid, bearer token"));
            }
            if op.request_body.is_some() {
                add.extend([
                    ("408", "request_timeout: the body did not arrive in time"),
                    ("413", "payload_too_large: the body is over the limit"),
                    (
                        "415",
                        "unsupported_media_type: the body is not application/json",
                    ),
                    ("422", "invalid_body: JSON of the wrong shape"),
                ]);
            }
            for (status, description) in add {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::T(Response::new(description)));
            }
            for (status, response) in op.responses.responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with(['4', '5']), response)
                    && response.content.is_empty()
                {
                    response.content.insert(
                        "application/json".to_owned(),
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Error")))
                            .build(),
                    );
                }
            }
        });
    }
}

/// `{"error":{"code","message"}}`.
fn error_schema() -> Schema {
    let text = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    };
    let inner = ObjectBuilder::new()
        .property(
            "code",
            text("Stable, machine-readable: `room_not_found`, …"),
        )
        .required("code")
        .property("message", text("For people; may change."))
        .required("message");
    ObjectBuilder::new()
        .property("error", inner)
        .required("error")
        .build()
        .into()
}

/// Gives the string property `property` of the component schema `schema` the limits of
/// `rule` (the rule its domain type enforces). Panics when the document has no such
/// property: a rule that does not reach the document is a bug, found by the first test that
/// builds it.
pub fn text_property(openapi: &mut OpenApi, schema: &str, property: &str, rule: TextRule) {
    let object = property_mut(openapi, schema, property).unwrap_or_else(|| {
        panic!("the OpenAPI document has no string property {schema}.{property}")
    });
    limit(object, rule);
}

/// Gives every parameter named `name` the limits of `rule`.
pub fn text_parameter(openapi: &mut OpenApi, name: &str, rule: TextRule) {
    let mut found = false;
    each_operation(openapi, |op| {
        for param in op.parameters.iter_mut().flatten() {
            if param.name == name
                && let Some(RefOr::T(Schema::Object(o))) = &mut param.schema
            {
                limit(o, rule);
                found = true;
            }
        }
    });
    assert!(found, "the OpenAPI document has no string parameter {name}");
}

/// Lists the values a string property takes (an enum the handler reads from text).
pub fn enum_property(openapi: &mut OpenApi, schema: &str, property: &str, values: &[&str]) {
    let object = property_mut(openapi, schema, property)
        .unwrap_or_else(|| panic!("the OpenAPI document has no property {schema}.{property}"));
    let nullable =
        matches!(&object.schema_type, SchemaType::Array(types) if types.contains(&Type::Null));
    let mut listed: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    if nullable {
        listed.push(serde_json::Value::Null);
    }
    object.enum_values = Some(listed);
}

/// The inline object schema of `property` of the component schema `schema`.
fn property_mut<'a>(
    openapi: &'a mut OpenApi,
    schema: &str,
    property: &str,
) -> Option<&'a mut Object> {
    let component = openapi.components.as_mut()?.schemas.get_mut(schema)?;
    let RefOr::T(Schema::Object(o)) = component else {
        return None;
    };
    match o.properties.get_mut(property)? {
        RefOr::T(Schema::Object(p)) => Some(p),
        _ => None,
    }
}

fn limit(o: &mut Object, rule: TextRule) {
    o.min_length = (rule.min_chars > 0).then_some(rule.min_chars);
    o.max_length = Some(rule.max_chars);
    o.pattern = rule.pattern.map(str::to_owned);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use utoipa::OpenApi as _;

    #[derive(serde::Deserialize, utoipa::ToSchema)]
    #[allow(dead_code)]
    struct Note {
        text: String,
    }

    #[utoipa::path(post, path = "/notes", request_body = Note, security(("bearer" = [])),
        responses((status = 201), (status = 409, description = "note_exists")))]
    #[allow(dead_code)]
    fn create() {}

    #[utoipa::path(get, path = "/ping", responses((status = 200)))]
    #[allow(dead_code)]
    fn ping() {}

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(create, ping), modifiers(&BearerAuth, &Rules, &CommonResponses))]
    struct Doc;

    struct Rules;
    impl utoipa::Modify for Rules {
        fn modify(&self, doc: &mut OpenApi) {
            text_property(doc, "Note", "text", events::values::MessageBody::RULE);
        }
    }

    fn statuses(doc: &serde_json::Value, path: &str, method: &str) -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn every_operation_lists_the_answers_every_route_can_give_with_the_error_body() {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        assert_eq!(
            statuses(&doc, "/notes", "post"),
            [
                "201", "400", "401", "408", "409", "413", "415", "422", "503"
            ]
        );
        // Nothing to malform and no token: only "unavailable".
        assert_eq!(statuses(&doc, "/ping", "get"), ["200", "503"]);
        let listed = &doc["paths"]["/notes"]["post"]["responses"];
        for status in ["400", "401", "409", "503"] {
            assert_eq!(
                listed[status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error",
                "{status}"
            );
        }
        // Its own description is kept.
        assert_eq!(listed["409"]["description"], "note_exists");
        assert!(
            listed["201"]["content"].is_null(),
            "a success keeps its body"
        );
        let error = &doc["components"]["schemas"]["Error"];
        assert_eq!(error["required"], serde_json::json!(["error"]));
        assert_eq!(
            error["properties"]["error"]["required"],
            serde_json::json!(["code", "message"])
        );
    }

    #[test]
    fn a_text_rule_reaches_the_schema_of_its_property() {
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        let text = &doc["components"]["schemas"]["Note"]["properties"]["text"];
        let rule = events::values::MessageBody::RULE;
        assert_eq!(text["minLength"], rule.min_chars);
        assert_eq!(text["maxLength"], rule.max_chars);
        assert_eq!(text["pattern"], rule.pattern.unwrap());
    }

    #[test]
    #[should_panic(expected = "no string property Note.missing")]
    fn a_rule_for_a_property_the_document_lacks_is_a_bug() {
        let mut doc = Doc::openapi();
        text_property(&mut doc, "Note", "missing", events::values::Topic::RULE);
    }
}
