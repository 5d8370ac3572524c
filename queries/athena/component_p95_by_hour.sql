-- name: component_p95_by_hour
-- description: p95 of each component by hour and agent, to see which one moved. Parameters: first day, last day (yyyy-MM-dd).
SELECT dt, hour, agent_name,
       approx_percentile(eou_delay_ms, 0.95) AS eou_p95_ms,
       approx_percentile(transcription_delay_ms, 0.95) AS transcription_p95_ms,
       approx_percentile(on_user_turn_completed_delay_ms, 0.95) AS hook_p95_ms,
       approx_percentile(llm_ttft_ms, 0.95) AS llm_ttft_p95_ms,
       approx_percentile(llm_phase_ms, 0.95) AS llm_phase_p95_ms,
       approx_percentile(tts_ttfb_ms, 0.95) AS tts_ttfb_p95_ms,
       count(*) AS rows_seen
FROM turns_dedup
WHERE dt BETWEEN ? AND ?
GROUP BY dt, hour, agent_name
ORDER BY dt, hour, agent_name
