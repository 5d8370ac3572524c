//! The application's `session_analytics` event: one ended call, its outcome, tools, signals, usage
//! and call quality.
use std::borrow::Cow;

use super::{
    Issues, MAX_DURATION_MS, Observation, Origin, clean_label, fill_usage_totals, first_present, model_usage_row, owned, session_row,
};
use crate::config::Config;
use crate::event::RawEvent;
use crate::lenient::{Number, Object};
use crate::rows::{ModelUsageRow, SessionRecordType, SessionRow, SourceFormat, ToolCallRow, UsageKind};

use crate::rows::caps::{
    SIGNAL_KEY_BYTES as MAX_SIGNAL_KEY, SIGNAL_VALUE_BYTES as MAX_SIGNAL_VALUE, SIGNALS as MAX_SIGNALS, TEXT_BYTES, TOOL_CALLS,
};

pub(super) fn observe(raw: &RawEvent, origin: &Origin, config: &Config) -> Observation {
    let mut issues = Issues::default();
    let kind = (SessionRecordType::Analytics, SourceFormat::AppSessionAnalytics);
    let mut row = match session_row(raw, "session_analytics", kind, origin, config, &mut issues) {
        Ok(row) => row,
        Err(reject) => return reject.into(),
    };
    let duration = first_present(&[
        ("duration_seconds", raw.duration_seconds, Number::Missing),
        ("duration", raw.duration, raw.duration_ms),
        ("session_duration", raw.session_duration, Number::Missing),
    ]);
    row.duration_seconds = issues.millis(duration.0, duration.1, duration.2, false, MAX_DURATION_MS).map(|ms| ms / 1000.0);
    row.outcome = owned(issues.text("outcome", &raw.outcome));
    row.call_setup_failed = raw.call_setup_failed.get();
    if let crate::lenient::Flag::Bad(b) = raw.call_setup_failed {
        issues.bad("call_setup_failed", b);
    }
    row.setup_failure_reason = issues
        .text("setup_failure_reason", &raw.setup_failure_reason)
        .map(|r| r.to_owned())
        .map(|r| issues.capped("setup_failure_reason", &r, TEXT_BYTES));
    row.turn_count = issues.count("turn_count", raw.turn_count);
    row.mos = issues.ratio("mos", raw.mos, 5.0);
    row.jitter_ms = issues.ratio("jitter_ms", raw.jitter_ms, 60_000.0);
    row.packet_loss_rate = issues.ratio("packet_loss_rate", raw.packet_loss_rate, 1.0);

    tool_calls(raw, &mut row, &mut issues);
    discovered_signals(raw, &mut row, &mut issues);
    let mut usage = model_usage(raw, &mut issues);
    fill_usage_totals(&mut row, &usage);
    row.estimated_cost_usd = config.prices.call_cost(&mut usage, row.duration_seconds);
    row.model_usage = usage;
    row.value_issues = issues.finish();
    Observation::Session(row)
}

/// The call's tool calls (the first [`TOOL_CALLS`] kept) and their counts, of all of them.
fn tool_calls(raw: &RawEvent, row: &mut SessionRow, issues: &mut Issues) {
    if raw.tool_calls.unusable > 0 {
        issues.push("tool_calls", format_args!("{} entries are not objects", raw.tool_calls.unusable));
    }
    let calls = &raw.tool_calls.items;
    if calls.len() > TOOL_CALLS {
        issues.push("tool_calls", format_args!("{} calls, the first {TOOL_CALLS} kept; the counts are of all of them", calls.len()));
    }
    let mut failures = 0;
    let mut outcomes = 0;
    let mut kept = Vec::with_capacity(calls.len().min(TOOL_CALLS));
    for (i, call) in calls.iter().enumerate() {
        let error = call.error.get();
        let success = call.success.get().or_else(|| match call.status.get().map(str::to_ascii_lowercase).as_deref() {
            Some("success" | "succeeded" | "ok" | "completed") => Some(true),
            Some("error" | "failed" | "failure" | "timeout") => Some(false),
            _ => error.map(|_| false),
        });
        failures += usize::from(success == Some(false));
        outcomes += usize::from(success.is_some());
        if i >= TOOL_CALLS {
            continue;
        }
        kept.push(ToolCallRow {
            name: call.tool.get().or_else(|| call.name.get()).map(clean_label).unwrap_or_else(|| "unknown".into()),
            success,
            duration_ms: issues.millis("tool_calls.duration", call.duration, call.duration_ms, false, MAX_DURATION_MS),
            error: error.map(|e| issues.capped("tool_calls.error", e, TEXT_BYTES)),
        });
    }
    row.tool_calls = kept;
    row.tool_call_count = calls.len() as i64;
    row.tool_failure_count = failures as i64;
    row.tool_outcome_count = outcomes as i64;
}

/// What the agent discovered in the call, as text, capped in keys and bytes.
fn discovered_signals(raw: &RawEvent, row: &mut SessionRow, issues: &mut Issues) {
    match &raw.discovered_signals {
        Object::Value(signals) => {
            for (key, value) in signals.iter() {
                if row.discovered_signals.len() == MAX_SIGNALS {
                    issues.push("discovered_signals", format_args!("more than {MAX_SIGNALS} keys; the rest were dropped"));
                    break;
                }
                let text: Cow<str> = match serde_json::from_str::<Option<String>>(value.get()) {
                    Ok(Some(s)) => Cow::Owned(s),
                    Ok(None) => continue,
                    Err(_) => Cow::Borrowed(value.get()),
                };
                row.discovered_signals.insert(
                    crate::rows::truncate_utf8(key, MAX_SIGNAL_KEY).to_owned(),
                    crate::rows::truncate_utf8(&text, MAX_SIGNAL_VALUE).to_owned(),
                );
            }
        }
        other => issues.object("discovered_signals", other),
    }
}

/// The LLM, TTS and STT usage the event reports (at the top or in its `metrics_summary`).
fn model_usage(raw: &RawEvent, issues: &mut Issues) -> Vec<ModelUsageRow> {
    issues.object("metrics_summary", &raw.metrics_summary);
    let summary_none = crate::event::MetricsSummary::default();
    let summary = raw.metrics_summary.get().map(Box::as_ref).unwrap_or(&summary_none);
    let llm_model = raw.llm_model.get().or_else(|| summary.llm_model.get());
    let mut llm = model_usage_row(UsageKind::Llm, raw.llm_provider.get(), llm_model);
    llm.input_tokens = issues.count("metrics_summary.llm_prompt_tokens", summary.llm_prompt_tokens);
    llm.cached_input_tokens = issues.count("metrics_summary.llm_prompt_cached_tokens", summary.llm_prompt_cached_tokens);
    llm.output_tokens = issues.count("metrics_summary.llm_completion_tokens", summary.llm_completion_tokens);
    if llm.input_tokens.is_none() && llm.output_tokens.is_none() {
        // Only a total is known: price it as input, the cheaper side, rather than not at all.
        llm.input_tokens = issues.count("metrics_summary.llm_tokens", summary.llm_tokens);
    }
    let mut tts = model_usage_row(UsageKind::Tts, raw.tts_provider.get(), raw.tts_model.get().or_else(|| summary.tts_model.get()));
    tts.characters = issues.count("metrics_summary.tts_characters", summary.tts_characters);
    tts.audio_seconds = issues.seconds("metrics_summary.tts_audio_seconds", summary.tts_audio_seconds);
    let mut stt = model_usage_row(UsageKind::Stt, raw.stt_provider.get(), raw.stt_model.get().or_else(|| summary.stt_model.get()));
    stt.audio_seconds = issues.seconds("metrics_summary.stt_audio_seconds", summary.stt_audio_seconds);
    [llm, tts, stt]
        .into_iter()
        .filter(|r| r.input_tokens.is_some() || r.output_tokens.is_some() || r.characters.is_some() || r.audio_seconds.is_some())
        .collect()
}
