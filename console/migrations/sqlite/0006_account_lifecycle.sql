-- A user can be disabled (kept for the audit trail, unable to sign in); an agent's token can
-- be revoked; a session ends after a while unused as well as at its absolute expiry.
ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN revoked_ms BIGINT;
ALTER TABLE sessions ADD COLUMN seen_ms BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET seen_ms = created_ms;
