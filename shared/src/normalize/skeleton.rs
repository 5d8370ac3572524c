//! Identity and time by the contract's precedence, and the turn and session rows every family
//! fills in, with what a session's usage adds up to.

use crate::config::Config;
use crate::event::{EventObject, RawEvent};
use crate::lenient::Stamp;
use crate::reasons::RejectReason;
use crate::rows::{ModelUsageRow, SessionRecordType, SessionRow, SourceFormat, TurnRow, UsageKind, caps};
use crate::timefmt;

use super::{Issues, Observation, Origin, agent_from_log_group, clean_label};

/// Identity and time shared by every row.
pub(super) struct Identity {
    pub(super) event_time: i64,
    pub(super) session_id: Option<String>,
    pub(super) agent_name: String,
    pub(super) agent_version: Option<String>,
    pub(super) tenant_id: Option<String>,
}

/// An event that cannot become a row.
pub(super) struct Rejection {
    pub(super) reason: RejectReason,
    pub(super) detail: String,
}

impl From<Rejection> for Observation {
    fn from(r: Rejection) -> Observation {
        Observation::Reject { reason: r.reason, detail: r.detail }
    }
}

/// The time field an event logs, by the contract's precedence: the first present of `_timestamp`,
/// `timestamp`, `created_at`, the chat item's `created_at`, `time`, `asctime`.
pub(super) fn logged_stamp<'s, 'a, M>(
    raw: &'s EventObject<'a, M>,
    extra_time: Option<&'s Stamp<'a>>,
) -> Option<(&'static str, &'s Stamp<'a>)> {
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

pub(super) fn identity<M>(
    raw: &EventObject<M>,
    extra_time: Option<&Stamp>,
    origin: &Origin,
    issues: &mut Issues,
) -> Result<Identity, Rejection> {
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

pub(super) fn turn_base(id: Identity, origin: &Origin, config: &Config, source_format: SourceFormat) -> TurnRow {
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

pub(super) fn model_usage_row(kind: UsageKind, provider: Option<&str>, model: Option<&str>) -> ModelUsageRow {
    let label = |s: Option<&str>| s.map(clean_label).unwrap_or_else(|| "unknown".into());
    ModelUsageRow::unmeasured(kind, label(provider), label(model))
}

/// A session row with its identity and nothing measured yet. A session-level event that names no
/// session cannot join its call, so it is rejected rather than stored under a made-up id.
pub(super) fn session_row<M>(
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

pub(super) fn sum_some<T: std::iter::Sum + Copy>(values: impl Iterator<Item = Option<T>>) -> Option<T> {
    let present: Vec<T> = values.flatten().collect();
    (!present.is_empty()).then(|| present.into_iter().sum())
}

pub(super) fn fill_usage_totals(row: &mut SessionRow, usage: &[ModelUsageRow]) {
    let of = |kind: UsageKind| usage.iter().filter(move |u| u.kind == kind);
    row.llm_prompt_tokens = sum_some(of(UsageKind::Llm).map(|u| u.input_tokens));
    row.llm_cached_tokens = sum_some(of(UsageKind::Llm).map(|u| u.cached_input_tokens));
    row.llm_completion_tokens = sum_some(of(UsageKind::Llm).map(|u| u.output_tokens));
    row.tts_characters = sum_some(of(UsageKind::Tts).map(|u| u.characters));
    row.tts_audio_seconds = sum_some(of(UsageKind::Tts).map(|u| u.audio_seconds));
    row.stt_audio_seconds = sum_some(of(UsageKind::Stt).map(|u| u.audio_seconds));
}
