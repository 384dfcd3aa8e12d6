//! REST reads over the read models, one file per concept.
//!
//! Every read is authorised against the read model's membership table: a private
//! or direct room is indistinguishable from a missing one (404 `room_not_found`)
//! for anyone not currently joined, and nothing of a room's history or member list
//! reaches a non-member. Every GET accepts `min_position` (see [`consistency`]).

pub mod admin;
pub mod attachments;
pub mod audit;
pub mod avatars;
pub mod bans;
mod blob_response;
pub mod consistency;
pub mod invites;
pub mod me;
pub mod mentions;
pub mod messages;
pub mod presence;
pub mod receipts;
pub mod rooms;
pub mod search;
pub mod server;
pub mod users;

use crate::state::AppState;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::get;
use http_kit::error::ApiError;
use http_kit::openapi::{BearerAuth, CommonResponses, each_operation, text_parameter};
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me", get(me::me))
        .route("/v1/users", get(users::lookup))
        .route("/v1/users/{user_id}/avatar", get(avatars::avatar))
        .route("/v1/rooms", get(rooms::my_rooms))
        .route("/v1/rooms/public", get(rooms::public_rooms))
        .route("/v1/rooms/{room_id}", get(rooms::room))
        .route("/v1/rooms/{room_id}/members", get(rooms::members))
        .route("/v1/rooms/{room_id}/receipts", get(receipts::receipts))
        .route("/v1/rooms/{room_id}/bans", get(bans::bans))
        .route("/v1/mentions", get(mentions::mentions))
        .route("/v1/rooms/{room_id}/messages", get(messages::history))
        .route(
            "/v1/rooms/{room_id}/messages/{message_id}",
            get(messages::one),
        )
        .route("/v1/invites", get(invites::my_invites))
        .route("/v1/admin/stats", get(admin::stats))
        .route("/v1/admin/audit", get(audit::audit))
        .route("/v1/presence", get(presence::presence))
        .route("/v1/server", get(server::server))
        .route("/v1/search/messages", get(search::search_messages))
        .route(
            "/v1/attachments/{attachment_id}",
            get(attachments::download),
        )
        .route(
            "/v1/attachments/{attachment_id}/thumbnail",
            get(attachments::thumbnail),
        )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat query-api",
        description = "Reads of the event-sourced chat platform. Errors: {\"error\":{\"code\",\"message\"}}. \
            Every GET accepts `min_position` (query) or `X-Min-Position` (header): the read waits, bounded, \
            until the read models have applied that log position, else 503 `not_caught_up`. \
            Every response carries `Chat-Epoch`: the epoch (build) of the read models it was read from."
    ),
    paths(
        me::me,
        users::lookup,
        avatars::avatar,
        rooms::my_rooms,
        rooms::public_rooms,
        rooms::room,
        rooms::members,
        receipts::receipts,
        bans::bans,
        mentions::mentions,
        messages::history,
        messages::one,
        invites::my_invites,
        admin::stats,
        audit::audit,
        presence::presence,
        server::server,
        search::search_messages,
        attachments::download,
        attachments::thumbnail,
    ),
    components(schemas(::search::Sort)),
    modifiers(&BearerAuth, &EpochHeader, &MinPositionBound, &QueryRules, &CommonResponses)
)]
struct ApiDoc;

/// Lists the `Chat-Epoch` header (added to every response by [`crate::epoch::stamp`]) on
/// every response of every operation.
struct EpochHeader;

impl utoipa::Modify for EpochHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{Object, Type};
        use utoipa::openapi::{RefOr, header::HeaderBuilder};
        let header = HeaderBuilder::new()
            .schema(Object::with_type(Type::Integer))
            .description(Some(
                "The epoch of the read models this answer was read from (it changes with \
                 every rebuild or blue/green switch): a client whose state came from another \
                 epoch reloads it.",
            ))
            .build();
        each_operation(openapi, |op| {
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert("Chat-Epoch".to_owned(), header.clone());
                }
            }
        });
    }
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `axum::extract::Query` with our error shape: a malformed query string, a parameter of the
/// wrong type (`limit=abc`) or a NUL character anywhere (`%00`: PostgreSQL refuses text
/// holding one, so it would otherwise surface as a 500) is a 400 `invalid_query`.
pub struct Query<T>(pub T);

/// Whether a raw query string decodes to text holding a NUL character: percent-decoding is
/// one pass, so only `%00` produces one (`%2500` is the text "%00").
fn has_nul(query: &str) -> bool {
    query.as_bytes().windows(3).any(|w| w == b"%00")
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(has_nul) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "query parameters must not contain NUL characters",
            ));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// `limit` clamped to 1..=100 (absent: `default`).
pub(crate) fn clamp_limit(limit: Option<i64>, default: i64) -> i64 {
    limit.unwrap_or(default).clamp(1, 100)
}

/// The one answer for a room the caller may not know exists.
pub(crate) fn room_not_found() -> ApiError {
    ApiError::not_found("room_not_found", "no such room")
}

pub(crate) fn not_a_member() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "not_a_member",
        "you are not a member of this room",
    )
}

/// A read-only transaction on one snapshot, so the membership check and the data
/// it guards are read at the same instant: a kick projected between the two can
/// never let the kicked user read what followed it. Begun so that a client hanging up
/// cannot leave the connection inside it ([`eventlog::pool::begin_with`]).
pub(crate) async fn snapshot(
    pool: &sqlx::PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    eventlog::pool::begin_with(pool, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await
}

/// `min_position` is a log position: at least 0 (and a position the log has not reached is a
/// 409 `min_position_not_committed`, see [`consistency`]). Stated once here for every
/// operation that takes it.
struct MinPositionBound;

impl utoipa::Modify for MinPositionBound {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        let bounded = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .build();
        each_operation(openapi, |op| {
            let mut takes_it = false;
            for param in op.parameters.iter_mut().flatten() {
                if param.name == "min_position" {
                    param.schema = Some(bounded.clone().into());
                    takes_it = true;
                }
            }
            if takes_it {
                op.responses
                    .responses
                    .entry("409".to_owned())
                    .or_insert_with(|| {
                        utoipa::openapi::Response::new(
                            "min_position_not_committed: the log has not reached min_position",
                        )
                        .into()
                    });
            }
        });
    }
}

/// The limits of the text parameters: `username` as [`users::lookup`] checks it, `q` of the
/// search as its parser does, and no NUL character in any (see [`Query`]).
struct QueryRules;

impl utoipa::Modify for QueryRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::Schema;
        text_parameter(openapi, "username", users::USERNAME_RULE);
        each_operation(openapi, |op| {
            for param in op.parameters.iter_mut().flatten() {
                if let Some(RefOr::T(Schema::Object(o))) = &mut param.schema
                    && o.pattern.is_none()
                    && matches!(
                        &o.schema_type,
                        utoipa::openapi::schema::SchemaType::Type(
                            utoipa::openapi::schema::Type::String
                        )
                    )
                    && o.enum_values.is_none()
                    && o.format.is_none()
                {
                    o.pattern = Some(events::values::NO_NUL.to_owned());
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::has_nul;

    #[test]
    fn only_a_percent_encoded_zero_byte_is_a_nul() {
        assert!(has_nul("q=%00"));
        assert!(has_nul("a=1&q=x%00y"));
        assert!(!has_nul("q=%2500"));
        assert!(!has_nul("q=100%25&limit=00"));
        assert!(!has_nul(""));
    }
}
