//! Server administration reads (issue #18): who is a server administrator, and the
//! platform's figures for them. A server administrator is the first user registered, or one
//! named in `APP_ADMIN_USERNAMES`; everyone else gets 403 `not_an_admin`.

use super::consistency::MinPosition;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use events::UserId;
use http_kit::error::ApiError;
use http_kit::extract::AuthUser;
use serde::Serialize;
use utoipa::ToSchema;

/// Succeeds for a server administrator; 403 `not_an_admin` for anyone else.
pub(crate) async fn require_admin(st: &AppState, user: UserId) -> Result<(), ApiError> {
    if is_admin(st, user).await? {
        Ok(())
    } else {
        Err(http_kit::admin::not_an_admin())
    }
}

/// Whether `user` is a server administrator.
pub(crate) async fn is_admin(st: &AppState, user: UserId) -> Result<bool, ApiError> {
    let named = http_kit::admin::named(&st.settings.admin_usernames);
    let admin: Option<bool> = sqlx::query_scalar(
        "SELECT u.username = ANY($2)
             OR u.user_id = (SELECT user_id FROM rm_users ORDER BY registered_at, user_id LIMIT 1)
           FROM rm_users u WHERE u.user_id = $1",
    )
    .bind(user.0)
    .bind(&named)
    .fetch_optional(&st.pool)
    .await?;
    Ok(admin == Some(true))
}

#[derive(Serialize, ToSchema)]
pub struct ProjectionLag {
    pub projection: String,
    /// Events of the log the projection has not applied yet.
    pub lag: i64,
    pub checkpoint: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Stats {
    pub users: i64,
    /// Users with a live socket on any node now.
    pub users_online: usize,
    pub rooms: i64,
    /// Messages sent (deleted ones included).
    pub messages: i64,
    /// Events appended to the log over the last minute, per second.
    pub events_per_second: f64,
    /// The log's last position.
    pub log_head: i64,
    pub projections: Vec<ProjectionLag>,
}

/// Most events looked at to count the last minute's (a bound on the query, not the rate).
const RATE_WINDOW_EVENTS: i64 = 1_000_000;

#[utoipa::path(get, path = "/v1/admin/stats", security(("bearer" = [])),
    params(("min_position" = Option<i64>, Query)),
    responses((status = 200, body = Stats), (status = 401), (status = 403, description = "not_an_admin")))]
pub async fn stats(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    _read_after: MinPosition,
) -> Result<Json<Stats>, ApiError> {
    require_admin(&st, me).await?;
    let (users, rooms, messages): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rm_users),
                (SELECT count(*) FROM rm_rooms),
                (SELECT COALESCE(sum(last_seq), 0)::int8 FROM rm_rooms)",
    )
    .fetch_one(&st.pool)
    .await?;
    let head: i64 = sqlx::query_scalar("SELECT position FROM log_head")
        .fetch_optional(&st.log_pool)
        .await?
        .unwrap_or(0);
    let last_minute: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events
          WHERE position > $1 - $2 AND recorded_at > now() - interval '60 seconds'",
    )
    .bind(head)
    .bind(RATE_WINDOW_EVENTS)
    .fetch_one(&st.log_pool)
    .await?;
    let checkpoints: Vec<(String, i64)> = sqlx::query_as(
        "SELECT projection, position FROM projection_checkpoints ORDER BY projection",
    )
    .fetch_all(&st.pool)
    .await?;
    Ok(Json(Stats {
        users,
        users_online: st.live.online_users(),
        rooms,
        messages,
        #[allow(clippy::cast_precision_loss)]
        events_per_second: last_minute as f64 / 60.0,
        log_head: head,
        projections: checkpoints
            .into_iter()
            .map(|(projection, checkpoint)| ProjectionLag {
                lag: (head - checkpoint).max(0),
                projection,
                checkpoint,
            })
            .collect(),
    }))
}
