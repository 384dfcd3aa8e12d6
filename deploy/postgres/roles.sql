-- Least-privilege PostgreSQL roles of one chat database (#19, ADR 17).
--
-- Run once by an administrator (a superuser, or a role with CREATEROLE that owns the
-- database), connected to the chat database, before the roles first start:
--
--     psql -v ON_ERROR_STOP=1 -d chat -f deploy/postgres/roles.sql
--
-- docker-compose.yaml runs it when it initialises the database. Running it again changes
-- nothing. The names derive from the database's, so two deployments can share a cluster;
-- for the database `chat`:
--
-- - chat_command (LOGIN): command-api. Creates and owns the event log, the credentials
--   and the idempotency records (its migrations). Reads the read models (the retention
--   job finds expired messages in them), never changes them.
-- - chat_projector (LOGIN): the projector. Owns the read models, checkpoints and dead
--   letters; reads the log.
-- - chat_query (LOGIN): query-api. Owns its presence table; reads the read models and
--   the log.
-- - chat_log_reader (NOLOGIN): what chat_projector and chat_query may do with the log:
--   SELECT on events, log_head and log_identity, and on the data keys that open the log's
--   personal values (data_keys, erased_users; ADR 23), and nothing else. Neither can change
--   the log or the keys, nor read credentials (platform/tests/least_privilege.rs).
--
-- Give the login roles passwords (ALTER ROLE chat_command PASSWORD '...') unless the
-- server authenticates otherwise.
DO $roles$
DECLARE
    db        text := current_database();
    command   text := db || '_command';
    projector text := db || '_projector';
    query     text := db || '_query';
    reader    text := db || '_log_reader';
    login     text;
BEGIN
    FOREACH login IN ARRAY ARRAY[command, projector, query] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = login) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', login);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = reader) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', reader);
    END IF;
    EXECUTE format('GRANT %I TO %I, %I', reader, projector, query);

    -- Each role migrates its own tables into the public schema; the projector's rebuilds
    -- build the new read models in a schema of their own (ADR 11).
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I, %I, %I',
                   db, command, projector, query);
    EXECUTE format('GRANT CREATE ON DATABASE %I TO %I', db, projector);
    EXECUTE format('GRANT USAGE, CREATE ON SCHEMA public TO %I, %I, %I',
                   command, projector, query);

    -- The migrations table all three share (sqlx's own layout, created here so that no
    -- one role owns it).
    CREATE TABLE IF NOT EXISTS public._sqlx_migrations (
        version        BIGINT PRIMARY KEY,
        description    TEXT NOT NULL,
        installed_on   TIMESTAMPTZ NOT NULL DEFAULT now(),
        success        BOOLEAN NOT NULL,
        checksum       BYTEA NOT NULL,
        execution_time BIGINT NOT NULL
    );
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public._sqlx_migrations TO %I, %I, %I',
                   command, projector, query);

    -- query-api reads whatever the projector creates, and so does command-api (its retention
    -- job reads rm_rooms and rm_messages; it owns the log they derive from anyway).
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I GRANT SELECT ON TABLES TO %I, %I',
                   projector, query, command);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I GRANT USAGE ON SCHEMAS TO %I, %I',
                   projector, query, command);
    -- Read models created before command-api was given them.
    IF to_regclass('public.rm_messages') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON public.rm_rooms, public.rm_messages TO %I', command);
    END IF;

    -- The log, when command-api has created it already; otherwise its migration
    -- (eventlog/migrations/*_log_readers.sql) grants the same.
    IF to_regclass('public.events') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON public.events, public.log_head, public.log_identity TO %I',
                       reader);
    END IF;
    -- The data keys the log's personal values are sealed under (ADR 23), read to open them;
    -- otherwise vault/migrations/*_data_keys.sql grants the same.
    IF to_regclass('public.data_keys') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON public.data_keys, public.erased_users TO %I', reader);
    END IF;
END
$roles$;
