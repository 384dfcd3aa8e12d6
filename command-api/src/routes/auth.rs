//! Register, log in, refresh, log out.

use crate::auth::new_refresh_token;
use crate::error::ApiError;
use crate::extract::Json;
use crate::rate_limits::ClientIp;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use eventlog::{AppendRequest, ExpectedVersion};
use events::user::{self, Register, UserEvent, UserState};
use events::values::{DisplayName, Password, Username};
use events::{StoredEvent, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// 3–32 characters of `[a-z0-9_.-]`.
    pub username: String,
    /// 10–1024 characters.
    pub password: String,
    /// Up to 64 characters; defaults to the username.
    pub display_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub user_id: Uuid,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub token_type: &'static str,
    /// Registration only: the log position of the `UserRegistered` event, to pass as
    /// `min_position` to a first read (`GET /v1/me`) so it waits for the new account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
}

#[utoipa::path(post, path = "/v1/auth/register", request_body = RegisterBody,
    responses((status = 201, body = TokenResponse), (status = 400), (status = 409, description = "username taken"),
        (status = 429, description = "rate_limited: too many registrations from this address (Retry-After)")))]
pub async fn register(
    State(st): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Json(body): Json<RegisterBody>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(ip) = client {
        st.limits.register_ip.check(&ip)?;
    }
    let username = Username::parse(&body.username)?;
    let password = Password::parse(&body.password)?;
    let display_name = body
        .display_name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()?;
    let hash = st.hasher.hash(password.expose()).await?;

    let mut tx = eventlog::pool::begin(&st.pool).await?;
    let Some((user_id, position)) =
        create_account(&st, &mut tx, &username, display_name, &hash).await?
    else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "username_taken",
            "this username is taken",
        ));
    };
    let mut tokens = issue_tokens(&st, &mut tx, user_id, Uuid::now_v7(), &headers).await?;
    tokens.position = Some(position);
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(tokens)))
}

/// Creates an account in `tx`: its credentials row (with `password_hash`) and its
/// `UserRegistered` event, appended in the same transaction. `None` when the username is
/// taken (nothing written); else the new user and the event's log position.
pub(crate) async fn create_account(
    st: &AppState,
    tx: &mut sqlx::PgConnection,
    username: &Username,
    display_name: Option<DisplayName>,
    password_hash: &str,
) -> Result<Option<(UserId, i64)>, ApiError> {
    let user_id = UserId::new();
    let events = user::decide(
        &UserState::default(),
        Register {
            user_id,
            username: username.clone(),
            display_name,
        },
    )
    .map_err(|e| ApiError::new(StatusCode::CONFLICT, "user_exists", e.to_string()))?;
    // Erased users are left with these names (ADR 23): nobody registers one.
    if username
        .as_str()
        .starts_with(vault::fields::ERASED_USERNAME_PREFIX)
    {
        return Ok(None);
    }
    let inserted = sqlx::query(
        "INSERT INTO credentials (user_id, username, password_hash) VALUES ($1, $2, $3)
         ON CONFLICT (username) DO NOTHING",
    )
    .bind(user_id.0)
    .bind(username.as_str())
    .bind(password_hash)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    let request = AppendRequest {
        stream_id: user_id.stream_id(),
        stream_type: UserEvent::STREAM_TYPE.to_owned(),
        expected: ExpectedVersion::NoStream,
        events: super::me::new_user_events(st, &events, user_id).await?,
        idempotency: vec![],
    };
    let results = st
        .store
        .append_in_tx(&mut *tx, std::slice::from_ref(&request))
        .await?;
    let appended = match results.into_iter().next() {
        Some(Ok(appended)) => appended,
        Some(Err(e)) => return Err(ApiError::internal(&e)),
        None => return Err(ApiError::internal_message("append returned no result")),
    };
    // Appended beside the group commit (with the credentials, in one transaction).
    let events = appended.last_position - appended.first_position + 1;
    st.metrics
        .commit
        .events
        .inc_by(u64::try_from(events).unwrap_or(0));
    Ok(Some((user_id, appended.last_position)))
}

#[utoipa::path(post, path = "/v1/auth/login", request_body = LoginBody,
    responses((status = 200, body = TokenResponse), (status = 401),
        (status = 429, description = "rate_limited: too many logins from this address or for this username (Retry-After)")))]
pub async fn login(
    State(st): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    // Before the password hash: a flood costs a map lookup per request, not a hash.
    if let Some(ip) = client {
        st.limits.login_ip.check(&ip)?;
    }
    // Keyed by the name as it could be registered (a longer one is no user's: its first
    // 64 characters keep the key small).
    let attempted: String = body
        .username
        .trim()
        .to_lowercase()
        .chars()
        .take(64)
        .collect();
    st.limits.login_username.check(&attempted)?;
    // The same 401, after the same work, whether the user is unknown or the
    // password wrong: neither timing nor body tells which.
    // Input that could never have been registered is just an unknown user.
    let row: Option<(Uuid, String, bool)> = match (
        Username::parse(&body.username),
        Password::parse(&body.password),
    ) {
        (Ok(username), Ok(_)) => {
            sqlx::query_as(
                "SELECT user_id, password_hash, deactivated_at IS NOT NULL
                   FROM credentials WHERE username = $1",
            )
            .bind(username.as_str())
            .fetch_optional(&st.pool)
            .await?
        }
        _ => None,
    };
    let Some((user_id, hash, deactivated)) = row else {
        // Cap what is hashed so an oversized password costs no more than a real one.
        let capped: String = body.password.chars().take(1024).collect();
        st.hasher.verify_dummy(&capped).await;
        return Err(crate::auth::AuthError::InvalidCredentials.into());
    };
    if !st.hasher.verify(&body.password, &hash).await? {
        return Err(crate::auth::AuthError::InvalidCredentials.into());
    }
    // Told only to whoever knows the password.
    if deactivated {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account_deactivated",
            "this account was deactivated by an administrator",
        ));
    }
    let mut tx = eventlog::pool::begin(&st.pool).await?;
    let tokens = issue_tokens(&st, &mut tx, UserId(user_id), Uuid::now_v7(), &headers).await?;
    tx.commit().await?;
    Ok(axum::Json(tokens))
}

#[utoipa::path(post, path = "/v1/auth/refresh", request_body = RefreshBody,
    responses((status = 200, body = TokenResponse), (status = 401)))]
pub async fn refresh(
    State(st): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    let invalid = || ApiError::unauthorized("invalid_refresh_token", "invalid refresh token");
    let hash = crate::auth::hash_refresh_token(&body.refresh_token);
    let mut tx = eventlog::pool::begin(&st.pool).await?;
    // A deactivated account's tokens are revoked with it; its row is checked too, should a
    // token have escaped that (the deactivation commits before the sessions end).
    let spent: Option<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE refresh_tokens t SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
           AND NOT EXISTS (SELECT 1 FROM credentials c
                            WHERE c.user_id = t.user_id AND c.deactivated_at IS NOT NULL)
         RETURNING user_id, family_id",
    )
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, family)) = spent else {
        // A spent token presented again means it leaked: revoke its whole family.
        sqlx::query(
            "WITH family AS (UPDATE refresh_tokens SET revoked_at = now()
               WHERE revoked_at IS NULL AND family_id =
                  (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL)
               RETURNING family_id)
             UPDATE sessions SET ended_at = now()
              WHERE ended_at IS NULL AND session_id IN (SELECT family_id FROM family)",
        )
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Err(invalid());
    };
    let tokens = issue_tokens(&st, &mut tx, UserId(user_id), family, &headers).await?;
    tx.commit().await?;
    Ok(axum::Json(tokens))
}

/// Ends the session the refresh token belongs to: every token of its family (the
/// one login it was rotated from) is revoked, so neither it nor any earlier or later
/// rotation refreshes again. Other sessions of the user are untouched. Idempotent, and
/// the same 204 for a token that is unknown, spent or revoked: the answer tells nothing
/// about a token. The access tokens already issued stay valid until they expire.
#[utoipa::path(post, path = "/v1/auth/logout", request_body = RefreshBody,
    responses((status = 204, description = "the session is ended"), (status = 400)))]
pub async fn logout(
    State(st): State<AppState>,
    Json(body): Json<RefreshBody>,
) -> Result<StatusCode, ApiError> {
    let hash = crate::auth::hash_refresh_token(&body.refresh_token);
    let mut tx = eventlog::pool::begin(&st.pool).await?;
    let token: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT user_id, family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((user, family)) = token {
        super::sessions::end_sessions(&mut tx, UserId(user), super::sessions::Ending::One(family))
            .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Longest `User-Agent` a session keeps.
const MAX_USER_AGENT_CHARS: usize = 256;

/// Issues an access token of session `family` and a new refresh token of it, and records the
/// session (a new one at login, its last refresh otherwise).
pub(crate) async fn issue_tokens(
    st: &AppState,
    tx: &mut sqlx::PgConnection,
    user_id: UserId,
    family: Uuid,
    headers: &HeaderMap,
) -> Result<TokenResponse, ApiError> {
    let now = Utc::now();
    let user_agent: Option<String> = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect());
    sqlx::query(
        "INSERT INTO sessions (session_id, user_id, created_at, refreshed_at, user_agent)
         VALUES ($1, $2, $3, $3, $4)
         ON CONFLICT (session_id) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at",
    )
    .bind(family)
    .bind(user_id.0)
    .bind(now)
    .bind(user_agent)
    .execute(&mut *tx)
    .await?;
    let (access_token, expires_in) = st.jwt.issue_session_access(user_id.0, Some(family), now);
    let refresh = new_refresh_token();
    let ttl = chrono::Duration::from_std(st.refresh_ttl).map_err(|e| ApiError::internal(&e))?;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&refresh.hash)
    .bind(user_id.0)
    .bind(family)
    .bind(now + ttl)
    .execute(&mut *tx)
    .await?;
    Ok(TokenResponse {
        user_id: user_id.0,
        access_token,
        refresh_token: refresh.token,
        expires_in,
        token_type: "Bearer",
        position: None,
    })
}
