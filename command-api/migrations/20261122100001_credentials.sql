-- Credentials live beside the event log, never in it: a password hash must not
-- travel through JetStream or reach projectors. Written in the same transaction
-- as the UserRegistered event.
CREATE TABLE IF NOT EXISTS credentials (
    user_id       UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Rotating refresh tokens, stored as SHA-256 hashes. A token is used once; a
-- second use of a spent token revokes its whole family (theft detection).
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES credentials (user_id),
    family_id   UUID NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family_id);
