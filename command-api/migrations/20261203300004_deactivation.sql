-- Accounts a server administrator deactivated (UserDeactivated, issue #18): they cannot sign
-- in, and every service refuses their tokens (read at start and every 30 s, besides a NATS
-- notice at once).
ALTER TABLE credentials ADD COLUMN IF NOT EXISTS deactivated_at TIMESTAMPTZ NULL;
CREATE INDEX IF NOT EXISTS credentials_deactivated ON credentials (user_id)
    WHERE deactivated_at IS NOT NULL;
