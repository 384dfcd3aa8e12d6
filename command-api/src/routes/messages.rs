//! Messages, reactions and read markers.

use super::{exec, header_idem, message_idem};
use crate::error::ApiError;
use crate::extract::{AuthUser, IdempotencyKey, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use events::attachment::MAX_ATTACHMENTS_PER_MESSAGE;
use events::room::{RoomCommand, RoomEvent};
use events::values::{Emoji, MessageBody};
use events::{AttachmentId, MessageId, RoomId};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageBody {
    /// Chosen by the client; a retry with the same id returns the original
    /// response and sends nothing twice. 1–128 visible ASCII characters.
    pub client_msg_id: Option<String>,
    /// Up to 4000 characters, not blank (surrounding whitespace is trimmed). `@username`
    /// mentions a member (at most 50 distinct names are looked at); `@room` mentions every
    /// member when an owner or admin writes it.
    pub body: String,
    pub reply_to: Option<uuid::Uuid>,
    /// Files to send with it: up to 10 `attachment_id`s of uploads of yours to this room
    /// (`POST /v1/rooms/{room_id}/attachments`); one named twice is sent once.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub attachments: Vec<uuid::Uuid>,
}

/// The attachments a send names, at most [`MAX_ATTACHMENTS_PER_MESSAGE`], each once (in the
/// order first named).
fn attachment_ids(ids: &[uuid::Uuid]) -> Result<Vec<AttachmentId>, ApiError> {
    if ids.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        return Err(ApiError::bad_request(
            "too_many_attachments",
            format!("a message may carry at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments"),
        ));
    }
    let mut out: Vec<AttachmentId> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.iter().any(|o| o.0 == *id) {
            out.push(AttachmentId(*id));
        }
    }
    Ok(out)
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
    #[serde(deserialize_with = "whole_number")]
    pub seq: u64,
}

/// A non-negative integer, also when written with a zero fraction (`7.0`): JSON (and JSON
/// Schema's `integer`) does not tell the two apart, and some encoders write every number as
/// a float.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    match n.as_f64() {
        // 2^64 is the first float past u64::MAX.
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0 =>
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(f as u64)
        }
        _ => Err(serde::de::Error::custom(format!(
            "invalid value: {n}, expected a non-negative whole number"
        ))),
    }
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/messages", request_body = SendMessageBody, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)),
    responses((status = 201, description = "{message_id, seq, position, version}"), (status = 400), (status = 403, description = "not_a_member"),
        (status = 404, description = "room_not_found"), (status = 422, description = "reply_target_not_found, idempotency_key_reused"), (status = 429, description = "rate_limited: too many messages from this user (Retry-After)")))]
pub async fn send_message(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<SendMessageBody>,
) -> Result<Response, ApiError> {
    st.limits.send.check(&me.0)?;
    let text = MessageBody::parse(&body.body)?;
    let reply_to = body.reply_to.map(MessageId);
    let ids = attachment_ids(&body.attachments)?;
    let idem = match (&body.client_msg_id, key) {
        (Some(id), _) => Some(message_idem(
            me,
            room_id,
            id,
            text.as_str(),
            reply_to,
            &ids,
        )?),
        (None, key) => {
            let reply = reply_to.map(|r| r.to_string()).unwrap_or_default();
            let files: Vec<String> = ids.iter().map(ToString::to_string).collect();
            header_idem(
                me,
                Some(room_id),
                key,
                &[
                    "send",
                    &room_id.to_string(),
                    text.as_str(),
                    &reply,
                    &files.join(","),
                ],
            )
        }
    };
    let attachments = st.attachments.claim(room_id, me, &ids).await?;
    let mentioned = crate::mentions::resolve(&st.pool, &text).await?;
    let cmd = RoomCommand::SendMessage {
        message_id: MessageId::new(),
        body: text,
        reply_to,
        client_msg_id: body.client_msg_id,
        attachments,
        mentions: mentioned.users,
        mention_room: mentioned.room,
    };
    let response = exec(&st, "send_message", room_id, me, vec![cmd], idem, |d| {
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
    .await?;
    if response.status().is_success() && !ids.is_empty() {
        // Only an optimisation: collection asks the log before deleting anything.
        if let Err(e) = st.attachments.sent(&ids).await {
            tracing::warn!(error = %e, "marking attachments sent failed");
        }
    }
    Ok(response)
}

#[utoipa::path(patch, path = "/v1/rooms/{room_id}/messages/{message_id}", request_body = EditMessageBody,
    security(("bearer" = [])), params(("room_id" = uuid::Uuid, Path), ("message_id" = uuid::Uuid, Path)),
    responses((status = 200), (status = 403, description = "not_author, not_a_member"), (status = 404, description = "room_not_found, message_not_found"),
        (status = 409, description = "message_deleted"), (status = 422, description = "idempotency_key_reused"), (status = 429, description = "rate_limited: too many messages from this user (Retry-After)")))]
pub async fn edit_message(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, message_id)): Path<(RoomId, MessageId)>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<EditMessageBody>,
) -> Result<Response, ApiError> {
    st.limits.send.check(&me.0)?;
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
    responses((status = 200), (status = 403, description = "not_author, not_a_member"), (status = 404, description = "room_not_found, message_not_found"),
        (status = 409, description = "message_deleted"), (status = 422, description = "idempotency_key_reused")))]
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
    responses((status = 200), (status = 403, description = "not_a_member"), (status = 404, description = "room_not_found, message_not_found"),
        (status = 409, description = "message_deleted"), (status = 422, description = "too_many_reactions")))]
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
    responses((status = 200), (status = 403, description = "not_a_member"), (status = 404, description = "room_not_found, message_not_found"),
        (status = 409, description = "message_deleted")))]
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
    params(("room_id" = uuid::Uuid, Path)), responses((status = 200), (status = 403, description = "not_a_member"), (status = 404, description = "room_not_found"),
        (status = 422, description = "seq_out_of_range")))]
pub async fn mark_read(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    Json(body): Json<ReadMarkerBody>,
) -> Result<Response, ApiError> {
    let seq = body.seq;
    let private = super::me::receipts_private(&st, me).await?;
    exec(
        &st,
        "mark_read",
        room_id,
        me,
        vec![RoomCommand::MarkRead { seq, private }],
        None,
        move |_| (StatusCode::OK, json!({ "room_id": room_id, "seq": seq })),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(json: &str) -> Result<u64, String> {
        serde_json::from_str::<ReadMarkerBody>(json)
            .map(|b| b.seq)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_read_marker_seq_is_a_whole_number_written_either_way() {
        assert_eq!(seq(r#"{"seq": 7}"#), Ok(7));
        assert_eq!(seq(r#"{"seq": 7.0}"#), Ok(7));
        assert_eq!(seq(r#"{"seq": 4294967295.0}"#), Ok(4_294_967_295));
        for bad in [
            r#"{"seq": 7.5}"#,
            r#"{"seq": -1}"#,
            r#"{"seq": "7"}"#,
            r#"{"seq": 1e30}"#,
        ] {
            assert!(seq(bad).is_err(), "{bad}");
        }
    }
}
