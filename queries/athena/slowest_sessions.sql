-- name: slowest_sessions
-- description: The 20 sessions with the highest p95 turn latency, with the mean of each component to show which one made them slow, and how many of their turns were interrupted. Parameters: first day, last day (yyyy-MM-dd).
SELECT session_id, max(agent_name) AS agent_name,
       count(*) AS turns,
       approx_percentile(total_latency_ms, 0.95) AS p95_ms,
       max(total_latency_ms) AS max_ms,
       avg(eou_delay_ms) AS mean_eou_ms,
       avg(on_user_turn_completed_delay_ms) AS mean_hook_ms,
       avg(llm_ttft_ms) AS mean_llm_ttft_ms,
       avg(tts_ttfb_ms) AS mean_tts_ttfb_ms,
       count_if(interrupted) AS interrupted_turns
FROM turns_assembled
WHERE dt BETWEEN ? AND ?
  AND session_id IS NOT NULL
GROUP BY session_id
ORDER BY p95_ms DESC, session_id
LIMIT 20
