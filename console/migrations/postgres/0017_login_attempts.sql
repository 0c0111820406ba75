-- Sign-in attempts in the throttle's window, where consoles sharing a PostgreSQL database
-- count them together (a single console counts them in memory). `key` is the throttle's:
-- `user:NAME`, `addr:ADDRESS` or `pair:NAME@ADDRESS`.
CREATE TABLE login_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX login_attempts_key ON login_attempts (key, at_ms);
CREATE INDEX login_attempts_at ON login_attempts (at_ms);

-- Refusals of a key before `until_ms` are in the audit log already.
CREATE TABLE login_refusals (
    key TEXT PRIMARY KEY,
    until_ms BIGINT NOT NULL
);
