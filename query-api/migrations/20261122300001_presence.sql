-- Presence: the last time each user was seen connected, kept by query-api nodes
-- (written when a user's last socket closes and on heartbeats).
CREATE TABLE IF NOT EXISTS presence_last_seen (
    user_id   UUID PRIMARY KEY,
    last_seen TIMESTAMPTZ NOT NULL
);
