-- no-transaction
-- A client's `client_msg_id` is used once per sender and room: the log itself refuses a
-- second message with it, so a room's writer need not remember every key it ever saw. A
-- retry older than what the writer keeps in memory fails its append on this index, and the
-- writer then reads the message the key produced (IndexedField::ClientMsgId, ADR 18).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_client_msg_id_key
    ON events (stream_id, (data->>'client_msg_id'), (data->>'sender_id'))
    WHERE (data->>'client_msg_id') IS NOT NULL;
