-- The policy file each agent has in force, as it sent it after each new policy: the console
-- checks teachers' requests against it and shows it to IT.
CREATE TABLE policies (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    text TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX policies_agent ON policies (agent, id);

-- Teachers' requests for exceptions, and what became of them: requested, then approved or
-- declined; an approved one may be revoked. Lists are newline-separated.
CREATE TABLE exception_requests (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    allow TEXT NOT NULL,
    groups_for TEXT NOT NULL,
    classes TEXT NOT NULL,
    people TEXT NOT NULL,
    from_ms BIGINT NOT NULL,
    to_ms BIGINT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    decided_by TEXT,
    decided_ms BIGINT,
    decision_note TEXT
);
CREATE INDEX exception_requests_agent ON exception_requests (agent, status, to_ms);
CREATE INDEX exception_requests_by ON exception_requests (requested_by, id);
