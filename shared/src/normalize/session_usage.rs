//! LiveKit `session_usage_updated`: a running total of the call's model usage, per provider and
//! model (or, from older versions, flat totals). Assembly keeps the latest per session.
use super::{Issues, Observation, Origin, fill_usage_totals, model_usage_row, session_row};
use crate::config::Config;
use crate::event::{ModelUsageEntry, RawEvent};
use crate::reasons::RejectReason;
use crate::rows::{ModelUsageRow, SessionRecordType, SourceFormat, UsageKind};

pub(super) fn observe(raw: &RawEvent, origin: &Origin, config: &Config) -> Observation {
    let Some(usage) = raw.usage.get() else {
        return Observation::Reject { reason: RejectReason::NoMeasurements, detail: "session_usage_updated without a usage object".into() };
    };
    let mut issues = Issues::default();
    if usage.model_usage.unusable > 0 {
        issues.push("usage.model_usage", format_args!("{} entries are not objects", usage.model_usage.unusable));
    }
    let mut rows: Vec<ModelUsageRow> = usage
        .model_usage
        .items
        .iter()
        .map(|e| {
            let mut row = model_usage_row(usage_kind(e), e.provider.get(), e.model.get());
            row.input_tokens = issues.count("model_usage.input_tokens", e.input_tokens);
            row.cached_input_tokens = issues.count("model_usage.input_cached_tokens", e.input_cached_tokens);
            row.output_tokens = issues.count("model_usage.output_tokens", e.output_tokens);
            row.characters = issues.count("model_usage.characters_count", e.characters_count);
            row.audio_seconds = issues.seconds("model_usage.audio_duration", e.audio_duration);
            row
        })
        .collect();
    if rows.is_empty() {
        // Older LiveKit `UsageSummary`: flat totals without provider or model.
        let mut llm = model_usage_row(UsageKind::Llm, None, None);
        llm.input_tokens = issues.count("usage.llm_prompt_tokens", usage.llm_prompt_tokens);
        llm.cached_input_tokens = issues.count("usage.llm_prompt_cached_tokens", usage.llm_prompt_cached_tokens);
        llm.output_tokens = issues.count("usage.llm_completion_tokens", usage.llm_completion_tokens);
        let mut tts = model_usage_row(UsageKind::Tts, None, None);
        tts.characters = issues.count("usage.tts_characters_count", usage.tts_characters_count);
        tts.audio_seconds = issues.seconds("usage.tts_audio_duration", usage.tts_audio_duration);
        let mut stt = model_usage_row(UsageKind::Stt, None, None);
        stt.audio_seconds = issues.seconds("usage.stt_audio_duration", usage.stt_audio_duration);
        rows = [llm, tts, stt]
            .into_iter()
            .filter(|r| r.input_tokens.is_some() || r.output_tokens.is_some() || r.characters.is_some() || r.audio_seconds.is_some())
            .collect();
    }
    if rows.is_empty() {
        return Observation::Reject { reason: RejectReason::NoMeasurements, detail: "session_usage_updated without usage figures".into() };
    }

    let kind = (SessionRecordType::Usage, SourceFormat::LivekitSessionUsage);
    let mut row = match session_row(raw, "session_usage_updated", kind, origin, config, &mut issues) {
        Ok(row) => row,
        Err(reject) => return reject.into(),
    };
    fill_usage_totals(&mut row, &rows);
    row.estimated_cost_usd = config.prices.call_cost(&mut rows, None);
    if rows.len() > crate::rows::caps::MODEL_USAGE {
        // Totals and cost are of all of them.
        issues.push("usage.model_usage", format_args!("{} entries, the first {} kept", rows.len(), crate::rows::caps::MODEL_USAGE));
        rows.truncate(crate::rows::caps::MODEL_USAGE);
    }
    row.model_usage = rows;
    row.value_issues = issues.finish();
    Observation::Usage(row)
}

/// What an entry meters, by its `type`, else by the figures it carries.
fn usage_kind(entry: &ModelUsageEntry) -> UsageKind {
    match entry.kind.get().map(|k| k.trim_end_matches("_usage")) {
        Some("llm") => UsageKind::Llm,
        Some("tts") => UsageKind::Tts,
        Some("stt") => UsageKind::Stt,
        _ if !entry.characters_count.is_missing() => UsageKind::Tts,
        _ if !entry.audio_duration.is_missing() && entry.input_tokens.is_missing() => UsageKind::Stt,
        _ => UsageKind::Llm,
    }
}
