-- Erasure by crypto-shredding (issue #18, ADR 23). Personal data in the log is sealed under
-- its owner's data key; deleting the keys erases it everywhere the log reaches, a rebuild
-- included, without rewriting the log.
--
-- data_keys: a user's keys, one row per version. Sealing uses the newest; opening uses the
-- version an envelope names, so rotating (a new version) never rewrites the log.
CREATE TABLE IF NOT EXISTS data_keys (
    user_id    UUID        NOT NULL,
    version    INT         NOT NULL CHECK (version > 0),
    key        BYTEA       NOT NULL CHECK (length(key) = 32),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, version)
);

-- Users whose keys were shredded: no key is ever made for them again.
CREATE TABLE IF NOT EXISTS erased_users (
    user_id   UUID        PRIMARY KEY,
    erased_by UUID        NOT NULL,
    erased_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The read side opens what it reads from the log, so the roles that may read the log
-- (deploy/postgres/roles.sql, ADR 17) may read the keys too; only command-api's role writes.
DO $$
DECLARE
    reader text := current_database() || '_log_reader';
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = reader) THEN
        EXECUTE format('GRANT SELECT ON data_keys, erased_users TO %I', reader);
    END IF;
END
$$;
