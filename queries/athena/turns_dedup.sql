-- name: turns_dedup
-- kind: view
-- description: turns without the duplicates a retried batch leaves: one row per CloudWatch event id, the complete row where a turn reached the lake both whole and in parts. Partitioned by dt as well, so a dt filter still prunes partitions.
CREATE OR REPLACE VIEW turns_dedup AS
SELECT *
FROM (
    SELECT t.*, row_number() OVER (PARTITION BY t.dt, t.event_id ORDER BY t.is_complete DESC, t.component_events DESC, t.event_time) AS copy_number
    FROM turns t
)
WHERE copy_number = 1
