-- Single sign-on with an OpenID Connect provider (issue #18). Beside the log, like
-- credentials: none of it is a fact of the conversation.

-- A sign-in under way: the browser was sent to the provider with this `state` (stored as its
-- SHA-256), `nonce` and PKCE verifier. A callback uses it once, within 10 minutes.
CREATE TABLE IF NOT EXISTS oidc_logins (
    state_hash    TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at       TIMESTAMPTZ NULL
);

-- Accounts linked to a provider's subject (never by e-mail alone).
CREATE TABLE IF NOT EXISTS oidc_identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    UUID NOT NULL REFERENCES credentials (user_id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
