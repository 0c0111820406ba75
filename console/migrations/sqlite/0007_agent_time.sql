-- The time an agent gave an event, when it was further ahead of the console's clock than
-- the skew allowed (the event's time is then when it was received): an agent's clock, or
-- a forged time, cannot put an event above every real one or out of reach of retention.
ALTER TABLE events ADD COLUMN agent_time_ms BIGINT;
