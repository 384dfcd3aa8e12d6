//! Authentication primitives for the command API.
//!
//! * [`JwtKeys`]: HS256-only access tokens (issue + strict verification).
//! * [`PasswordHasher`]: Argon2id (OWASP parameters) with bounded concurrency,
//!   executed on the blocking pool.
//! * [`new_refresh_token`] / [`hash_refresh_token`]: opaque refresh tokens;
//!   only their SHA-256 is meant to be stored.
//! * [`forge`]: deliberately broken tokens for negative tests.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, PasswordVerifier, Version};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Minimum accepted length of the HMAC secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Allowed clock skew when checking `exp`, in seconds.
const EXP_LEEWAY_SECS: u64 = 0;

/// Argon2id parameters (OWASP password storage cheat sheet).
const ARGON2_M_COST_KIB: u32 = 19_456;
const ARGON2_T_COST: u32 = 2;
const ARGON2_P_COST: u32 = 1;
const SALT_LEN: usize = 16;

/// A real Argon2id hash with the production parameters (m=19456, t=2, p=1),
/// used by [`PasswordHasher::verify_dummy`] so that a login for an unknown
/// user costs the same as one with a wrong password.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$8TgcDl3JlVC0F1e+Pv6m2Q$MX3nwq5GM+ODsIzABYKnqYJ5+KFp/1FW8CX1FcHLM+w";

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Authentication settings.
#[derive(Clone)]
pub struct AuthConfig {
    /// HMAC-SHA256 secret; its UTF-8 bytes are the key. At least 32 bytes.
    pub jwt_secret: String,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Maximum number of concurrent Argon2 computations.
    pub hash_concurrency: usize,
}

impl Default for AuthConfig {
    /// Random 64-byte secret (base64), issuer `chat`, audience `chat-api`,
    /// 15 min access tokens, 30 day refresh tokens, one hash per CPU.
    fn default() -> Self {
        let mut secret = [0u8; 64];
        rand::rng().fill_bytes(&mut secret);
        Self {
            jwt_secret: STANDARD.encode(secret),
            issuer: "chat".to_owned(),
            audience: "chat-api".to_owned(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            hash_concurrency: std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(1),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwt_secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("hash_concurrency", &self.hash_concurrency)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Errors and claims
// ---------------------------------------------------------------------------

/// Access-token claims.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Claims {
    pub sub: Uuid,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub aud: String,
    pub jti: Uuid,
    /// The session (login) the token was issued for: the refresh-token family it came
    /// with. Absent from tokens made without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

#[derive(thiserror::Error, Debug, PartialEq)]
pub enum AuthError {
    #[error("invalid token")]
    InvalidToken,
    /// The token's user was deactivated.
    #[error("token revoked")]
    Revoked,
    #[error("token expired")]
    Expired,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("weak configuration: {0}")]
    Config(String),
    #[error("password hashing failed")]
    Hashing,
}

// ---------------------------------------------------------------------------
// JWT
// ---------------------------------------------------------------------------

/// HS256 signing/verification keys. The algorithm is pinned: tokens whose
/// header names any other algorithm (including `none`) are rejected. The
/// secret lives only inside the jsonwebtoken key types (zeroized on drop) and
/// never appears in this type's `Debug` output.
///
/// Cheap to clone (one shared allocation): extractors take a copy per request.
#[derive(Clone)]
pub struct JwtKeys {
    inner: std::sync::Arc<JwtInner>,
}

struct JwtInner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    /// Tokens that passed full verification, with their claims (see [`JwtKeys::verify_access`]).
    verified: std::sync::Mutex<HashMap<Box<str>, Claims>>,
    /// Deactivated users: their tokens are refused however valid ([`JwtKeys::revoke_user`]).
    revoked: std::sync::RwLock<std::collections::HashSet<Uuid>>,
}

/// Most tokens kept in the verified-token cache. A client sends the same access token with
/// every request for its lifetime; when the cache is full, expired entries are dropped, and
/// if that is not enough, all of them.
const VERIFIED_CACHE: usize = 16_384;

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("secret", &"<redacted>")
            .field("algorithm", &Algorithm::HS256)
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("access_ttl", &self.inner.access_ttl)
            .finish()
    }
}

impl JwtKeys {
    pub fn new(cfg: &AuthConfig) -> Result<Self, AuthError> {
        let secret = cfg.jwt_secret.as_bytes();
        if secret.len() < MIN_SECRET_LEN {
            return Err(AuthError::Config(format!(
                "jwt_secret must be at least {MIN_SECRET_LEN} bytes, got {}",
                secret.len()
            )));
        }
        if cfg.issuer.is_empty() || cfg.audience.is_empty() {
            return Err(AuthError::Config(
                "issuer and audience must not be empty".to_owned(),
            ));
        }
        if cfg.access_ttl.is_zero() {
            return Err(AuthError::Config("access_ttl must be positive".to_owned()));
        }

        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = EXP_LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = false;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[cfg.issuer.as_str()]);
        validation.set_audience(&[cfg.audience.as_str()]);

        Ok(Self {
            inner: std::sync::Arc::new(JwtInner {
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
                validation,
                issuer: cfg.issuer.clone(),
                audience: cfg.audience.clone(),
                access_ttl: cfg.access_ttl,
                verified: std::sync::Mutex::default(),
                revoked: std::sync::RwLock::default(),
            }),
        })
    }

    /// Issues an access token for `user_id`; returns it with its lifetime in
    /// seconds.
    pub fn issue_access(&self, user_id: Uuid, now: DateTime<Utc>) -> (String, i64) {
        self.issue_session_access(user_id, None, now)
    }

    /// An access token for `user_id` in session `sid` (the refresh-token family of a login).
    pub fn issue_session_access(
        &self,
        user_id: Uuid,
        sid: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> (String, i64) {
        let ttl = i64::try_from(self.inner.access_ttl.as_secs()).unwrap_or(i64::MAX);
        let iat = now.timestamp();
        let claims = Claims {
            sub: user_id,
            exp: iat.saturating_add(ttl),
            iat,
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone(),
            jti: Uuid::new_v4(),
            sid,
        };
        (self.sign(&claims, Algorithm::HS256), ttl)
    }

    /// Verifies signature (HS256 only), `exp` (required, no leeway), `iss`
    /// and `aud`.
    ///
    /// A token that passed once is remembered with its claims, byte for byte: the same
    /// string under the same key verifies the same way until its `exp`, which is checked
    /// again on every use. (Full verification parses the token's JSON three times and was
    /// a tenth of the command API's CPU.) Only verified tokens are stored, so a forged or
    /// altered token never matches one.
    pub fn verify_access(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.verify_access_at(token, jsonwebtoken::get_current_timestamp())?;
        if self.is_revoked(claims.sub) {
            return Err(AuthError::Revoked);
        }
        Ok(claims)
    }

    /// Refuses every token of `user` from now on (a deactivated account), in this process;
    /// each service learns of a deactivation from the log's tables and a NATS notice.
    pub fn revoke_user(&self, user: Uuid) {
        self.inner
            .revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user);
    }

    pub fn is_revoked(&self, user: Uuid) -> bool {
        self.inner
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&user)
    }

    /// [`Self::verify_access`] as of `now` (seconds since the epoch) for remembered tokens;
    /// a token seen for the first time is verified against the system clock.
    fn verify_access_at(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let mut cache = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(claims) = cache.get(token) {
            if claims.exp < now {
                cache.remove(token);
                return Err(AuthError::Expired);
            }
            return Ok(claims.clone());
        }
        drop(cache);
        let claims = self.verify_fully(token)?;
        let mut cache = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_CACHE {
            cache.retain(|_, c| c.exp >= now);
            if cache.len() >= VERIFIED_CACHE {
                cache.clear();
            }
        }
        cache.insert(token.into(), claims.clone());
        Ok(claims)
    }

    fn verify_fully(&self, token: &str) -> Result<Claims, AuthError> {
        // Pin the algorithm before anything else; `none` does not even parse.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::InvalidToken);
        }
        jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &self.inner.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken,
            })
    }

    /// Signs arbitrary claims with this key's secret under an HMAC algorithm.
    fn sign<T: Serialize>(&self, claims: &T, alg: Algorithm) -> String {
        sign_with(&self.inner.encoding, claims, alg)
    }
}

/// HMAC signing of plain serializable claims. Signing with an HMAC key under an
/// HMAC algorithm and serializing plain structs cannot fail.
fn sign_with<T: Serialize>(key: &EncodingKey, claims: &T, alg: Algorithm) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key)
        .expect("HMAC signing of plain claims is infallible")
}

// ---------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------

/// Argon2id password hasher (m=19456 KiB, t=2, p=1). At most
/// `hash_concurrency` hashes run at once; each runs on the blocking pool.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("algorithm", &"argon2id")
            .field("m_cost_kib", &ARGON2_M_COST_KIB)
            .field("t_cost", &ARGON2_T_COST)
            .field("p_cost", &ARGON2_P_COST)
            .field("available_permits", &self.permits.available_permits())
            .finish()
    }
}

impl PasswordHasher {
    pub fn new(cfg: &AuthConfig) -> Self {
        // The constants are valid Argon2 parameters; fall back to the crate's
        // defaults (identical values) rather than panicking.
        let params =
            Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None).unwrap_or_default();
        Self {
            argon2: Argon2::new(ArgonAlgorithm::Argon2id, Version::V0x13, params),
            permits: Arc::new(Semaphore::new(cfg.hash_concurrency.max(1))),
        }
    }

    /// Hashes `password` with a fresh random salt; returns a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let mut salt = [0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|_| AuthError::Hashing)?;
        let password = password.to_owned();
        self.run_blocking(move |argon2| {
            use argon2::PasswordHasher as _;
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|_| AuthError::Hashing)
        })
        .await
    }

    /// Checks `password` against a stored PHC string. `Ok(false)` on mismatch;
    /// `Err(Hashing)` if the stored string is malformed or hashing fails.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<bool, AuthError> {
        let password = password.to_owned();
        let phc = phc.to_owned();
        self.run_blocking(move |argon2| {
            let parsed = PasswordHash::new(&phc).map_err(|_| AuthError::Hashing)?;
            match argon2.verify_password(password.as_bytes(), &parsed) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::Password) => Ok(false),
                Err(_) => Err(AuthError::Hashing),
            }
        })
        .await
    }

    /// Performs the same work as a real [`verify`](Self::verify) against a
    /// fixed hash and discards the result, so that unknown users and wrong
    /// passwords are indistinguishable by timing.
    pub async fn verify_dummy(&self, password: &str) {
        let _ = self.verify(password, DUMMY_PHC).await;
    }

    /// Runs `f` on the blocking pool while holding one concurrency permit.
    /// The permit moves into the blocking task, so it stays held until the
    /// CPU work is done even if the calling future is dropped.
    async fn run_blocking<T, F>(&self, f: F) -> Result<T, AuthError>
    where
        T: Send + 'static,
        F: FnOnce(&Argon2<'static>) -> Result<T, AuthError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Hashing)?;
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&argon2)
        })
        .await
        .map_err(|_| AuthError::Hashing)?
    }
}

// ---------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------

/// An opaque refresh token and the hash to store server-side.
pub struct RefreshToken {
    /// 32 random bytes, base64url without padding. Give to the client only.
    pub token: String,
    /// Lower-case hex SHA-256 of `token`. Store this.
    pub hash: String,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("token", &"<redacted>")
            .field("hash", &self.hash)
            .finish()
    }
}

pub fn new_refresh_token() -> RefreshToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    RefreshToken { token, hash }
}

pub fn hash_refresh_token(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

// ---------------------------------------------------------------------------
// Forged tokens for negative tests
// ---------------------------------------------------------------------------

/// Helpers for tests elsewhere (used by the HTTP-level JWT battery): each
/// function returns a token that a correct verifier must reject.
pub mod forge {
    use super::{Claims, JwtKeys, sign_with};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use chrono::Utc;
    use jsonwebtoken::Algorithm;
    use rand::RngCore;
    use serde::Serialize;
    use uuid::Uuid;

    const DEFAULT_ISS: &str = "chat";
    const DEFAULT_AUD: &str = "chat-api";

    fn claims(user: Uuid, iss: &str, aud: &str, iat: i64, exp: i64) -> Claims {
        Claims {
            sub: user,
            exp,
            iat,
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            jti: Uuid::new_v4(),
            sid: None,
        }
    }

    fn fresh(keys: &JwtKeys, user: Uuid) -> Claims {
        let now = Utc::now().timestamp();
        claims(
            user,
            &keys.inner.issuer,
            &keys.inner.audience,
            now,
            now + 900,
        )
    }

    /// Unsigned token: header `{"alg":"none"}`, empty signature. Uses the
    /// default issuer/audience (`chat` / `chat-api`).
    pub fn alg_none(user: Uuid) -> String {
        let now = Utc::now().timestamp();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = serde_json::to_vec(&claims(user, DEFAULT_ISS, DEFAULT_AUD, now, now + 900))
            .unwrap_or_default();
        format!("{header}.{}.", URL_SAFE_NO_PAD.encode(body))
    }

    /// Well-formed HS256 token signed with an unrelated random key. Uses the
    /// default issuer/audience (`chat` / `chat-api`).
    pub fn other_key(user: Uuid) -> String {
        let mut secret = [0u8; 64];
        rand::rng().fill_bytes(&mut secret);
        let now = Utc::now().timestamp();
        sign_with(
            &jsonwebtoken::EncodingKey::from_secret(&secret),
            &claims(user, DEFAULT_ISS, DEFAULT_AUD, now, now + 900),
            Algorithm::HS256,
        )
    }

    /// Correctly signed, but expired an hour ago.
    pub fn expired(keys: &JwtKeys, user: Uuid) -> String {
        let now = Utc::now().timestamp();
        let c = claims(
            user,
            &keys.inner.issuer,
            &keys.inner.audience,
            now - 7200,
            now - 3600,
        );
        keys.sign(&c, Algorithm::HS256)
    }

    /// Correctly signed, wrong audience.
    pub fn wrong_aud(keys: &JwtKeys, user: Uuid) -> String {
        let mut c = fresh(keys, user);
        c.aud = format!("{}-other", keys.inner.audience);
        keys.sign(&c, Algorithm::HS256)
    }

    /// Correctly signed, wrong issuer.
    pub fn wrong_iss(keys: &JwtKeys, user: Uuid) -> String {
        let mut c = fresh(keys, user);
        c.iss = format!("{}-other", keys.inner.issuer);
        keys.sign(&c, Algorithm::HS256)
    }

    /// Correctly signed, no `exp` claim.
    pub fn missing_exp(keys: &JwtKeys, user: Uuid) -> String {
        #[derive(Serialize)]
        struct NoExp {
            sub: Uuid,
            iat: i64,
            iss: String,
            aud: String,
            jti: Uuid,
        }
        let c = fresh(keys, user);
        let no_exp = NoExp {
            sub: c.sub,
            iat: c.iat,
            iss: c.iss,
            aud: c.aud,
            jti: c.jti,
        };
        keys.sign(&no_exp, Algorithm::HS256)
    }

    /// Header and signature of a valid token for `a`, payload of a valid token
    /// for `b`.
    pub fn swapped_payload(keys: &JwtKeys, a: Uuid, b: Uuid) -> String {
        let now = Utc::now();
        let (token_a, _) = keys.issue_access(a, now);
        let (token_b, _) = keys.issue_access(b, now);
        let mut parts_a = token_a.split('.');
        let header_a = parts_a.next().unwrap_or_default();
        let sig_a = parts_a.nth(1).unwrap_or_default();
        let payload_b = token_b.split('.').nth(1).unwrap_or_default();
        format!("{header_a}.{payload_b}.{sig_a}")
    }

    /// Otherwise valid token signed with the same secret under HS384.
    pub fn hs384(keys: &JwtKeys, user: Uuid) -> String {
        keys.sign(&fresh(keys, user), Algorithm::HS384)
    }

    /// Otherwise valid token signed with the same secret under HS512.
    pub fn hs512(keys: &JwtKeys, user: Uuid) -> String {
        keys.sign(&fresh(keys, user), Algorithm::HS512)
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&AuthConfig::default()).expect("default config is valid")
    }

    fn hasher(concurrency: usize) -> PasswordHasher {
        PasswordHasher::new(&AuthConfig {
            hash_concurrency: concurrency,
            ..AuthConfig::default()
        })
    }

    #[test]
    fn an_issued_access_token_verifies_back_to_the_same_claims() {
        let keys = keys();
        let user = Uuid::new_v4();
        let now = Utc::now();
        let (token, expires_in) = keys.issue_access(user, now);
        assert_eq!(expires_in, 15 * 60);

        let claims = keys.verify_access(&token).expect("valid token");
        assert_eq!(claims.sub, user);
        assert_eq!(claims.iat, now.timestamp());
        assert_eq!(claims.exp, now.timestamp() + expires_in);
        assert_eq!(claims.iss, "chat");
        assert_eq!(claims.aud, "chat-api");

        let (other, _) = keys.issue_access(user, now);
        let other = keys.verify_access(&other).expect("valid token");
        assert_ne!(claims.jti, other.jti, "jti must be unique per token");
    }

    #[test]
    fn a_remembered_token_expires_on_time_and_an_altered_one_is_not_remembered() {
        let keys = keys();
        let issued = Utc::now();
        let (token, ttl) = keys.issue_access(Uuid::new_v4(), issued);
        let claims = keys.verify_access(&token).expect("valid token");
        assert_eq!(claims.exp, issued.timestamp() + ttl);
        // Now remembered: the same answer, then expiry exactly as full verification has it.
        assert_eq!(keys.verify_access(&token), Ok(claims.clone()));
        let exp = u64::try_from(claims.exp).expect("exp after the epoch");
        assert_eq!(keys.verify_access_at(&token, exp), Ok(claims));
        assert_eq!(
            keys.verify_access_at(&token, exp + 1),
            Err(AuthError::Expired)
        );
        // An altered signature or payload is not the remembered string.
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        let sig = parts[2];
        // (The first character: the last one of a 43-character signature carries padding bits.)
        let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
        let altered = format!("{}.{}.{flipped}{}", parts[0], parts[1], &sig[1..]);
        assert_eq!(keys.verify_access(&altered), Err(AuthError::InvalidToken));
        let (other, _) = keys.issue_access(Uuid::new_v4(), issued);
        let other_payload = other.split('.').nth(1).expect("three parts");
        let swapped = format!("{}.{other_payload}.{sig}", parts[0]);
        assert_eq!(keys.verify_access(&swapped), Err(AuthError::InvalidToken));
    }

    #[test]
    fn every_forged_token_is_rejected() {
        let keys = keys();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let cases = [
            ("alg_none", forge::alg_none(a), AuthError::InvalidToken),
            ("other_key", forge::other_key(a), AuthError::InvalidToken),
            ("expired", forge::expired(&keys, a), AuthError::Expired),
            (
                "wrong_aud",
                forge::wrong_aud(&keys, a),
                AuthError::InvalidToken,
            ),
            (
                "wrong_iss",
                forge::wrong_iss(&keys, a),
                AuthError::InvalidToken,
            ),
            (
                "missing_exp",
                forge::missing_exp(&keys, a),
                AuthError::InvalidToken,
            ),
            (
                "swapped_payload",
                forge::swapped_payload(&keys, a, b),
                AuthError::InvalidToken,
            ),
        ];
        for (name, token, expected) in cases {
            assert_eq!(keys.verify_access(&token), Err(expected), "forge::{name}");
        }
    }

    #[test]
    fn forged_tokens_differ_from_a_valid_one_only_in_their_flaw() {
        // Sanity check that the forgeries are not rejected for an unrelated
        // reason (e.g. garbage): decoding them without verification works.
        let keys = keys();
        let user = Uuid::new_v4();
        for token in [
            forge::other_key(user),
            forge::expired(&keys, user),
            forge::wrong_aud(&keys, user),
            forge::wrong_iss(&keys, user),
        ] {
            let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&token)
                .expect("forged token is well-formed")
                .claims;
            assert_eq!(claims.sub, user);
        }
        let swapped = forge::swapped_payload(&keys, Uuid::new_v4(), user);
        let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&swapped)
            .expect("well-formed")
            .claims;
        assert_eq!(claims.sub, user);
    }

    #[test]
    fn a_token_signed_with_hs384_or_hs512_and_the_same_secret_is_rejected() {
        let keys = keys();
        let user = Uuid::new_v4();
        assert_eq!(
            keys.verify_access(&forge::hs384(&keys, user)),
            Err(AuthError::InvalidToken)
        );
        assert_eq!(
            keys.verify_access(&forge::hs512(&keys, user)),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn garbage_tokens_are_rejected_without_panicking() {
        let keys = keys();
        for token in [
            "",
            ".",
            "..",
            "a.b.c",
            "not a jwt",
            "e30.e30.",
            "e30.e30.e30",
        ] {
            assert_eq!(keys.verify_access(token), Err(AuthError::InvalidToken));
        }
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_is_a_config_error() {
        let cfg = AuthConfig {
            jwt_secret: "x".repeat(31),
            ..AuthConfig::default()
        };
        assert!(matches!(JwtKeys::new(&cfg), Err(AuthError::Config(_))));

        let cfg = AuthConfig {
            jwt_secret: "x".repeat(32),
            ..AuthConfig::default()
        };
        assert!(JwtKeys::new(&cfg).is_ok());
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let cfg = AuthConfig::default();
        let keys = JwtKeys::new(&cfg).expect("valid");
        assert!(!format!("{cfg:?}").contains(&cfg.jwt_secret));
        assert!(!format!("{keys:?}").contains(&cfg.jwt_secret));
        let refresh = new_refresh_token();
        assert!(!format!("{refresh:?}").contains(&refresh.token));
    }

    #[test]
    fn the_default_config_has_a_64_byte_random_secret() {
        let a = AuthConfig::default();
        let b = AuthConfig::default();
        let raw = STANDARD.decode(&a.jwt_secret).expect("base64");
        assert_eq!(raw.len(), 64);
        assert_ne!(a.jwt_secret, b.jwt_secret);
        assert!(a.hash_concurrency >= 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let hasher = hasher(2);
        let phc = hasher
            .hash("correct horse battery staple")
            .await
            .expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let (right, wrong) = tokio::join!(
            hasher.verify("correct horse battery staple", &phc),
            hasher.verify("Correct horse battery staple", &phc),
        );
        assert_eq!(right, Ok(true));
        assert_eq!(wrong, Ok(false));
    }

    #[tokio::test]
    async fn verifying_against_a_garbage_phc_is_an_error_not_a_panic() {
        let hasher = hasher(1);
        for phc in [
            "",
            "garbage",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$$",
        ] {
            assert_eq!(
                hasher.verify("pw", phc).await,
                Err(AuthError::Hashing),
                "{phc:?}"
            );
        }
    }

    #[test]
    fn the_dummy_hash_uses_the_production_parameters() {
        let parsed = PasswordHash::new(DUMMY_PHC).expect("valid phc");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = Params::try_from(&parsed).expect("params");
        assert_eq!(params.m_cost(), ARGON2_M_COST_KIB);
        assert_eq!(params.t_cost(), ARGON2_T_COST);
        assert_eq!(params.p_cost(), ARGON2_P_COST);
        assert_eq!(parsed.hash.map(|h| h.len()), Some(32));
    }

    #[tokio::test]
    async fn verify_dummy_completes_and_releases_its_permit() {
        let hasher = hasher(1);
        hasher.verify_dummy("whatever").await;
        assert_eq!(hasher.permits.available_permits(), 1);
    }

    #[test]
    fn refresh_token_hashes_are_stable_and_tokens_are_unique() {
        let t = new_refresh_token();
        assert_eq!(t.token.len(), 43, "32 bytes base64url without padding");
        assert_eq!(URL_SAFE_NO_PAD.decode(&t.token).map(|b| b.len()), Ok(32));
        assert_eq!(t.hash, hash_refresh_token(&t.token));
        assert_eq!(hash_refresh_token(&t.token), hash_refresh_token(&t.token));
        assert_eq!(t.hash.len(), 64);
        assert!(
            t.hash
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        // Known-answer test: sha256("abc").
        assert_eq!(
            hash_refresh_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );

        let tokens: std::collections::HashSet<String> =
            (0..1000).map(|_| new_refresh_token().token).collect();
        assert_eq!(tokens.len(), 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_semaphore_bounds_concurrent_hashes() {
        let hasher = hasher(1);

        // Hold the only permit: no hash can start, let alone finish.
        let held = Arc::clone(&hasher.permits)
            .acquire_owned()
            .await
            .expect("semaphore open");
        let first = tokio::spawn({
            let h = hasher.clone();
            async move { h.hash("one").await }
        });
        let second = tokio::spawn({
            let h = hasher.clone();
            async move { h.hash("two").await }
        });
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!first.is_finished() && !second.is_finished());
        assert_eq!(hasher.permits.available_permits(), 0);

        // Release it: both complete, one after the other, and every permit
        // comes back.
        drop(held);
        let (a, b) = tokio::join!(first, second);
        let a = a.expect("join").expect("hash");
        let b = b.expect("join").expect("hash");
        assert_ne!(a, b, "salts are random");
        assert_eq!(hasher.permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_zero_concurrency_setting_still_allows_one_hash() {
        let hasher = hasher(0);
        assert_eq!(hasher.permits.available_permits(), 1);
    }
}
