-- A release may name the person whose ban it lifts (the person the alert shows), beside
-- the device; agents from 0.2 on lift the ban with every device held for them.
ALTER TABLE commands ADD COLUMN person TEXT;
