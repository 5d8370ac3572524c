-- name: qualified_leads
-- description: Calls whose agent marked a qualified lead in discovered_signals, with every signal. Parameters: first day, last day (yyyy-MM-dd).
SELECT event_time, session_id, agent_name, outcome, duration_seconds, discovered_signals
FROM calls
WHERE record_type = 'analytics'
  AND lower(element_at(discovered_signals, 'qualified_lead')) IN ('true', '1', 'yes')
  AND dt BETWEEN ? AND ?
ORDER BY event_time DESC
