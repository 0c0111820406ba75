-- Incidents: the alerts about one person (or one device, where nobody was signed in) close
-- together in time, triaged as one. The id is the first alert's event id, so notes and
-- history keep pointing at an event. Who and where are copied from the events, so the list
-- needs no join; `techniques` is ",name,name," for an exact match with LIKE.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    subject TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank BIGINT NOT NULL,
    events BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    techniques TEXT NOT NULL,
    quarantined BIGINT NOT NULL,
    person_username TEXT,
    person_name TEXT,
    person_class TEXT,
    person_group TEXT,
    device_ip TEXT,
    device_mac TEXT,
    device_name TEXT,
    device_owner TEXT,
    grp TEXT,
    name TEXT,
    status TEXT NOT NULL DEFAULT 'new',
    outcome TEXT,
    action_taken TEXT,
    mailed BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX incidents_last ON incidents (last_ms);
CREATE INDEX incidents_subject ON incidents (agent, subject, last_ms);
CREATE INDEX incidents_unmailed ON incidents (mailed, severity_rank);

ALTER TABLE events ADD COLUMN incident TEXT;
CREATE INDEX events_incident ON events (incident);

-- Alerts stored before incidents: each is an incident of its own.
INSERT INTO incidents (id, agent, subject, kind, first_ms, last_ms, severity, severity_rank,
    events, attempts, techniques, quarantined, person_username, person_name, person_class,
    person_group, device_ip, device_mac, device_name, device_owner, grp, name, status,
    outcome, action_taken, mailed)
SELECT id, agent,
    COALESCE('person:' || person_username, 'device:' || device_ip, 'device:' || device_mac,
        'device:' || device_name, 'gateway:' || kind),
    kind, time_ms, COALESCE(last_ms, time_ms), severity,
    CASE severity WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END,
    1, CASE WHEN kind = 'bypass_attempt' THEN count ELSE 0 END,
    CASE WHEN technique IS NULL THEN '' ELSE ',' || technique || ',' END,
    CASE WHEN kind = 'quarantined' THEN 1 ELSE 0 END,
    person_username, person_name, person_class, person_group, device_ip, device_mac,
    device_name, device_owner, grp, name, status, outcome, action_taken, mailed
FROM events WHERE alert = 1;
UPDATE events SET incident = id WHERE alert = 1;
