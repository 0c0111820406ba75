-- The policy category a blocked name is in (agents send it when a category decided), for
-- the blocked-activity page's breakdown by category.
ALTER TABLE events ADD COLUMN category TEXT;
