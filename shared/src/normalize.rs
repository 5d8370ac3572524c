//! From a parsed event to typed rows: units to milliseconds, sentinels to null, identity and time by
//! the contract's precedence. Each family has one function; turn assembly happens in
//! [`crate::pipeline`] once a whole batch is observed.

use std::borrow::Cow;

use crate::config::Config;
use crate::event::{Component, EventObject, Family, ModelBlock, ModelUsageEntry, RawEvent};
use crate::lenient::{Bad, Num, Obj, Stamp, Text};
use crate::reasons::{RejectReason, SkipReason};
use crate::rows::{ModelUsageRow, SessionRecordType, SessionRow, SourceFormat, ToolCallRow, TurnRow};
use crate::timefmt;

/// Latencies above ten minutes are unit errors (milliseconds logged as seconds), not slow turns.
const MAX_LATENCY_MS: f64 = 600_000.0;
/// Audio and call durations above a day are unit errors too.
const MAX_DURATION_MS: f64 = 86_400_000.0;
const MAX_SIGNALS: usize = 100;
const MAX_SIGNAL_KEY: usize = 256;
const MAX_SIGNAL_VALUE: usize = 4096;

/// Where a log event came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'b> {
    pub event_id: &'b str,
    /// CloudWatch's timestamp of the log event, epoch milliseconds.
    pub timestamp: i64,
    pub log_group: &'b str,
    pub log_stream: &'b str,
}

/// What one log event contributes to its batch.
#[derive(Debug)]
pub enum Observation {
    /// A `voice_metrics` turn, complete or not.
    Turn(TurnRow),
    /// One LiveKit component metric, to be assembled with the others of its `speech_id`.
    Component(TurnRow),
    /// A user chat message's end-of-turn metrics, to be joined with the agent's reply.
    ChatUser(TurnRow),
    /// An agent chat message's metrics: a turn.
    ChatAssistant(TurnRow),
    Session(SessionRow),
    Usage(SessionRow),
    Skip(SkipReason),
    Reject {
        reason: RejectReason,
        detail: String,
    },
}

/// Values that had to be nulled, and why. They end up in the row's `value_issues`.
#[derive(Debug, Default)]
pub struct Issues(pub Vec<String>);

impl Issues {
    fn push(&mut self, field: &str, what: impl std::fmt::Display) {
        self.0.push(format!("{field}: {what}"));
    }

    fn bad(&mut self, field: &str, bad: Bad) {
        self.push(field, bad.describe());
    }

    fn object<T>(&mut self, field: &str, obj: &Obj<T>) {
        if let Obj::Bad(b) = obj {
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
    fn millis(&mut self, field: &str, secs: Num, ms: Num, zero_means_missing: bool, max_ms: f64) -> Option<f64> {
        let (num, scale) = if ms.is_missing() { (secs, 1000.0) } else { (ms, 1.0) };
        match num {
            Num::Missing => None,
            Num::Bad(b) => {
                self.bad(field, b);
                None
            }
            Num::Value(v) if !v.is_finite() => {
                self.push(field, "not a finite number");
                None
            }
            Num::Value(-1.0) => {
                self.push(field, "-1, LiveKit's value for not measured");
                None
            }
            Num::Value(v) if v < 0.0 => {
                self.push(field, format_args!("negative ({v})"));
                None
            }
            Num::Value(v) if v == 0.0 && zero_means_missing => {
                self.push(field, "0, LiveKit's value for end of speech not detected");
                None
            }
            Num::Value(v) if v * scale > max_ms => {
                self.push(field, format_args!("implausible ({} ms)", v * scale));
                None
            }
            Num::Value(v) => Some(v * scale),
        }
    }

    fn latency(&mut self, field: &str, secs: Num, ms: Num) -> Option<f64> {
        self.millis(field, secs, ms, false, MAX_LATENCY_MS)
    }

    fn seconds(&mut self, field: &str, secs: Num) -> Option<f64> {
        self.millis(field, secs, Num::Missing, false, MAX_DURATION_MS).map(|ms| ms / 1000.0)
    }

    fn count(&mut self, field: &str, n: Num) -> Option<i64> {
        match n {
            Num::Missing => None,
            Num::Bad(b) => {
                self.bad(field, b);
                None
            }
            Num::Value(v) if !(0.0..=1e12).contains(&v) => {
                self.push(field, format_args!("not a count ({v})"));
                None
            }
            Num::Value(v) => Some(v.round() as i64),
        }
    }

    fn ratio(&mut self, field: &str, n: Num, max: f64) -> Option<f64> {
        match n {
            Num::Missing => None,
            Num::Bad(b) => {
                self.bad(field, b);
                None
            }
            Num::Value(v) if !v.is_finite() || v < 0.0 || v > max => {
                self.push(field, format_args!("out of range ({v})"));
                None
            }
            Num::Value(v) => Some(v),
        }
    }
}

/// The first candidate that is present, as (name, seconds field, milliseconds field).
fn first_present<'n>(candidates: &[(&'n str, Num, Num)]) -> (&'n str, Num, Num) {
    candidates.iter().copied().find(|(_, s, m)| !s.is_missing() || !m.is_missing()).unwrap_or((candidates[0].0, Num::Missing, Num::Missing))
}

fn any_present(nums: &[Num]) -> bool {
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

fn identity<M>(raw: &EventObject<M>, extra_time: Option<&Stamp>, origin: &Origin, issues: &mut Issues) -> Result<Identity, Rejection> {
    let time_fields = [
        ("_timestamp", &raw.private_timestamp),
        ("timestamp", &raw.timestamp),
        ("created_at", &raw.created_at),
        ("item.created_at", extra_time.unwrap_or(&Stamp::Missing)),
    ];
    let logged = time_fields.iter().find(|(_, t)| !matches!(t, Stamp::Missing));
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
    let event_time = match event_time {
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
            session_id = Some(s.to_owned());
            break;
        }
    }
    let agent_name = issues
        .text("agent_name", &raw.agent_name)
        .or_else(|| raw.agent.get())
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
    crate::rows::truncate_utf8(s.trim(), 128).to_owned()
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

/// Records a latency the agent logged; [`finish_turn`] decides once the batch is assembled.
fn set_reported(row: &mut TurnRow, reported_ms: Option<f64>) {
    row.total_latency_ms = reported_ms;
    row.latency_source = reported_ms.map(|_| crate::rows::LatencySource::Reported);
}

/// Sets latency, completeness and the over-target flag once a turn's components are known: a
/// reported latency wins, else LiveKit's formula when all three components are there.
pub fn finish_turn(row: &mut TurnRow, reported_ms: Option<f64>, config: &Config) {
    use crate::rows::LatencySource;
    if let Some(total) = reported_ms {
        row.total_latency_ms = Some(total);
        row.latency_source = Some(LatencySource::Reported);
    } else if let (Some(eou), Some(ttft), Some(ttfb)) = (row.eou_delay_ms, row.llm_ttft_ms, row.tts_ttfb_ms) {
        // LiveKit's formula. The transcription delay lies inside the end-of-utterance delay.
        row.total_latency_ms = Some(eou + ttft + ttfb);
        row.latency_source = Some(LatencySource::Computed);
    } else {
        row.total_latency_ms = None;
        row.latency_source = None;
    }
    row.is_complete = row.total_latency_ms.is_some();
    row.over_target = row.total_latency_ms.map(|t| t > config.latency_target_ms);
}

fn owned(text: Option<&str>) -> Option<String> {
    text.map(clean_label)
}

/// Turns one parsed event into its observation.
pub fn observe(raw: RawEvent, origin: &Origin, config: &Config) -> Observation {
    match raw.family() {
        Family::VoiceMetrics => voice_metrics(&raw, origin, config),
        Family::SessionAnalytics => session_analytics(&raw, origin, config),
        Family::UnknownAppEvent => Observation::Skip(SkipReason::UnknownEventType),
        Family::IgnoredMetrics => Observation::Skip(SkipReason::IgnoredMetricsType),
        Family::Component { component, logged } => component_metrics(&raw, component, logged, origin, config),
        Family::MetricsCollected => metrics_collected(raw, origin, config),
        Family::ConversationItem => conversation_item(&raw, origin, config),
        Family::SessionUsage => session_usage(&raw, origin, config),
        Family::Unknown => Observation::Skip(SkipReason::NotAnEvent),
    }
}

fn voice_metrics(raw: &RawEvent, origin: &Origin, config: &Config) -> Observation {
    let mut issues = Issues::default();
    issues.object("eou", &raw.eou);
    issues.object("llm", &raw.llm);
    issues.object("tts", &raw.tts);
    issues.object("stt", &raw.stt);
    let none = ModelBlock::default();
    let eou_none = crate::event::EouBlock::default();
    let eou = raw.eou.get().map(Box::as_ref).unwrap_or(&eou_none);
    let llm = raw.llm.get().map(Box::as_ref).unwrap_or(&none);
    let tts = raw.tts.get().map(Box::as_ref).unwrap_or(&none);
    let stt = raw.stt.get().map(Box::as_ref).unwrap_or(&none);

    let eou_delay = first_present(&[
        ("eou.end_of_utterance_delay", eou.end_of_utterance_delay, eou.end_of_utterance_delay_ms),
        ("eou.delay", eou.delay, eou.delay_ms),
        ("eou_delay", raw.eou_delay, raw.eou_delay_ms),
        ("end_of_utterance_delay", raw.end_of_utterance_delay, raw.end_of_utterance_delay_ms),
    ]);
    let transcription = first_present(&[
        ("eou.transcription_delay", eou.transcription_delay, eou.transcription_delay_ms),
        ("transcription_delay", raw.transcription_delay, raw.transcription_delay_ms),
    ]);
    let ttft = first_present(&[("llm.ttft", llm.ttft, llm.ttft_ms), ("llm_ttft", raw.llm_ttft, raw.llm_ttft_ms)]);
    let ttfb = first_present(&[("tts.ttfb", tts.ttfb, tts.ttfb_ms), ("tts_ttfb", raw.tts_ttfb, raw.tts_ttfb_ms)]);
    let total = first_present(&[("total_latency", raw.total_latency, raw.total_latency_ms)]);

    let measured = [
        eou_delay.1,
        eou_delay.2,
        transcription.1,
        transcription.2,
        ttft.1,
        ttft.2,
        ttfb.1,
        ttfb.2,
        total.1,
        total.2,
        llm.duration,
        llm.duration_ms,
        llm.prompt_tokens,
        llm.completion_tokens,
        tts.duration,
        tts.duration_ms,
        tts.audio_duration,
        tts.characters_count,
        stt.duration,
        stt.duration_ms,
        stt.audio_duration,
    ];
    if !any_present(&measured) {
        return Observation::Reject {
            reason: RejectReason::NoMeasurements,
            detail: "voice_metrics without total_latency, eou, llm, tts or stt values".into(),
        };
    }
    let id = match identity(raw, None, origin, &mut issues) {
        Ok(id) => id,
        Err(reject) => return reject.into(),
    };
    let mut row = turn_base(id, origin, config, SourceFormat::AppVoiceMetrics);
    row.speech_id = owned(issues.text("speech_id", &raw.speech_id));
    row.eou_delay_ms = issues.millis(eou_delay.0, eou_delay.1, eou_delay.2, true, MAX_LATENCY_MS);
    row.transcription_delay_ms = issues.millis(transcription.0, transcription.1, transcription.2, true, MAX_LATENCY_MS);
    row.llm_ttft_ms = issues.latency(ttft.0, ttft.1, ttft.2);
    row.llm_duration_ms = issues.millis("llm.duration", llm.duration, llm.duration_ms, false, MAX_DURATION_MS);
    row.prompt_tokens = issues.count("llm.prompt_tokens", llm.prompt_tokens);
    row.prompt_cached_tokens = issues.count("llm.prompt_cached_tokens", llm.prompt_cached_tokens);
    row.completion_tokens = issues.count("llm.completion_tokens", llm.completion_tokens);
    row.llm_model = owned(issues.text("llm.model", &llm.model));
    row.llm_provider = owned(issues.text("llm.provider", &llm.provider));
    row.tts_ttfb_ms = issues.latency(ttfb.0, ttfb.1, ttfb.2);
    row.tts_duration_ms = issues.millis("tts.duration", tts.duration, tts.duration_ms, false, MAX_DURATION_MS);
    row.tts_audio_duration_ms = issues.millis("tts.audio_duration", tts.audio_duration, tts.audio_duration_ms, false, MAX_DURATION_MS);
    row.tts_characters = issues.count("tts.characters_count", tts.characters_count);
    row.tts_model = owned(issues.text("tts.model", &tts.model));
    row.tts_provider = owned(issues.text("tts.provider", &tts.provider));
    row.stt_duration_ms = issues.millis("stt.duration", stt.duration, stt.duration_ms, false, MAX_DURATION_MS);
    row.stt_audio_duration_ms = issues.millis("stt.audio_duration", stt.audio_duration, stt.audio_duration_ms, false, MAX_DURATION_MS);
    row.stt_model = owned(issues.text("stt.model", &stt.model));
    row.stt_provider = owned(issues.text("stt.provider", &stt.provider));
    let reported = issues.latency(total.0, total.1, total.2);
    row.value_issues = issues.0;
    set_reported(&mut row, reported);
    Observation::Turn(row)
}

fn component_metrics<M>(raw: &EventObject<M>, component: Component, logged: bool, origin: &Origin, config: &Config) -> Observation {
    let mut issues = Issues::default();
    let measured: &[Num] = match component {
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
        Component::Eou => &[raw.end_of_utterance_delay, raw.end_of_utterance_delay_ms, raw.transcription_delay, raw.transcription_delay_ms],
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
            row.prompt_tokens = issues.count("prompt_tokens", raw.prompt_tokens).or(issues.count("input_tokens", raw.input_tokens));
            row.prompt_cached_tokens = issues.count("prompt_cached_tokens", raw.prompt_cached_tokens);
            row.completion_tokens =
                issues.count("completion_tokens", raw.completion_tokens).or(issues.count("output_tokens", raw.output_tokens));
            row.llm_model = model;
            row.llm_provider = provider;
        }
        Component::Tts => {
            row.tts_ttfb_ms = issues.latency("ttfb", raw.ttfb, raw.ttfb_ms);
            row.tts_duration_ms = issues.millis("duration", raw.duration, raw.duration_ms, false, MAX_DURATION_MS);
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
        }
    }
    row.value_issues = issues.0;
    Observation::Component(row)
}

fn metrics_collected(mut raw: RawEvent, origin: &Origin, config: &Config) -> Observation {
    let mut metrics = match std::mem::take(&mut raw.metrics) {
        Obj::Value(m) => m,
        Obj::Missing | Obj::Bad(_) => {
            return Observation::Reject {
                reason: RejectReason::NoMeasurements,
                detail: "metrics_collected without a metrics object".into(),
            };
        }
    };
    metrics.inherit_from(&raw);
    match metrics.family() {
        Family::Component { component, .. } => component_metrics(&metrics, component, false, origin, config),
        Family::IgnoredMetrics => Observation::Skip(SkipReason::IgnoredMetricsType),
        _ => Observation::Skip(SkipReason::NotAnEvent),
    }
}

fn conversation_item(raw: &RawEvent, origin: &Origin, config: &Config) -> Observation {
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
        row.llm_ttft_ms = issues.latency("item.metrics.llm_node_ttft", metrics.llm_node_ttft, Num::Missing);
        row.tts_ttfb_ms = issues.latency("item.metrics.tts_node_ttfb", metrics.tts_node_ttfb, Num::Missing);
        if let Some(m) = metrics.llm_metadata.get() {
            row.llm_model = owned(m.model_name.get());
            row.llm_provider = owned(m.model_provider.get());
        }
        if let Some(m) = metrics.tts_metadata.get() {
            row.tts_model = owned(m.model_name.get());
            row.tts_provider = owned(m.model_provider.get());
        }
        let reported = issues.latency("item.metrics.e2e_latency", metrics.e2e_latency, Num::Missing);
        row.value_issues = issues.0;
        set_reported(&mut row, reported);
        Observation::ChatAssistant(row)
    } else {
        row.eou_delay_ms = issues.millis("item.metrics.end_of_turn_delay", metrics.end_of_turn_delay, Num::Missing, true, MAX_LATENCY_MS);
        row.transcription_delay_ms =
            issues.millis("item.metrics.transcription_delay", metrics.transcription_delay, Num::Missing, true, MAX_LATENCY_MS);
        if let Some(m) = metrics.stt_metadata.get() {
            row.stt_model = owned(m.model_name.get());
            row.stt_provider = owned(m.model_provider.get());
        }
        row.value_issues = issues.0;
        Observation::ChatUser(row)
    }
}

fn usage_kind(entry: &ModelUsageEntry) -> &'static str {
    match entry.kind.get().map(|k| k.trim_end_matches("_usage")) {
        Some("llm") => "llm",
        Some("tts") => "tts",
        Some("stt") => "stt",
        _ if !entry.characters_count.is_missing() => "tts",
        _ if !entry.audio_duration.is_missing() && entry.input_tokens.is_missing() => "stt",
        _ => "llm",
    }
}

fn model_usage_row(kind: &str, provider: Option<&str>, model: Option<&str>) -> ModelUsageRow {
    ModelUsageRow {
        kind: kind.to_owned(),
        provider: provider.map(clean_label).unwrap_or_else(|| "unknown".into()),
        model: model.map(clean_label).unwrap_or_else(|| "unknown".into()),
        input_tokens: None,
        cached_input_tokens: None,
        output_tokens: None,
        characters: None,
        audio_seconds: None,
        cost_usd: None,
    }
}

fn session_usage(raw: &RawEvent, origin: &Origin, config: &Config) -> Observation {
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
        let mut llm = model_usage_row("llm", None, None);
        llm.input_tokens = issues.count("usage.llm_prompt_tokens", usage.llm_prompt_tokens);
        llm.cached_input_tokens = issues.count("usage.llm_prompt_cached_tokens", usage.llm_prompt_cached_tokens);
        llm.output_tokens = issues.count("usage.llm_completion_tokens", usage.llm_completion_tokens);
        let mut tts = model_usage_row("tts", None, None);
        tts.characters = issues.count("usage.tts_characters_count", usage.tts_characters_count);
        tts.audio_seconds = issues.seconds("usage.tts_audio_duration", usage.tts_audio_duration);
        let mut stt = model_usage_row("stt", None, None);
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
    row.model_usage = rows;
    row.value_issues = issues.0;
    Observation::Usage(row)
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
    let of = |kind: &'static str| usage.iter().filter(move |u| u.kind == kind);
    row.llm_prompt_tokens = sum_some(of("llm").map(|u| u.input_tokens));
    row.llm_cached_tokens = sum_some(of("llm").map(|u| u.cached_input_tokens));
    row.llm_completion_tokens = sum_some(of("llm").map(|u| u.output_tokens));
    row.tts_characters = sum_some(of("tts").map(|u| u.characters));
    row.tts_audio_seconds = sum_some(of("tts").map(|u| u.audio_seconds));
    row.stt_audio_seconds = sum_some(of("stt").map(|u| u.audio_seconds));
}

fn session_analytics(raw: &RawEvent, origin: &Origin, config: &Config) -> Observation {
    let mut issues = Issues::default();
    let kind = (SessionRecordType::Analytics, SourceFormat::AppSessionAnalytics);
    let mut row = match session_row(raw, "session_analytics", kind, origin, config, &mut issues) {
        Ok(row) => row,
        Err(reject) => return reject.into(),
    };
    let duration = first_present(&[
        ("duration_seconds", raw.duration_seconds, Num::Missing),
        ("duration", raw.duration, raw.duration_ms),
        ("session_duration", raw.session_duration, Num::Missing),
    ]);
    row.duration_seconds = issues.millis(duration.0, duration.1, duration.2, false, MAX_DURATION_MS).map(|ms| ms / 1000.0);
    row.outcome = owned(issues.text("outcome", &raw.outcome));
    row.call_setup_failed = raw.call_setup_failed.get();
    if let crate::lenient::Flag::Bad(b) = raw.call_setup_failed {
        issues.bad("call_setup_failed", b);
    }
    row.setup_failure_reason = issues.text("setup_failure_reason", &raw.setup_failure_reason).map(str::to_owned);
    row.turn_count = issues.count("turn_count", raw.turn_count);
    row.mos = issues.ratio("mos", raw.mos, 5.0);
    row.jitter_ms = issues.ratio("jitter_ms", raw.jitter_ms, 60_000.0);
    row.packet_loss_rate = issues.ratio("packet_loss_rate", raw.packet_loss_rate, 1.0);

    if raw.tool_calls.unusable > 0 {
        issues.push("tool_calls", format_args!("{} entries are not objects", raw.tool_calls.unusable));
    }
    row.tool_calls = raw
        .tool_calls
        .items
        .iter()
        .map(|call| {
            let error = call.error.get().map(str::to_owned);
            let success = call.success.get().or_else(|| match call.status.get().map(str::to_ascii_lowercase).as_deref() {
                Some("success" | "succeeded" | "ok" | "completed") => Some(true),
                Some("error" | "failed" | "failure" | "timeout") => Some(false),
                _ => error.as_ref().map(|_| false),
            });
            ToolCallRow {
                name: call.tool.get().or_else(|| call.name.get()).map(clean_label).unwrap_or_else(|| "unknown".into()),
                success,
                duration_ms: issues.millis("tool_calls.duration", call.duration, call.duration_ms, false, MAX_DURATION_MS),
                error,
            }
        })
        .collect();
    row.tool_call_count = row.tool_calls.len() as i64;
    row.tool_failure_count = row.tool_calls.iter().filter(|c| c.success == Some(false)).count() as i64;

    match &raw.discovered_signals {
        Obj::Value(signals) => {
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

    issues.object("metrics_summary", &raw.metrics_summary);
    let summary_none = crate::event::MetricsSummary::default();
    let summary = raw.metrics_summary.get().map(Box::as_ref).unwrap_or(&summary_none);
    let llm_model = raw.llm_model.get().or_else(|| summary.llm_model.get());
    let mut llm = model_usage_row("llm", raw.llm_provider.get(), llm_model);
    llm.input_tokens = issues.count("metrics_summary.llm_prompt_tokens", summary.llm_prompt_tokens);
    llm.cached_input_tokens = issues.count("metrics_summary.llm_prompt_cached_tokens", summary.llm_prompt_cached_tokens);
    llm.output_tokens = issues.count("metrics_summary.llm_completion_tokens", summary.llm_completion_tokens);
    if llm.input_tokens.is_none() && llm.output_tokens.is_none() {
        // Only a total is known: price it as input, the cheaper side, rather than not at all.
        llm.input_tokens = issues.count("metrics_summary.llm_tokens", summary.llm_tokens);
    }
    let mut tts = model_usage_row("tts", raw.tts_provider.get(), raw.tts_model.get().or_else(|| summary.tts_model.get()));
    tts.characters = issues.count("metrics_summary.tts_characters", summary.tts_characters);
    tts.audio_seconds = issues.seconds("metrics_summary.tts_audio_seconds", summary.tts_audio_seconds);
    let mut stt = model_usage_row("stt", raw.stt_provider.get(), raw.stt_model.get().or_else(|| summary.stt_model.get()));
    stt.audio_seconds = issues.seconds("metrics_summary.stt_audio_seconds", summary.stt_audio_seconds);
    let mut usage: Vec<ModelUsageRow> = [llm, tts, stt]
        .into_iter()
        .filter(|r| r.input_tokens.is_some() || r.output_tokens.is_some() || r.characters.is_some() || r.audio_seconds.is_some())
        .collect();
    fill_usage_totals(&mut row, &usage);
    row.estimated_cost_usd = config.prices.call_cost(&mut usage, row.duration_seconds);
    row.model_usage = usage;
    row.value_issues = issues.0;
    Observation::Session(row)
}
