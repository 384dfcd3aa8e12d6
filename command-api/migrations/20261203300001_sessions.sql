-- Sessions (issue #18): one per login, the family its rotating refresh tokens share. Listed
-- and ended by their user (GET/DELETE /v1/me/sessions); a password change ends every other.
-- Access tokens name their session (`sid`), so "every other" is known.
CREATE TABLE IF NOT EXISTS sessions (
    session_id   UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES credentials (user_id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The last login or refresh.
    refreshed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The client's User-Agent at login (at most 256 characters), to tell sessions apart.
    user_agent   TEXT NULL,
    -- Logged out, revoked, ended by a password change, or its refresh token reused.
    ended_at     TIMESTAMPTZ NULL
);
CREATE INDEX IF NOT EXISTS sessions_open_by_user ON sessions (user_id) WHERE ended_at IS NULL;

-- The logins from before: each refresh-token family is a session.
INSERT INTO sessions (session_id, user_id, created_at, refreshed_at, ended_at)
SELECT family_id, (array_agg(user_id))[1], min(created_at), max(created_at),
       CASE WHEN bool_and(revoked_at IS NOT NULL) THEN max(revoked_at) END
  FROM refresh_tokens
 GROUP BY family_id
ON CONFLICT (session_id) DO NOTHING;
