-- Explanations asked of a gateway from the console: the question (carried to the agent as
-- an `explain` command, whose `question` is the JSON of it) and the agent's answer.
CREATE TABLE explanations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent TEXT NOT NULL,
    asked_by TEXT NOT NULL,
    client TEXT NOT NULL,
    mac TEXT,
    person TEXT,
    name TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    asked_ms BIGINT NOT NULL,
    answered_ms BIGINT,
    sentence TEXT,
    decision TEXT
);
ALTER TABLE commands ADD COLUMN question TEXT;
