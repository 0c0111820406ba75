-- Weekly reports e-mailed: one row per report and week, claimed before the message is sent
-- (and given up if it fails), so however many consoles share the database, each goes once.
CREATE TABLE reports_sent (
    report TEXT NOT NULL,
    week_ms BIGINT NOT NULL,
    sent_ms BIGINT NOT NULL,
    PRIMARY KEY (report, week_ms)
);
