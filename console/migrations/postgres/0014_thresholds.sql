-- Threshold incidents: the rule of `console.yaml`'s `thresholds:` that raised one, and how
-- many times its events counted (an aggregated event counts its repeats).
ALTER TABLE incidents ADD COLUMN rule TEXT;
ALTER TABLE incidents ADD COLUMN times BIGINT NOT NULL DEFAULT 0;
