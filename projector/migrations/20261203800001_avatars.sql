-- The picture a user shows beside their name (AvatarChanged, issue #18): the id of the stored
-- image (its blob is `avatars/<user_id>/<avatar_id>`) and its content type, both NULL when the
-- user has none, was never given one, or was erased (UserErased clears them).
ALTER TABLE rm_users ADD COLUMN IF NOT EXISTS avatar_id UUID;
ALTER TABLE rm_users ADD COLUMN IF NOT EXISTS avatar_content_type TEXT;
