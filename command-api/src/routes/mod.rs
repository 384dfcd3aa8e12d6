//! HTTP routes, one file per concept.

pub mod auth;
pub mod ephemeral;
pub mod health;
pub mod messages;
pub mod rooms;

use crate::error::ApiError;
use crate::extract::valid_client_key;
use crate::rooms::{Decided, Idem, Submission};
use crate::state::AppState;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use events::room::RoomCommand;
use events::{MessageId, RoomId, UserId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Instant;
use uuid::Uuid;

/// Runs room commands through the room's actor and turns the outcome into a
/// response, recording `chat_commands_total` and the latency histogram.
pub(crate) async fn exec(
    st: &AppState,
    command: &'static str,
    room_id: RoomId,
    actor: UserId,
    cmds: Vec<RoomCommand>,
    idempotency: Option<Idem>,
    respond: impl Fn(&Decided<'_>) -> (StatusCode, Value) + Send + Sync + 'static,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = st
        .rooms
        .submit(
            room_id,
            Submission {
                actor,
                cmds,
                idempotency,
                correlation_id: Uuid::now_v7(),
                respond: Box::new(respond),
            },
        )
        .await;
    let response = match result {
        Ok(reply) => (reply.status, Json(reply.body)).into_response(),
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
        scope: room.map_or_else(|| format!("user:{user}"), room_scope),
        key: format!("{user}:hdr:{k}"),
        fingerprint: fingerprint(request),
        from_message: false,
    })
}

fn room_scope(room: RoomId) -> String {
    format!("room:{room}")
}

/// The idempotency record of a message carrying a `client_msg_id`. Its fingerprint is
/// [`crate::rooms::message_fingerprint`] of the message, which the room actor can compute
/// again from the `MessageSent` event in the log.
pub(crate) fn message_idem(
    user: UserId,
    room: RoomId,
    client_msg_id: &str,
    body: &str,
    reply_to: Option<MessageId>,
) -> Result<Idem, ApiError> {
    if !valid_client_key(client_msg_id) {
        return Err(ApiError::bad_request(
            "invalid_client_msg_id",
            "client_msg_id must be 1-128 visible ASCII characters",
        ));
    }
    Ok(Idem {
        scope: room_scope(room),
        key: crate::rooms::message_key(user, client_msg_id),
        fingerprint: crate::rooms::message_fingerprint(body, reply_to),
        from_message: true,
    })
}

/// SHA-256 over the length-prefixed parts, in hex.
pub(crate) fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// `201` when the command created something, else `200`.
pub(crate) fn created_if(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Whether a user is registered (credentials are the write side's user registry).
pub(crate) async fn user_exists(st: &AppState, user: UserId) -> Result<bool, ApiError> {
    let row: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM credentials WHERE user_id = $1")
        .bind(user.0)
        .fetch_optional(&st.pool)
        .await?;
    Ok(row.is_some())
}
