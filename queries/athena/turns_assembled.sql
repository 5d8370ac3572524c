-- name: turns_assembled
-- kind: view
-- description: Every turn: those complete within their batch, plus LiveKit component rows of one speech_id that reached the lake in pieces (a pending part released by its timeout), assembled here by the same definition: eou + on_user_turn_completed hook + LLM ttft + TTS ttfb, for turns of one LLM call (a tool round's calls cannot be placed in time from partial rows, so it stays without a latency).
CREATE OR REPLACE VIEW turns_assembled AS
SELECT event_id, event_time, session_id, speech_id, agent_name, environment, total_latency_ms, latency_source,
       eou_delay_ms, transcription_delay_ms, on_user_turn_completed_delay_ms, llm_ttft_ms, tts_ttfb_ms, llm_calls,
       interrupted, source_format, 'in_batch' AS assembly, dt, hour
FROM turns_dedup
WHERE is_complete
UNION ALL
SELECT first_event_id, first_time, session_id, speech_id, agent_name, environment, eou + coalesce(hook, 0) + ttft + ttfb, 'computed',
       eou, transcription, hook, ttft, ttfb, llm_calls, interrupted, source_format, 'across_batches', first_dt, first_hour
FROM (
    SELECT speech_id,
           min_by(event_id, event_time) AS first_event_id,
           min(event_time) AS first_time,
           min_by(dt, event_time) AS first_dt,
           min_by(hour, event_time) AS first_hour,
           max(session_id) AS session_id,
           max(agent_name) AS agent_name,
           max(environment) AS environment,
           max(source_format) AS source_format,
           min_by(eou_delay_ms, CASE WHEN eou_delay_ms IS NOT NULL THEN event_time END) AS eou,
           min_by(transcription_delay_ms, CASE WHEN transcription_delay_ms IS NOT NULL THEN event_time END) AS transcription,
           min_by(on_user_turn_completed_delay_ms, CASE WHEN on_user_turn_completed_delay_ms IS NOT NULL THEN event_time END) AS hook,
           min_by(llm_ttft_ms, CASE WHEN llm_ttft_ms IS NOT NULL THEN event_time END) AS ttft,
           min_by(tts_ttfb_ms, CASE WHEN tts_ttfb_ms IS NOT NULL THEN event_time END) AS ttfb,
           sum(llm_calls) AS llm_calls,
           bool_or(interrupted) AS interrupted
    FROM turns_dedup
    WHERE NOT is_complete
      AND speech_id IS NOT NULL
      AND speech_id NOT IN (SELECT speech_id FROM turns_dedup WHERE is_complete AND speech_id IS NOT NULL)
    GROUP BY speech_id
)
WHERE eou IS NOT NULL AND ttft IS NOT NULL AND ttfb IS NOT NULL AND coalesce(llm_calls, 1) <= 1
