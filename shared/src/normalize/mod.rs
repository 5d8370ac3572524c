//! From a parsed event to typed rows: units to milliseconds, sentinels to null, identity and time by
//! the contract's precedence. This module dispatches an event to its family's file; what every
//! family shares is below them: the value checks in `values.rs`, identity and the row skeletons in
//! `skeleton.rs`. Turn assembly, and the turn's latency, happen in [`crate::assembly`] once a whole
//! batch is observed.

mod conversation;
mod failures;
mod livekit_metrics;
mod session_analytics;
mod session_usage;
mod skeleton;
mod values;
mod voice_metrics;

pub(crate) use skeleton::logged_time;
use skeleton::{fill_usage_totals, identity, model_usage_row, session_row, turn_base};
pub use values::Issues;
use values::{MAX_DURATION_MS, MAX_LATENCY_MS, any_present, clean_label, first_present, owned, within};

use crate::config::Config;
use crate::event::{Family, RawEvent};
use crate::reasons::{RejectReason, SkipReason};
use crate::rows::{ErrorRow, SessionRow, TurnRow};

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

/// An agent that does not log its name is named after its log group: `/ecs/support-agent` →
/// `support-agent`.
pub fn agent_from_log_group(log_group: &str) -> String {
    log_group.rsplit('/').find(|s| !s.is_empty()).map(clean_label).unwrap_or_else(|| "unknown".into())
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
