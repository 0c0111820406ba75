-- Each device's quarantine state, kept as events arrive so the devices page is one indexed
-- read, and so a release outlives the purge of its `released` event (blocked-activity
-- retention) as long as the quarantine it ended (alert retention). A device is its agent's,
-- named by its IP address or, without one, its MAC address.
CREATE TABLE quarantines (
    agent_name TEXT NOT NULL,
    device_key TEXT NOT NULL,
    -- The latest `quarantined` event (NULL while only a release has been seen).
    event_id TEXT,
    quarantined_ms BIGINT,
    released_ms BIGINT,
    -- 1 while in quarantine: quarantined, and not released at or after that.
    active BIGINT NOT NULL,
    PRIMARY KEY (agent_name, device_key)
);
CREATE INDEX quarantines_active ON quarantines (active, quarantined_ms);

INSERT INTO quarantines (agent_name, device_key, quarantined_ms, released_ms, active)
SELECT agent, COALESCE(device_ip, device_mac),
       MAX(CASE WHEN kind = 'quarantined' THEN time_ms END),
       MAX(CASE WHEN kind = 'released' THEN time_ms END), 0
FROM events
WHERE kind IN ('quarantined', 'released') AND COALESCE(device_ip, device_mac) IS NOT NULL
GROUP BY agent, COALESCE(device_ip, device_mac);

UPDATE quarantines SET event_id = (
    SELECT e.id FROM events e
    WHERE e.kind = 'quarantined' AND e.agent = quarantines.agent_name
      AND COALESCE(e.device_ip, e.device_mac) = quarantines.device_key
      AND e.time_ms = quarantines.quarantined_ms
    ORDER BY e.id DESC LIMIT 1);

UPDATE quarantines SET active = CASE
    WHEN event_id IS NOT NULL AND (released_ms IS NULL OR released_ms < quarantined_ms) THEN 1
    ELSE 0 END;
