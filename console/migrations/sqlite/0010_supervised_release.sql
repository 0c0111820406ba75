-- A person's release may ease the ban into supervised use for a number of minutes, after
-- which the ban resumes or ends (`resume`, `end`).
ALTER TABLE commands ADD COLUMN supervised_minutes INTEGER;
ALTER TABLE commands ADD COLUMN then_what TEXT;
