//! LiveKit's failure lines and its `error` and `close` events, as `errors` rows.
use super::{Issues, Observation, Origin, identity};
use crate::config::Config;
use crate::event::RawEvent;
use crate::failure::{Action, Failure, Kind, error_class, provider_of};
use crate::lenient::Number;
use crate::reasons::SkipReason;
use crate::rows::{ErrorRow, SourceFormat, caps, truncate_utf8};

pub(super) fn observe(raw: &RawEvent, origin: &Origin, config: &Config) -> Observation {
    let mut issues = Issues::default();
    let message = raw.log_message().unwrap_or_default();
    let event = raw.error.get();
    let failure = match event {
        Some(e) => {
            let kind = e.kind.get().and_then(Kind::of_error_type).unwrap_or(Kind::Unknown);
            let action = if raw.kind.get() == Some(crate::event::markers::CLOSE_EVENT) { Action::Closed } else { Action::Error };
            Failure { action, kind, label: e.label.get(), error: None, timed_out: false }
        }
        None => match Failure::of_message(message) {
            Some(f) => f,
            None => return Observation::Skip(SkipReason::NotAnEvent),
        },
    };
    let id = match identity(raw, None, origin, &mut issues) {
        Ok(id) => id,
        Err(reject) => return reject.into(),
    };
    // The retry lines name their provider under the kind's key; the fallback lines in the text.
    let label = failure.label.or_else(|| match failure.kind {
        Kind::Llm => raw.llm.label(),
        Kind::Tts => raw.tts.label(),
        Kind::Stt => raw.stt.label(),
        _ => None,
    });
    let (provider, label_kind) = match (failure.action, label) {
        (Action::AllFailed, _) => ("all".to_owned(), None),
        (_, Some(label)) => provider_of(label),
        (_, None) if failure.kind == Kind::Process => ("worker".to_owned(), None),
        (_, None) => (raw.source.get().and_then(|s| s.model_provider.get()).map_or("unknown".into(), str::to_ascii_lowercase), None),
    };
    let kind = if failure.kind == Kind::Unknown { label_kind.unwrap_or(Kind::Unknown) } else { failure.kind };
    // The error's text: the line's own, else the traceback's, where the status code often is.
    let error_text = failure.error.or_else(|| message.split_once('\n').map(|(_, rest)| rest)).or(raw.exc_info.get());
    let (class, status) = match (error_text, failure.timed_out) {
        (_, true) => (Some("timeout".to_owned()), None),
        (Some(text), _) => {
            let (class, status) = error_class(text);
            (Some(class), status)
        }
        (None, _) => (None, None),
    };
    let recoverable = match failure.action {
        Action::Retry | Action::Fallback | Action::AllFailed => Some(true),
        Action::Closed | Action::Killed => Some(false),
        Action::Error => event.and_then(|e| e.recoverable.get()),
        Action::Recovered | Action::Memory | Action::Unresponsive => None,
    };
    let memory_used_percent = match failure.action {
        Action::Memory | Action::Killed => memory_percent(raw, &mut issues),
        _ => None,
    };
    let first_line = message.split('\n').next().unwrap_or_default();
    let shown = if first_line.is_empty() { event.and_then(|e| e.kind.get()).unwrap_or_default() } else { first_line };
    let model = raw.source.get().and_then(|s| s.model_name.get()).map(|m| truncate_utf8(m, caps::LABEL_BYTES).to_owned());
    Observation::Failure(ErrorRow {
        event_id: origin.event_id.to_owned(),
        event_time: id.event_time,
        session_id: id.session_id,
        agent_name: id.agent_name,
        agent_version: id.agent_version,
        tenant_id: id.tenant_id,
        environment: config.environment.clone(),
        kind: kind.as_str().to_owned(),
        source_format: if event.is_some() { SourceFormat::LivekitSessionEvent } else { SourceFormat::LivekitFailureLog },
        provider: truncate_utf8(&provider, caps::LABEL_BYTES).to_owned(),
        model,
        label: label.map(|l| truncate_utf8(l, caps::LABEL_BYTES).to_owned()),
        action: failure.action.as_str().to_owned(),
        error_class: class,
        status_code: status,
        recoverable,
        attempt: issues.count("attempt", raw.attempt),
        memory_used_percent,
        message: issues.capped("message", shown, caps::ERROR_MESSAGE_BYTES),
        value_issues: issues.finish(),
        log_group: origin.log_group.to_owned(),
        log_stream: origin.log_stream.to_owned(),
    })
}

/// Memory use against the limit, or against the warning threshold when the worker has no limit
/// (LiveKit's default: `job_memory_limit_mb=0`).
fn memory_percent(raw: &RawEvent, issues: &mut Issues) -> Option<f64> {
    let used = issues.ratio("memory_usage_mb", raw.memory_usage_mb, 1e9)?;
    let positive = |n: Number| match n {
        Number::Value(v) if v.is_finite() && v > 0.0 => Some(v),
        _ => None,
    };
    let of = positive(raw.memory_limit_mb).or_else(|| positive(raw.memory_warn_mb))?;
    let percent = (used / of * 1000.0).round() / 10.0;
    // A limit of a few bytes is a unit error, not a process at a million per cent.
    if !percent.is_finite() || percent > 10_000.0 {
        issues.push("memory_limit_mb", format_args!("{used} MB used of {of} MB is not a share of a limit"));
        return None;
    }
    Some(percent)
}
