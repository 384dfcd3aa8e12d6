-- The files sent with a message (issue #17): the events' description of each, as a JSON
-- array ([{attachment_id, name, size, content_type, sha256, image?}]); NULL when it has
-- none and once the message is deleted (its attachments are then unreachable). The index
-- answers "which message carries this attachment", which a download asks.
ALTER TABLE rm_messages ADD COLUMN IF NOT EXISTS attachments JSONB NULL;
CREATE INDEX IF NOT EXISTS rm_messages_attachments ON rm_messages
    USING gin (attachments jsonb_path_ops) WHERE attachments IS NOT NULL;
