//! The audit trail of server administrators (issue #18), for server administrators: every
//! action done with their authority, newest first. The trail is the log: the projector keeps
//! `rm_audit` from the events that carry it (`UserDeactivated`, and the room events marked
//! `as_admin`), so a rebuild reproduces it.

use super::Query;
use super::admin::require_admin;
use super::consistency::MinPosition;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use http_kit::error::ApiError;
use http_kit::extract::AuthUser;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Entries per page unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 50;
/// Most entries per page.
pub const MAX_LIMIT: i64 = 200;

#[derive(Deserialize)]
pub struct AuditQuery {
    /// Entries before this log position (the `next_before` of the previous page).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditEntry {
    /// The log position of the event: the cursor.
    pub position: i64,
    pub occurred_at: DateTime<Utc>,
    /// The event, as the live feed names it: `user_deactivated`, `user_erased`, `member_role_changed`,
    /// `message_deleted`, `member_banned` or `member_unbanned`.
    #[serde(rename = "type")]
    #[sqlx(rename = "event_type")]
    pub event_type: String,
    /// The administrator who acted.
    pub actor_id: Uuid,
    /// The user acted on (deactivated, given a role, banned, unbanned).
    pub user_id: Option<Uuid>,
    /// The room it happened in (room events).
    pub room_id: Option<Uuid>,
    /// The message deleted.
    pub message_id: Option<Uuid>,
    /// The role given (`member` or `admin`), for a role change.
    pub role: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; null when there is none.
    pub next_before: Option<i64>,
}

/// What server administrators did, newest first. Server administrators only.
#[utoipa::path(get, path = "/v1/admin/audit", security(("bearer" = [])),
    params(("before" = Option<i64>, Query, minimum = 1, description = "the previous page's next_before"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "default 50"),
        ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = AuditPage), (status = 400, description = "invalid_query"), (status = 401),
        (status = 403, description = "not_an_admin")))]
pub async fn audit(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Query(q): Query<AuditQuery>,
    _read_after: MinPosition,
) -> Result<Json<AuditPage>, ApiError> {
    require_admin(&st, me).await?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "before must be a log position (at least 1)",
        ));
    }
    let mut entries = sqlx::query_as::<_, AuditEntry>(
        "SELECT position, occurred_at, event_type, actor_id, user_id, room_id, message_id, role
           FROM rm_audit
          WHERE position < $1
          ORDER BY position DESC
          LIMIT $2",
    )
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(&st.pool)
    .await?;
    let more = entries.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_before = if more {
        entries.last().map(|e| e.position)
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries,
        next_before,
    }))
}
