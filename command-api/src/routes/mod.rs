//! HTTP routes, one file per concept.

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod avatars;
pub mod bans;
pub mod ephemeral;
pub mod erasure;
pub mod health;
pub mod me;
pub mod messages;
pub mod notifications;
pub mod oidc;
pub mod retention;
pub mod rooms;
pub mod sessions;

use crate::error::ApiError;
use crate::extract::valid_client_key;
use crate::idempotency::{Idem, fingerprint, message_fingerprint, message_key};
use crate::rooms::{CommandError, Committed, Submission};
use crate::state::AppState;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventlog::IdempotencyScope;
use events::room::RoomCommand;
use events::{AttachmentId, MessageId, RoomId, UserId};
use http_kit::correlation;
use serde_json::Value;
use std::time::Instant;
use uuid::Uuid;

/// Runs room commands through the room's actor and renders the outcome: `render` gives the
/// status and the command's own fields, to which every answer adds the room stream's
/// `version` and the `position` of its last event (`null` when it changed nothing).
/// Records `chat_commands_total` and the latency histogram.
pub(crate) async fn exec(
    st: &AppState,
    command: &'static str,
    room_id: RoomId,
    actor: UserId,
    cmds: Vec<RoomCommand>,
    idempotency: Option<Idem>,
    render: impl FnOnce(&Committed) -> (StatusCode, Value),
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let correlation_id = correlation::current().map_or_else(Uuid::now_v7, |c| c.0);
    let result = st
        .rooms
        .submit(
            room_id,
            Submission {
                actor,
                cmds,
                idempotency,
                correlation_id,
            },
        )
        .await;
    match &result {
        Ok(c) => tracing::debug!(
            command,
            %room_id,
            %correlation_id,
            version = c.version,
            position = c.position,
            "command committed"
        ),
        Err(e) => {
            tracing::debug!(command, %room_id, %correlation_id, error = %e, "command refused")
        }
    }
    let response = match result {
        Ok(committed) => {
            let (status, mut body) = render(&committed);
            if let Value::Object(fields) = &mut body {
                fields.insert("version".to_owned(), committed.version.into());
                fields.insert("position".to_owned(), committed.position.into());
            }
            (status, Json(body)).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    };
    st.metrics.observe(
        command,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    Ok(response)
}

/// The idempotency record of a command carrying an `Idempotency-Key` header: keys
/// are per user, and the fingerprint ties a key to one exact request. Keys of
/// commands on an existing room are kept per room, so a room actor looks up
/// everything it has queued in one query; creating a room has no room yet.
pub(crate) fn header_idem(
    user: UserId,
    room: Option<RoomId>,
    key: Option<String>,
    request: &[&str],
) -> Option<Idem> {
    key.map(|k| Idem {
        scope: room.map_or_else(|| IdempotencyScope::actor(user.0), room_scope),
        key: format!("{user}:hdr:{k}"),
        fingerprint: fingerprint(request),
        from_message: false,
    })
}

fn room_scope(room: RoomId) -> IdempotencyScope {
    IdempotencyScope::stream(&room.stream_id())
}

/// The idempotency record of a message carrying a `client_msg_id`. Its fingerprint is
/// [`message_fingerprint`] of the message, which the room actor can compute
/// again from the `MessageSent` event in the log.
pub(crate) fn message_idem(
    user: UserId,
    room: RoomId,
    client_msg_id: &str,
    body: &str,
    reply_to: Option<MessageId>,
    attachments: &[AttachmentId],
) -> Result<Idem, ApiError> {
    if !valid_client_key(client_msg_id) {
        return Err(ApiError::bad_request(
            "invalid_client_msg_id",
            "client_msg_id must be 1-128 visible ASCII characters",
        ));
    }
    Ok(Idem {
        scope: room_scope(room),
        key: message_key(user, client_msg_id),
        fingerprint: message_fingerprint(body, reply_to, attachments),
        from_message: true,
    })
}

/// How a room command's failure is answered: domain rejections are 4xx, contention and an
/// unreachable log 503 (retry), anything else an opaque 500 whose whole cause is logged once.
impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(d) => d.into(),
            CommandError::IdempotencyMismatch => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this idempotency key was used with a different request",
            ),
            CommandError::Busy => ApiError::unavailable("room busy, retry shortly"),
            CommandError::ActorGone => ApiError::unavailable("shutting down, retry shortly"),
            CommandError::Store(s) if s.is_unavailable() => {
                ApiError::unavailable_because("the event log is unavailable, retry shortly", &*s)
            }
            CommandError::Seal(e) => match &*e {
                vault::VaultError::Erased(_) => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "account_erased",
                    "this account was erased",
                ),
                vault::VaultError::Db(db) if eventlog::pool::is_broken_connection(db) => {
                    ApiError::unavailable_because("the database is unavailable, retry shortly", db)
                }
                other => ApiError::internal(other),
            },
            e @ (CommandError::Store(_)
            | CommandError::Decode(_)
            | CommandError::MissingEvent { .. }
            | CommandError::Encode(_)) => ApiError::internal(&e),
        }
    }
}

/// `201` when the command created something, else `200`.
pub(crate) fn created_if(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Succeeds when `user` is registered (credentials are the write side's user registry); 404
/// `user_not_found` otherwise.
pub(crate) async fn require_user(st: &AppState, user: UserId) -> Result<(), ApiError> {
    let row: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM credentials WHERE user_id = $1")
        .bind(user.0)
        .fetch_optional(&st.pool)
        .await?;
    match row {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("user_not_found", "no such user")),
    }
}
