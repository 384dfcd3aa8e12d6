-- A server administrator deactivated the account (UserDeactivated, issue #18): its tokens are
-- refused by every service, which reads this column; its messages stay.
ALTER TABLE rm_users ADD COLUMN IF NOT EXISTS deactivated BOOLEAN NOT NULL DEFAULT FALSE;
