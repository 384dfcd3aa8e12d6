//! Single sign-on with an OpenID Connect provider: the authorization code flow with PKCE,
//! through the `openidconnect` crate (discovery, the token request, the ID token's signature
//! against the provider's JWKS, its issuer, audience, expiry and nonce).
//!
//! The provider is discovered on first use, not at start-up (a provider that is down must not
//! keep the service from starting), and discovered again when an ID token is signed by a key
//! the last discovery did not list: the provider rotated its keys. At most once a minute, so
//! a stream of forged tokens cannot make us hammer the provider.

use crate::configuration::OidcSettings;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError, TokenResponse, reqwest,
};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// The client as discovery makes it: an authorization endpoint; a token endpoint maybe.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The shortest time between two discoveries forced by an unknown signing key.
const REDISCOVER_AFTER: Duration = Duration::from_secs(60);
/// How long a request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider cannot be reached or answers nonsense: try again later.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the code (used, expired, not for this client or verifier).
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The ID token does not verify (signature, issuer, audience, expiry, nonce).
    #[error("the identity provider's ID token is not valid: {0}")]
    InvalidToken(String),
    #[error("single sign-on is misconfigured: {0}")]
    Config(String),
}

/// A sign-in the browser is sent to the provider for: what the callback needs back.
pub struct Begun {
    pub authorize_url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider says signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
}

/// One configured provider.
pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    client: RwLock<Option<(Client, Instant)>>,
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Result<Oidc, OidcError> {
        let http = reqwest::ClientBuilder::new()
            // Following redirects would open the client to SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| OidcError::Config(e.to_string()))?;
        Ok(Oidc {
            settings,
            http,
            client: RwLock::new(None),
        })
    }

    /// The name on the "Sign in with …" button.
    pub fn provider_name(&self) -> &str {
        &self.settings.oidc_provider_name
    }

    async fn discover(&self) -> Result<Client, OidcError> {
        let s = &self.settings;
        let issuer =
            IssuerUrl::new(s.oidc_issuer.clone()).map_err(|e| OidcError::Config(e.to_string()))?;
        let redirect = RedirectUrl::new(s.oidc_redirect_uri.clone())
            .map_err(|e| OidcError::Config(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Unavailable(chain(&e)))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(s.oidc_client_id.clone()),
            Some(ClientSecret::new(s.oidc_client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// The client of the last discovery, discovering first when there is none (or, with
    /// `fresh`, when the last one is older than [`REDISCOVER_AFTER`]).
    async fn client(&self, fresh: bool) -> Result<Client, OidcError> {
        if let Some((client, at)) = self.client.read().await.as_ref()
            && !(fresh && at.elapsed() >= REDISCOVER_AFTER)
        {
            return Ok(client.clone());
        }
        let mut slot = self.client.write().await;
        if let Some((client, at)) = slot.as_ref()
            && !(fresh && at.elapsed() >= REDISCOVER_AFTER)
        {
            return Ok(client.clone());
        }
        let client = self.discover().await?;
        *slot = Some((client.clone(), Instant::now()));
        Ok(client)
    }

    /// Starts a sign-in: the provider's authorization URL with a fresh `state`, `nonce` and
    /// PKCE challenge (S256), asking for `openid profile email`.
    pub async fn begin(&self) -> Result<Begun, OidcError> {
        let client = self.client(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Begun {
            authorize_url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a sign-in: exchanges `code` (with the PKCE verifier of its `begin`) for
    /// tokens and verifies the ID token, whose `nonce` must be the one of its `begin`.
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<Identity, OidcError> {
        let client = self.client(false).await?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    OidcError::Refused(r.to_string())
                }
                other => OidcError::Unavailable(chain(&other)),
            })?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("no ID token".into()))?;
        self.verify(&client, id_token, nonce).await
    }

    /// Verifies an ID token with the keys of the last discovery; one signed by a key those
    /// do not list is verified again after a new discovery (the provider rotated its keys).
    pub async fn verify(
        &self,
        client: &Client,
        id_token: &openidconnect::core::CoreIdToken,
        nonce: &str,
    ) -> Result<Identity, OidcError> {
        let nonce = Nonce::new(nonce.to_owned());
        let first = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .map(identity);
        match first {
            Ok(identity) => Ok(identity),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let client = self.client(true).await?;
                id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map(identity)
                    .map_err(|e| OidcError::InvalidToken(e.to_string()))
            }
            Err(e) => Err(OidcError::InvalidToken(e.to_string())),
        }
    }

    /// Verifies a raw ID token (compact JWS) as [`Oidc::verify`] does: for tests of what the
    /// provider's keys refuse.
    pub async fn verify_raw(&self, id_token: &str, nonce: &str) -> Result<Identity, OidcError> {
        let token: openidconnect::core::CoreIdToken = id_token
            .parse()
            .map_err(|e: serde_json::Error| OidcError::InvalidToken(e.to_string()))?;
        let client = self.client(false).await?;
        self.verify(&client, &token, nonce).await
    }
}

fn identity(claims: &openidconnect::core::CoreIdTokenClaims) -> Identity {
    Identity {
        issuer: claims.issuer().as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
        preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned()),
    }
}

/// An error and its sources, `outer: inner`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
