-- name: latency_summary
-- description: The latency table a load test reports, over the turns complete within their batch (the same turns CloudWatch's TurnLatency and the local report count): count, mean, min, standard deviation (population), p50/p95/p99/max, component p95s, the share of turns within the target and the share of calls whose turns all were. Parameters: first day, last day (yyyy-MM-dd).
WITH complete AS (
    SELECT *
    FROM turns_dedup
    WHERE is_complete
      AND dt BETWEEN ? AND ?
),
per_call AS (
    SELECT session_id, bool_and(NOT over_target) AS all_within_target
    FROM complete
    WHERE session_id IS NOT NULL
    GROUP BY session_id
)
SELECT count(*) AS turns,
       avg(total_latency_ms) AS mean_ms,
       min(total_latency_ms) AS min_ms,
       stddev_pop(total_latency_ms) AS stddev_ms,
       approx_percentile(total_latency_ms, 0.50) AS p50_ms,
       approx_percentile(total_latency_ms, 0.95) AS p95_ms,
       approx_percentile(total_latency_ms, 0.99) AS p99_ms,
       max(total_latency_ms) AS max_ms,
       approx_percentile(eou_delay_ms, 0.95) AS eou_p95_ms,
       approx_percentile(on_user_turn_completed_delay_ms, 0.95) AS hook_p95_ms,
       approx_percentile(llm_ttft_ms, 0.95) AS llm_ttft_p95_ms,
       approx_percentile(tts_ttfb_ms, 0.95) AS tts_ttfb_p95_ms,
       avg(CASE WHEN over_target THEN 0.0 ELSE 100.0 END) AS within_target_pct,
       count_if(interrupted) AS interrupted_turns,
       (SELECT count(*) FROM per_call) AS calls,
       (SELECT 100.0 * count_if(all_within_target) / nullif(count(*), 0) FROM per_call) AS calls_within_target_pct
FROM complete
