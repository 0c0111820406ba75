-- Counts are bounded at the wire (at most 1,000,000,000 an event) so that sums over them
-- cannot overflow; counts stored before that bound are brought within it.
UPDATE events SET count = 1000000000 WHERE count > 1000000000;
