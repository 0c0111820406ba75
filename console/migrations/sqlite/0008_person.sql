-- The person signed in on the device, where the agent knew one (agents from 0.2 on): their
-- username as the school's directory spells it, the name staff see, the policy group they
-- were in and a pupil's class. Indexed by username for a person's history.
ALTER TABLE events ADD COLUMN person_username TEXT;
ALTER TABLE events ADD COLUMN person_name TEXT;
ALTER TABLE events ADD COLUMN person_group TEXT;
ALTER TABLE events ADD COLUMN person_class TEXT;
CREATE INDEX events_person ON events (person_username, time_ms);
