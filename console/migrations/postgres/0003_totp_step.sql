-- The last TOTP time step a user signed in with, so a code is accepted once (RFC 6238 §5.2).
ALTER TABLE users ADD COLUMN totp_step BIGINT;
