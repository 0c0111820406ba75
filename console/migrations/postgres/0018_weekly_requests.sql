-- A request for a timetable period may repeat: the same period each week, `weeks` times in
-- all (1: once). `until_ms` is the end of its last period, when it is over.
ALTER TABLE exception_requests ADD COLUMN weeks BIGINT NOT NULL DEFAULT 1;
ALTER TABLE exception_requests ADD COLUMN until_ms BIGINT;
UPDATE exception_requests SET until_ms = to_ms;
