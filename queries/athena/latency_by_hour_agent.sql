-- name: latency_by_hour_agent
-- description: Turn latency p50/p95/p99 by hour and agent over every turn, including those assembled across batches. Parameters: first day, last day (yyyy-MM-dd).
SELECT dt, hour, agent_name,
       count(*) AS turns,
       approx_percentile(total_latency_ms, 0.50) AS p50_ms,
       approx_percentile(total_latency_ms, 0.95) AS p95_ms,
       approx_percentile(total_latency_ms, 0.99) AS p99_ms,
       max(total_latency_ms) AS max_ms
FROM turns_assembled
WHERE dt BETWEEN ? AND ?
GROUP BY dt, hour, agent_name
ORDER BY dt, hour, agent_name
