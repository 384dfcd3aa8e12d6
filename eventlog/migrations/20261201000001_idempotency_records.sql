-- An idempotency record keeps what its command appended (the positions of its events),
-- not a rendering of the response: a retry reads the events back and is answered as the
-- first attempt was (architecture.md D8; ADR 8). Records written before this migration
-- stored the response with its last position; the first position is the first event of
-- the same command (same stream and correlation id), found among the few versions before.
ALTER TABLE idempotency_keys
    ADD COLUMN first_position BIGINT,
    ADD COLUMN last_position  BIGINT;

UPDATE idempotency_keys SET last_position = (response ->> 'position')::BIGINT
WHERE jsonb_typeof(response -> 'position') = 'number';

UPDATE idempotency_keys k SET first_position = COALESCE((
    SELECT min(e2.position) FROM events e1
    JOIN events e2 ON e2.stream_id = e1.stream_id
        AND e2.version BETWEEN e1.version - 63 AND e1.version
        AND e2.correlation_id = e1.correlation_id
    WHERE e1.position = k.last_position), k.last_position)
WHERE k.last_position IS NOT NULL;

-- A record of a command that appended nothing: an empty range.
UPDATE idempotency_keys SET first_position = 1, last_position = 0 WHERE last_position IS NULL;

-- Scopes are named by what they group: a stream's keys, or an actor's keys that have no
-- stream yet (eventlog::IdempotencyScope).
UPDATE idempotency_keys SET scope = 'stream:room-' || substr(scope, 6) WHERE scope LIKE 'room:%';
UPDATE idempotency_keys SET scope = 'actor:' || substr(scope, 6) WHERE scope LIKE 'user:%';

ALTER TABLE idempotency_keys
    ALTER COLUMN first_position SET NOT NULL,
    ALTER COLUMN last_position SET NOT NULL,
    DROP COLUMN status,
    DROP COLUMN response;
