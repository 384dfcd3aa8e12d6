-- A user's pending invitations (GET /v1/invites) without scanning every membership.
CREATE INDEX IF NOT EXISTS rm_members_invited ON rm_members (user_id) WHERE status = 'invited';
