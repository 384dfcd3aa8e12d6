//! Messages, reactions and read markers.

use super::{exec, header_idem, message_idem};
use crate::error::ApiError;
use crate::extract::{AuthUser, IdempotencyKey, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use events::room::{RoomCommand, RoomEvent};
use events::values::{Emoji, MessageBody};
use events::{MessageId, RoomId};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageBody {
    /// Chosen by the client; a retry with the same id returns the original
    /// response and sends nothing twice. 1–128 visible ASCII characters.
    pub client_msg_id: Option<String>,
    /// 1–4000 characters after trimming.
    pub body: String,
    pub reply_to: Option<uuid::Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessageBody {
    pub body: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMarkerBody {
    /// The `seq` of the last message read.
    pub seq: u64,
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/messages", request_body = SendMessageBody, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)),
    responses((status = 201, description = "{message_id, seq, position, version}"), (status = 400), (status = 403), (status = 404)))]
pub async fn send_message(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<SendMessageBody>,
) -> Result<Response, ApiError> {
    let text = MessageBody::parse(&body.body)?;
    let reply_to = body.reply_to.map(MessageId);
    let idem = match (&body.client_msg_id, key) {
        (Some(id), _) => Some(message_idem(me, room_id, id, text.as_str(), reply_to)?),
        (None, key) => {
            let reply = reply_to.map(|r| r.to_string()).unwrap_or_default();
            header_idem(
                me,
                Some(room_id),
                key,
                &["send", &room_id.to_string(), text.as_str(), &reply],
            )
        }
    };
    let cmd = RoomCommand::SendMessage {
        message_id: MessageId::new(),
        body: text,
        reply_to,
        client_msg_id: body.client_msg_id,
    };
    exec(&st, "send_message", room_id, me, vec![cmd], idem, |d| {
        let sent = d.events.iter().find_map(|e| match e {
            RoomEvent::MessageSent {
                message_id, seq, ..
            } => Some((*message_id, *seq)),
            _ => None,
        });
        match sent {
            Some((message_id, seq)) => (
                StatusCode::CREATED,
                json!({ "message_id": message_id, "seq": seq }),
            ),
            None => (StatusCode::OK, json!({})),
        }
    })
    .await
}

#[utoipa::path(patch, path = "/v1/rooms/{room_id}/messages/{message_id}", request_body = EditMessageBody,
    security(("bearer" = [])), params(("room_id" = uuid::Uuid, Path), ("message_id" = uuid::Uuid, Path)),
    responses((status = 200), (status = 403), (status = 404), (status = 409)))]
pub async fn edit_message(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, message_id)): Path<(RoomId, MessageId)>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<EditMessageBody>,
) -> Result<Response, ApiError> {
    let text = MessageBody::parse(&body.body)?;
    let idem = header_idem(
        me,
        Some(room_id),
        key,
        &["edit", &message_id.to_string(), text.as_str()],
    );
    let cmd = RoomCommand::EditMessage {
        message_id,
        body: text,
    };
    exec(
        &st,
        "edit_message",
        room_id,
        me,
        vec![cmd],
        idem,
        move |d| {
            let edit = d.events.iter().find_map(|e| match e {
                RoomEvent::MessageEdited { edit_number, .. } => Some(*edit_number),
                _ => None,
            });
            (
                StatusCode::OK,
                json!({ "message_id": message_id, "edit_number": edit }),
            )
        },
    )
    .await
}

#[utoipa::path(delete, path = "/v1/rooms/{room_id}/messages/{message_id}", security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path), ("message_id" = uuid::Uuid, Path)),
    responses((status = 200), (status = 403), (status = 404), (status = 409)))]
pub async fn delete_message(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, message_id)): Path<(RoomId, MessageId)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let idem = header_idem(me, Some(room_id), key, &["delete", &message_id.to_string()]);
    exec(
        &st,
        "delete_message",
        room_id,
        me,
        vec![RoomCommand::DeleteMessage { message_id }],
        idem,
        move |_| (StatusCode::OK, json!({ "message_id": message_id })),
    )
    .await
}

#[utoipa::path(put, path = "/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}", security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path), ("message_id" = uuid::Uuid, Path), ("emoji" = String, Path)),
    responses((status = 200), (status = 403), (status = 404), (status = 422)))]
pub async fn add_reaction(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, message_id, emoji)): Path<(RoomId, MessageId, String)>,
) -> Result<Response, ApiError> {
    // PUT is idempotent by nature: adding a reaction that is there changes nothing.
    let emoji = Emoji::parse(&emoji)?;
    let e2 = emoji.clone();
    exec(
        &st,
        "add_reaction",
        room_id,
        me,
        vec![RoomCommand::AddReaction { message_id, emoji }],
        None,
        move |_| {
            (
                StatusCode::OK,
                json!({ "message_id": message_id, "emoji": e2 }),
            )
        },
    )
    .await
}

#[utoipa::path(delete, path = "/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}", security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path), ("message_id" = uuid::Uuid, Path), ("emoji" = String, Path)),
    responses((status = 200), (status = 403), (status = 404)))]
pub async fn remove_reaction(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, message_id, emoji)): Path<(RoomId, MessageId, String)>,
) -> Result<Response, ApiError> {
    let emoji = Emoji::parse(&emoji)?;
    let e2 = emoji.clone();
    exec(
        &st,
        "remove_reaction",
        room_id,
        me,
        vec![RoomCommand::RemoveReaction { message_id, emoji }],
        None,
        move |_| {
            (
                StatusCode::OK,
                json!({ "message_id": message_id, "emoji": e2 }),
            )
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/read", request_body = ReadMarkerBody, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)), responses((status = 200), (status = 403), (status = 404), (status = 422)))]
pub async fn mark_read(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    Json(body): Json<ReadMarkerBody>,
) -> Result<Response, ApiError> {
    let seq = body.seq;
    exec(
        &st,
        "mark_read",
        room_id,
        me,
        vec![RoomCommand::MarkRead { seq }],
        None,
        move |_| (StatusCode::OK, json!({ "room_id": room_id, "seq": seq })),
    )
    .await
}
