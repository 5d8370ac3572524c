//! LiveKit Agents' component metrics (`LLMMetrics`, `TTSMetrics`, `STTMetrics`, `EOUMetrics`,
//! realtime model metrics): as `model_dump()` JSON, as `log_metrics()` lines, or wrapped in a
//! `metrics_collected` event. Each is one component of a turn, assembled later.
use super::{Issues, MAX_DURATION_MS, MAX_LATENCY_MS, Observation, Origin, any_present, clean_label, identity, owned, turn_base, within};
use crate::config::Config;
use crate::event::{Component, EventObject, Family, RawEvent};
use crate::lenient::{Number, Object};
use crate::reasons::{RejectReason, SkipReason};
use crate::rows::{LlmCall, SourceFormat};

pub(super) fn observe_component<M>(
    raw: &EventObject<M>,
    component: Component,
    logged: bool,
    origin: &Origin,
    config: &Config,
) -> Observation {
    let mut issues = Issues::default();
    let measured: &[Number] = match component {
        Component::Llm | Component::Realtime => &[
            raw.ttft,
            raw.ttft_ms,
            raw.duration,
            raw.duration_ms,
            raw.prompt_tokens,
            raw.completion_tokens,
            raw.input_tokens,
            raw.output_tokens,
        ],
        Component::Tts => &[raw.ttfb, raw.ttfb_ms, raw.duration, raw.duration_ms, raw.audio_duration, raw.characters_count],
        Component::Stt => &[raw.duration, raw.duration_ms, raw.audio_duration, raw.audio_duration_ms],
        Component::Eou => &[
            raw.end_of_utterance_delay,
            raw.end_of_utterance_delay_ms,
            raw.transcription_delay,
            raw.transcription_delay_ms,
            raw.on_user_turn_completed_delay,
            raw.on_user_turn_completed_delay_ms,
        ],
    };
    if !any_present(measured) {
        return Observation::Reject {
            reason: RejectReason::NoMeasurements,
            detail: format!("{component:?} metrics without any of the fields LiveKit writes for them"),
        };
    }
    let id = match identity(raw, None, origin, &mut issues) {
        Ok(id) => id,
        Err(reject) => return reject.into(),
    };
    let format = if logged { SourceFormat::LivekitLogMetrics } else { SourceFormat::LivekitMetrics };
    let mut row = turn_base(id, origin, config, format);
    row.component = Some(component);
    row.speech_id = owned(issues.text("speech_id", &raw.speech_id));
    let meta = raw.metadata.get();
    let model = meta.and_then(|m| m.model_name.get()).or_else(|| raw.model_name.get()).or_else(|| raw.model.get()).map(clean_label);
    let provider =
        meta.and_then(|m| m.model_provider.get()).or_else(|| raw.model_provider.get()).or_else(|| raw.provider.get()).map(clean_label);
    match component {
        Component::Llm | Component::Realtime => {
            row.llm_ttft_ms = issues.latency("ttft", raw.ttft, raw.ttft_ms);
            row.llm_duration_ms = issues.millis("duration", raw.duration, raw.duration_ms, false, MAX_DURATION_MS);
            within(&mut issues, "ttft", &mut row.llm_ttft_ms, "call's duration", row.llm_duration_ms);
            row.llm_call_parts.push(LlmCall {
                at_ms: row.event_time,
                duration_ms: row.llm_duration_ms,
                ttft_ms: row.llm_ttft_ms,
                own_timestamp: !logged,
            });
            row.prompt_tokens = issues.count("prompt_tokens", raw.prompt_tokens).or(issues.count("input_tokens", raw.input_tokens));
            // A realtime model's cached input: `cached_input_tokens` on its log line,
            // `input_token_details.cached_tokens` in its model dump.
            let details_cached = raw.input_token_details.get().map_or(crate::lenient::Number::Missing, |d| d.cached_tokens);
            row.prompt_cached_tokens = issues
                .count("prompt_cached_tokens", raw.prompt_cached_tokens)
                .or(issues.count("cached_input_tokens", raw.cached_input_tokens))
                .or(issues.count("input_token_details.cached_tokens", details_cached));
            row.completion_tokens =
                issues.count("completion_tokens", raw.completion_tokens).or(issues.count("output_tokens", raw.output_tokens));
            row.llm_model = model;
            row.llm_provider = provider;
        }
        Component::Tts => {
            row.tts_ttfb_ms = issues.latency("ttfb", raw.ttfb, raw.ttfb_ms);
            row.tts_duration_ms = issues.millis("duration", raw.duration, raw.duration_ms, false, MAX_DURATION_MS);
            within(&mut issues, "ttfb", &mut row.tts_ttfb_ms, "synthesis's duration", row.tts_duration_ms);
            row.tts_audio_duration_ms = issues.millis("audio_duration", raw.audio_duration, raw.audio_duration_ms, false, MAX_DURATION_MS);
            row.tts_characters = issues.count("characters_count", raw.characters_count);
            row.tts_model = model;
            row.tts_provider = provider;
        }
        Component::Stt => {
            row.stt_duration_ms = issues.millis("duration", raw.duration, raw.duration_ms, false, MAX_DURATION_MS);
            row.stt_audio_duration_ms = issues.millis("audio_duration", raw.audio_duration, raw.audio_duration_ms, false, MAX_DURATION_MS);
            row.stt_model = model;
            row.stt_provider = provider;
        }
        Component::Eou => {
            row.eou_delay_ms =
                issues.millis("end_of_utterance_delay", raw.end_of_utterance_delay, raw.end_of_utterance_delay_ms, true, MAX_LATENCY_MS);
            row.transcription_delay_ms =
                issues.millis("transcription_delay", raw.transcription_delay, raw.transcription_delay_ms, true, MAX_LATENCY_MS);
            within(&mut issues, "transcription_delay", &mut row.transcription_delay_ms, "end-of-utterance delay", row.eou_delay_ms);
            row.on_user_turn_completed_delay_ms =
                issues.latency("on_user_turn_completed_delay", raw.on_user_turn_completed_delay, raw.on_user_turn_completed_delay_ms);
        }
    }
    row.value_issues = issues.finish();
    Observation::Component(row)
}

/// `metrics_collected`: a component's metrics nested under `metrics`, identity inherited from the
/// event around them.
pub(super) fn observe_collected(mut raw: RawEvent, origin: &Origin, config: &Config) -> Observation {
    let mut metrics = match std::mem::take(&mut raw.metrics) {
        Object::Value(m) => m,
        Object::Missing | Object::Bad(_) => {
            return Observation::Reject {
                reason: RejectReason::NoMeasurements,
                detail: "metrics_collected without a metrics object".into(),
            };
        }
    };
    metrics.inherit_from(&raw);
    match metrics.family() {
        Family::Component { component, .. } => observe_component(&metrics, component, false, origin, config),
        Family::IgnoredMetrics => Observation::Skip(SkipReason::IgnoredMetricsType),
        _ => Observation::Skip(SkipReason::NotAnEvent),
    }
}
