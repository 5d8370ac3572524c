//! LiveKit Agents ≥ 1.7 `conversation_item_added`: a chat message with its metrics. A user message
//! carries the end-of-turn delays, the agent's reply the LLM and TTS ones and the end-to-end latency;
//! assembly joins the two.
use super::{Issues, MAX_LATENCY_MS, Observation, Origin, identity, owned, turn_base, within};
use crate::config::Config;
use crate::event::RawEvent;
use crate::lenient::Number;
use crate::reasons::SkipReason;
use crate::rows::SourceFormat;

pub(super) fn observe(raw: &RawEvent, origin: &Origin, config: &Config) -> Observation {
    let Some(item) = raw.item.get() else { return Observation::Skip(SkipReason::NoMetrics) };
    let Some(metrics) = item.metrics.get() else { return Observation::Skip(SkipReason::NoMetrics) };
    let role = item.role.get().unwrap_or("");
    let assistant = role == "assistant" && metrics.has_assistant_metrics();
    let user = role == "user" && metrics.has_user_metrics();
    if !assistant && !user {
        return Observation::Skip(SkipReason::NoMetrics);
    }
    let mut issues = Issues::default();
    let id = match identity(raw, Some(&item.created_at), origin, &mut issues) {
        Ok(id) => id,
        Err(reject) => return reject.into(),
    };
    let mut row = turn_base(id, origin, config, SourceFormat::LivekitChatMetrics);
    row.speech_id = owned(item.id.get());
    if assistant {
        row.llm_ttft_ms = issues.latency("item.metrics.llm_node_ttft", metrics.llm_node_ttft, Number::Missing);
        row.tts_ttfb_ms = issues.latency("item.metrics.tts_node_ttfb", metrics.tts_node_ttfb, Number::Missing);
        if let Some(m) = metrics.llm_metadata.get() {
            row.llm_model = owned(m.model_name.get());
            row.llm_provider = owned(m.model_provider.get());
        }
        if let Some(m) = metrics.tts_metadata.get() {
            row.tts_model = owned(m.model_name.get());
            row.tts_provider = owned(m.model_provider.get());
        }
        row.interrupted = item.interrupted.get();
        let reported_ms = issues.latency("item.metrics.e2e_latency", metrics.e2e_latency, Number::Missing);
        row.value_issues = issues.finish();
        Observation::ChatAssistant { row, reported_ms }
    } else {
        row.eou_delay_ms =
            issues.millis("item.metrics.end_of_turn_delay", metrics.end_of_turn_delay, Number::Missing, true, MAX_LATENCY_MS);
        row.transcription_delay_ms =
            issues.millis("item.metrics.transcription_delay", metrics.transcription_delay, Number::Missing, true, MAX_LATENCY_MS);
        row.on_user_turn_completed_delay_ms =
            issues.latency("item.metrics.on_user_turn_completed_delay", metrics.on_user_turn_completed_delay, Number::Missing);
        // Both delays are measured from the end of the user's speech: a record whose speech ends
        // before it starts (a LiveKit bug with a stale anchor) gives them no meaning.
        if let (Some(started), Some(stopped)) = (metrics.started_speaking_at.millis(), metrics.stopped_speaking_at.millis())
            && stopped < started
            && (row.eou_delay_ms.is_some() || row.transcription_delay_ms.is_some())
        {
            issues.push(
                "item.metrics",
                format_args!(
                    "stopped_speaking_at is {} ms before started_speaking_at: end_of_turn_delay and transcription_delay nulled",
                    started - stopped
                ),
            );
            row.eou_delay_ms = None;
            row.transcription_delay_ms = None;
        }
        within(&mut issues, "item.metrics.transcription_delay", &mut row.transcription_delay_ms, "end-of-turn delay", row.eou_delay_ms);
        if let Some(m) = metrics.stt_metadata.get() {
            row.stt_model = owned(m.model_name.get());
            row.stt_provider = owned(m.model_provider.get());
        }
        row.value_issues = issues.finish();
        Observation::ChatUser(row)
    }
}
