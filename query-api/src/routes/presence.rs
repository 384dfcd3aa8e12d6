//! Presence of people the caller shares a room with.

use super::Query;
use super::consistency::MinPosition;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use events::UserId;
use http_kit::error::ApiError;
use http_kit::extract::AuthUser;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Most users one request may ask about.
pub const MAX_USERS: usize = 100;

#[derive(Serialize, ToSchema)]
pub struct Presence {
    pub user_id: Uuid,
    /// `online` or `offline`.
    pub status: String,
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct PresenceList {
    pub presence: Vec<Presence>,
}

/// Presence of up to 100 users (`user_id=a&user_id=b`, or comma-separated). Only
/// the caller and users who share a joined room with the caller are reported;
/// anyone else — unknown, or sharing no room — is left out of the answer, in the
/// same way, so the endpoint tells nobody whether a user exists.
#[utoipa::path(get, path = "/v1/presence", security(("bearer" = [])),
    params(("user_id" = Vec<Uuid>, Query, description = "repeatable, 1-100"), ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = PresenceList), (status = 400), (status = 401)))]
pub async fn presence(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Query(pairs): Query<Vec<(String, String)>>,
    _read_after: MinPosition,
) -> Result<Json<PresenceList>, ApiError> {
    let mut wanted: Vec<Uuid> = Vec::new();
    for (_, v) in pairs.iter().filter(|(k, _)| k == "user_id") {
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = part.parse::<Uuid>().map_err(|_| {
                ApiError::bad_request("invalid_query", format!("user_id {part:?} is not a UUID"))
            })?;
            if !wanted.contains(&id) {
                wanted.push(id);
            }
        }
    }
    if wanted.is_empty() || wanted.len() > MAX_USERS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("give 1 to {MAX_USERS} distinct user_id parameters"),
        ));
    }
    let visible: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT DISTINCT o.user_id
           FROM rm_members mine
           JOIN rm_members o ON o.room_id = mine.room_id AND o.status = 'joined'
          WHERE mine.user_id = $1 AND mine.status = 'joined' AND o.user_id = ANY($2)",
    )
    .bind(me.0)
    .bind(&wanted)
    .fetch_all(&st.pool)
    .await?;
    // In the order asked; the caller always sees themself.
    let allowed: Vec<UserId> = wanted
        .iter()
        .filter(|u| **u == me.0 || visible.iter().any(|(v,)| v == *u))
        .map(|u| UserId(*u))
        .collect();
    let presence = st
        .live
        .presence_of(&allowed)
        .await
        .into_iter()
        // Defence in depth: never report anyone the filter did not allow.
        .filter(|p| allowed.contains(&p.user_id))
        .map(|p| Presence {
            user_id: p.user_id.0,
            status: p.status.to_owned(),
            last_seen: p.last_seen,
        })
        .collect();
    Ok(Json(PresenceList { presence }))
}
