//! The caller's sessions (one per login: the family its refresh tokens share) and their
//! password. Listing and ending sessions, and changing the password, which ends every other
//! session: their refresh tokens are refused from then on, so each ends at its next refresh
//! (an access token already issued runs out by itself, within its lifetime).

use crate::error::ApiError;
use crate::extract::{AuthSession, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use events::UserId;
use events::values::Password;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// Which of a user's open sessions [`end_sessions`] ends.
pub(crate) enum Ending {
    /// This one.
    One(Uuid),
    /// Every one but this one (every one with `None`).
    AllBut(Option<Uuid>),
}

/// Ends `user`'s sessions that `which` names: they are marked ended and their refresh tokens
/// revoked, so none refreshes again. Returns those that were open. Every session-ending path
/// (logout, sign-out, password change, deactivation) goes through here, in the caller's
/// transaction.
pub(crate) async fn end_sessions(
    conn: &mut PgConnection,
    user: UserId,
    which: Ending,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let (one, keep) = match which {
        Ending::One(id) => (Some(id), None),
        Ending::AllBut(keep) => (None, keep),
    };
    let ended: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE sessions SET ended_at = now()
          WHERE user_id = $1 AND ended_at IS NULL
            AND ($2::uuid IS NULL OR session_id = $2) AND session_id IS DISTINCT FROM $3
          RETURNING session_id",
    )
    .bind(user.0)
    .bind(one)
    .bind(keep)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
          WHERE user_id = $1 AND revoked_at IS NULL AND family_id = ANY($2)",
    )
    .bind(user.0)
    .bind(&ended)
    .execute(&mut *conn)
    .await?;
    Ok(ended)
}

#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Session {
    pub session_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The last login or refresh.
    pub refreshed_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    /// The session of the token this request was made with.
    pub current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Sessions {
    /// Open sessions (not ended, refreshed within the refresh token lifetime), newest first.
    pub sessions: Vec<Session>,
}

#[utoipa::path(get, path = "/v1/me/sessions", security(("bearer" = [])),
    responses((status = 200, body = Sessions), (status = 401)))]
pub async fn list(
    State(st): State<AppState>,
    auth: AuthSession,
) -> Result<axum::Json<Sessions>, ApiError> {
    let ttl = i64::try_from(st.refresh_ttl.as_secs()).unwrap_or(i64::MAX);
    let sessions = sqlx::query_as::<_, Session>(
        "SELECT session_id, created_at, refreshed_at, user_agent,
                session_id IS NOT DISTINCT FROM $2 AS current
           FROM sessions
          WHERE user_id = $1 AND ended_at IS NULL
            AND refreshed_at > now() - make_interval(secs => $3)
          ORDER BY refreshed_at DESC, session_id",
    )
    .bind(auth.user.0)
    .bind(auth.session)
    .bind(ttl as f64)
    .fetch_all(&st.pool)
    .await?;
    Ok(axum::Json(Sessions { sessions }))
}

#[utoipa::path(delete, path = "/v1/me/sessions/{session_id}", security(("bearer" = [])),
    params(("session_id" = Uuid, Path)),
    responses((status = 204, description = "ended: its refresh tokens are refused from now on"), (status = 401),
        (status = 404, description = "session_not_found (not the caller's, or ended already)")))]
pub async fn end(
    State(st): State<AppState>,
    auth: AuthSession,
    Path(session_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = eventlog::pool::begin(&st.pool).await?;
    let ended = end_sessions(&mut tx, auth.user, Ending::One(session_id)).await?;
    tx.commit().await?;
    if ended.is_empty() {
        return Err(ApiError::not_found("session_not_found", "no such session"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub current_password: String,
    /// 10–1024 characters.
    pub new_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordChanged {
    /// Other sessions ended by the change.
    pub sessions_ended: u64,
}

#[utoipa::path(post, path = "/v1/me/password", request_body = PasswordBody, security(("bearer" = [])),
    responses((status = 200, body = PasswordChanged), (status = 400), (status = 401),
        (status = 403, description = "wrong_password"),
        (status = 429, description = "rate_limited: too many attempts for this user (Retry-After)")))]
pub async fn change_password(
    State(st): State<AppState>,
    auth: AuthSession,
    Json(body): Json<PasswordBody>,
) -> Result<axum::Json<PasswordChanged>, ApiError> {
    let me = auth.user;
    // A guess costs a hash: limited like logins for this user's name.
    st.limits.login_username.check(&format!("password:{me}"))?;
    let new = Password::parse(&body.new_password)?;
    let hash: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM credentials WHERE user_id = $1")
            .bind(me.0)
            .fetch_optional(&st.pool)
            .await?;
    let Some(hash) = hash else {
        return Err(ApiError::unauthorized("invalid_token", "no such user"));
    };
    let current: String = body.current_password.chars().take(1024).collect();
    if !st.hasher.verify(&current, &hash).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is wrong",
        ));
    }
    let new_hash = st.hasher.hash(new.expose()).await?;
    let mut tx = eventlog::pool::begin(&st.pool).await?;
    sqlx::query("UPDATE credentials SET password_hash = $2 WHERE user_id = $1")
        .bind(me.0)
        .bind(&new_hash)
        .execute(&mut *tx)
        .await?;
    // Every session but this one (a token without a session keeps none).
    let ended = end_sessions(&mut tx, me, Ending::AllBut(auth.session)).await?;
    tx.commit().await?;
    Ok(axum::Json(PasswordChanged {
        sessions_ended: ended.len() as u64,
    }))
}
