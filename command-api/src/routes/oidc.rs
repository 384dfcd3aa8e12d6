//! Signing in with the configured OpenID Connect provider (ADR 22): `start` sends the browser
//! to the provider, `callback` takes it back, checks the `state`, exchanges the code, verifies
//! the ID token and signs the account linked to the provider's subject in (creating it the
//! first time). Accounts are linked by `(issuer, subject)`, never by e-mail.

use super::auth::{TokenResponse, create_account, issue_tokens};
use crate::error::ApiError;
use crate::oidc::{Identity, Oidc, OidcError};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use events::UserId;
use events::values::Username;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

/// How long a sign-in may take between `start` and `callback`.
const LOGIN_TTL_SECS: f64 = 600.0;

#[derive(Serialize, ToSchema)]
pub struct OidcInfo {
    /// Whether a provider is configured (the web client then shows its button).
    pub enabled: bool,
    /// The provider's name for the button.
    pub name: Option<String>,
}

#[utoipa::path(get, path = "/v1/auth/oidc", responses((status = 200, body = OidcInfo)))]
pub async fn info(State(st): State<AppState>) -> axum::Json<OidcInfo> {
    axum::Json(OidcInfo {
        enabled: st.oidc.is_some(),
        name: st.oidc.as_ref().map(|o| o.provider_name().to_owned()),
    })
}

fn provider(st: &AppState) -> Result<&Oidc, ApiError> {
    st.oidc.as_deref().ok_or_else(|| {
        ApiError::not_found("oidc_not_configured", "no identity provider is configured")
    })
}

impl From<OidcError> for ApiError {
    fn from(e: OidcError) -> Self {
        match &e {
            OidcError::Unavailable(_) => ApiError::unavailable_because(
                "the identity provider is unavailable, retry shortly",
                &e,
            ),
            OidcError::Refused(_) => ApiError::unauthorized("oidc_refused", e.to_string()),
            OidcError::InvalidToken(_) => {
                ApiError::unauthorized("oidc_invalid_token", e.to_string())
            }
            OidcError::Config(_) => ApiError::internal(&e),
        }
    }
}

fn state_hash(state: &str) -> String {
    format!("{:x}", Sha256::digest(state.as_bytes()))
}

#[utoipa::path(get, path = "/v1/auth/oidc/start",
    responses((status = 302, description = "to the provider's authorization endpoint"),
        (status = 404, description = "oidc_not_configured"), (status = 503, description = "the provider is unavailable")))]
pub async fn start(State(st): State<AppState>) -> Result<Response, ApiError> {
    let oidc = provider(&st)?;
    let begun = oidc.begin().await?;
    // Sign-ins never finished are forgotten as new ones start.
    sqlx::query("DELETE FROM oidc_logins WHERE created_at < now() - make_interval(secs => $1 * 6)")
        .bind(LOGIN_TTL_SECS)
        .execute(&st.pool)
        .await?;
    sqlx::query("INSERT INTO oidc_logins (state_hash, nonce, pkce_verifier) VALUES ($1, $2, $3)")
        .bind(state_hash(&begun.state))
        .bind(&begun.nonce)
        .bind(&begun.pkce_verifier)
        .execute(&st.pool)
        .await?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, begun.authorize_url),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    /// Set by the provider instead of `code` when the sign-in did not happen. Anything else
    /// it adds (`scope`, `iss`, `error_description`) is ignored.
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/v1/auth/oidc/callback",
    params(("state" = Option<String>, Query), ("code" = Option<String>, Query), ("error" = Option<String>, Query)),
    responses((status = 200, body = TokenResponse, description = "signed in (with Accept: application/json)"),
        (status = 302, description = "signed in: to the web client with the tokens in the URL fragment"),
        (status = 400, description = "invalid_state: unknown, used or expired"),
        (status = 401, description = "oidc_refused, oidc_invalid_token"),
        (status = 404, description = "oidc_not_configured"), (status = 503)))]
pub async fn callback(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let oidc = provider(&st)?;
    let invalid_state = || {
        ApiError::bad_request(
            "invalid_state",
            "this sign-in is unknown, was used or has expired; start again",
        )
    };
    let state = q.state.as_deref().ok_or_else(invalid_state)?;
    // Used once, whatever happens next: a replayed callback finds it spent.
    let login: Option<(String, String)> = sqlx::query_as(
        "UPDATE oidc_logins SET used_at = now()
          WHERE state_hash = $1 AND used_at IS NULL
            AND created_at > now() - make_interval(secs => $2)
          RETURNING nonce, pkce_verifier",
    )
    .bind(state_hash(state))
    .bind(LOGIN_TTL_SECS)
    .fetch_optional(&st.pool)
    .await?;
    let (nonce, verifier) = login.ok_or_else(invalid_state)?;
    if let Some(error) = &q.error {
        return Err(ApiError::unauthorized(
            "oidc_refused",
            format!("the identity provider did not sign you in: {error}"),
        ));
    }
    let code = q
        .code
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("invalid_query", "code is required"))?;
    let identity = oidc.finish(code, &nonce, &verifier).await?;

    let mut tx = eventlog::pool::begin(&st.pool).await?;
    let user = match linked(&mut tx, &identity).await? {
        Some(user) => user,
        None => create_linked(&st, &mut tx, &identity).await?,
    };
    let deactivated: bool =
        sqlx::query_scalar("SELECT deactivated_at IS NOT NULL FROM credentials WHERE user_id = $1")
            .bind(user.0)
            .fetch_one(&mut *tx)
            .await?;
    if deactivated {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account_deactivated",
            "this account was deactivated by an administrator",
        ));
    }
    let tokens = issue_tokens(&st, &mut tx, user, Uuid::now_v7(), &headers).await?;
    tx.commit().await?;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return Ok(axum::Json(tokens).into_response());
    }
    // The web client reads the tokens from the fragment, which never reaches a server.
    let fragment = format!(
        "/#sso&user_id={}&access_token={}&refresh_token={}&expires_in={}",
        tokens.user_id, tokens.access_token, tokens.refresh_token, tokens.expires_in
    );
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, fragment),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response())
}

async fn linked(
    tx: &mut sqlx::PgConnection,
    identity: &Identity,
) -> Result<Option<UserId>, ApiError> {
    let user: Option<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM oidc_identities WHERE issuer = $1 AND subject = $2",
    )
    .bind(&identity.issuer)
    .bind(&identity.subject)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(user.map(UserId))
}

/// Usernames to try for a new account of `identity`, best first: its preferred username made
/// valid, then with a short suffix, then one made of its id.
fn username_candidates(identity: &Identity) -> Vec<Username> {
    let base: String = identity
        .preferred_username
        .as_deref()
        .unwrap_or_default()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(27)
        .collect();
    let mut out = Vec::new();
    let random = Uuid::new_v4().simple().to_string();
    if !base.is_empty() {
        out.extend(Username::parse(&base).ok());
        out.extend(Username::parse(&format!("{base}-{}", &random[..4])).ok());
    }
    out.extend(Username::parse(&format!("user-{}", &random[..12])).ok());
    out
}

/// Creates the account of a first sign-in, linked to its subject. It has no password anyone
/// knows (a hash of random bytes): it signs in through the provider, or after a password
/// reset by an administrator.
async fn create_linked(
    st: &AppState,
    tx: &mut sqlx::PgConnection,
    identity: &Identity,
) -> Result<UserId, ApiError> {
    let secret = Uuid::new_v4().to_string() + &Uuid::new_v4().to_string();
    let hash = st.hasher.hash(&secret).await?;
    let display_name = identity
        .name
        .as_deref()
        .and_then(|n| events::values::DisplayName::parse(n).ok());
    for username in username_candidates(identity) {
        if let Some((user, _)) =
            create_account(st, tx, &username, display_name.clone(), &hash).await?
        {
            sqlx::query(
                "INSERT INTO oidc_identities (issuer, subject, user_id) VALUES ($1, $2, $3)",
            )
            .bind(&identity.issuer)
            .bind(&identity.subject)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
            return Ok(user);
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "username_taken",
        "no free username for this account; try again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(preferred: Option<&str>) -> Identity {
        Identity {
            issuer: "http://idp/".into(),
            subject: "s".into(),
            preferred_username: preferred.map(str::to_owned),
            name: None,
        }
    }

    #[test]
    fn a_preferred_username_is_made_valid_and_a_fallback_always_exists() {
        let names = |p| {
            username_candidates(&who(p))
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Some("Alice.Liddell"))[0], "alice.liddell");
        assert_eq!(names(Some("Zoë Ö"))[0], "zo___");
        // Too short or absent: only the fallbacks.
        assert!(names(Some("a"))[0].starts_with("a-"));
        assert!(names(None)[0].starts_with("user-"));
        assert_eq!(names(Some(&"x".repeat(100)))[0].len(), 27);
    }
}
