//! The JSON object of one log message, as the agents write it.
//!
//! One struct holds every field of every family of the contract (README "Event contract"); which of
//! them mean something depends on the family, decided in [`crate::normalize`]. Every field is lenient
//! (see [`crate::lenient`]) and strings are borrowed from the message, so parsing allocates little
//! and a wrong value costs one field. Unknown keys are skipped.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::lenient::{Block, Flag, List, Number, Object, Skipped, Stamp, Text};

/// A log message's event object.
pub type RawEvent<'a> = EventObject<'a, Object<Box<InnerEvent<'a>>>>;

/// The component metric inside `metrics_collected`. Its own `metrics` key is skipped, so that no
/// input makes parsing recurse deeper than two levels.
pub type InnerEvent<'a> = EventObject<'a, Skipped>;

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "M: Deserialize<'de> + Default"))]
pub struct EventObject<'a, M> {
    // Family markers.
    #[serde(borrow, rename = "_event_type")]
    pub private_event_type: Text<'a>,
    #[serde(borrow)]
    pub event_type: Text<'a>,
    #[serde(borrow, rename = "type")]
    pub kind: Text<'a>,
    /// The log message of LiveKit's JSON formatter: `"LLM metrics"` for `log_metrics()` lines.
    /// Logging libraries name it differently: see [`EventObject::log_message`].
    #[serde(borrow)]
    pub message: Text<'a>,
    /// pino's and bunyan's message (agents-js logs its metrics through pino).
    #[serde(borrow)]
    pub msg: Text<'a>,
    /// structlog's message.
    #[serde(borrow)]
    pub event: Text<'a>,
    /// The Python logger name (`livekit.agents`).
    #[serde(borrow)]
    pub name: Text<'a>,

    // Identity, in the contract's order of precedence.
    #[serde(borrow, rename = "_session_id")]
    pub private_session_id: Text<'a>,
    #[serde(borrow, alias = "sessionId")]
    pub session_id: Text<'a>,
    #[serde(borrow, alias = "roomName")]
    pub room_name: Text<'a>,
    #[serde(borrow)]
    pub room: Text<'a>,
    #[serde(borrow, alias = "roomId")]
    pub room_id: Text<'a>,
    #[serde(borrow, alias = "jobId", alias = "jobID")]
    pub job_id: Text<'a>,
    #[serde(borrow, alias = "speechId")]
    pub speech_id: Text<'a>,
    #[serde(borrow, alias = "agentName")]
    pub agent_name: Text<'a>,
    #[serde(borrow)]
    pub agent: Text<'a>,
    #[serde(borrow, alias = "agentVersion")]
    pub agent_version: Text<'a>,
    #[serde(borrow, alias = "tenantId")]
    pub tenant_id: Text<'a>,

    // Event time: `_timestamp`, `timestamp`, then LiveKit's `created_at`, then the logging
    // library's time of the record (pino and bunyan `time`, python-json-logger `asctime`).
    #[serde(borrow, rename = "_timestamp")]
    pub private_timestamp: Stamp<'a>,
    #[serde(borrow)]
    pub timestamp: Stamp<'a>,
    #[serde(borrow, alias = "createdAt")]
    pub created_at: Stamp<'a>,
    #[serde(borrow)]
    pub time: Stamp<'a>,
    /// python-json-logger's `asctime`, or the time before the object of a text-formatted line.
    #[serde(borrow)]
    pub asctime: Stamp<'a>,

    // voice_metrics: nested blocks, and flat aliases.
    pub total_latency: Number,
    #[serde(alias = "totalLatencyMs")]
    pub total_latency_ms: Number,
    pub eou: Object<Box<EouBlock>>,
    /// A `voice_metrics` component block, or the provider's label in LiveKit's retry lines.
    #[serde(borrow)]
    pub llm: Block<'a, Box<ModelBlock<'a>>>,
    #[serde(borrow)]
    pub tts: Block<'a, Box<ModelBlock<'a>>>,
    #[serde(borrow)]
    pub stt: Block<'a, Box<ModelBlock<'a>>>,
    pub llm_ttft: Number,
    pub llm_ttft_ms: Number,
    pub tts_ttfb: Number,
    pub tts_ttfb_ms: Number,
    pub eou_delay: Number,
    pub eou_delay_ms: Number,

    // LiveKit component metrics (`model_dump()` and `log_metrics()` fields), agents-js spellings too.
    pub ttft: Number,
    #[serde(alias = "ttftMs")]
    pub ttft_ms: Number,
    pub ttfb: Number,
    #[serde(alias = "ttfbMs")]
    pub ttfb_ms: Number,
    pub duration: Number,
    #[serde(alias = "durationMs")]
    pub duration_ms: Number,
    #[serde(alias = "endOfUtteranceDelay")]
    pub end_of_utterance_delay: Number,
    #[serde(alias = "endOfUtteranceDelayMs")]
    pub end_of_utterance_delay_ms: Number,
    #[serde(alias = "transcriptionDelay")]
    pub transcription_delay: Number,
    #[serde(alias = "transcriptionDelayMs")]
    pub transcription_delay_ms: Number,
    /// The time an agent's `on_user_turn_completed` hook (where retrieval usually happens) held the
    /// turn before the LLM was called: LiveKit's EOU metrics, agents-js `onUserTurnCompletedDelayMs`.
    #[serde(alias = "onUserTurnCompletedDelay")]
    pub on_user_turn_completed_delay: Number,
    #[serde(alias = "onUserTurnCompletedDelayMs")]
    pub on_user_turn_completed_delay_ms: Number,
    #[serde(alias = "promptTokens")]
    pub prompt_tokens: Number,
    #[serde(alias = "promptCachedTokens")]
    pub prompt_cached_tokens: Number,
    #[serde(alias = "completionTokens")]
    pub completion_tokens: Number,
    #[serde(alias = "inputTokens")]
    pub input_tokens: Number,
    #[serde(alias = "outputTokens")]
    pub output_tokens: Number,
    /// A realtime model's cached input tokens (its `log_metrics()` line), and the `model_dump()`'s
    /// `input_token_details.cached_tokens`.
    pub cached_input_tokens: Number,
    pub input_token_details: Object<TokenDetails>,
    #[serde(alias = "audioDuration")]
    pub audio_duration: Number,
    #[serde(alias = "audioDurationMs")]
    pub audio_duration_ms: Number,
    #[serde(alias = "charactersCount")]
    pub characters_count: Number,
    #[serde(borrow)]
    pub metadata: Object<ModelMetadata<'a>>,
    #[serde(borrow)]
    pub model_name: Text<'a>,
    #[serde(borrow)]
    pub model_provider: Text<'a>,
    #[serde(borrow)]
    pub model: Text<'a>,
    #[serde(borrow)]
    pub provider: Text<'a>,
    /// `{"type": "metrics_collected", "metrics": {…}}`: the session event around a component metric.
    pub metrics: M,

    // LiveKit ≥ 1.7 session events.
    #[serde(borrow)]
    pub item: Object<Box<ChatItem<'a>>>,
    #[serde(borrow)]
    pub usage: Object<Box<UsageBlock<'a>>>,

    // session_analytics.
    pub duration_seconds: Number,
    pub session_duration: Number,
    #[serde(borrow)]
    pub tool_calls: Box<List<ToolCall<'a>>>,
    #[serde(borrow)]
    pub discovered_signals: Object<Box<BTreeMap<Cow<'a, str>, &'a RawValue>>>,
    #[serde(borrow)]
    pub metrics_summary: Object<Box<MetricsSummary<'a>>>,
    #[serde(borrow)]
    pub outcome: Text<'a>,
    #[serde(alias = "setup_failed")]
    pub call_setup_failed: Flag,
    #[serde(borrow, alias = "failure_reason")]
    pub setup_failure_reason: Text<'a>,
    #[serde(alias = "total_turns")]
    pub turn_count: Number,
    pub mos: Number,
    pub jitter_ms: Number,
    pub packet_loss_rate: Number,
    #[serde(borrow)]
    pub llm_model: Text<'a>,
    #[serde(borrow)]
    pub llm_provider: Text<'a>,
    #[serde(borrow)]
    pub tts_model: Text<'a>,
    #[serde(borrow)]
    pub tts_provider: Text<'a>,
    #[serde(borrow)]
    pub stt_model: Text<'a>,
    #[serde(borrow)]
    pub stt_provider: Text<'a>,

    // Failures: LiveKit's `error` and `close` session events, its retry and process-health lines.
    /// The model error of an `error` or `close` event (`{"type": "tts_error", "label", "recoverable"}`).
    #[serde(borrow)]
    pub error: Object<Box<ModelError<'a>>>,
    /// The model an `error` event came from (`{"model", "provider"}`).
    #[serde(borrow)]
    pub source: Object<ModelMetadata<'a>>,
    /// Why a session closed (`close` events): `error`, `user_initiated`, …
    #[serde(borrow)]
    pub reason: Text<'a>,
    /// The retry's attempt number.
    pub attempt: Number,
    /// A logged exception's traceback (LiveKit's JSON formatter).
    #[serde(borrow)]
    pub exc_info: Text<'a>,
    pub memory_usage_mb: Number,
    pub memory_limit_mb: Number,
    pub memory_warn_mb: Number,
}

/// The model error inside LiveKit's `error` and `close` events (the exception itself is not dumped).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelError<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow)]
    pub label: Text<'a>,
    pub recoverable: Flag,
}

/// `eou{end_of_utterance_delay|delay, transcription_delay, on_user_turn_completed_delay}` of a
/// `voice_metrics` event.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EouBlock {
    pub end_of_utterance_delay: Number,
    pub end_of_utterance_delay_ms: Number,
    pub delay: Number,
    pub delay_ms: Number,
    pub transcription_delay: Number,
    pub transcription_delay_ms: Number,
    pub on_user_turn_completed_delay: Number,
    pub on_user_turn_completed_delay_ms: Number,
}

/// `input_token_details` of a realtime model's metrics.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenDetails {
    pub cached_tokens: Number,
}

/// `llm{…}`, `tts{…}` and `stt{…}` of a `voice_metrics` event: one shape, fields by component.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelBlock<'a> {
    pub ttft: Number,
    pub ttft_ms: Number,
    pub ttfb: Number,
    pub ttfb_ms: Number,
    pub duration: Number,
    pub duration_ms: Number,
    pub audio_duration: Number,
    pub audio_duration_ms: Number,
    pub prompt_tokens: Number,
    pub prompt_cached_tokens: Number,
    pub completion_tokens: Number,
    pub characters_count: Number,
    #[serde(borrow)]
    pub model: Text<'a>,
    #[serde(borrow)]
    pub provider: Text<'a>,
}

/// `metadata{model_name, model_provider}` of LiveKit ≥ 1.x component metrics.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelMetadata<'a> {
    #[serde(borrow, alias = "model")]
    pub model_name: Text<'a>,
    #[serde(borrow, alias = "provider")]
    pub model_provider: Text<'a>,
}

/// The chat message of a `conversation_item_added` event.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChatItem<'a> {
    #[serde(borrow)]
    pub id: Text<'a>,
    #[serde(borrow, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow)]
    pub role: Text<'a>,
    pub interrupted: Flag,
    #[serde(borrow)]
    pub created_at: Stamp<'a>,
    #[serde(borrow)]
    pub metrics: Object<ChatMetrics<'a>>,
}

/// `ChatMessage.metrics` (LiveKit's `MetricsReport`), all in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChatMetrics<'a> {
    /// The speech's VAD start and end, epoch seconds (or ISO text).
    #[serde(borrow)]
    pub started_speaking_at: Stamp<'a>,
    #[serde(borrow)]
    pub stopped_speaking_at: Stamp<'a>,
    pub transcription_delay: Number,
    pub end_of_turn_delay: Number,
    pub on_user_turn_completed_delay: Number,
    pub llm_node_ttft: Number,
    pub tts_node_ttfb: Number,
    pub e2e_latency: Number,
    #[serde(borrow)]
    pub llm_metadata: Object<ModelMetadata<'a>>,
    #[serde(borrow)]
    pub tts_metadata: Object<ModelMetadata<'a>>,
    #[serde(borrow)]
    pub stt_metadata: Object<ModelMetadata<'a>>,
}

impl ChatMetrics<'_> {
    pub fn has_assistant_metrics(&self) -> bool {
        !(self.e2e_latency.is_missing() && self.llm_node_ttft.is_missing() && self.tts_node_ttfb.is_missing())
    }

    pub fn has_user_metrics(&self) -> bool {
        !(self.end_of_turn_delay.is_missing() && self.transcription_delay.is_missing())
    }
}

/// `usage` of a `session_usage_updated` event: running totals per provider and model, or the flat
/// totals of older `UsageSummary` objects.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UsageBlock<'a> {
    #[serde(borrow, alias = "modelUsage")]
    pub model_usage: List<ModelUsageEntry<'a>>,
    pub llm_prompt_tokens: Number,
    pub llm_prompt_cached_tokens: Number,
    pub llm_completion_tokens: Number,
    pub tts_characters_count: Number,
    pub tts_audio_duration: Number,
    pub stt_audio_duration: Number,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelUsageEntry<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow)]
    pub provider: Text<'a>,
    #[serde(borrow)]
    pub model: Text<'a>,
    #[serde(alias = "inputTokens")]
    pub input_tokens: Number,
    #[serde(alias = "inputCachedTokens")]
    pub input_cached_tokens: Number,
    #[serde(alias = "outputTokens")]
    pub output_tokens: Number,
    #[serde(alias = "charactersCount")]
    pub characters_count: Number,
    #[serde(alias = "audioDuration")]
    pub audio_duration: Number,
    #[serde(alias = "sessionDuration")]
    pub session_duration: Number,
}

/// One element of `session_analytics.tool_calls`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ToolCall<'a> {
    #[serde(borrow)]
    pub tool: Text<'a>,
    #[serde(borrow)]
    pub name: Text<'a>,
    pub success: Flag,
    #[serde(borrow)]
    pub status: Text<'a>,
    #[serde(borrow)]
    pub error: Text<'a>,
    pub duration: Number,
    pub duration_ms: Number,
}

/// `session_analytics.metrics_summary`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MetricsSummary<'a> {
    pub llm_tokens: Number,
    pub llm_prompt_tokens: Number,
    pub llm_prompt_cached_tokens: Number,
    pub llm_completion_tokens: Number,
    pub stt_audio_seconds: Number,
    pub tts_audio_seconds: Number,
    pub tts_characters: Number,
    #[serde(borrow)]
    pub llm_model: Text<'a>,
    #[serde(borrow)]
    pub tts_model: Text<'a>,
    #[serde(borrow)]
    pub stt_model: Text<'a>,
}

/// The LiveKit component a metrics object describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    Llm,
    Tts,
    Stt,
    Eou,
    Realtime,
}

/// What a parsed object is, by the contract's markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    VoiceMetrics,
    SessionAnalytics,
    /// An `_event_type`/`event_type` we do not consume.
    UnknownAppEvent,
    /// A LiveKit component metric; `logged` when it came from `log_metrics()` (no `speech_id`).
    Component {
        component: Component,
        logged: bool,
    },
    /// A LiveKit metrics type with nothing per turn (VAD, interruption, avatar…).
    IgnoredMetrics,
    MetricsCollected,
    ConversationItem,
    SessionUsage,
    /// A provider's failure, a fallback switch, a session closed by an error, or a worker's
    /// health warning ([`markers::FAILURE_MESSAGES`], LiveKit's `error` and `close` events).
    Failure,
    /// No marker at the top level.
    Unknown,
}

/// The contract's family markers: the values that say what an object is, by the field that carries
/// them. [`EventObject::family`] reads them, `extract` looks for them in lines that fail to parse,
/// and the subscription filter pattern of `template.yaml` must let each one through (a test checks).
pub mod markers {
    use super::Component;

    /// `_event_type` / `event_type` of the application events.
    pub const APP_EVENTS: [&str; 2] = [VOICE_METRICS, SESSION_ANALYTICS];
    pub const VOICE_METRICS: &str = "voice_metrics";
    pub const SESSION_ANALYTICS: &str = "session_analytics";
    /// `type` of LiveKit's component metrics (`model_dump()`).
    pub const COMPONENT_TYPES: [(&str, Component); 5] = [
        ("llm_metrics", Component::Llm),
        ("tts_metrics", Component::Tts),
        ("stt_metrics", Component::Stt),
        ("eou_metrics", Component::Eou),
        ("realtime_model_metrics", Component::Realtime),
    ];
    /// `type` of the events that wrap metrics or usage.
    pub const METRICS_COLLECTED: &str = "metrics_collected";
    pub const CONVERSATION_ITEM_ADDED: &str = "conversation_item_added";
    pub const SESSION_USAGE_UPDATED: &str = "session_usage_updated";
    pub const WRAPPERS: [&str; 3] = [METRICS_COLLECTED, CONVERSATION_ITEM_ADDED, SESSION_USAGE_UPDATED];
    /// `message` of the lines `metrics.log_metrics()` writes through LiveKit's JSON formatter.
    pub const LOGGED: [(&str, Component); 5] = [
        ("LLM metrics", Component::Llm),
        ("TTS metrics", Component::Tts),
        ("STT metrics", Component::Stt),
        ("EOU metrics", Component::Eou),
        ("RealtimeModel metrics", Component::Realtime),
    ];
    /// `message` of `log_metrics()` lines with nothing per turn.
    pub const LOGGED_IGNORED: [&str; 4] = ["VAD metrics", "Interruption metrics", "Avatar metrics", "Decision metrics"];

    /// The log messages that name an application event when a logging library drops the
    /// `_event_type` key (python-json-logger drops every `extra` key that starts with `_`).
    pub const APP_MESSAGES: [&str; 2] = [VOICE_METRICS, SESSION_ANALYTICS];

    /// `type` of LiveKit's session events about failures: an `error`, and a `close` whose `reason`
    /// is `error`.
    pub const ERROR_EVENT: &str = "error";
    pub const CLOSE_EVENT: &str = "close";
    /// Words every failure line holds (livekit-agents 1.8's `llm.py`, `tts.py`, `stt.py`, the three
    /// `fallback_adapter.py`, `agent_session.py`, `ipc/supervised_proc.py`, and the error types of
    /// its `error` and `close` events): what the subscription filter must let through for
    /// [`crate::failure::Failure`] to read them.
    pub const FAILURE_TERMS: [&str; 14] = [
        "failed to generate LLM completion",
        "failed to synthesize speech",
        "failed to recognize speech",
        "switching to next",
        "are unavailable, retrying",
        "unrecoverable error",
        "FallbackAdapter,",
        "process is unresponsive",
        "memory usage is above",
        "exceeded memory limit",
        "llm_error",
        "tts_error",
        "stt_error",
        "realtime_model_error",
    ];

    /// Every marker of a family voicelake reads: what the subscription filter must let through.
    pub fn read() -> impl Iterator<Item = &'static str> {
        APP_EVENTS.into_iter().chain(COMPONENT_TYPES.iter().map(|(m, _)| *m)).chain(WRAPPERS).chain(LOGGED.iter().map(|(m, _)| *m))
    }
}

impl<'a, M> EventObject<'a, M> {
    pub fn family(&self) -> Family {
        use markers::*;
        if let Some(t) = self.private_event_type.get().or_else(|| self.event_type.get()) {
            return match t {
                VOICE_METRICS => Family::VoiceMetrics,
                SESSION_ANALYTICS => Family::SessionAnalytics,
                _ => Family::UnknownAppEvent,
            };
        }
        if let Some(t) = self.kind.get() {
            if let Some((_, component)) = COMPONENT_TYPES.iter().find(|(m, _)| *m == t) {
                return Family::Component { component: *component, logged: false };
            }
            match t {
                METRICS_COLLECTED => return Family::MetricsCollected,
                CONVERSATION_ITEM_ADDED => return Family::ConversationItem,
                SESSION_USAGE_UPDATED => return Family::SessionUsage,
                ERROR_EVENT if self.error.get().is_some() => return Family::Failure,
                CLOSE_EVENT if self.reason.get() == Some("error") => return Family::Failure,
                t if t.ends_with("_metrics") => return Family::IgnoredMetrics,
                _ => {}
            }
        }
        if let Some(m) = self.log_message() {
            if let Some((_, component)) = LOGGED.iter().find(|(marker, _)| *marker == m) {
                return Family::Component { component: *component, logged: true };
            }
            if LOGGED_IGNORED.contains(&m) {
                return Family::IgnoredMetrics;
            }
            match m {
                VOICE_METRICS => return Family::VoiceMetrics,
                SESSION_ANALYTICS => return Family::SessionAnalytics,
                _ => {}
            }
            if crate::failure::Failure::of_message(m).is_some() {
                return Family::Failure;
            }
        }
        Family::Unknown
    }

    /// The record's log message, under the key its logging library uses: `message` (Python's
    /// logging, LiveKit's JSON formatter, winston), `msg` (pino, bunyan, agents-js), `event`
    /// (structlog).
    pub fn log_message(&self) -> Option<&str> {
        self.message.get().filter(|m| !m.is_empty()).or_else(|| self.msg.get()).or_else(|| self.event.get())
    }

    /// Fills identity and time that a nested event leaves out from the object around it, e.g. a
    /// Python JSON formatter's `timestamp` around `extra={"analytics_data": {…}}`.
    pub fn inherit_from<N>(&mut self, outer: &EventObject<'a, N>) {
        fn fill<'a>(inner: &mut Text<'a>, outer: &Text<'a>) {
            if inner.get().is_none() && outer.get().is_some() {
                *inner = outer.clone();
            }
        }
        fn fill_time<'a>(inner: &mut Stamp<'a>, outer: &Stamp<'a>) {
            if matches!(inner, Stamp::Missing) {
                *inner = outer.clone();
            }
        }
        fill(&mut self.private_session_id, &outer.private_session_id);
        fill(&mut self.session_id, &outer.session_id);
        fill(&mut self.room_name, &outer.room_name);
        fill(&mut self.room, &outer.room);
        fill(&mut self.room_id, &outer.room_id);
        fill(&mut self.job_id, &outer.job_id);
        fill(&mut self.agent_name, &outer.agent_name);
        fill(&mut self.agent, &outer.agent);
        fill(&mut self.agent_version, &outer.agent_version);
        fill(&mut self.tenant_id, &outer.tenant_id);
        fill_time(&mut self.private_timestamp, &outer.private_timestamp);
        fill_time(&mut self.timestamp, &outer.timestamp);
        fill_time(&mut self.created_at, &outer.created_at);
        fill_time(&mut self.time, &outer.time);
        fill_time(&mut self.asctime, &outer.asctime);
    }
}
