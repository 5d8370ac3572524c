-- name: latency_summary
-- description: Turn latency p50/p95/p99/max and component p95s over the turns complete within their batch, the same turns CloudWatch's TurnLatency and the local report count. Parameters: first day, last day (yyyy-MM-dd).
SELECT count(*) AS turns,
       approx_percentile(total_latency_ms, 0.50) AS p50_ms,
       approx_percentile(total_latency_ms, 0.95) AS p95_ms,
       approx_percentile(total_latency_ms, 0.99) AS p99_ms,
       max(total_latency_ms) AS max_ms,
       approx_percentile(eou_delay_ms, 0.95) AS eou_p95_ms,
       approx_percentile(llm_ttft_ms, 0.95) AS llm_ttft_p95_ms,
       approx_percentile(tts_ttfb_ms, 0.95) AS tts_ttfb_p95_ms,
       avg(CASE WHEN over_target THEN 0.0 ELSE 100.0 END) AS within_target_pct
FROM turns_dedup
WHERE is_complete
  AND dt BETWEEN ? AND ?
