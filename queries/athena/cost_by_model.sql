-- name: cost_by_model
-- description: Usage and its cost per day, agent, provider and model (transport excluded). Parameters: first day, last day (yyyy-MM-dd).
SELECT c.dt, c.agent_name, u.kind, u.provider, u.model,
       count(DISTINCT c.session_id) AS calls,
       sum(u.input_tokens) AS input_tokens,
       sum(u.cached_input_tokens) AS cached_input_tokens,
       sum(u.output_tokens) AS output_tokens,
       sum(u.characters) AS characters,
       round(sum(u.audio_seconds), 1) AS audio_seconds,
       round(sum(u.cost_usd), 4) AS cost_usd
FROM calls c
CROSS JOIN UNNEST(c.model_usage) AS u (kind, provider, model, input_tokens, cached_input_tokens, output_tokens, characters, audio_seconds, cost_usd)
WHERE c.dt BETWEEN ? AND ?
GROUP BY c.dt, c.agent_name, u.kind, u.provider, u.model
ORDER BY c.dt, cost_usd DESC
