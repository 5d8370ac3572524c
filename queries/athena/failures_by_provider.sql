-- name: failures_by_provider
-- description: LiveKit provider failures by hour, kind and provider: failures (retries, fallback switches, every provider of a fallback failing, sessions closed by an unrecoverable error), the sessions closed and the sessions affected, and the most common error class; a retried batch's second copy is not counted. Parameters: first day, last day (yyyy-MM-dd).
WITH failures AS (
    SELECT *
    FROM (
        SELECT e.*, row_number() OVER (PARTITION BY e.dt, e.event_id ORDER BY e.event_time) AS copy_number
        FROM errors e
        WHERE e.dt BETWEEN ? AND ?
          AND e.source_format = 'livekit_failure_log'
          AND e.action IN ('retry', 'fallback', 'all_failed', 'closed')
    )
    WHERE copy_number = 1
),
classes AS (
    SELECT event_hour, kind, provider, max_by(error_class, class_lines) AS top_error_class
    FROM (
        SELECT date_trunc('hour', event_time) AS event_hour, kind, provider, error_class, count(*) AS class_lines
        FROM failures
        WHERE error_class IS NOT NULL
        GROUP BY date_trunc('hour', event_time), kind, provider, error_class
    )
    GROUP BY event_hour, kind, provider
),
totals AS (
    SELECT date_trunc('hour', event_time) AS event_hour, kind, provider,
           count(*) AS failures,
           count_if(action = 'retry') AS retries,
           count_if(action = 'fallback') AS fallbacks,
           count_if(action = 'all_failed') AS all_failed,
           count(DISTINCT CASE WHEN action = 'closed' THEN session_id END) AS sessions_closed,
           count(DISTINCT session_id) AS sessions_affected
    FROM failures
    GROUP BY date_trunc('hour', event_time), kind, provider
)
SELECT t.event_hour, t.kind, t.provider, t.failures, t.retries, t.fallbacks, t.all_failed, t.sessions_closed, t.sessions_affected,
       c.top_error_class
FROM totals t
LEFT JOIN classes c
  ON c.event_hour = t.event_hour AND c.kind = t.kind AND c.provider = t.provider
ORDER BY t.event_hour DESC, t.failures DESC, t.kind, t.provider
