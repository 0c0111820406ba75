-- A school device away from school asks the school's DNS over HTTPS or TLS by its off-site
-- id: its events say so (1), and carry no address.
ALTER TABLE events ADD COLUMN off_site BIGINT NOT NULL DEFAULT 0;
-- An incident with an alert from a device away from school.
ALTER TABLE incidents ADD COLUMN off_site BIGINT NOT NULL DEFAULT 0;
