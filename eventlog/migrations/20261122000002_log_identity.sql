-- The log's identity. A JetStream stream carries it in its description, so a stream left
-- over from another log (a database dropped and created again, two deployments sharing a
-- NATS account) is recognised as foreign: the relay replaces it, and projectors do not
-- apply its events.
CREATE TABLE IF NOT EXISTS log_identity (
    id     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    log_id UUID    NOT NULL
);
INSERT INTO log_identity (id, log_id) VALUES (TRUE, gen_random_uuid()) ON CONFLICT (id) DO NOTHING;
