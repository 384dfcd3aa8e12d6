//! Room history with cursor pagination over `seq`, and one message by id (a reply's
//! quote, a link to a message).

use super::consistency::MinPosition;
use super::rooms::require_member;
use super::{Query, clamp_limit, snapshot};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use events::{MessageId, RoomId};
use http_kit::error::ApiError;
use http_kit::extract::{AuthUser, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Page size when `limit` is not given.
const DEFAULT_LIMIT: i64 = 50;

#[derive(Deserialize)]
pub struct HistoryQuery {
    pub before_seq: Option<i64>,
    pub after_seq: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Message {
    pub seq: i64,
    pub message_id: Uuid,
    pub sender_id: Uuid,
    /// Null once deleted (the tombstone keeps its place).
    pub body: Option<String>,
    pub deleted: bool,
    pub reply_to: Option<Uuid>,
    pub edited_at: Option<DateTime<Utc>>,
    pub edit_number: i32,
    /// `{"👍": ["<user id>", …]}`, users in the order they reacted.
    #[schema(value_type = Object)]
    pub reactions: serde_json::Value,
    pub sent_at: DateTime<Utc>,
    /// Room stream version of the last change to this message.
    pub version: i64,
    /// The files sent with it, `[{attachment_id, name, size, content_type, sha256, image?:
    /// {width, height}}]`; empty once deleted. `GET /v1/attachments/{attachment_id}`
    /// downloads one (and `.../thumbnail` an image's thumbnail).
    #[schema(value_type = Vec<Object>)]
    pub attachments: serde_json::Value,
}

/// One page. Backwards (the default, or `before_seq`) the page is newest first
/// and carries `next_before_seq`; forwards (`after_seq`) it is oldest first and
/// carries `next_after_seq`. The cursor is null when nothing further exists now.
#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub next_before_seq: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub next_after_seq: Option<Option<i64>>,
}

/// The columns of [`Message`]; a deleted message's body never leaves the database.
macro_rules! message_columns {
    () => {
        "SELECT seq, message_id, sender_id,
                CASE WHEN deleted THEN NULL ELSE body END AS body, deleted, reply_to,
                edited_at, edit_number, reactions, sent_at, version,
                CASE WHEN deleted OR attachments IS NULL THEN '[]'::jsonb
                     ELSE attachments END AS attachments
           FROM rm_messages "
    };
}

const FORWARD_SQL: &str = concat!(
    message_columns!(),
    "WHERE room_id = $1 AND seq > $2 AND seq < $4 ORDER BY seq ASC LIMIT $3"
);
const ONE_SQL: &str = concat!(message_columns!(), "WHERE room_id = $1 AND message_id = $2");
const BACKWARD_SQL: &str = concat!(
    message_columns!(),
    "WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
);

/// A room's messages, members only (anyone who left or was kicked loses access).
/// `before_seq` (default: after the newest) pages backwards, `after_seq` forwards; both
/// give the messages between them, forwards. `limit` is clamped to 1–100 (default 50).
#[utoipa::path(get, path = "/v1/rooms/{room_id}/messages", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("before_seq" = Option<i64>, Query, minimum = 0),
        ("after_seq" = Option<i64>, Query, minimum = 0),
        ("limit" = Option<i64>, Query, description = "Clamped to 1–100; default 50."),
        ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = MessagePage), (status = 400), (status = 401),
        (status = 403, description = "not_a_member (public room)"), (status = 404, description = "room_not_found")))]
pub async fn history(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    Query(q): Query<HistoryQuery>,
    _read_after: MinPosition,
) -> Result<Json<MessagePage>, ApiError> {
    if q.before_seq.is_some_and(|s| s < 0) || q.after_seq.is_some_and(|s| s < 0) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "before_seq and after_seq must not be negative",
        ));
    }
    let limit = clamp_limit(q.limit, DEFAULT_LIMIT);
    let mut tx = snapshot(&st.pool).await?;
    require_member(&mut *tx, room_id, me).await?;
    // One row more than asked tells whether another page exists.
    let page = if let Some(after) = q.after_seq {
        let mut rows = sqlx::query_as::<_, Message>(FORWARD_SQL)
            .bind(room_id.0)
            .bind(after)
            .bind(limit + 1)
            .bind(q.before_seq.unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last().map(|m| m.seq)).flatten();
        MessagePage {
            messages: rows,
            next_before_seq: None,
            next_after_seq: Some(next),
        }
    } else {
        let before = q.before_seq.unwrap_or(i64::MAX);
        let mut rows = sqlx::query_as::<_, Message>(BACKWARD_SQL)
            .bind(room_id.0)
            .bind(before)
            .bind(limit + 1)
            .fetch_all(&mut *tx)
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last().map(|m| m.seq)).flatten();
        MessagePage {
            messages: rows,
            next_before_seq: Some(next),
            next_after_seq: None,
        }
    };
    tx.commit().await?;
    Ok(Json(page))
}

/// One message of a room, in the history's shape: members only, as history. A message
/// of another room is the same 404 `message_not_found` as a missing one.
#[utoipa::path(get, path = "/v1/rooms/{room_id}/messages/{message_id}", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("message_id" = Uuid, Path), ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = Message), (status = 400), (status = 401),
        (status = 403, description = "not_a_member (public room)"),
        (status = 404, description = "room_not_found, message_not_found")))]
pub async fn one(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, message_id)): Path<(RoomId, MessageId)>,
    _read_after: MinPosition,
) -> Result<Json<Message>, ApiError> {
    let mut tx = snapshot(&st.pool).await?;
    require_member(&mut *tx, room_id, me).await?;
    let message = sqlx::query_as::<_, Message>(ONE_SQL)
        .bind(room_id.0)
        .bind(message_id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "message_not_found",
                "message not found",
            )
        })?;
    tx.commit().await?;
    Ok(Json(message))
}
