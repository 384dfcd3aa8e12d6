//! A user's recent mentions across their rooms, newest first, with cursor pagination: messages
//! that name them, and `@room` messages of their rooms sent since they joined. Only rooms they
//! are joined to now, and only messages not deleted (the authorization of history).

use super::consistency::MinPosition;
use super::{Query, clamp_limit, snapshot};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use http_kit::error::ApiError;
use http_kit::extract::AuthUser;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

const DEFAULT_LIMIT: i64 = 20;

#[derive(Deserialize)]
pub struct MentionsQuery {
    /// Mentions before this log position (the `next_before` of the previous page).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Mention {
    pub room_id: Uuid,
    /// `group` or `direct`.
    pub room_kind: String,
    pub room_name: String,
    pub message_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub sender_username: Option<String>,
    pub sender_display_name: Option<String>,
    pub body: String,
    pub sent_at: DateTime<Utc>,
    /// The log position of the message: the cursor.
    pub position: i64,
    /// Mentioned through `@room`, not by name.
    pub room_mention: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MentionPage {
    pub mentions: Vec<Mention>,
    /// Pass as `before` for the next (older) page; null when there is none.
    pub next_before: Option<i64>,
}

/// Named mentions of `$1` and `@room` mentions in their rooms (a message that does both is
/// listed once, as named), before position `$2`, newest first, `$3` of them.
const MENTIONS_SQL: &str = "
WITH mine AS (
  SELECT x.room_id, x.seq, x.message_id, x.sender_id, x.position, x.sent_at,
         false AS room_mention
    FROM rm_mentions x
    JOIN rm_members m ON m.room_id = x.room_id AND m.user_id = x.user_id
   WHERE x.user_id = $1 AND m.status = 'joined' AND x.position < $2
  UNION ALL
  SELECT x.room_id, x.seq, x.message_id, x.sender_id, x.position, x.sent_at, true
    FROM rm_members m
    JOIN rm_room_mentions x ON x.room_id = m.room_id
   WHERE m.user_id = $1 AND m.status = 'joined' AND x.position < $2
     AND x.sender_id <> $1 AND x.sent_at >= m.joined_at
     AND NOT EXISTS (SELECT 1 FROM rm_mentions y
                      WHERE y.room_id = x.room_id AND y.seq = x.seq AND y.user_id = $1)
)
SELECT mine.room_id, r.kind AS room_kind, r.name AS room_name, mine.message_id, mine.seq,
       mine.sender_id, u.username AS sender_username, u.display_name AS sender_display_name,
       msg.body, mine.sent_at, mine.position, mine.room_mention
  FROM mine
  JOIN rm_rooms r ON r.room_id = mine.room_id
  JOIN rm_messages msg ON msg.room_id = mine.room_id AND msg.seq = mine.seq
  LEFT JOIN rm_users u ON u.user_id = mine.sender_id
 WHERE NOT msg.deleted AND msg.body IS NOT NULL
 ORDER BY mine.position DESC
 LIMIT $3";

/// The caller's recent mentions, newest first. `limit` is clamped to 1–100 (default 20).
#[utoipa::path(get, path = "/v1/mentions", security(("bearer" = [])),
    params(("before" = Option<i64>, Query, description = "the previous page's next_before"),
        ("limit" = Option<i64>, Query), ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = MentionPage), (status = 400), (status = 401)))]
pub async fn mentions(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Query(q): Query<MentionsQuery>,
    _read_after: MinPosition,
) -> Result<Json<MentionPage>, ApiError> {
    let limit = clamp_limit(q.limit, DEFAULT_LIMIT);
    let before = q.before.unwrap_or(i64::MAX);
    let mut tx = snapshot(&st.pool).await?;
    let mut mentions = sqlx::query_as::<_, Mention>(MENTIONS_SQL)
        .bind(me.0)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let more = i64::try_from(mentions.len()).unwrap_or(i64::MAX) > limit;
    mentions.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_before = if more {
        mentions.last().map(|m| m.position)
    } else {
        None
    };
    Ok(Json(MentionPage {
        mentions,
        next_before,
    }))
}
