-- Least privilege (deploy/postgres/roles.sql, ADR 17): the group role `<database>_log_reader`,
-- when an administrator has created it, may read the log and nothing else. The projector's
-- and query-api's roles are its members; they can never change the log.
DO $$
DECLARE
    reader text := current_database() || '_log_reader';
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = reader) THEN
        EXECUTE format('GRANT SELECT ON events, log_head, log_identity TO %I', reader);
    END IF;
END
$$;
