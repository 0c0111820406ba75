-- The console's tables. Times are milliseconds since the Unix epoch (UTC); flags are 0/1.
-- Kept in step with ../postgres/0001_init.sql: only the id columns' types differ.

CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT,
    -- The last status the agent sent with a batch, as JSON (backlog, policy, errors).
    status TEXT
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    -- 1 for what the alerts page lists: bypass attempts, quarantines and high severity.
    alert BIGINT NOT NULL,
    device_ip TEXT,
    device_mac TEXT,
    device_name TEXT,
    device_owner TEXT,
    grp TEXT,
    name TEXT,
    rule TEXT,
    technique TEXT,
    destination TEXT,
    evidence TEXT,
    count BIGINT NOT NULL,
    last_ms BIGINT,
    -- Fields the console does not know, kept as sent (JSON object).
    extra TEXT,
    received_ms BIGINT NOT NULL,
    -- Triage, for alerts: new, acknowledged, resolved.
    status TEXT NOT NULL DEFAULT 'new',
    outcome TEXT,
    action_taken TEXT,
    mailed BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_alerts ON events (alert, time_ms);
CREATE INDEX events_kind_time ON events (kind, time_ms);
CREATE INDEX events_device_time ON events (device_ip, time_ms);
CREATE INDEX events_unmailed ON events (mailed, alert);

CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    author TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX notes_event ON notes (event_id);

-- Every change to an alert: who, when, what (triage, outcome, release).
CREATE TABLE alert_history (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    who TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    what TEXT NOT NULL
);
CREATE INDEX alert_history_event ON alert_history (event_id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT,
    created_ms BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT,
    address TEXT
);
CREATE INDEX audit_time ON audit (time_ms);

-- Commands for agents (release a device from quarantine), taken by the agent's poll.
CREATE TABLE commands (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    reason TEXT NOT NULL,
    by_user TEXT NOT NULL,
    event_id TEXT,
    created_ms BIGINT NOT NULL,
    done_ms BIGINT
);
CREATE INDEX commands_agent ON commands (agent, done_ms);
