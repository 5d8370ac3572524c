//! From a parsed event to typed rows: units to milliseconds, sentinels to null, identity and time by
//! the contract's precedence. This module holds what every family shares (identity, value checks,
//! the row skeletons); each input family has its own file. Turn assembly, and the turn's latency,
//! happen in [`crate::assembly`] once a whole batch is observed.

mod conversation;
mod failures;
mod livekit_metrics;
mod session_analytics;
mod session_usage;
mod voice_metrics;

use crate::config::Config;
use crate::event::{EventObject, Family, RawEvent};
use crate::lenient::{Bad, Number, Object, Stamp, Text};
use crate::reasons::{RejectReason, SkipReason};
use crate::rows::{ErrorRow, ModelUsageRow, SessionRecordType, SessionRow, SourceFormat, TurnRow, UsageKind, caps};
use crate::timefmt;

/// Latencies above ten minutes are unit errors (milliseconds logged as seconds), not slow turns.
const MAX_LATENCY_MS: f64 = 600_000.0;
/// Audio and call durations above a day are unit errors too.
const MAX_DURATION_MS: f64 = 86_400_000.0;

/// Where a log event came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'b> {
    pub event_id: &'b str,
    /// CloudWatch's timestamp of the log event, epoch milliseconds.
    pub timestamp: i64,
    pub log_group: &'b str,
    pub log_stream: &'b str,
    /// The workload a log router's record names ([`crate::delivery`]): the agent, when the event
    /// names none.
    pub workload: Option<&'b str>,
    /// The router's or runtime's time of the line: the event time, when the event gives none.
    pub delivered_time: Option<i64>,
}

/// What one log event contributes to its batch.
#[derive(Debug)]
pub enum Observation {
    /// A `voice_metrics` turn, complete or not, with the latency the agent logged for it.
    Turn {
        row: TurnRow,
        reported_ms: Option<f64>,
    },
    /// One LiveKit component metric, to be assembled with the others of its `speech_id`.
    Component(TurnRow),
    /// A user chat message's end-of-turn metrics, to be joined with the agent's reply.
    ChatUser(TurnRow),
    /// An agent chat message's metrics: a turn, with the latency LiveKit logged for it.
    ChatAssistant {
        row: TurnRow,
        reported_ms: Option<f64>,
    },
    Session(SessionRow),
    Usage(SessionRow),
    /// A provider's failure, a session closed by an error, a worker's health warning.
    Failure(ErrorRow),
    Skip(SkipReason),
    Reject {
        reason: RejectReason,
        detail: String,
    },
}

impl Observation {
    /// The event time of the row this observation holds, if it holds one.
    pub fn event_time(&self) -> Option<i64> {
        match self {
            Observation::Turn { row, .. }
            | Observation::ChatAssistant { row, .. }
            | Observation::Component(row)
            | Observation::ChatUser(row) => Some(row.event_time),
            Observation::Session(s) | Observation::Usage(s) => Some(s.event_time),
            Observation::Failure(e) => Some(e.event_time),
            Observation::Skip(_) | Observation::Reject { .. } => None,
        }
    }
}

/// Values that had to be nulled, and why. They end up in the row's `value_issues`.
#[derive(Debug, Default)]
pub struct Issues(pub Vec<String>);

impl Issues {
    fn push(&mut self, field: &str, what: impl std::fmt::Display) {
        self.0.push(format!("{field}: {what}"));
    }

    /// The issues for a row, at most [`caps::VALUE_ISSUES`] of them.
    fn finish(mut self) -> Vec<String> {
        crate::rows::cap_issues(&mut self.0);
        self.0
    }

    /// `text` cut to `limit` bytes, saying so when it was cut.
    fn capped(&mut self, field: &str, text: &str, limit: usize) -> String {
        let kept = crate::rows::truncate_utf8(text, limit);
        if kept.len() < text.len() {
            self.push(field, format_args!("{} bytes, cut to {}", text.len(), kept.len()));
        }
        kept.to_owned()
    }

    fn bad(&mut self, field: &str, bad: Bad) {
        self.push(field, bad.describe());
    }

    fn block<T>(&mut self, field: &str, block: &crate::lenient::Block<T>) {
        if let Some(b) = block.not_an_object() {
            self.bad(field, b);
        }
    }

    fn object<T>(&mut self, field: &str, obj: &Object<T>) {
        if let Object::Bad(b) = obj {
            self.bad(field, *b);
        }
    }

    fn text<'a>(&mut self, field: &str, text: &'a Text<'_>) -> Option<&'a str> {
        if let Text::Bad(b) = text {
            self.bad(field, *b);
        }
        text.get()
    }

    /// A duration in milliseconds from a seconds field and its `_ms` twin (the twin wins).
    fn millis(&mut self, field: &str, secs: Number, ms: Number, zero_means_missing: bool, max_ms: f64) -> Option<f64> {
        let (num, scale) = if ms.is_missing() { (secs, 1000.0) } else { (ms, 1.0) };
        match num {
            Number::Missing => None,
            Number::Bad(b) => {
                self.bad(field, b);
                None
            }
            Number::Value(v) if !v.is_finite() => {
                self.push(field, "not a finite number");
                None
            }
            Number::Value(-1.0) => {
                self.push(field, "-1, LiveKit's value for not measured");
                None
            }
            Number::Value(v) if v < 0.0 => {
                self.push(field, format_args!("negative ({v})"));
                None
            }
            Number::Value(v) if v == 0.0 && zero_means_missing => {
                self.push(field, "0, LiveKit's value for end of speech not detected");
                None
            }
            Number::Value(v) if v * scale > max_ms => {
                self.push(field, format_args!("implausible ({} ms)", v * scale));
                None
            }
            Number::Value(v) => Some(v * scale),
        }
    }

    fn latency(&mut self, field: &str, secs: Number, ms: Number) -> Option<f64> {
        self.millis(field, secs, ms, false, MAX_LATENCY_MS)
    }

    fn seconds(&mut self, field: &str, secs: Number) -> Option<f64> {
        self.millis(field, secs, Number::Missing, false, MAX_DURATION_MS).map(|ms| ms / 1000.0)
    }

    fn count(&mut self, field: &str, n: Number) -> Option<i64> {
        match n {
            Number::Missing => None,
            Number::Bad(b) => {
                self.bad(field, b);
                None
            }
            Number::Value(v) if !(0.0..=1e12).contains(&v) => {
                self.push(field, format_args!("not a count ({v})"));
                None
            }
            Number::Value(v) => Some(v.round() as i64),
        }
    }

    fn ratio(&mut self, field: &str, n: Number, max: f64) -> Option<f64> {
        match n {
            Number::Missing => None,
            Number::Bad(b) => {
                self.bad(field, b);
                None
            }
            Number::Value(v) if !v.is_finite() || v < 0.0 || v > max => {
                self.push(field, format_args!("out of range ({v})"));
                None
            }
            Number::Value(v) => Some(v),
        }
    }
}

/// A delay that lies inside another span cannot be longer than it (a transcription delay inside
/// the end-of-utterance delay, a time to first token inside its call): the record contradicts
/// itself, and the delay is nulled with an issue rather than trusted.
fn within(issues: &mut Issues, field: &str, value: &mut Option<f64>, span_field: &str, span: Option<f64>) {
    if let (Some(v), Some(s)) = (*value, span)
        && v > s
    {
        issues.push(field, format_args!("{v} ms is longer than the {span_field} it lies in ({s} ms)"));
        *value = None;
    }
}

/// The first candidate that is present, as (name, seconds field, milliseconds field).
fn first_present<'n>(candidates: &[(&'n str, Number, Number)]) -> (&'n str, Number, Number) {
    candidates.iter().copied().find(|(_, s, m)| !s.is_missing() || !m.is_missing()).unwrap_or((
        candidates[0].0,
        Number::Missing,
        Number::Missing,
    ))
}

fn any_present(nums: &[Number]) -> bool {
    nums.iter().any(|n| !n.is_missing())
}

/// Identity and time shared by every row.
struct Identity {
    event_time: i64,
    session_id: Option<String>,
    agent_name: String,
    agent_version: Option<String>,
    tenant_id: Option<String>,
}

/// An event that cannot become a row.
struct Rejection {
    reason: RejectReason,
    detail: String,
}

impl From<Rejection> for Observation {
    fn from(r: Rejection) -> Observation {
        Observation::Reject { reason: r.reason, detail: r.detail }
    }
}

/// The time field an event logs, by the contract's precedence: the first present of `_timestamp`,
/// `timestamp`, `created_at`, the chat item's `created_at`, `time`, `asctime`.
fn logged_stamp<'s, 'a, M>(raw: &'s EventObject<'a, M>, extra_time: Option<&'s Stamp<'a>>) -> Option<(&'static str, &'s Stamp<'a>)> {
    [
        ("_timestamp", &raw.private_timestamp),
        ("timestamp", &raw.timestamp),
        ("created_at", &raw.created_at),
        ("item.created_at", extra_time.unwrap_or(&Stamp::Missing)),
        ("time", &raw.time),
        ("asctime", &raw.asctime),
    ]
    .into_iter()
    .find(|(_, t)| !matches!(t, Stamp::Missing))
}

/// The time an event gives itself, where it gives a usable one: what its rows' `event_time` is.
pub(crate) fn logged_time(raw: &RawEvent) -> Option<i64> {
    let item_time = raw.item.get().map(|item| &item.created_at);
    logged_stamp(raw, item_time).and_then(|(_, stamp)| stamp.millis())
}

fn identity<M>(raw: &EventObject<M>, extra_time: Option<&Stamp>, origin: &Origin, issues: &mut Issues) -> Result<Identity, Rejection> {
    let logged = logged_stamp(raw, extra_time);
    let event_time = match logged {
        Some((name, stamp)) => match stamp.millis() {
            Some(ms) => Some(ms),
            None => {
                issues.push(name, "not a time within 2000..2100; used the log event time");
                None
            }
        },
        None => None,
    };
    let event_time = match event_time.or(origin.delivered_time) {
        Some(t) => t,
        None if timefmt::in_range(origin.timestamp) => origin.timestamp,
        None => {
            return Err(Rejection {
                reason: RejectReason::BadTimestamp,
                detail: format!("log event timestamp {} is outside 2000..2100 and the event has no usable time", origin.timestamp),
            });
        }
    };
    let session_fields = [
        ("_session_id", &raw.private_session_id),
        ("session_id", &raw.session_id),
        ("room_name", &raw.room_name),
        ("room", &raw.room),
        ("room_id", &raw.room_id),
        ("job_id", &raw.job_id),
    ];
    let mut session_id = None;
    for (name, text) in session_fields {
        if let Some(s) = issues.text(name, text) {
            session_id = Some(issues.capped(name, s, caps::ID_BYTES));
            break;
        }
    }
    let agent_name = issues
        .text("agent_name", &raw.agent_name)
        .or_else(|| raw.agent.get())
        .or(origin.workload)
        .map(clean_label)
        .unwrap_or_else(|| agent_from_log_group(origin.log_group));
    Ok(Identity {
        event_time,
        session_id,
        agent_name,
        agent_version: issues.text("agent_version", &raw.agent_version).map(clean_label),
        tenant_id: issues.text("tenant_id", &raw.tenant_id).map(clean_label),
    })
}

/// Labels become metric dimensions: trimmed and bounded.
fn clean_label(s: &str) -> String {
    crate::rows::truncate_utf8(s.trim(), caps::LABEL_BYTES).to_owned()
}

/// An agent that does not log its name is named after its log group: `/ecs/support-agent` →
/// `support-agent`.
pub fn agent_from_log_group(log_group: &str) -> String {
    log_group.rsplit('/').find(|s| !s.is_empty()).map(clean_label).unwrap_or_else(|| "unknown".into())
}

fn turn_base(id: Identity, origin: &Origin, config: &Config, source_format: SourceFormat) -> TurnRow {
    TurnRow {
        event_id: origin.event_id.to_owned(),
        event_time: id.event_time,
        session_id: id.session_id,
        agent_name: id.agent_name,
        agent_version: id.agent_version,
        tenant_id: id.tenant_id,
        environment: config.environment.clone(),
        source_format,
        component_events: 1,
        log_group: origin.log_group.to_owned(),
        log_stream: origin.log_stream.to_owned(),
        ..TurnRow::default()
    }
}

fn owned(text: Option<&str>) -> Option<String> {
    text.map(clean_label)
}

/// Turns one parsed event into its observation.
pub fn observe(raw: RawEvent, origin: &Origin, config: &Config) -> Observation {
    match raw.family() {
        Family::VoiceMetrics => voice_metrics::observe(&raw, origin, config),
        Family::SessionAnalytics => session_analytics::observe(&raw, origin, config),
        Family::UnknownAppEvent => Observation::Skip(SkipReason::UnknownEventType),
        Family::IgnoredMetrics => Observation::Skip(SkipReason::IgnoredMetricsType),
        Family::Component { component, logged } => livekit_metrics::observe_component(&raw, component, logged, origin, config),
        Family::MetricsCollected => livekit_metrics::observe_collected(raw, origin, config),
        Family::ConversationItem => conversation::observe(&raw, origin, config),
        Family::SessionUsage => session_usage::observe(&raw, origin, config),
        Family::Failure => failures::observe(&raw, origin, config),
        Family::Unknown => Observation::Skip(SkipReason::NotAnEvent),
    }
}

fn model_usage_row(kind: UsageKind, provider: Option<&str>, model: Option<&str>) -> ModelUsageRow {
    let label = |s: Option<&str>| s.map(clean_label).unwrap_or_else(|| "unknown".into());
    ModelUsageRow::unmeasured(kind, label(provider), label(model))
}

/// A session row with its identity and nothing measured yet. A session-level event that names no
/// session cannot join its call, so it is rejected rather than stored under a made-up id.
fn session_row<M>(
    raw: &EventObject<M>,
    event_name: &str,
    (record_type, source_format): (SessionRecordType, SourceFormat),
    origin: &Origin,
    config: &Config,
    issues: &mut Issues,
) -> Result<SessionRow, Rejection> {
    let id = identity(raw, None, origin, issues)?;
    let Some(session_id) = id.session_id else {
        return Err(Rejection {
            reason: RejectReason::MissingSessionId,
            detail: format!("{event_name} without _session_id, session_id, room name, room_id or job_id"),
        });
    };
    Ok(SessionRow {
        event_id: origin.event_id.to_owned(),
        event_time: id.event_time,
        session_id,
        agent_name: id.agent_name,
        agent_version: id.agent_version,
        tenant_id: id.tenant_id,
        environment: config.environment.clone(),
        record_type,
        source_format,
        duration_seconds: None,
        outcome: None,
        call_setup_failed: None,
        setup_failure_reason: None,
        turn_count: None,
        tool_calls: Vec::new(),
        tool_call_count: 0,
        tool_failure_count: 0,
        tool_outcome_count: 0,
        discovered_signals: Default::default(),
        llm_prompt_tokens: None,
        llm_cached_tokens: None,
        llm_completion_tokens: None,
        stt_audio_seconds: None,
        tts_audio_seconds: None,
        tts_characters: None,
        model_usage: Vec::new(),
        estimated_cost_usd: None,
        mos: None,
        jitter_ms: None,
        packet_loss_rate: None,
        value_issues: Vec::new(),
        log_group: origin.log_group.to_owned(),
        log_stream: origin.log_stream.to_owned(),
    })
}

fn sum_some<T: std::iter::Sum + Copy>(values: impl Iterator<Item = Option<T>>) -> Option<T> {
    let present: Vec<T> = values.flatten().collect();
    (!present.is_empty()).then(|| present.into_iter().sum())
}

fn fill_usage_totals(row: &mut SessionRow, usage: &[ModelUsageRow]) {
    let of = |kind: UsageKind| usage.iter().filter(move |u| u.kind == kind);
    row.llm_prompt_tokens = sum_some(of(UsageKind::Llm).map(|u| u.input_tokens));
    row.llm_cached_tokens = sum_some(of(UsageKind::Llm).map(|u| u.cached_input_tokens));
    row.llm_completion_tokens = sum_some(of(UsageKind::Llm).map(|u| u.output_tokens));
    row.tts_characters = sum_some(of(UsageKind::Tts).map(|u| u.characters));
    row.tts_audio_seconds = sum_some(of(UsageKind::Tts).map(|u| u.audio_seconds));
    row.stt_audio_seconds = sum_some(of(UsageKind::Stt).map(|u| u.audio_seconds));
}
