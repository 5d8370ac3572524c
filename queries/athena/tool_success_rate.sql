-- name: tool_success_rate
-- description: Calls, failures and success rate per tool, over every tool call of the calls that ended; the rate is over the calls whose outcome was reported (a call with no outcome is unknown, not a success). Parameters: first day, last day (yyyy-MM-dd).
SELECT tc.name AS tool,
       count(*) AS calls,
       count_if(tc.success IS NOT NULL) AS with_outcome,
       count_if(tc.success = false) AS failures,
       round(100.0 * count_if(tc.success) / nullif(count_if(tc.success IS NOT NULL), 0), 2) AS success_pct,
       max_by(tc.error, s.event_time) AS latest_error
FROM sessions_dedup s
CROSS JOIN UNNEST(s.tool_calls) AS tc (name, success, duration_ms, error)
WHERE s.record_type = 'analytics'
  AND s.dt BETWEEN ? AND ?
GROUP BY tc.name
ORDER BY failures DESC, tool
