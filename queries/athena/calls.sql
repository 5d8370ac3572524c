-- name: calls
-- kind: view
-- description: One row per call: its session_analytics row, or for calls without one the latest session_usage_updated totals; with closed_by_error (LiveKit closed it on an unrecoverable error) and error_count (its provider failure lines) from the errors table.
CREATE OR REPLACE VIEW calls AS
SELECT c.*,
       coalesce(e.closed_by_error, false) AS closed_by_error,
       coalesce(e.error_count, 0) AS error_count
FROM (
    SELECT s.*, row_number() OVER (
        PARTITION BY s.session_id
        ORDER BY CASE s.record_type WHEN 'analytics' THEN 0 ELSE 1 END, s.event_time DESC
    ) AS call_rank
    FROM sessions_dedup s
) c
LEFT JOIN (
    -- One per CloudWatch event: a retried batch's second copy is not counted.
    SELECT session_id,
           bool_or(action = 'closed') AS closed_by_error,
           count_if(source_format = 'livekit_failure_log' AND action IN ('retry', 'fallback', 'all_failed', 'closed')) AS error_count
    FROM (SELECT DISTINCT event_id, session_id, source_format, action FROM errors WHERE session_id IS NOT NULL)
    GROUP BY session_id
) e ON e.session_id = c.session_id
WHERE c.call_rank = 1
