//! CloudWatch metric datums of a batch, as the pure input of `PutMetricData`.
//!
//! Latencies are published as `Values`/`Counts` rounded to 1 ms, so that CloudWatch keeps the
//! distribution and p95/p99 work, and merged per metric, dimension set and minute of event time.
//! Limits (150 values per datum, 1000 datums and 1 MB per request) are enforced here, by tested
//! functions, so the sink only sends.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::batch::BatchOutput;
use crate::config::Config;
use crate::rows::{ErrorRow, SessionRecordType, SessionRow, SourceFormat, TurnRow};

pub const DEFAULT_NAMESPACE: &str = "VoiceLake";
pub const MAX_VALUES_PER_DATUM: usize = 150;
pub const MAX_DATUMS_PER_REQUEST: usize = 1000;
pub const MAX_REQUEST_BYTES: usize = 1_000_000;
/// CloudWatch refuses datums older than two weeks or more than two hours ahead; a margin keeps a
/// slow retry from turning a valid datum into a refused request.
const MAX_AGE_MS: i64 = 14 * 24 * 3_600_000 - 3_600_000;
const MAX_AHEAD_MS: i64 = 2 * 3_600_000 - 600_000;

/// CloudWatch's `StandardUnit` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Unit {
    Milliseconds,
    Seconds,
    Count,
    Percent,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Count => "Count",
            Unit::Percent => "Percent",
            Unit::None => "None",
        }
    }
}

/// Dimension names. Low cardinality only: never a session or speech id.
pub mod dim {
    pub const ENVIRONMENT: &str = "Environment";
    pub const AGENT: &str = "Agent";
    pub const MODEL: &str = "Model";
    pub const TENANT: &str = "Tenant";
    /// The provider of a failure (`elevenlabs`), with [`KIND`].
    pub const PROVIDER: &str = "Provider";
    /// `llm`, `stt`, `tts`, `realtime`.
    pub const KIND: &str = "Kind";
}

/// A dimension value as CloudWatch takes it: 1 to 1024 characters of printable ASCII (one value
/// outside that fails the whole `PutMetricData` request). Kept well below the limit to stay readable.
pub const MAX_DIMENSION_VALUE: usize = 250;

/// The dimension value of a label: the label itself when CloudWatch takes it; otherwise its
/// printable ASCII characters (others replaced by `_`, cut to fit) and `~` with 8 hex digits of the
/// label's SHA-256, so that two labels that differ only where characters were replaced stay two
/// dimension values. An empty label is `unknown`.
pub fn dimension_value(label: &str) -> Cow<'_, str> {
    let printable = |c: char| c.is_ascii() && (' '..='~').contains(&c);
    if label.is_empty() || label.trim().is_empty() {
        return Cow::Borrowed("unknown");
    }
    if label.len() <= MAX_DIMENSION_VALUE && label.chars().all(printable) {
        return Cow::Borrowed(label);
    }
    let mut kept: String = label.chars().map(|c| if printable(c) { c } else { '_' }).take(MAX_DIMENSION_VALUE - 9).collect();
    let digest = Sha256::digest(label.as_bytes());
    kept.push('~');
    kept.extend(digest.iter().take(4).map(|b| format!("{b:02x}")));
    Cow::Owned(kept)
}

/// The value published for a label that is not in its [`LabelSet`].
pub const OTHER: &str = "other";

/// Which values of a label get a dimension of their own. Every distinct name × dimension set is a
/// custom metric billed by the month, so the deployed function publishes a declared set and folds
/// every other value into [`OTHER`]; the lake keeps the real names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LabelSet {
    /// Every value (the local replay: nothing is billed).
    #[default]
    Any,
    Only(BTreeSet<String>),
}

impl LabelSet {
    /// `*` is every value; otherwise the comma-separated values (none: everything is `other`).
    pub fn parse(list: &str) -> LabelSet {
        if list.trim() == "*" {
            return LabelSet::Any;
        }
        LabelSet::Only(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }

    /// The value a label is published as.
    pub fn admit<'a>(&self, label: &'a str) -> &'a str {
        match self {
            LabelSet::Any => label,
            LabelSet::Only(names) if names.contains(label) => label,
            LabelSet::Only(_) => OTHER,
        }
    }

    /// How many distinct values can be published: `None` when unbounded.
    pub fn bound(&self) -> Option<usize> {
        match self {
            LabelSet::Any => None,
            LabelSet::Only(names) => Some(names.len() + 1),
        }
    }
}

/// The label sets of the labelled dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricLabels {
    pub agents: LabelSet,
    pub tenants: LabelSet,
    pub models: LabelSet,
    /// The providers of `ProviderFailures`' `{Environment, Provider, Kind}`.
    pub providers: LabelSet,
}

/// The providers LiveKit Agents 1.8 has plugins for (`livekit.plugins.<name>`), and the names
/// voicelake gives a FallbackAdapter's own failures and every provider failing: the providers the
/// deployed function publishes by name unless told otherwise (`MetricProviderNames`). A label any
/// line can make up is `other`, so that no log line adds a billed metric.
pub const KNOWN_PROVIDERS: [&str; 34] = [
    "anthropic",
    "assemblyai",
    "aws",
    "azure",
    "baseten",
    "bey",
    "bithuman",
    "cartesia",
    "clova",
    "deepgram",
    "elevenlabs",
    "fal",
    "fallback_adapter",
    "gladia",
    "google",
    "groq",
    "hume",
    "inworld",
    "langchain",
    "lmnt",
    "minimax",
    "mistralai",
    "neuphonic",
    "nvidia",
    "openai",
    "resemble",
    "rime",
    "sarvam",
    "simli",
    "smallestai",
    "soniox",
    "speechify",
    "speechmatics",
    "all",
];

/// How a metric aggregates within a batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Kind {
    /// Every observation is kept as a value, rounded to `resolution`: percentiles work.
    Distribution { resolution: f64 },
    /// Observations are summed per minute and published as one value.
    Counter,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricSpec {
    /// Position in [`metric::ALL`].
    pub index: usize,
    pub name: &'static str,
    pub unit: Unit,
    pub kind: Kind,
    pub description: &'static str,
}

const MS: Kind = Kind::Distribution { resolution: 1.0 };

macro_rules! metrics {
    ($($index:literal $id:ident = $name:literal, $unit:ident, $kind:expr, $doc:literal;)*) => {
        $(#[doc = $doc] pub const $id: MetricSpec = MetricSpec { index: $index, name: $name, unit: Unit::$unit, kind: $kind, description: $doc };)*
        /// Every metric the pipeline publishes, in README order.
        pub const ALL: &[MetricSpec] = &[$($id),*];
    };
}

/// The published metrics.
pub mod metric {
    use super::*;
    metrics! {
        0 TURN_LATENCY = "TurnLatency", Milliseconds, MS, "End of user speech to first agent audio, per complete turn.";
        1 EOU_DELAY = "EndOfUtteranceDelay", Milliseconds, MS, "End-of-utterance detection delay, per turn or EOU metric.";
        2 TRANSCRIPTION_DELAY = "TranscriptionDelay", Milliseconds, MS, "Final transcript after end of speech (inside the EOU delay).";
        3 LLM_TTFT = "LLMTimeToFirstToken", Milliseconds, MS, "LLM time to first token, per turn or LLM metric.";
        4 TTS_TTFB = "TTSTimeToFirstByte", Milliseconds, MS, "TTS time to first byte, per turn or TTS metric.";
        5 TURNS = "Turns", Count, Kind::Counter, "Complete turns.";
        6 TURNS_OVER_TARGET = "TurnsOverTarget", Count, Kind::Counter, "Complete turns above the latency target.";
        7 SESSIONS = "Sessions", Count, Kind::Counter, "Calls ended (session_analytics events).";
        8 CALL_DURATION = "CallDuration", Seconds, Kind::Distribution { resolution: 1.0 }, "Call duration.";
        9 CALL_COST = "CallCost", None, Kind::Distribution { resolution: 0.0001 }, "Estimated cost per call, US dollars.";
        10 TOOL_CALLS = "ToolCalls", Count, Kind::Counter, "Tool calls made in calls that ended.";
        11 TOOL_CALL_FAILURES = "ToolCallFailures", Count, Kind::Counter, "Tool calls that failed.";
        12 CALL_SETUP_FAILURES = "CallSetupFailures", Count, Kind::Counter, "Calls whose setup failed.";
        13 CALL_MOS = "CallMOS", None, Kind::Distribution { resolution: 0.01 }, "Mean opinion score reported for the call.";
        14 CALL_JITTER = "CallJitter", Milliseconds, MS, "Jitter reported for the call.";
        15 CALL_PACKET_LOSS = "CallPacketLoss", Percent, Kind::Distribution { resolution: 0.01 }, "Packet loss reported for the call.";
        16 LLM_PROMPT_TOKENS = "LLMPromptTokens", Count, Kind::Counter, "LLM input tokens of calls that ended.";
        17 LLM_COMPLETION_TOKENS = "LLMCompletionTokens", Count, Kind::Counter, "LLM output tokens of calls that ended.";
        18 TTS_CHARACTERS = "TTSCharacters", Count, Kind::Counter, "Characters synthesized in calls that ended.";
        19 STT_AUDIO_SECONDS = "STTAudioSeconds", Seconds, Kind::Counter, "Audio transcribed in calls that ended.";
        20 EVENTS_IN = "EventsIn", Count, Kind::Counter, "Log events received (pipeline health).";
        21 EVENTS_SKIPPED = "EventsSkipped", Count, Kind::Counter, "Log events that are not agent events.";
        22 EVENTS_REJECTED = "EventsRejected", Count, Kind::Counter, "Agent events that could not be used; see the rejects table.";
        23 VALUES_NULLED = "ValuesNulled", Count, Kind::Counter, "Sentinel, negative, non-finite or mistyped values stored as null.";
        24 INGEST_LAG = "IngestLag", Milliseconds, MS, "Log event time to processing time.";
        25 DATUMS_OUT_OF_WINDOW = "EventsOutsideMetricWindow", Count, Kind::Counter, "Events too old or too far ahead for CloudWatch; still in the lake.";
        26 SEND_FAILURES = "SendFailures", Count, Kind::Counter, "Records or datums that could not be sent after retries (published by the function).";
        27 DATUMS_REFUSED = "MetricDatumsRefused", Count, Kind::Counter, "Metric datums CloudWatch refused as invalid; the rest of their request was sent (published by the function).";
        28 HOOK_DELAY = "OnUserTurnCompletedDelay", Milliseconds, MS, "The agent's on_user_turn_completed hook (where retrieval usually runs), per turn or EOU metric that reports it.";
        29 TURNS_INTERRUPTED = "TurnsInterrupted", Percent, Kind::Distribution { resolution: 100.0 }, "100 for a complete turn whose reply was interrupted (the user spoke over it, or its speech failed), 0 for one that was not: the Average is the share of interrupted turns.";
        30 TOOL_CALL_OUTCOMES = "ToolCallOutcomes", Count, Kind::Counter, "Tool calls whose outcome was reported: the denominator of the tool success rate.";
        31 PROVIDER_FAILURES = "ProviderFailures", Count, Kind::Counter, "Provider failures LiveKit logged: retries, fallback switches, every provider of a fallback failing, sessions closed by an unrecoverable error.";
        32 FALLBACK_ACTIVATIONS = "FallbackActivations", Count, Kind::Counter, "FallbackAdapter switches from a failing provider to the next.";
        33 SESSIONS_CLOSED_BY_ERROR = "SessionsClosedByError", Count, Kind::Counter, "Sessions LiveKit closed on an unrecoverable error.";
        34 WORKER_MEMORY = "WorkerMemoryUsed", Percent, Kind::Distribution { resolution: 0.1 }, "A job process's memory as a share of its limit (of its warning threshold when it has none), when LiveKit's worker warns about it or kills it.";
    }
}

/// Which dimension sets each metric is published with.
pub fn dimension_sets(spec: &MetricSpec, config: &Config) -> Vec<Vec<&'static str>> {
    use dim::*;
    let health = [
        metric::EVENTS_IN,
        metric::EVENTS_SKIPPED,
        metric::EVENTS_REJECTED,
        metric::VALUES_NULLED,
        metric::INGEST_LAG,
        metric::DATUMS_OUT_OF_WINDOW,
        metric::SEND_FAILURES,
        metric::DATUMS_REFUSED,
    ];
    if health.iter().any(|h| h.name == spec.name) {
        return vec![vec![ENVIRONMENT]];
    }
    let mut sets = vec![vec![ENVIRONMENT], vec![ENVIRONMENT, AGENT]];
    if config.model_dimension && (spec.name == metric::LLM_TTFT.name || spec.name == metric::TTS_TTFB.name) {
        sets.push(vec![ENVIRONMENT, MODEL]);
    }
    if config.tenant_dimension && spec.name == metric::TURN_LATENCY.name {
        sets.push(vec![ENVIRONMENT, TENANT]);
    }
    if spec.name == metric::PROVIDER_FAILURES.name {
        sets.push(vec![ENVIRONMENT, PROVIDER, KIND]);
    }
    sets
}

/// One `MetricDatum`. `values[i]` was observed `counts[i]` times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Datum {
    pub metric_name: &'static str,
    pub unit: Unit,
    pub dimensions: Vec<(&'static str, String)>,
    /// Start of the minute, epoch milliseconds.
    pub timestamp_ms: i64,
    pub values: Vec<f64>,
    pub counts: Vec<f64>,
}

impl Datum {
    pub fn sample_count(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// An upper bound of the datum's size in any PutMetricData encoding (the query protocol's
    /// `MetricData.member.N.Values.member.M=…&` pairs are the largest).
    pub fn estimated_bytes(&self) -> usize {
        let dims: usize = self.dimensions.iter().map(|(n, v)| 96 + n.len() + v.len()).sum();
        200 + self.metric_name.len() + dims + self.values.len() * 2 * 64
    }
}

/// Dimension sets, interned: a batch has a few distinct agents and many observations, so each set
/// is built once and then found by a lookup that allocates nothing.
#[derive(Debug)]
struct Dimensions {
    sets: Vec<Vec<(&'static str, String)>>,
    environment: u32,
    by_label: [HashMap<String, u32>; 3],
}

#[derive(Debug, Clone, Copy)]
enum LabelKind {
    Agent = 0,
    Tenant = 1,
    Model = 2,
}

impl Dimensions {
    fn new(environment: &str) -> Self {
        let environment = dimension_value(environment).into_owned();
        Dimensions { sets: vec![vec![(dim::ENVIRONMENT, environment)]], environment: 0, by_label: Default::default() }
    }

    /// `{Environment, <kind>}` for a label value, admitted by `labels` and made a valid dimension value.
    fn with(&mut self, labels: &MetricLabels, kind: LabelKind, label: &str) -> u32 {
        if let Some(&id) = self.by_label[kind as usize].get(label) {
            return id;
        }
        let set = match kind {
            LabelKind::Agent => &labels.agents,
            LabelKind::Tenant => &labels.tenants,
            LabelKind::Model => &labels.models,
        };
        let value = dimension_value(set.admit(label)).into_owned();
        let name = match kind {
            LabelKind::Agent => dim::AGENT,
            LabelKind::Tenant => dim::TENANT,
            LabelKind::Model => dim::MODEL,
        };
        // Labels folded into one value share its set.
        let id = self.intern(&[(name, value)]);
        self.by_label[kind as usize].insert(label.to_owned(), id);
        id
    }

    /// The id of `{Environment}` with `extra` added, the set made once.
    fn intern(&mut self, extra: &[(&'static str, String)]) -> u32 {
        let mut set = self.sets[self.environment as usize].clone();
        set.extend_from_slice(extra);
        match self.sets.iter().position(|s| *s == set) {
            Some(existing) => existing as u32,
            None => {
                self.sets.push(set);
                (self.sets.len() - 1) as u32
            }
        }
    }

    /// `{Environment, Provider, Kind}`, the provider admitted by its label set (kinds are a fixed few).
    fn provider(&mut self, labels: &MetricLabels, provider: &str, kind: &str) -> u32 {
        let provider = dimension_value(labels.providers.admit(provider)).into_owned();
        self.intern(&[(dim::PROVIDER, provider), (dim::KIND, dimension_value(kind).into_owned())])
    }
}

/// The observations one turn row makes, in the metric's own unit: what the aggregator publishes
/// and what the local report and its charts compute from, so that both count the same things.
pub fn turn_observations(row: &TurnRow, mut observe: impl FnMut(MetricSpec, f64)) {
    let components = [
        (metric::EOU_DELAY, row.eou_delay_ms),
        (metric::TRANSCRIPTION_DELAY, row.transcription_delay_ms),
        (metric::HOOK_DELAY, row.on_user_turn_completed_delay_ms),
        (metric::LLM_TTFT, row.llm_ttft_ms),
        (metric::TTS_TTFB, row.tts_ttfb_ms),
    ];
    for (spec, value) in components {
        if let Some(v) = value {
            observe(spec, v);
        }
    }
    if let Some(latency) = row.total_latency_ms {
        observe(metric::TURN_LATENCY, latency);
        observe(metric::TURNS, 1.0);
        observe(metric::TURNS_OVER_TARGET, if row.over_target == Some(true) { 1.0 } else { 0.0 });
        observe(metric::TURNS_INTERRUPTED, if row.interrupted == Some(true) { 100.0 } else { 0.0 });
    }
}

/// The observations of one ended call (a `session_analytics` row; usage rows make none).
pub fn call_observations(s: &SessionRow, mut observe: impl FnMut(MetricSpec, f64)) {
    if s.record_type != SessionRecordType::Analytics {
        return;
    }
    observe(metric::SESSIONS, 1.0);
    observe(metric::TOOL_CALLS, s.tool_call_count as f64);
    observe(metric::TOOL_CALL_FAILURES, s.tool_failure_count as f64);
    observe(metric::TOOL_CALL_OUTCOMES, s.tool_outcome_count as f64);
    observe(metric::CALL_SETUP_FAILURES, if s.call_setup_failed == Some(true) { 1.0 } else { 0.0 });
    let optional = [
        (metric::CALL_DURATION, s.duration_seconds),
        (metric::CALL_COST, s.estimated_cost_usd),
        (metric::CALL_MOS, s.mos),
        (metric::CALL_JITTER, s.jitter_ms),
        (metric::CALL_PACKET_LOSS, s.packet_loss_rate.map(|r| r * 100.0)),
        (metric::LLM_PROMPT_TOKENS, s.llm_prompt_tokens.map(|n| n as f64)),
        (metric::LLM_COMPLETION_TOKENS, s.llm_completion_tokens.map(|n| n as f64)),
        (metric::TTS_CHARACTERS, s.tts_characters.map(|n| n as f64)),
        (metric::STT_AUDIO_SECONDS, s.stt_audio_seconds),
    ];
    for (spec, value) in optional {
        if let Some(v) = value {
            observe(spec, v);
        }
    }
}

/// The observations one `errors` row makes. A session's `close` event restates the close line
/// LiveKit logs, and its `error` events the retries: only the lines are counted.
pub fn failure_observations(row: &ErrorRow, mut observe: impl FnMut(MetricSpec, f64)) {
    let from_line = row.source_format == SourceFormat::LivekitFailureLog;
    let action = row.action.as_str();
    if from_line && crate::failure::Action::is_failure_str(action) {
        observe(metric::PROVIDER_FAILURES, 1.0);
    }
    if action == crate::failure::Action::Fallback.as_str() {
        observe(metric::FALLBACK_ACTIVATIONS, 1.0);
    }
    if from_line && action == crate::failure::Action::Closed.as_str() {
        observe(metric::SESSIONS_CLOSED_BY_ERROR, 1.0);
    }
    if let Some(percent) = row.memory_used_percent {
        observe(metric::WORKER_MEMORY, percent);
    }
}

/// (index in [`metric::ALL`], interned dimensions, start of minute)
type Key = (usize, u32, i64);

/// Accumulates observations of a batch into datums.
#[derive(Debug)]
pub struct Aggregator<'c> {
    config: &'c Config,
    now_ms: i64,
    dims: Dimensions,
    distributions: HashMap<Key, Vec<i64>>,
    counters: HashMap<Key, f64>,
    pub out_of_window: u64,
}

/// The start of the minute holding `ms`: CloudWatch's finest storage resolution here.
pub fn minute(ms: i64) -> i64 {
    ms.div_euclid(60_000) * 60_000
}

impl<'c> Aggregator<'c> {
    pub fn new(config: &'c Config, now_ms: i64) -> Self {
        Aggregator {
            config,
            now_ms,
            dims: Dimensions::new(&config.environment),
            distributions: HashMap::new(),
            counters: HashMap::new(),
            out_of_window: 0,
        }
    }

    fn in_window(&self, time_ms: i64) -> bool {
        time_ms >= self.now_ms - MAX_AGE_MS && time_ms <= self.now_ms + MAX_AHEAD_MS
    }

    /// Records `value` for `spec` under the dimension sets `dims`. Non-finite and negative values
    /// never reach CloudWatch: one negative value disables percentiles for the metric.
    fn record(&mut self, spec: MetricSpec, dims: &[u32], time_ms: i64, value: f64) {
        if !value.is_finite() || value < 0.0 {
            debug_assert!(false, "normalization lets no negative or non-finite value through: {} = {value}", spec.name);
            return;
        }
        for &d in dims {
            let key = (spec.index, d, minute(time_ms));
            match spec.kind {
                Kind::Distribution { resolution } => self.distributions.entry(key).or_default().push((value / resolution).round() as i64),
                Kind::Counter => *self.counters.entry(key).or_default() += value,
            }
        }
    }

    /// `{Environment}` and `{Environment, Agent}`: the sets of every agent-level metric.
    fn agent_dims(&mut self, agent: &str) -> [u32; 2] {
        [self.dims.environment, self.dims.with(&self.config.metric_labels, LabelKind::Agent, agent)]
    }

    fn model_dims(&mut self, base: [u32; 2], provider: &Option<String>, model: &Option<String>) -> Vec<u32> {
        let mut dims = base.to_vec();
        if self.config.model_dimension
            && let Some(label) = model_label(provider.as_deref(), model.as_deref())
        {
            dims.push(self.dims.with(&self.config.metric_labels, LabelKind::Model, &label));
        }
        dims
    }

    fn turn(&mut self, row: &TurnRow) {
        let t = row.event_time;
        let common = self.agent_dims(&row.agent_name);
        turn_observations(row, |spec, value| {
            let dims = match spec.index {
                i if i == metric::LLM_TTFT.index => self.model_dims(common, &row.llm_provider, &row.llm_model),
                i if i == metric::TTS_TTFB.index => self.model_dims(common, &row.tts_provider, &row.tts_model),
                i if i == metric::TURN_LATENCY.index => {
                    let mut dims = common.to_vec();
                    if let (true, Some(tenant)) = (self.config.tenant_dimension, row.tenant_id.as_deref()) {
                        dims.push(self.dims.with(&self.config.metric_labels, LabelKind::Tenant, tenant));
                    }
                    dims
                }
                _ => common.to_vec(),
            };
            self.record(spec, &dims, t, value);
        });
    }

    /// Adds the turns and ended calls of a batch, and the pipeline's health.
    pub fn add_batch(&mut self, out: &BatchOutput) {
        for row in &out.turns {
            if self.in_window(row.event_time) {
                self.turn(row);
            } else {
                self.out_of_window += 1;
            }
        }
        for s in out.sessions.iter().filter(|s| s.record_type == SessionRecordType::Analytics) {
            if !self.in_window(s.event_time) {
                self.out_of_window += 1;
                continue;
            }
            let dims = self.agent_dims(&s.agent_name);
            call_observations(s, |spec, value| self.record(spec, &dims, s.event_time, value));
        }
        for e in &out.errors {
            if !self.in_window(e.event_time) {
                self.out_of_window += 1;
                continue;
            }
            let dims = self.agent_dims(&e.agent_name);
            let by_provider = self.dims.provider(&self.config.metric_labels, &e.provider, &e.kind);
            failure_observations(e, |spec, value| {
                let mut sets = dims.to_vec();
                if spec.index == metric::PROVIDER_FAILURES.index {
                    sets.push(by_provider);
                }
                self.record(spec, &sets, e.event_time, value)
            });
        }
        let stats = &out.stats;
        if stats.control_message {
            return;
        }
        let health = [self.dims.environment];
        let now = self.now_ms;
        self.record(metric::EVENTS_IN, &health, now, stats.events_in as f64);
        self.record(metric::EVENTS_SKIPPED, &health, now, stats.skipped_total() as f64);
        self.record(metric::EVENTS_REJECTED, &health, now, stats.rejected_total() as f64);
        self.record(metric::VALUES_NULLED, &health, now, stats.nulled_values as f64);
        // CloudWatch Logs refuses events older than 14 days, so a longer lag is a damaged timestamp
        // (an i64::MIN one overflowed here) and would swamp the metric.
        const MAX_LAG_MS: i64 = 14 * 24 * 3_600_000;
        for &ts in &out.event_timestamps {
            if let Some(lag) = now.checked_sub(ts).filter(|lag| *lag <= MAX_LAG_MS) {
                self.record(metric::INGEST_LAG, &health, now, lag.max(0) as f64);
            }
        }
    }

    /// The datums, each within [`MAX_VALUES_PER_DATUM`] values, ordered by metric, dimensions and time.
    pub fn finish(mut self) -> Vec<Datum> {
        if self.out_of_window > 0 {
            let n = self.out_of_window as f64;
            let environment = [self.dims.environment];
            self.record(metric::DATUMS_OUT_OF_WINDOW, &environment, self.now_ms, n);
        }
        let sets = &self.dims.sets;
        let order = |k: &Key| (metric::ALL[k.0].name, &sets[k.1 as usize], k.2);
        let mut distributions: Vec<(Key, Vec<i64>)> = self.distributions.into_iter().collect();
        distributions.sort_by(|a, b| order(&a.0).cmp(&order(&b.0)));
        let mut counters: Vec<(Key, f64)> = self.counters.into_iter().collect();
        counters.sort_by(|a, b| order(&a.0).cmp(&order(&b.0)));
        let mut datums = Vec::new();
        for ((index, dims, timestamp_ms), mut quantized) in distributions {
            let spec = metric::ALL[index];
            let Kind::Distribution { resolution } = spec.kind else { unreachable!("counters are kept apart") };
            quantized.sort_unstable();
            let mut pairs: Vec<(f64, f64)> = Vec::new();
            for q in quantized {
                match pairs.last_mut() {
                    Some(last) if last.0 == q as f64 => last.1 += 1.0,
                    _ => pairs.push((q as f64, 1.0)),
                }
            }
            for chunk in pairs.chunks(MAX_VALUES_PER_DATUM) {
                datums.push(Datum {
                    metric_name: spec.name,
                    unit: spec.unit,
                    dimensions: sets[dims as usize].clone(),
                    timestamp_ms,
                    values: chunk.iter().map(|p| round_to(p.0 * resolution, resolution)).collect(),
                    counts: chunk.iter().map(|p| p.1).collect(),
                });
            }
        }
        for ((index, dims, timestamp_ms), sum) in counters {
            let spec = metric::ALL[index];
            datums.push(Datum {
                metric_name: spec.name,
                unit: spec.unit,
                dimensions: sets[dims as usize].clone(),
                timestamp_ms,
                values: vec![sum],
                counts: vec![1.0],
            });
        }
        datums
    }
}

/// `q × resolution` carries float noise (`0.1 × 3 = 0.30000000000000004`); trim it so the values
/// are the short decimals a reader expects.
fn round_to(value: f64, resolution: f64) -> f64 {
    if resolution >= 1.0 {
        value.round()
    } else {
        let digits = (-resolution.log10()).ceil() as i32;
        let scale = 10f64.powi(digits);
        (value * scale).round() / scale
    }
}

fn model_label(provider: Option<&str>, model: Option<&str>) -> Option<String> {
    match (provider, model) {
        (Some(p), Some(m)) => Some(format!("{p}/{m}")),
        (None, Some(m)) => Some(m.to_owned()),
        _ => None,
    }
}

/// The datums of one batch.
pub fn datums_for(out: &BatchOutput, config: &Config, now_ms: i64) -> Vec<Datum> {
    let mut agg = Aggregator::new(config, now_ms);
    agg.add_batch(out);
    agg.finish()
}

/// Splits datums into `PutMetricData` requests within the datum count and byte limits.
pub fn split_requests(datums: Vec<Datum>) -> Vec<Vec<Datum>> {
    // Leave room for the request's own envelope (namespace, action, version, headers).
    const BUDGET: usize = MAX_REQUEST_BYTES - 16 * 1024;
    let mut requests = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for d in datums {
        let size = d.estimated_bytes();
        if !current.is_empty() && (current.len() == MAX_DATUMS_PER_REQUEST || bytes + size > BUDGET) {
            requests.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(d);
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}
