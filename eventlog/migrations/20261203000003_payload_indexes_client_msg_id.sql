-- no-transaction
-- The message a client's `client_msg_id` produced in a room, for a retry older than
-- what the room's writer keeps in memory (IndexedField::ClientMsgId, ADR 18).
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_client_msg_id_idx
    ON events (stream_id, (data->>'client_msg_id'))
    WHERE (data->>'client_msg_id') IS NOT NULL;
