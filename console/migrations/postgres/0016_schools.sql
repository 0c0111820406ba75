-- Schools of a trust sharing one console. An agent serves one school; a user with a school
-- sees only the records of its agents, and the audit entries of its users. NULL is the whole
-- trust: a single school's console, where nobody has a school, reads as it always did.
ALTER TABLE agents ADD COLUMN school TEXT;
ALTER TABLE users ADD COLUMN school TEXT;
ALTER TABLE audit ADD COLUMN school TEXT;
CREATE INDEX agents_school ON agents (school, name);
CREATE INDEX audit_school ON audit (school, time_ms);
CREATE INDEX events_agent_time ON events (agent, time_ms);
CREATE INDEX incidents_agent_last ON incidents (agent, last_ms);
