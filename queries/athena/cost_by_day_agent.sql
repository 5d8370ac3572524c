-- name: cost_by_day_agent
-- description: Calls, minutes and estimated cost (usage priced per model, plus transport) per day and agent. Parameters: first day, last day (yyyy-MM-dd).
SELECT dt, agent_name,
       count(*) AS calls,
       round(sum(duration_seconds) / 60, 1) AS minutes,
       round(sum(estimated_cost_usd), 4) AS cost_usd,
       round(avg(estimated_cost_usd), 4) AS cost_per_call_usd,
       round(max(estimated_cost_usd), 4) AS max_call_cost_usd
FROM calls
WHERE record_type = 'analytics'
  AND dt BETWEEN ? AND ?
GROUP BY dt, agent_name
ORDER BY dt, agent_name
