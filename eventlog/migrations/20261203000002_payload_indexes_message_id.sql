-- no-transaction
-- Every event about one message, found without reading its room's stream: a room's
-- writer keeps only its newest messages in memory and looks older ones up here
-- (IndexedField::MessageId, ADR 18). Built CONCURRENTLY so a long log keeps taking
-- appends meanwhile; one statement per file, as CONCURRENTLY allows no transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_message_id_idx
    ON events (stream_id, (data->>'message_id'))
    WHERE (data->>'message_id') IS NOT NULL;
