//! The rows of the lake tables. Field names are column names: [`crate::lake`] decodes these rows
//! against the Arrow schemas in strict mode, so a field that drifts from its column fails the tests.

use std::collections::BTreeMap;

use serde::Serialize;

/// Which rule of the turn-latency definition ([`TurnRow::settle_latency`]) gave a turn's latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencySource {
    /// `total_latency` / `e2e_latency` as the agent measured it.
    Reported,
    /// End-of-utterance delay + `on_user_turn_completed` delay + the one LLM call's ttft + TTS ttfb.
    Computed,
    /// A tool round: the LLM phase runs from the first call's start to the last call's first token,
    /// each call placed by its metric's own timestamp and duration.
    ComputedToolRound,
    /// A tool round whose calls carry no timestamps of their own (`log_metrics()` lines): placed by
    /// their log records' times, an estimate.
    EstimatedToolRound,
}

impl LatencySource {
    pub fn as_str(self) -> &'static str {
        match self {
            LatencySource::Reported => "reported",
            LatencySource::Computed => "computed",
            LatencySource::ComputedToolRound => "computed_tool_round",
            LatencySource::EstimatedToolRound => "estimated_tool_round",
        }
    }
}

/// One LLM call of a turn, as its metric placed it in time. Not a column: the turn keeps their
/// number (`llm_calls`) and the LLM phase they span (`llm_phase_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LlmCall {
    /// The metric's time, epoch milliseconds: LiveKit stamps a call's metrics when it ends.
    pub at_ms: i64,
    pub duration_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    /// Whether `at_ms` is the metric's own timestamp (`model_dump()`), not its log record's.
    pub own_timestamp: bool,
}

impl LlmCall {
    /// When the call started: its timestamp less its duration. Without a duration (a `log_metrics()`
    /// line has none) the record is taken to be written at the first token, an estimate.
    fn start_ms(&self) -> Option<(f64, bool)> {
        match (self.duration_ms, self.ttft_ms) {
            (Some(d), _) => Some((self.at_ms as f64 - d, self.own_timestamp)),
            (None, Some(t)) => Some((self.at_ms as f64 - t, false)),
            (None, None) => None,
        }
    }
}

/// Which family of the contract a row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// An application `voice_metrics` event.
    #[default]
    AppVoiceMetrics,
    /// LiveKit component metrics as `model_dump()` JSON, assembled by `speech_id`.
    LivekitMetrics,
    /// LiveKit `log_metrics()` lines of its JSON formatter (no `speech_id`).
    LivekitLogMetrics,
    /// LiveKit ≥ 1.7 `ChatMessage.metrics` of `conversation_item_added`.
    LivekitChatMetrics,
    /// An application `session_analytics` event.
    AppSessionAnalytics,
    /// LiveKit `session_usage_updated`.
    LivekitSessionUsage,
    /// A failure line of LiveKit's own logger (a retry, a fallback switch, a close, a worker's warning).
    LivekitFailureLog,
    /// LiveKit's `error` and `close` session events.
    LivekitSessionEvent,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::AppVoiceMetrics => "app_voice_metrics",
            SourceFormat::LivekitMetrics => "livekit_metrics",
            SourceFormat::LivekitLogMetrics => "livekit_log_metrics",
            SourceFormat::LivekitChatMetrics => "livekit_chat_metrics",
            SourceFormat::AppSessionAnalytics => "app_session_analytics",
            SourceFormat::LivekitSessionUsage => "livekit_session_usage",
            SourceFormat::LivekitFailureLog => "livekit_failure_log",
            SourceFormat::LivekitSessionEvent => "livekit_session_event",
        }
    }
}

/// One turn, or the component metrics of a turn that did not complete within its batch.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TurnRow {
    /// The CloudWatch event id of the (first) log event: removes duplicates from retried batches.
    pub event_id: String,
    /// Milliseconds since the epoch, UTC.
    pub event_time: i64,
    pub session_id: Option<String>,
    /// LiveKit's `speech_id`, or the chat item id for chat-message metrics.
    pub speech_id: Option<String>,
    pub agent_name: String,
    pub agent_version: Option<String>,
    pub tenant_id: Option<String>,
    pub environment: String,
    /// Turn latency, end of user speech to first agent audio; null when the turn is incomplete.
    pub total_latency_ms: Option<f64>,
    pub latency_source: Option<LatencySource>,
    /// True when the row holds a whole turn; false for component rows still to be assembled.
    pub is_complete: bool,
    /// `total_latency_ms` above the latency target; null when there is no latency.
    pub over_target: Option<bool>,
    /// The agent's reply was cut off (the user spoke over it, or its speech failed); null when the
    /// source does not say.
    pub interrupted: Option<bool>,
    pub eou_delay_ms: Option<f64>,
    pub transcription_delay_ms: Option<f64>,
    /// The agent's `on_user_turn_completed` hook (where retrieval usually runs), between the end of
    /// the user's turn and the LLM call.
    pub on_user_turn_completed_delay_ms: Option<f64>,
    /// The first LLM call's time to first token.
    pub llm_ttft_ms: Option<f64>,
    pub llm_duration_ms: Option<f64>,
    /// The LLM calls the turn made: more than one is a tool round.
    pub llm_calls: Option<i64>,
    /// The LLM's part of the latency: the one call's ttft, or in a tool round the time from the
    /// first call's start to the last call's first token.
    pub llm_phase_ms: Option<f64>,
    pub tts_ttfb_ms: Option<f64>,
    pub tts_duration_ms: Option<f64>,
    pub tts_audio_duration_ms: Option<f64>,
    pub stt_duration_ms: Option<f64>,
    pub stt_audio_duration_ms: Option<f64>,
    pub prompt_tokens: Option<i64>,
    pub prompt_cached_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub tts_characters: Option<i64>,
    pub llm_provider: Option<String>,
    pub llm_model: Option<String>,
    pub tts_provider: Option<String>,
    pub tts_model: Option<String>,
    pub stt_provider: Option<String>,
    pub stt_model: Option<String>,
    pub source_format: SourceFormat,
    /// How many log events this row was assembled from.
    pub component_events: i32,
    /// Values that were nulled and why: sentinels, negative or non-finite numbers, wrong types.
    pub value_issues: Vec<String>,
    pub log_group: String,
    pub log_stream: String,
    /// The LiveKit component a single-metric row came from, for assembly; not a column.
    #[serde(skip)]
    pub component: Option<crate::event::Component>,
    /// The LLM calls assembled into the row, in order of their metrics; not a column.
    #[serde(skip)]
    pub llm_call_parts: Vec<LlmCall>,
}

impl TurnRow {
    /// Takes in another row of the same turn (a later component line, or the user message an agent
    /// reply answers): identity and the first measurement of each component are kept, durations,
    /// tokens and characters are summed over all parts.
    pub fn absorb(&mut self, part: TurnRow) {
        macro_rules! first {
            ($($field:ident),*) => { $( self.$field = self.$field.take().or(part.$field); )* };
        }
        macro_rules! summed {
            ($($field:ident),*) => { $( self.$field = match (self.$field, part.$field) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            }; )* };
        }
        first!(session_id, agent_version, tenant_id, eou_delay_ms, transcription_delay_ms, on_user_turn_completed_delay_ms);
        first!(llm_ttft_ms, llm_duration_ms, tts_ttfb_ms);
        first!(llm_model, llm_provider, tts_model, tts_provider, stt_model, stt_provider);
        summed!(tts_duration_ms, tts_audio_duration_ms, stt_duration_ms, stt_audio_duration_ms);
        summed!(prompt_tokens, prompt_cached_tokens, completion_tokens, tts_characters);
        self.interrupted = match (self.interrupted, part.interrupted) {
            (Some(a), Some(b)) => Some(a || b),
            (a, b) => a.or(b),
        };
        self.llm_call_parts.extend(part.llm_call_parts);
        self.value_issues.extend(part.value_issues);
        cap_issues(&mut self.value_issues);
        self.component_events += part.component_events;
    }

    /// Decides the turn's latency once its parts are assembled, the only place that does. A turn's
    /// latency is what the caller waited:
    /// - the latency the agent measured (`e2e_latency`, `total_latency`) when it reported one;
    /// - else end-of-utterance delay + `on_user_turn_completed` delay (0 when not reported) + the
    ///   LLM phase + TTS ttfb, where the LLM phase is the one call's ttft, or, when a tool round put
    ///   several LLM calls in the turn, the time from the first call's start to the last call's
    ///   first token.
    ///
    /// The transcription delay lies inside the end-of-utterance delay and is not added. Completeness
    /// and the over-target flag follow from the latency.
    pub fn settle_latency(&mut self, reported_ms: Option<f64>, target_ms: f64) {
        let calls = self.llm_call_parts.len();
        if calls > 0 {
            self.llm_calls = Some(calls as i64);
        }
        let (phase, phase_source) = if calls > 1 {
            match tool_round_phase(&self.llm_call_parts) {
                Some((phase, exact)) => {
                    (Some(phase), if exact { LatencySource::ComputedToolRound } else { LatencySource::EstimatedToolRound })
                }
                None => {
                    self.value_issues.push(format!(
                        "llm: a tool round of {calls} calls that cannot be placed in time (no ttft or duration); no LLM phase"
                    ));
                    cap_issues(&mut self.value_issues);
                    (None, LatencySource::Computed)
                }
            }
        } else {
            (self.llm_ttft_ms, LatencySource::Computed)
        };
        self.llm_phase_ms = phase;
        let hook = self.on_user_turn_completed_delay_ms.unwrap_or(0.0);
        let computed = match (self.eou_delay_ms, self.llm_phase_ms, self.tts_ttfb_ms) {
            (Some(eou), Some(phase), Some(ttfb)) => Some(eou + hook + phase + ttfb),
            _ => None,
        };
        (self.total_latency_ms, self.latency_source) = match (reported_ms, computed) {
            (Some(reported), _) => (Some(reported), Some(LatencySource::Reported)),
            (None, Some(computed)) => (Some(computed), Some(phase_source)),
            (None, None) => (None, None),
        };
        self.is_complete = self.total_latency_ms.is_some();
        self.over_target = self.total_latency_ms.map(|t| t > target_ms);
    }
}

/// A tool round's LLM phase: from the first call's start to the last call's first token, and
/// whether every call was placed by its own timestamp and duration. `None` when a call cannot be
/// placed or the last one has no first token.
fn tool_round_phase(calls: &[LlmCall]) -> Option<(f64, bool)> {
    let mut placed = Vec::with_capacity(calls.len());
    for call in calls {
        let (start, exact) = call.start_ms()?;
        placed.push((start, exact, call.ttft_ms));
    }
    placed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (first_start, ..) = placed[0];
    let (last_start, _, last_ttft) = *placed.last().expect("a tool round has calls");
    let phase = last_start + last_ttft? - first_start;
    let exact = placed.iter().all(|p| p.1);
    (phase >= 0.0).then_some((phase, exact))
}

/// What a usage entry meters, and so how it is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageKind {
    /// Tokens in and out.
    Llm,
    /// Characters synthesized.
    Tts,
    /// Seconds of audio transcribed.
    Stt,
}

impl UsageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Llm => "llm",
            UsageKind::Tts => "tts",
            UsageKind::Stt => "stt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallRow {
    pub name: String,
    pub success: Option<bool>,
    pub duration_ms: Option<f64>,
    pub error: Option<String>,
}

/// Usage of one provider and model within a session, priced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelUsageRow {
    /// `llm`, `tts` or `stt`.
    pub kind: UsageKind,
    pub provider: String,
    pub model: String,
    pub input_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub characters: Option<i64>,
    pub audio_seconds: Option<f64>,
    pub cost_usd: Option<f64>,
}

impl ModelUsageRow {
    /// A usage row with nothing measured and no price yet.
    pub fn unmeasured(kind: UsageKind, provider: String, model: String) -> ModelUsageRow {
        ModelUsageRow {
            kind,
            provider,
            model,
            input_tokens: None,
            cached_input_tokens: None,
            output_tokens: None,
            characters: None,
            audio_seconds: None,
            cost_usd: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionRecordType {
    /// The one `session_analytics` event an agent logs when a call ends.
    Analytics,
    /// A running total from `session_usage_updated`: the latest per session is current.
    Usage,
}

/// One call (`session_analytics`), or the latest usage totals of a call (`session_usage_updated`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    pub event_id: String,
    pub event_time: i64,
    pub session_id: String,
    pub agent_name: String,
    pub agent_version: Option<String>,
    pub tenant_id: Option<String>,
    pub environment: String,
    pub record_type: SessionRecordType,
    pub source_format: SourceFormat,
    pub duration_seconds: Option<f64>,
    pub outcome: Option<String>,
    pub call_setup_failed: Option<bool>,
    pub setup_failure_reason: Option<String>,
    pub turn_count: Option<i64>,
    pub tool_calls: Vec<ToolCallRow>,
    pub tool_call_count: i64,
    pub tool_failure_count: i64,
    /// Tool calls whose outcome was reported (success or failure): the tool success rate is over
    /// these, since a call with no outcome is unknown, not a success.
    pub tool_outcome_count: i64,
    /// Free-form signals the agent discovered; non-string values are kept as their JSON text.
    pub discovered_signals: BTreeMap<String, String>,
    pub llm_prompt_tokens: Option<i64>,
    pub llm_cached_tokens: Option<i64>,
    pub llm_completion_tokens: Option<i64>,
    pub stt_audio_seconds: Option<f64>,
    pub tts_audio_seconds: Option<f64>,
    pub tts_characters: Option<i64>,
    pub model_usage: Vec<ModelUsageRow>,
    /// Usage priced with the price table, plus transport by the minute when the duration is known.
    pub estimated_cost_usd: Option<f64>,
    pub mos: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub packet_loss_rate: Option<f64>,
    pub value_issues: Vec<String>,
    pub log_group: String,
    pub log_stream: String,
}

/// Input that could not become a row, kept so that nothing is lost silently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectRow {
    /// The CloudWatch event id; null when the whole payload was unreadable.
    pub event_id: Option<String>,
    pub event_time: i64,
    /// A stable code, see [`crate::reasons::RejectReason`].
    pub reason: String,
    /// The parser's message and what to do about it.
    pub detail: String,
    /// `payload` (the subscription envelope) or `message` (one log event).
    pub stage: String,
    /// The input, cut to [`RAW_LIMIT_BYTES`].
    pub raw_message: String,
    pub raw_bytes: i64,
    pub raw_truncated: bool,
    pub environment: String,
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
}

/// One failure line: a provider's retry or fallback, a session closed by an error, a worker's
/// health warning ([`crate::failure`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorRow {
    pub event_id: String,
    pub event_time: i64,
    /// Null for the worker's own lines and for events logged without the job's context.
    pub session_id: Option<String>,
    pub agent_name: String,
    pub agent_version: Option<String>,
    pub tenant_id: Option<String>,
    pub environment: String,
    /// `llm`, `stt`, `tts`, `realtime`, `process`, or `unknown`.
    pub kind: String,
    pub source_format: SourceFormat,
    /// From the plugin's label (`elevenlabs`); `all` when every provider of a fallback failed.
    pub provider: String,
    pub model: Option<String>,
    /// The provider's label as logged (`livekit.plugins.elevenlabs.tts.TTS`).
    pub label: Option<String>,
    /// `retry`, `fallback`, `all_failed`, `recovered`, `closed`, `error`, `memory`, `unresponsive`, `killed`.
    pub action: String,
    /// `http_503`, `timeout`, `connection`, `other`; null when the line carries no error.
    pub error_class: Option<String>,
    pub status_code: Option<i64>,
    pub recoverable: Option<bool>,
    pub attempt: Option<i64>,
    /// The worker process's memory as a percentage of its limit (of its warning threshold when it
    /// has no limit).
    pub memory_used_percent: Option<f64>,
    /// The line's first line, cut to [`caps::ERROR_MESSAGE_BYTES`].
    pub message: String,
    pub value_issues: Vec<String>,
    pub log_group: String,
    pub log_stream: String,
}

/// Rejects keep at most this much of their input: enough to debug, well under Firehose's 1000 KiB
/// record limit.
pub const RAW_LIMIT_BYTES: usize = 32 * 1024;

/// Every list and string a row copies from its input is capped, so that no input makes a row's
/// Firehose record exceed the 1000 KiB a record may hold (a test holds the bound): these caps, and
/// the true counts kept beside the capped lists.
pub mod caps {
    /// Session ids and other identifiers.
    pub const ID_BYTES: usize = 256;
    /// Labels that become metric dimensions (agent, version, tenant, models, tool names).
    pub const LABEL_BYTES: usize = 128;
    /// A failure line's message.
    pub const ERROR_MESSAGE_BYTES: usize = 2048;
    /// Free text: tool errors, setup failure reasons.
    pub const TEXT_BYTES: usize = 1024;
    /// Tool calls kept per session; `tool_call_count`, `tool_failure_count` and `tool_outcome_count` count them all.
    pub const TOOL_CALLS: usize = 100;
    /// Model usage entries kept per session.
    pub const MODEL_USAGE: usize = 50;
    /// `discovered_signals`: keys, and the bytes of each key and value.
    pub const SIGNALS: usize = 100;
    pub const SIGNAL_KEY_BYTES: usize = 256;
    pub const SIGNAL_VALUE_BYTES: usize = 4096;
    /// Value issues per row; the last one says how many more there were.
    pub const VALUE_ISSUES: usize = 32;
}

/// Keeps at most [`caps::VALUE_ISSUES`] issues, the last saying how many were left out.
pub fn cap_issues(issues: &mut Vec<String>) {
    if issues.len() <= caps::VALUE_ISSUES {
        return;
    }
    let more = issues.len() - (caps::VALUE_ISSUES - 1);
    let previous: usize = issues
        .last()
        .and_then(|l| l.strip_prefix("and ").and_then(|r| r.strip_suffix(" more value issues")))
        .and_then(|n| n.parse().ok())
        .map_or(0, |n: usize| n - 1);
    issues.truncate(caps::VALUE_ISSUES - 1);
    issues.push(format!("and {} more value issues", more + previous));
}

/// Cuts `text` to at most `limit` bytes on a character boundary.
pub fn truncate_utf8(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
