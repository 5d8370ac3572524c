-- name: calls
-- kind: view
-- description: One row per call: its session_analytics row, or for calls without one the latest session_usage_updated totals.
CREATE OR REPLACE VIEW calls AS
SELECT *
FROM (
    SELECT s.*, row_number() OVER (
        PARTITION BY s.session_id
        ORDER BY CASE s.record_type WHEN 'analytics' THEN 0 ELSE 1 END, s.event_time DESC
    ) AS call_rank
    FROM sessions_dedup s
)
WHERE call_rank = 1
