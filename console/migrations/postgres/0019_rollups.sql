-- Roll-ups (each table's pages kept 30% free: a sum updated in place stays on its page, so
-- the tables do not swell with old row versions between vacuums): sums of the events' `count`, kept up to date as each batch is stored, so the
-- dashboard, the blocked-activity page and the weekly report read a few thousand rows
-- rather than every event of the week. A missing value is stored as '' (a key column
-- cannot hold NULL); the readers give it back as none.

-- Per agent and hour (since the epoch), by kind and the few values the pages break down
-- by that have few distinct values.
CREATE TABLE rollup_hours (
    agent TEXT NOT NULL,
    hour BIGINT NOT NULL,
    kind TEXT NOT NULL,
    grp TEXT NOT NULL,
    category TEXT NOT NULL,
    rule TEXT NOT NULL,
    technique TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (agent, hour, kind, grp, category, rule, technique)
) WITH (fillfactor = 70);
CREATE INDEX rollup_hours_hour ON rollup_hours (hour);

-- Blocks per agent, local day (the start of the day in `rollup_zone`), group and name.
CREATE TABLE rollup_names (
    agent TEXT NOT NULL,
    day_ms BIGINT NOT NULL,
    grp TEXT NOT NULL,
    name TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (agent, day_ms, grp, name)
) WITH (fillfactor = 70);
CREATE INDEX rollup_names_day ON rollup_names (day_ms);

-- The same for the whole trust, every agent together: a trust's lead reads a tenth of the
-- rows with ten schools.
CREATE TABLE rollup_trust_names (
    day_ms BIGINT NOT NULL,
    grp TEXT NOT NULL,
    name TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (day_ms, grp, name)
) WITH (fillfactor = 70);

-- Activity per agent, local day and device (its IP address, else its MAC address): blocks
-- summed, alerts counted, and the largest name and owner seen, as the raw query reads them.
CREATE TABLE rollup_devices (
    agent TEXT NOT NULL,
    day_ms BIGINT NOT NULL,
    device TEXT NOT NULL,
    name TEXT,
    owner TEXT,
    blocked BIGINT NOT NULL,
    alerts BIGINT NOT NULL,
    PRIMARY KEY (agent, day_ms, device)
) WITH (fillfactor = 70);
CREATE INDEX rollup_devices_day ON rollup_devices (day_ms);

-- The time zone the daily roll-ups are cut in; none until they are first built, which
-- the console does from the events when it starts (and again when the zone changes).
CREATE TABLE rollup_zone (
    zone TEXT NOT NULL
);

-- The local days a rebuild cuts the events into: each day's start and the next day's
-- (23 or 25 hours later across a change of the clocks).
CREATE TABLE rollup_days (
    day_ms BIGINT PRIMARY KEY,
    next_ms BIGINT NOT NULL
);
