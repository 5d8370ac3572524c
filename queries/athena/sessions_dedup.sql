-- name: sessions_dedup
-- kind: view
-- description: sessions without the duplicates a retried batch leaves: one row per CloudWatch event id.
CREATE OR REPLACE VIEW sessions_dedup AS
SELECT *
FROM (
    SELECT s.*, row_number() OVER (PARTITION BY s.dt, s.event_id ORDER BY s.event_time) AS copy_number
    FROM sessions s
)
WHERE copy_number = 1
