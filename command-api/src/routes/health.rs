//! The OpenAPI document of the command side (served by `startup::ops` with
//! liveness, readiness and metrics, which `http_kit::service` provides).

use events::values::{
    DisplayName, Emoji, FileName, MessageBody, Password, RoomName, Topic, Username,
};
use http_kit::extract::CLIENT_KEY_RULE;
use http_kit::openapi::{
    BearerAuth, CommonResponses, enum_property, text_parameter, text_property,
};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "chat command-api", description = "Commands of the event-sourced chat platform. Errors: {\"error\":{\"code\",\"message\"}}."),
    paths(
        super::auth::register, super::auth::login, super::auth::refresh, super::auth::logout,
        super::rooms::create_room, super::rooms::update_room, super::rooms::join, super::rooms::leave,
        super::rooms::invite, super::rooms::kick, super::rooms::change_role, super::rooms::open_direct,
        super::messages::send_message, super::messages::edit_message, super::messages::delete_message,
        super::messages::add_reaction, super::messages::remove_reaction, super::messages::mark_read,
        super::ephemeral::typing, super::ephemeral::ephemeral, super::attachments::upload,
        super::notifications::set_notification_level, super::me::set_read_receipts, super::me::update_profile,
        super::avatars::set_avatar, super::avatars::remove_avatar,
        super::sessions::list, super::sessions::end, super::sessions::change_password,
        super::oidc::info, super::oidc::start, super::oidc::callback, super::admin::deactivate,
        super::erasure::erase_me, super::erasure::erase_user, super::erasure::rotate_key,
        super::bans::ban, super::bans::unban, super::admin::change_role, super::admin::delete_message,
        super::admin::ban, super::admin::unban, super::retention::set_retention,
    ),
    modifiers(&BearerAuth, &FieldRules, &CommonResponses)
)]
pub struct ApiDoc;

/// The `Idempotency-Key` header on every command that takes it (those that can answer
/// `idempotency_key_reused`).
fn idempotency_header(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{RefOr, Required, schema::ObjectBuilder, schema::Type};
    let rule = CLIENT_KEY_RULE;
    let header = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "A retry with the same key returns the original answer and changes nothing twice; \
             the same key with another request is a 422 idempotency_key_reused.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(rule.min_chars))
                .max_length(Some(rule.max_chars))
                .pattern(rule.pattern),
        ))
        .build();
    http_kit::openapi::each_operation(doc, |op| {
        let takes_it = op.responses.responses.get("422").is_some_and(
            |r| matches!(r, RefOr::T(r) if r.description.contains("idempotency_key_reused")),
        );
        if takes_it {
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(header.clone());
        }
    });
}

/// The limits of every text field and parameter, from the domain types that enforce them
/// (`events::values`), and the values of the enums the handlers read from text.
struct FieldRules;

impl utoipa::Modify for FieldRules {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        text_property(doc, "RegisterBody", "username", Username::RULE);
        text_property(doc, "RegisterBody", "password", Password::RULE);
        text_property(doc, "PasswordBody", "new_password", Password::RULE);
        text_property(doc, "ProfileBody", "display_name", DisplayName::RULE);
        text_property(doc, "RegisterBody", "display_name", DisplayName::RULE);
        for schema in ["CreateRoomBody", "UpdateRoomBody"] {
            text_property(doc, schema, "name", RoomName::RULE);
            text_property(doc, schema, "topic", Topic::RULE);
            enum_property(doc, schema, "visibility", &["public", "private"]);
        }
        enum_property(doc, "RoleBody", "role", &["member", "admin"]);
        enum_property(
            doc,
            "NotificationLevelBody",
            "level",
            &["all", "mentions", "none"],
        );
        // "Give at least one" (a null is "not given", so this is most of the rule).
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(o))) = doc
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("UpdateRoomBody"))
        {
            o.min_properties = Some(1);
        }
        for schema in ["SendMessageBody", "EditMessageBody", "EphemeralBody"] {
            text_property(doc, schema, "body", MessageBody::RULE);
        }
        text_property(doc, "SendMessageBody", "client_msg_id", CLIENT_KEY_RULE);
        text_parameter(doc, "emoji", Emoji::RULE);
        text_parameter(doc, "name", FileName::RULE);
        idempotency_header(doc);
    }
}
