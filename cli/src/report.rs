//! The local latency report: what `voicelake replay` prints.
//!
//! Percentiles are nearest-rank over the exact values (the smallest value with at least p% of the
//! values at or below it). CloudWatch estimates percentiles from the same values, so the two agree
//! closely but not always to the millisecond.
//!
//! The builder's state is in [`Spill`] stores, on disk past [`Limits::chunk_bytes`] each, and every
//! figure is computed by scans of them that hold at most [`Limits`] in memory: a replay of any size
//! gets the same report in the same bounded memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use voicelake_shared::alarms::{AlarmSpec, Statistic};
use voicelake_shared::config::Config;
use voicelake_shared::diagnosis::{
    self, AgentSnapshot, COMPONENTS, Call, Diagnosis, Evidence, FailureFact, ProviderFailures, RejectReason, Snapshot, ToolFailures, Window,
};
use voicelake_shared::failure::Action;
use voicelake_shared::metrics::{self, MetricSpec, m};
use voicelake_shared::rows::{LatencySource, SessionRecordType};
use voicelake_shared::shown::one_line;
use voicelake_shared::timefmt;
use voicelake_shared::views::{self, Axis, Chart, Series, Stat};
use voicelake_shared::{BatchOutput, BatchStats, Counts};

use crate::spill::{Record, Spill, at_ranks, codec, nearest_rank};

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[(nearest_rank(p, sorted.len() as u64) - 1) as usize])
}

/// The latency table a load test reports, of one set of values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    /// Population standard deviation.
    pub std_dev: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Summary {
    pub fn of(mut values: Vec<f64>) -> Summary {
        values.sort_by(f64::total_cmp);
        let mut moments = Moments::default();
        values.iter().for_each(|v| moments.add(*v));
        Summary {
            count: values.len() as u64,
            mean: moments.mean(),
            min: values.first().copied(),
            std_dev: moments.std_dev(),
            p50: percentile(&values, 50.0),
            p95: percentile(&values, 95.0),
            p99: percentile(&values, 99.0),
            max: values.last().copied(),
        }
    }
}

/// Mean and variance in one pass (Welford's update), which stays exact to rounding where summing
/// squares of large latencies would cancel.
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn add(&mut self, v: f64) {
        self.n += 1;
        let delta = v - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (v - self.mean);
    }

    fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    fn std_dev(&self) -> Option<f64> {
        (self.n > 0).then(|| (self.m2 / self.n as f64).sqrt())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetCompliance {
    pub target_ms: f64,
    pub within_target: u64,
    pub over_target: u64,
    /// Share of complete turns at or under the target, in percent.
    pub compliance_pct: Option<f64>,
    /// Calls (sessions) with complete turns, and those whose turns all were within the target.
    pub calls: u64,
    pub calls_within_target: u64,
    /// Share of calls whose turns all met the target, in percent: a caller judges the call.
    pub calls_compliance_pct: Option<f64>,
}

/// Complete turns whose reply was cut off.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InterruptedSummary {
    pub turns: u64,
    /// Share of complete turns, in percent.
    pub pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentSummary {
    pub agent: String,
    pub turns: u64,
    pub latency_ms: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionLatency {
    pub session_id: String,
    pub agent: String,
    pub turns: u64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// The component with the largest mean share of this session's turn latency.
    pub dominant_component: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostSummary {
    pub calls: u64,
    pub total_usd: f64,
    pub per_call_usd: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSummary {
    pub calls: u64,
    /// Calls whose outcome was reported: the success rate is over these.
    pub with_outcome: u64,
    pub failures: u64,
    pub success_pct: Option<f64>,
    /// Failures by tool name, most first.
    pub failures_by_tool: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmOutcome {
    pub alarm: &'static str,
    pub metric: &'static str,
    pub threshold: f64,
    pub would_fire: bool,
    pub periods_evaluated: u64,
    pub periods_breaching: u64,
    /// The worst period's value and start time.
    pub worst_value: Option<f64>,
    pub worst_period: Option<String>,
    /// For latency alarms, the component p95s of the worst period: which component did it.
    pub detail: Option<String>,
    /// Where the alarm would fire: what its worst period means, from the same code a deployed
    /// notification uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The batches' own counts: `events`, `turns`, `partial_turns`, `sessions`, `rejected`,
    /// `skipped`, `nulled_values`; `sessions` counts calls (distinct session ids of turns and
    /// session rows), not session rows, of which a call has one per usage update too.
    #[serde(flatten, serialize_with = "report_counts")]
    pub counts: Counts,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub skipped_by_reason: BTreeMap<String, u64>,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    pub latency_ms: Summary,
    pub latency_reported: u64,
    pub latency_computed: u64,
    /// Of the computed, turns with a tool round (several LLM calls).
    pub latency_tool_rounds: u64,
    /// `eou_delay`, `transcription_delay`, `llm_ttft`, `tts_ttfb`, over every turn and component row.
    pub components_ms: BTreeMap<&'static str, Summary>,
    pub target: TargetCompliance,
    pub interrupted: InterruptedSummary,
    pub agents: Vec<AgentSummary>,
    pub slowest_sessions: Vec<SessionLatency>,
    pub cost: CostSummary,
    pub tools: ToolSummary,
    pub errors: ErrorsSummary,
    pub alarms: Vec<AlarmOutcome>,
    /// What the input needed: bytes replaced, lines joined, and where the first rejects are.
    pub input: InputSummary,
}

/// Provider failures: every retry, fallback switch, all-providers failure and unrecoverable close
/// LiveKit logged is one event (the `error` and `close` session events restate them and are not).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErrorsSummary {
    pub events: u64,
    /// Sessions a close line or a `close` event (`reason: error`) says LiveKit closed on an error.
    pub sessions_closed_by_error: u64,
    /// Most events first.
    pub by_provider: Vec<ProviderEvents>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderEvents {
    pub kind: String,
    pub provider: String,
    pub events: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InputSummary {
    /// Bytes that were not UTF-8 (or were NUL) and were replaced with U+FFFD.
    pub replaced_bytes: u64,
    /// Lines a container runtime cut into several log events, joined again.
    pub joined_lines: u64,
    /// The first rejects, with where each came from (a file and line, or a log event id).
    pub first_rejects: Vec<RejectPlace>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectPlace {
    #[serde(rename = "where")]
    pub place: String,
    pub reason: String,
    pub detail: String,
}

/// Rejects the report names one by one; the lake's `rejects` table has them all.
const NAMED_REJECTS: usize = 5;

/// One complete turn, compact. The session is a 128-bit hash of its id ([`session_key`]); the
/// agent an index into the builder's agents; missing components are NaN.
#[derive(Debug, Clone, Copy)]
struct TurnPoint {
    time: i64,
    /// [`session_key`] of the turn's session, or [`NO_SESSION`].
    session: u128,
    /// Into [`ReportBuilder::agents`].
    agent: u32,
    latency: f64,
    eou: f64,
    hook: f64,
    ttft: f64,
    ttfb: f64,
    over_target: bool,
}

const NO_SESSION: u128 = 0;

impl TurnPoint {
    fn eou(&self) -> Option<f64> {
        (!self.eou.is_nan()).then_some(self.eou)
    }
    fn hook(&self) -> Option<f64> {
        (!self.hook.is_nan()).then_some(self.hook)
    }
    fn ttft(&self) -> Option<f64> {
        (!self.ttft.is_nan()).then_some(self.ttft)
    }
    fn ttfb(&self) -> Option<f64> {
        (!self.ttfb.is_nan()).then_some(self.ttfb)
    }
}

impl Record for TurnPoint {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.time);
        codec::put_u128(out, self.session);
        codec::put_u32(out, self.agent);
        for v in [self.latency, self.eou, self.hook, self.ttft, self.ttfb] {
            codec::put_f64(out, v);
        }
        codec::put_u8(out, u8::from(self.over_target));
    }
    fn decode(input: &mut &[u8]) -> TurnPoint {
        TurnPoint {
            time: codec::i64(input),
            session: codec::u128(input),
            agent: codec::u32(input),
            latency: codec::f64(input),
            eou: codec::f64(input),
            hook: codec::f64(input),
            ttft: codec::f64(input),
            ttfb: codec::f64(input),
            over_target: codec::u8(input) == 1,
        }
    }
}

/// A session id as the report keys it: two SipHash digests of the id with fixed keys, never
/// [`NO_SESSION`]. Two of a replay's ids share a key with a probability of about n²/2¹²⁹.
fn session_key(id: &str) -> u128 {
    use std::hash::Hasher;
    let digest = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        h.write_u8(salt);
        h.write(id.as_bytes());
        h.finish()
    };
    (u128::from(digest(0)) << 64 | u128::from(digest(1))).max(1)
}

/// A session id with its key, once per batch in which it appears.
struct SessionName {
    key: u128,
    id: String,
}

impl Record for SessionName {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u128(out, self.key);
        codec::put_str(out, &self.id);
    }
    fn decode(input: &mut &[u8]) -> SessionName {
        SessionName { key: codec::u128(input), id: codec::string(input) }
    }
}

/// One observation of a metric: event time in whole seconds (periods and windows are whole
/// minutes, so seconds place it in the same one as milliseconds would), agent (an index into the
/// builder's agents), value.
#[derive(Debug, Clone, Copy)]
struct Observation {
    second: u32,
    agent: u32,
    value: f64,
}

impl Observation {
    fn time(&self) -> i64 {
        i64::from(self.second) * 1000
    }
}

impl Record for Observation {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u32(out, self.second);
        codec::put_u32(out, self.agent);
        codec::put_f64(out, self.value);
    }
    fn decode(input: &mut &[u8]) -> Observation {
        Observation { second: codec::u32(input), agent: codec::u32(input), value: codec::f64(input) }
    }
}

/// A call that ended (its `session_analytics` event), for a diagnosis.
#[derive(Debug, Clone)]
struct EndedCall {
    time: i64,
    session: String,
    agent: String,
    cost_usd: Option<f64>,
    failed_tool_calls: u64,
}

impl Record for EndedCall {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.time);
        codec::put_str(out, &self.session);
        codec::put_str(out, &self.agent);
        codec::put_opt_f64(out, self.cost_usd);
        codec::put_u64(out, self.failed_tool_calls);
    }
    fn decode(input: &mut &[u8]) -> EndedCall {
        EndedCall {
            time: codec::i64(input),
            session: codec::string(input),
            agent: codec::string(input),
            cost_usd: codec::opt_f64(input),
            failed_tool_calls: codec::u64(input),
        }
    }
}

/// A failed tool call: time, tool, error.
struct ToolFailure(i64, String, Option<String>);

impl Record for ToolFailure {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.0);
        codec::put_str(out, &self.1);
        codec::put_opt_str(out, self.2.as_deref());
    }
    fn decode(input: &mut &[u8]) -> ToolFailure {
        ToolFailure(codec::i64(input), codec::string(input), codec::opt_string(input))
    }
}

/// A reject: time, reason, raw line.
struct Rejected(i64, String, String);

impl Record for Rejected {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.0);
        codec::put_str(out, &self.1);
        codec::put_str(out, &self.2);
    }
    fn decode(input: &mut &[u8]) -> Rejected {
        Rejected(codec::i64(input), codec::string(input), codec::string(input))
    }
}

impl Record for FailureFact {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.time);
        codec::put_str(out, &self.agent);
        codec::put_opt_str(out, self.session.as_deref());
        codec::put_str(out, &self.kind);
        codec::put_str(out, &self.provider);
        codec::put_str(out, &self.action);
        codec::put_opt_str(out, self.class.as_deref());
        codec::put_u8(out, u8::from(self.counted));
    }
    fn decode(input: &mut &[u8]) -> FailureFact {
        FailureFact {
            time: codec::i64(input),
            agent: codec::string(input),
            session: codec::opt_string(input),
            kind: codec::string(input),
            provider: codec::string(input),
            action: codec::string(input),
            class: codec::opt_string(input),
            counted: codec::u8(input) == 1,
        }
    }
}

/// Spend on one model: time, provider/model, USD.
struct Spend(i64, String, f64);

impl Record for Spend {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.0);
        codec::put_str(out, &self.1);
        codec::put_f64(out, self.2);
    }
    fn decode(input: &mut &[u8]) -> Spend {
        Spend(codec::i64(input), codec::string(input), codec::f64(input))
    }
}

/// How much of its state the report holds in memory at once. Everything it keeps per turn, call,
/// observation or reject is in [`Spill`]s, so these bound its memory whatever the input size.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Encoded records each store keeps in memory before appending them to its file.
    pub chunk_bytes: usize,
    /// Values sorted in memory at once for a percentile; past it, radix selection.
    pub values: usize,
    /// Turns grouped by call at once, and session keys deduplicated at once.
    pub group: usize,
}

impl Default for Limits {
    /// The stores' tails (up to twice 256 KiB each, about 17 MiB for all 33), 2²¹ values
    /// (16 MiB, up to twice that while gathered by period) and 2¹⁸ turns (about 24 MiB with their
    /// map): under 90 MiB whatever the input.
    fn default() -> Limits {
        Limits { chunk_bytes: 256 << 10, values: 1 << 21, group: 1 << 18 }
    }
}

/// Count, sum and maximum of values, summed in the order they come, as a `Vec`'s would be.
#[derive(Debug, Clone, Copy)]
struct Tally {
    n: u64,
    sum: f64,
    max: f64,
}

impl Default for Tally {
    fn default() -> Tally {
        // The neutral element of the standard library's float sum, whatever the toolchain makes it.
        Tally { n: 0, sum: std::iter::empty::<f64>().sum(), max: f64::NEG_INFINITY }
    }
}

impl Tally {
    fn add(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
        self.max = self.max.max(v);
    }

    /// The statistic, for the ones a tally holds (not percentiles).
    fn value(&self, stat: Stat) -> Option<f64> {
        (self.n > 0).then(|| match stat {
            Stat::Sum => self.sum,
            Stat::Average => self.sum / self.n as f64,
            Stat::Maximum => self.max,
            Stat::P50 | Stat::P95 | Stat::P99 => unreachable!("percentiles are selected, not tallied"),
        })
    }
}

/// Accumulates batches; [`ReportBuilder::finish`] computes the report, [`ReportBuilder::charts`]
/// the dashboard's views over the same observations. What grows with the input is kept in
/// [`Spill`]s and read back by scans, so memory stays within [`Limits`].
#[derive(Debug)]
pub struct ReportBuilder {
    limits: Limits,
    stats: BatchStats,
    turns: Spill<TurnPoint>,
    /// By [`MetricSpec::index`]: what the function would publish, at event time, one observation
    /// each (`EventsIn` and `EventsRejected` too: locally they are counted at event time).
    observations: Vec<Spill<Observation>>,
    agents: Vec<String>,
    reported: u64,
    computed: u64,
    tool_rounds: u64,
    failures_by_tool: BTreeMap<String, u64>,
    /// What a diagnosis looks into, at event time: failed tool calls, rejects, spend, ended calls.
    tool_failures: Spill<ToolFailure>,
    rejects: Spill<Rejected>,
    spend: Spill<Spend>,
    calls: Spill<EndedCall>,
    failures: Spill<FailureFact>,
    /// The minutes in which each (agent, kind, provider) served turns: which provider a fallback
    /// switched to.
    served: BTreeMap<(String, &'static str, String), std::collections::BTreeSet<i64>>,
    /// Every session id seen, on a turn or a session row (the calls), once per batch.
    session_names: Spill<SessionName>,
    first: Option<i64>,
    last: Option<i64>,
    first_rejects: Vec<RejectPlace>,
}

impl Default for ReportBuilder {
    fn default() -> Self {
        ReportBuilder::with_limits(Limits::default())
    }
}

/// The key of session `id`, and its name stored the first time the batch names it.
fn see_session<'a>(names: &mut Spill<SessionName>, batch: &mut HashMap<&'a str, u128>, id: &'a str) -> io::Result<u128> {
    if let Some(key) = batch.get(id) {
        return Ok(*key);
    }
    let key = session_key(id);
    names.push(&SessionName { key, id: id.to_owned() })?;
    batch.insert(id, key);
    Ok(key)
}

impl ReportBuilder {
    pub fn with_limits(limits: Limits) -> ReportBuilder {
        let spill = || Spill::new(limits.chunk_bytes);
        ReportBuilder {
            limits,
            stats: BatchStats::default(),
            turns: spill(),
            observations: (0..m::ALL.len()).map(|_| Spill::new(limits.chunk_bytes)).collect(),
            agents: Vec::new(),
            reported: 0,
            computed: 0,
            tool_rounds: 0,
            failures_by_tool: BTreeMap::new(),
            tool_failures: Spill::new(limits.chunk_bytes),
            rejects: Spill::new(limits.chunk_bytes),
            spend: Spill::new(limits.chunk_bytes),
            calls: Spill::new(limits.chunk_bytes),
            failures: Spill::new(limits.chunk_bytes),
            served: BTreeMap::new(),
            session_names: Spill::new(limits.chunk_bytes),
            first: None,
            last: None,
            first_rejects: Vec::new(),
        }
    }

    fn agent_id(&mut self, agent: &str) -> u32 {
        match self.agents.iter().position(|a| a == agent) {
            Some(i) => i as u32,
            None => {
                self.agents.push(agent.to_owned());
                (self.agents.len() - 1) as u32
            }
        }
    }

    fn observe(&mut self, spec: MetricSpec, time: i64, agent: u32, value: f64) -> io::Result<()> {
        let second = u32::try_from(time.div_euclid(1000)).unwrap_or_else(|_| unreachable!("event times are within 2000..2100"));
        self.observations[spec.index].push(&Observation { second, agent, value })
    }

    fn see(&mut self, t: i64) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }

    pub fn add(&mut self, out: &BatchOutput) -> io::Result<()> {
        self.stats.merge(&out.stats);
        let mut batch_sessions: HashMap<&str, u128> = HashMap::new();
        for s in &out.sessions {
            see_session(&mut self.session_names, &mut batch_sessions, &s.session_id)?;
        }
        // Counters of whole turns, only ever summed: one observation per minute and agent of the
        // batch keeps every period's sum (periods are whole minutes) without one per turn.
        let mut counted: BTreeMap<(usize, i64, u32), f64> = BTreeMap::new();
        for row in &out.turns {
            self.see(row.event_time);
            let agent = self.agent_id(&row.agent_name);
            let mut seen = Vec::new();
            metrics::turn_observations(row, |spec, value| seen.push((spec, value)));
            for (spec, value) in seen {
                if spec.index == m::TURNS.index || spec.index == m::TURNS_OVER_TARGET.index {
                    *counted.entry((spec.index, row.event_time.div_euclid(60_000) * 60_000, agent)).or_default() += value;
                } else {
                    self.observe(spec, row.event_time, agent, value)?;
                }
            }
            let session = match row.session_id.as_deref() {
                Some(id) => see_session(&mut self.session_names, &mut batch_sessions, id)?,
                None => NO_SESSION,
            };
            for (kind, provider) in [("llm", &row.llm_provider), ("tts", &row.tts_provider), ("stt", &row.stt_provider)] {
                if let Some(p) = provider {
                    let minute = row.event_time.div_euclid(60_000) * 60_000;
                    self.served.entry((row.agent_name.clone(), kind, p.clone())).or_default().insert(minute);
                }
            }
            if let Some(latency) = row.total_latency_ms {
                match row.latency_source {
                    Some(LatencySource::Reported) => self.reported += 1,
                    Some(LatencySource::ComputedToolRound | LatencySource::EstimatedToolRound) => {
                        self.computed += 1;
                        self.tool_rounds += 1;
                    }
                    _ => self.computed += 1,
                }
                self.turns.push(&TurnPoint {
                    time: row.event_time,
                    session,
                    agent,
                    latency,
                    eou: row.eou_delay_ms.unwrap_or(f64::NAN),
                    hook: row.on_user_turn_completed_delay_ms.unwrap_or(f64::NAN),
                    ttft: row.llm_ttft_ms.unwrap_or(f64::NAN),
                    ttfb: row.tts_ttfb_ms.unwrap_or(f64::NAN),
                    over_target: row.over_target == Some(true),
                })?;
            }
        }
        for ((index, minute, agent), n) in counted {
            self.observe(m::ALL[index], minute, agent, n)?;
        }
        for s in &out.sessions {
            self.see(s.event_time);
            if s.record_type != SessionRecordType::Analytics {
                continue;
            }
            let agent = self.agent_id(&s.agent_name);
            let mut seen = Vec::new();
            metrics::call_observations(s, |spec, value| seen.push((spec, value)));
            for (spec, value) in seen {
                self.observe(spec, s.event_time, agent, value)?;
            }
            for call in s.tool_calls.iter().filter(|c| c.success == Some(false)) {
                *self.failures_by_tool.entry(call.name.clone()).or_default() += 1;
                self.tool_failures.push(&ToolFailure(s.event_time, call.name.clone(), call.error.clone()))?;
            }
            self.calls.push(&EndedCall {
                time: s.event_time,
                session: s.session_id.clone(),
                agent: s.agent_name.clone(),
                cost_usd: s.estimated_cost_usd,
                failed_tool_calls: s.tool_failure_count.max(0) as u64,
            })?;
            for u in &s.model_usage {
                if let Some(cost) = u.cost_usd {
                    self.spend.push(&Spend(s.event_time, format!("{}/{}", u.provider, u.model), cost))?;
                }
            }
        }
        for e in &out.errors {
            self.see(e.event_time);
            let agent = self.agent_id(&e.agent_name);
            let mut seen = Vec::new();
            metrics::failure_observations(e, |spec, value| seen.push((spec, value)));
            for (spec, value) in seen {
                self.observe(spec, e.event_time, agent, value)?;
            }
            self.failures.push(&FailureFact::of(e))?;
        }
        for r in &out.rejects {
            self.see(r.event_time);
            // A reject row has no agent: it could not be read far enough to know one.
            let agent = self.agent_id("");
            self.observe(m::EVENTS_REJECTED, r.event_time, agent, 1.0)?;
            self.rejects.push(&Rejected(r.event_time, r.reason.clone(), r.raw_message.clone()))?;
            if self.first_rejects.len() < NAMED_REJECTS {
                let place = r.event_id.clone().unwrap_or_else(|| r.log_group.clone().unwrap_or_default());
                let detail = voicelake_shared::rows::truncate_utf8(&r.detail, 300).to_owned();
                self.first_rejects.push(RejectPlace { place, reason: r.reason.clone(), detail });
            }
        }
        if !out.event_timestamps.is_empty() {
            // A counter, only ever summed: one observation per minute of the batch keeps every
            // period's sum (periods are whole minutes) without one per log event.
            let agent = self.agent_id("");
            let mut per_minute: BTreeMap<i64, f64> = BTreeMap::new();
            for &t in &out.event_timestamps {
                *per_minute.entry(t.div_euclid(60_000) * 60_000).or_default() += 1.0;
            }
            for (minute, n) in per_minute {
                self.observe(m::EVENTS_IN, minute, agent, n)?;
            }
        }
        Ok(())
    }

    /// Count, mean, min, standard deviation, p50, p95, p99 and maximum of the `n` values of
    /// `values`, exact.
    fn summary(&self, n: u64, values: &dyn crate::spill::Values) -> io::Result<Summary> {
        if n == 0 {
            return Ok(Summary::default());
        }
        let ranks = [1, nearest_rank(50.0, n), nearest_rank(95.0, n), nearest_rank(99.0, n), n];
        let [min, p50, p95, p99, max] = at_ranks(values, n, &ranks, self.limits.values)?[..] else { unreachable!("one value per rank") };
        let mut moments = Moments::default();
        values.each(&mut |v| moments.add(v))?;
        Ok(Summary {
            count: n,
            mean: moments.mean(),
            min: Some(min),
            std_dev: moments.std_dev(),
            p50: Some(p50),
            p95: Some(p95),
            p99: Some(p99),
            max: Some(max),
        })
    }

    /// The statistic of the observations of `spec` that `keep` admits, as CloudWatch computes it
    /// over one period (percentiles nearest-rank).
    fn statistic(&self, spec: MetricSpec, stat: Stat, keep: impl Fn(&Observation) -> bool) -> io::Result<Option<f64>> {
        Ok(self.grouped_statistics(spec, stat, keep, |_| ())?.remove(&()).flatten())
    }

    /// The statistic of the observations of `spec` in each period (its start, epoch milliseconds)
    /// that has any, for one agent or all.
    fn period_statistics(
        &self,
        spec: MetricSpec,
        period_ms: i64,
        agent: Option<u32>,
        stat: Stat,
    ) -> io::Result<BTreeMap<i64, Option<f64>>> {
        self.grouped_statistics(spec, stat, |o| agent.is_none_or(|a| o.agent == a), |o| o.time().div_euclid(period_ms) * period_ms)
    }

    /// The statistic of the observations of `spec` that `keep` admits, for each group (by `group_of`)
    /// that has any. A percentile's values are gathered in the counting scan while all of them fit
    /// the limit; past it, consecutive groups are gathered up to the limit per scan, and a group with
    /// more is selected on its own.
    fn grouped_statistics<K: Ord + Copy>(
        &self,
        spec: MetricSpec,
        stat: Stat,
        keep: impl Fn(&Observation) -> bool,
        group_of: impl Fn(&Observation) -> K,
    ) -> io::Result<BTreeMap<K, Option<f64>>> {
        let store = &self.observations[spec.index];
        let limit = self.limits.values as u64;
        let mut tallies: BTreeMap<K, Tally> = BTreeMap::new();
        let mut gathered: Option<BTreeMap<K, Vec<f64>>> = stat.percentile().map(|_| BTreeMap::new());
        let mut seen = 0u64;
        store.scan(|o| {
            if keep(&o) {
                let group = group_of(&o);
                tallies.entry(group).or_default().add(o.value);
                seen += 1;
                if seen > limit {
                    gathered = None;
                }
                if let Some(groups) = &mut gathered {
                    groups.entry(group).or_default().push(o.value);
                }
            }
        })?;
        let Some(p) = stat.percentile() else {
            return Ok(tallies.into_iter().map(|(group, t)| (group, t.value(stat))).collect());
        };
        let percentiles = |groups: BTreeMap<K, Vec<f64>>, out: &mut BTreeMap<K, Option<f64>>| {
            for (group, mut values) in groups {
                values.sort_by(f64::total_cmp);
                out.insert(group, percentile(&values, p));
            }
        };
        let mut out = BTreeMap::new();
        if let Some(groups) = gathered {
            percentiles(groups, &mut out);
            return Ok(out);
        }
        let counts: Vec<(K, u64)> = tallies.iter().map(|(group, t)| (*group, t.n)).collect();
        let mut i = 0;
        while i < counts.len() {
            let (group, n) = counts[i];
            if n > limit {
                let values = |f: &mut dyn FnMut(f64)| {
                    store.scan(|o| {
                        if keep(&o) && group_of(&o) == group {
                            f(o.value)
                        }
                    })
                };
                out.insert(group, at_ranks(&values, n, &[nearest_rank(p, n)], self.limits.values)?.first().copied());
                i += 1;
                continue;
            }
            let mut end = i;
            let mut gathering = 0;
            while end < counts.len() && gathering + counts[end].1 <= limit {
                gathering += counts[end].1;
                end += 1;
            }
            let (first, last) = (counts[i].0, counts[end - 1].0);
            let mut groups: BTreeMap<K, Vec<f64>> = BTreeMap::new();
            store.scan(|o| {
                let group = group_of(&o);
                if keep(&o) && (first..=last).contains(&group) {
                    groups.entry(group).or_default().push(o.value);
                }
            })?;
            percentiles(groups, &mut out);
            i = end;
        }
        Ok(out)
    }

    /// Distinct session ids: the calls of the replay.
    fn distinct_sessions(&self) -> io::Result<u64> {
        let groups = self.session_names.len().div_ceil(self.limits.group as u64).max(1);
        let mut distinct = 0;
        for group in 0..groups {
            let mut keys = HashSet::new();
            self.session_names.scan(|s| {
                if s.key % u128::from(groups) == u128::from(group) {
                    keys.insert(s.key);
                }
            })?;
            distinct += keys.len() as u64;
        }
        Ok(distinct)
    }

    /// The ids of the sessions with these keys.
    fn session_ids(&self, keys: &HashSet<u128>) -> io::Result<HashMap<u128, String>> {
        let mut ids = HashMap::new();
        self.session_names.scan(|s| {
            if keys.contains(&s.key) {
                ids.entry(s.key).or_insert(s.id);
            }
        })?;
        Ok(ids)
    }

    /// The turns of each call, a group of calls at a time (by key), in the order they came.
    fn each_call(&self, keep: impl Fn(&TurnPoint) -> bool, mut f: impl FnMut(u128, Vec<TurnPoint>)) -> io::Result<()> {
        let group = self.limits.group as u64;
        let mut turns = self.turns.len();
        if turns > group {
            turns = 0;
            self.turns.scan(|t| turns += u64::from(t.session != NO_SESSION && keep(&t)))?;
        }
        let groups = turns.div_ceil(group).max(1);
        for group in 0..groups {
            let mut calls: HashMap<u128, Vec<TurnPoint>> = HashMap::new();
            self.turns.scan(|t| {
                if t.session != NO_SESSION && t.session % u128::from(groups) == u128::from(group) && keep(&t) {
                    calls.entry(t.session).or_default().push(t);
                }
            })?;
            calls.into_iter().for_each(|(key, turns)| f(key, turns));
        }
        Ok(())
    }

    /// The five calls with the highest p95 turn latency (ties by session id).
    fn slowest_sessions(&self) -> io::Result<Vec<SessionLatency>> {
        const SLOWEST: usize = 5;
        // Every call that could still be among the slowest: those at or above the fifth p95 so far.
        let mut candidates: Vec<(u128, SessionLatency)> = Vec::new();
        let mut prune_at = 4 * SLOWEST;
        self.each_call(
            |_| true,
            |key, turns| {
                let summary = Summary::of(turns.iter().map(|t| t.latency).collect());
                candidates.push((
                    key,
                    SessionLatency {
                        session_id: String::new(),
                        agent: self.agents[turns[0].agent as usize].clone(),
                        turns: turns.len() as u64,
                        p95_ms: summary.p95.unwrap_or(0.0),
                        max_ms: summary.max.unwrap_or(0.0),
                        dominant_component: dominant_component(&turns),
                    },
                ));
                if candidates.len() > prune_at {
                    candidates.sort_by(|a, b| b.1.p95_ms.total_cmp(&a.1.p95_ms));
                    let cut = candidates[SLOWEST - 1].1.p95_ms;
                    candidates.retain(|c| c.1.p95_ms >= cut);
                    // Ties at the cut stay; pruning again only once they have doubled keeps this linear.
                    prune_at = prune_at.max(2 * candidates.len());
                }
            },
        )?;
        let ids = self.session_ids(&candidates.iter().map(|c| c.0).collect())?;
        let mut slowest: Vec<SessionLatency> = candidates
            .into_iter()
            .map(|(key, mut s)| {
                s.session_id = ids.get(&key).cloned().unwrap_or_default();
                s
            })
            .collect();
        slowest.sort_by(|a, b| b.p95_ms.total_cmp(&a.p95_ms).then_with(|| a.session_id.cmp(&b.session_id)));
        slowest.truncate(SLOWEST);
        Ok(slowest)
    }

    pub fn finish(&self, config: &Config) -> io::Result<Report> {
        let stats = &self.stats;
        let complete = self.turns.len();
        let mut over = 0u64;
        let mut per_agent = vec![0u64; self.agents.len()];
        // Per call: whether all its turns met the target (a caller judges the whole call).
        let mut calls: HashMap<u128, bool> = HashMap::new();
        self.turns.scan(|t| {
            over += u64::from(t.over_target);
            per_agent[t.agent as usize] += 1;
            if t.session != NO_SESSION {
                *calls.entry(t.session).or_insert(true) &= !t.over_target;
            }
        })?;
        let calls_within = calls.values().filter(|within| **within).count() as u64;
        // Each complete turn observes 100 (interrupted) or 0.
        let interrupted = (self.statistic(m::TURNS_INTERRUPTED, Stat::Sum, |_| true)?.unwrap_or_default() / 100.0).round() as u64;
        let latency = self.summary(complete, &|f: &mut dyn FnMut(f64)| self.turns.scan(|t| f(t.latency)))?;
        let mut agents: Vec<usize> = (0..self.agents.len()).filter(|&i| per_agent[i] > 0).collect();
        agents.sort_by(|a, b| self.agents[*a].cmp(&self.agents[*b]));
        let agents = agents
            .into_iter()
            .map(|i| {
                let id = i as u32;
                let values = |f: &mut dyn FnMut(f64)| {
                    self.turns.scan(|t| {
                        if t.agent == id {
                            f(t.latency)
                        }
                    })
                };
                Ok(AgentSummary { agent: self.agents[i].clone(), turns: per_agent[i], latency_ms: self.summary(per_agent[i], &values)? })
            })
            .collect::<io::Result<Vec<_>>>()?;

        let sum = |spec: MetricSpec| self.statistic(spec, Stat::Sum, |_| true).map(|s| s.unwrap_or_default());
        let tool_calls = sum(m::TOOL_CALLS)? as u64;
        let tool_failures = sum(m::TOOL_CALL_FAILURES)? as u64;
        let tool_outcomes = sum(m::TOOL_CALL_OUTCOMES)? as u64;
        let mut failures_by_tool: Vec<(String, u64)> = self.failures_by_tool.clone().into_iter().collect();
        failures_by_tool.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        let observed = |spec: MetricSpec| {
            let store = &self.observations[spec.index];
            self.summary(store.len(), &|f: &mut dyn FnMut(f64)| store.scan(|o| f(o.value)))
        };
        let costs = &self.observations[m::CALL_COST.index];
        let total_cost = self.statistic(m::CALL_COST, Stat::Sum, |_| true)?.unwrap_or_else(|| std::iter::empty::<f64>().sum());
        let alarms = crate::alarms::deployed(config).iter().map(|spec| self.evaluate(spec)).collect::<io::Result<Vec<_>>>()?;

        Ok(Report {
            counts: Counts { sessions: self.distinct_sessions()?, ..stats.counts() },
            rejected_by_reason: stats.rejected.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            skipped_by_reason: stats.skipped.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            first_event: self.first.map(timefmt::iso),
            last_event: self.last.map(timefmt::iso),
            latency_ms: latency,
            latency_reported: self.reported,
            latency_computed: self.computed,
            latency_tool_rounds: self.tool_rounds,
            components_ms: COMPONENTS.iter().map(|(name, spec)| Ok((*name, observed(*spec)?))).collect::<io::Result<_>>()?,
            target: TargetCompliance {
                target_ms: config.latency_target_ms,
                within_target: complete - over,
                over_target: over,
                compliance_pct: (complete > 0).then(|| round2(100.0 * (complete - over) as f64 / complete as f64)),
                calls: calls.len() as u64,
                calls_within_target: calls_within,
                calls_compliance_pct: (!calls.is_empty()).then(|| round2(100.0 * calls_within as f64 / calls.len() as f64)),
            },
            interrupted: InterruptedSummary {
                turns: interrupted,
                pct: (complete > 0).then(|| round2(100.0 * interrupted as f64 / complete as f64)),
            },
            agents,
            slowest_sessions: self.slowest_sessions()?,
            cost: CostSummary {
                calls: costs.len(),
                total_usd: voicelake_shared::cost::round_cost(total_cost),
                per_call_usd: observed(m::CALL_COST)?,
            },
            tools: ToolSummary {
                calls: tool_calls,
                with_outcome: tool_outcomes,
                failures: tool_failures,
                success_pct: (tool_outcomes > 0)
                    .then(|| round2(100.0 * tool_outcomes.saturating_sub(tool_failures) as f64 / tool_outcomes as f64)),
                failures_by_tool,
            },
            errors: self.errors_summary()?,
            alarms,
            input: InputSummary {
                replaced_bytes: stats.replaced_bytes,
                joined_lines: stats.joined_lines,
                first_rejects: self.first_rejects.clone(),
            },
        })
    }

    /// Tool success per period: `100 × (1 − failures / outcomes)` where outcomes were reported.
    fn tool_success(&self, period_ms: i64) -> io::Result<BTreeMap<i64, Option<f64>>> {
        let calls = self.period_statistics(m::TOOL_CALL_OUTCOMES, period_ms, None, Stat::Sum)?;
        let failures = self.period_statistics(m::TOOL_CALL_FAILURES, period_ms, None, Stat::Sum)?;
        Ok(calls
            .iter()
            .map(|(t, c)| (*t, success_percent(c.unwrap_or_default(), failures.get(t).copied().flatten().unwrap_or(0.0))))
            .collect())
    }

    /// The alarm's statistic for every period from the first to the last with data (`None` where a
    /// period has none), as CloudWatch would evaluate it on event time.
    fn alarm_series(&self, spec: &AlarmSpec) -> io::Result<Vec<(i64, Option<f64>)>> {
        let period = i64::from(spec.period_seconds) * 1000;
        let metric = m::ALL.iter().find(|x| x.name == spec.metric).copied().unwrap_or_else(|| unreachable!("{} is published", spec.metric));
        let values: BTreeMap<i64, Option<f64>> = match spec.statistic {
            Statistic::ToolSuccessPercent => self.tool_success(period)?,
            Statistic::P95 => self.period_statistics(metric, period, None, Stat::P95)?,
            Statistic::Average => self.period_statistics(metric, period, None, Stat::Average)?,
            Statistic::Sum => self.period_statistics(metric, period, None, Stat::Sum)?,
            Statistic::Maximum => self.period_statistics(metric, period, None, Stat::Maximum)?,
            Statistic::ProviderSum => self.provider_sums(period)?,
        };
        let mut series = Vec::new();
        if let (Some(&first), Some(&last)) = (values.keys().next(), values.keys().last()) {
            let mut t = first;
            while t <= last {
                series.push((t, values.get(&t).copied().flatten()));
                t += period;
            }
        }
        Ok(series)
    }

    /// Evaluates an alarm over consecutive periods of event time, as CloudWatch would have.
    fn evaluate(&self, spec: &AlarmSpec) -> io::Result<AlarmOutcome> {
        let period = i64::from(spec.period_seconds) * 1000;
        let series = self.alarm_series(spec)?;
        let breaching: Vec<bool> = series.iter().map(|(_, v)| v.is_some_and(|v| spec.breaches(v))).collect();
        let worst = worst_period(spec, &series, |_| true);
        let detail = match worst.filter(|_| spec.metric == m::TURN_LATENCY.name) {
            Some((start, _)) => {
                let window = Window { start_ms: start, end_ms: start + period };
                let in_period = |spec: MetricSpec| -> io::Result<String> {
                    let p95 = self.statistic(spec, Stat::P95, |o| window.contains(o.time()))?;
                    Ok(p95.map_or("-".to_owned(), |p| format!("{p:.0}")))
                };
                Some(format!(
                    "p95 in that period: eou {} ms, llm ttft {} ms, tts ttfb {} ms",
                    in_period(m::EOU_DELAY)?,
                    in_period(m::LLM_TTFT)?,
                    in_period(m::TTS_TTFB)?
                ))
            }
            None => None,
        };
        let would_fire = crate::alarms::would_fire(spec, &breaching);
        let diagnosis = match worst.filter(|_| would_fire) {
            Some((start, _)) => Some(self.diagnose(spec, &series, Window { start_ms: start, end_ms: start + period })?),
            None => None,
        };
        Ok(AlarmOutcome {
            alarm: spec.id,
            metric: spec.metric,
            threshold: spec.threshold,
            would_fire,
            periods_evaluated: series.iter().filter(|(_, v)| v.is_some()).count() as u64,
            periods_breaching: breaching.iter().filter(|b| **b).count() as u64,
            worst_value: worst.map(|w| round2(w.1)),
            worst_period: worst.map(|w| timefmt::iso(w.0)),
            detail,
            diagnosis,
        })
    }

    /// The statistic of `spec` over `window` for each agent (by index).
    fn in_window_by_agent(&self, spec: MetricSpec, stat: Stat, window: Window) -> io::Result<Vec<Option<f64>>> {
        let by_agent = self.grouped_statistics(spec, stat, |o| window.contains(o.time()), |o| o.agent)?;
        Ok((0..self.agents.len() as u32).map(|i| by_agent.get(&i).copied().flatten()).collect())
    }

    /// The alarm's statistic over `window` for each agent (by index), as CloudWatch would compute it
    /// over one period that long.
    fn alarm_values_by_agent(&self, spec: &AlarmSpec, window: Window) -> io::Result<Vec<Option<f64>>> {
        let Some(metric) = m::ALL.iter().find(|x| x.name == spec.metric).copied() else { return Ok(vec![None; self.agents.len()]) };
        match spec.statistic {
            Statistic::ToolSuccessPercent => {
                let calls = self.in_window_by_agent(m::TOOL_CALL_OUTCOMES, Stat::Sum, window)?;
                let failures = self.in_window_by_agent(m::TOOL_CALL_FAILURES, Stat::Sum, window)?;
                Ok(calls.iter().zip(&failures).map(|(c, f)| success_percent(c.unwrap_or(0.0), f.unwrap_or(0.0))).collect())
            }
            Statistic::P95 => self.in_window_by_agent(metric, Stat::P95, window),
            Statistic::Average => self.in_window_by_agent(metric, Stat::Average, window),
            Statistic::Sum | Statistic::ProviderSum => self.in_window_by_agent(metric, Stat::Sum, window),
            Statistic::Maximum => self.in_window_by_agent(metric, Stat::Maximum, window),
        }
    }

    /// Each period's failure events of the provider (and kind) that failed most in it: what the
    /// Metrics Insights alarm's worst contributor has.
    fn provider_sums(&self, period_ms: i64) -> io::Result<BTreeMap<i64, Option<f64>>> {
        let mut worst: BTreeMap<i64, Option<f64>> = BTreeMap::new();
        for (t, n) in self.provider_series(period_ms)?.into_values().flatten() {
            let v = worst.entry(t).or_insert(Some(0.0));
            *v = Some(v.unwrap_or(0.0).max(n.unwrap_or(0.0)));
        }
        Ok(worst)
    }

    /// Each provider's (and kind's) failure events per period.
    #[allow(clippy::type_complexity)]
    fn provider_series(&self, period_ms: i64) -> io::Result<BTreeMap<(String, String), BTreeMap<i64, Option<f64>>>> {
        let mut series: BTreeMap<(String, String), BTreeMap<i64, Option<f64>>> = BTreeMap::new();
        self.failures.scan(|f| {
            if f.counted {
                let v =
                    series.entry((f.kind, f.provider)).or_default().entry(f.time.div_euclid(period_ms) * period_ms).or_insert(Some(0.0));
                *v = Some(v.unwrap_or(0.0) + 1.0);
            }
        })?;
        Ok(series)
    }

    /// The failures of `window`, by kind, provider and agent; and who served turns in it.
    #[allow(clippy::type_complexity)]
    fn failures_in(&self, window: Window) -> io::Result<(Vec<ProviderFailures>, BTreeMap<(String, String), Vec<String>>)> {
        // Since when: a failure that began before the window began in the hour before it.
        let hour_before = Window { start_ms: window.start_ms - 3_600_000, end_ms: window.start_ms };
        let (mut inside, mut before) = (Vec::new(), Vec::new());
        self.failures.scan(|f| {
            if window.contains(f.time) {
                inside.push(f);
            } else if hour_before.contains(f.time) {
                before.push(f);
            }
        })?;
        let failures = diagnosis::group_failures(inside, before);
        let mut serving: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for ((agent, kind, provider), minutes) in &self.served {
            if minutes.range(window.start_ms..window.end_ms).next().is_some() {
                serving.entry((agent.clone(), (*kind).to_owned())).or_default().push(provider.clone());
            }
        }
        Ok((failures, serving))
    }

    /// Failure events by provider, and the sessions closed by errors.
    fn errors_summary(&self) -> io::Result<ErrorsSummary> {
        let mut by_provider: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut closed: HashSet<String> = HashSet::new();
        // A close line without a session (the thread executor logs no job context) is one session.
        let mut closed_unnamed = 0;
        let mut events = 0;
        self.failures.scan(|f| {
            if f.counted {
                events += 1;
                *by_provider.entry((f.kind.clone(), f.provider.clone())).or_default() += 1;
            }
            if f.action == Action::Closed.as_str() {
                match f.session {
                    Some(s) => {
                        closed.insert(s);
                    }
                    None => closed_unnamed += u64::from(f.counted),
                }
            }
        })?;
        let mut by_provider: Vec<ProviderEvents> =
            by_provider.into_iter().map(|((kind, provider), events)| ProviderEvents { kind, provider, events }).collect();
        by_provider.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| (&a.kind, &a.provider).cmp(&(&b.kind, &b.provider))));
        Ok(ErrorsSummary { events, sessions_closed_by_error: closed.len() as u64 + closed_unnamed, by_provider })
    }

    /// The state of things in `window`: the worst period of the alarm's `series` in it, each agent's
    /// alarm statistic and components, spend by model.
    fn snapshot(&self, spec: &AlarmSpec, series: &[(i64, Option<f64>)], window: Window) -> io::Result<Snapshot> {
        let mut snapshot = Snapshot::empty(window);
        snapshot.value = worst_period(spec, series, |start| window.contains(start)).map(|(_, v)| v);
        let values = self.alarm_values_by_agent(spec, window)?;
        let by_component =
            COMPONENTS.iter().map(|(_, c)| self.in_window_by_agent(*c, Stat::P95, window)).collect::<io::Result<Vec<_>>>()?;
        for (i, agent) in self.agents.iter().enumerate().filter(|(_, a)| !a.is_empty()) {
            let components = std::array::from_fn(|k| by_component[k][i]);
            let value = values[i];
            if value.is_some() || components.iter().any(Option::is_some) {
                snapshot.agents.insert(agent.clone(), AgentSnapshot { value, components });
            }
        }
        self.spend.scan(|Spend(t, model, cost)| {
            if window.contains(t) {
                *snapshot.cost_by_model.entry(model).or_default() += cost;
            }
        })?;
        Ok(snapshot)
    }

    /// The evidence of a breach in `window` of the alarm's `series`, as the replay holds it, diagnosed.
    fn diagnose(&self, spec: &AlarmSpec, series: &[(i64, Option<f64>)], window: Window) -> io::Result<Diagnosis> {
        let hour_before = Window { start_ms: window.start_ms - 3_600_000, end_ms: window.start_ms };
        let baselines = vec![self.snapshot(spec, series, hour_before)?, self.snapshot(spec, series, hour_before.earlier(86_400_000))?];
        let mut in_window: Vec<(u128, Vec<TurnPoint>)> = Vec::new();
        self.each_call(|t| window.contains(t.time), |key, turns| in_window.push((key, turns)))?;
        let ids = self.session_ids(&in_window.iter().map(|(key, _)| *key).collect())?;
        let mut calls: BTreeMap<String, Call> = in_window
            .into_iter()
            .map(|(key, turns)| {
                let session = ids.get(&key).cloned().unwrap_or_default();
                let call = Call {
                    session_id: session.clone(),
                    agent: self.agents[turns[0].agent as usize].clone(),
                    p95_ms: Summary::of(turns.iter().map(|t| t.latency).collect()).p95,
                    dominant_component: dominant_component(&turns),
                    ..Call::default()
                };
                (session, call)
            })
            .collect();
        self.calls.scan(|c| {
            if window.contains(c.time) {
                let call = calls.entry(c.session.clone()).or_insert_with(|| Call {
                    session_id: c.session.clone(),
                    agent: c.agent.clone(),
                    ..Call::default()
                });
                call.cost_usd = c.cost_usd;
                call.failed_tool_calls = c.failed_tool_calls;
            }
        })?;
        let calls = calls.into_values().collect();
        let mut tools: BTreeMap<String, BTreeMap<Option<String>, u64>> = BTreeMap::new();
        self.tool_failures.scan(|ToolFailure(t, tool, error)| {
            if window.contains(t) {
                *tools.entry(tool).or_default().entry(error).or_default() += 1;
            }
        })?;
        let tool_failures = tools
            .into_iter()
            .map(|(tool, errors)| ToolFailures {
                tool,
                failures: errors.values().sum(),
                most_common_error: errors
                    .iter()
                    .filter_map(|(e, n)| e.as_ref().map(|e| (e, *n)))
                    .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
                    .map(|(e, _)| e.clone()),
            })
            .collect();
        let mut reasons: BTreeMap<String, (u64, String)> = BTreeMap::new();
        self.rejects.scan(|Rejected(t, reason, raw)| {
            if window.contains(t) {
                reasons.entry(reason).or_insert((0, raw)).0 += 1;
            }
        })?;
        let rejects = reasons
            .into_iter()
            .map(|(reason, (count, raw))| RejectReason {
                reason,
                count,
                example: voicelake_shared::rows::truncate_utf8(&raw, 300).to_owned(),
            })
            .collect();
        let (failures, serving) = self.failures_in(window)?;
        Ok(diagnosis::diagnose(&Evidence {
            alarm: spec,
            breach: self.snapshot(spec, series, window)?,
            baselines,
            calls,
            tool_failures,
            rejects,
            error_lines: Vec::new(),
            failures,
            serving,
            missing: Vec::new(),
        }))
    }

    /// The dashboard's charts ([`views::DASHBOARD`]) computed from the replayed observations.
    pub fn charts(&self, config: &Config) -> io::Result<Charts> {
        let span = self.first.zip(self.last);
        let charts = views::charts().map(|chart| self.chart(chart, config)).collect::<io::Result<_>>()?;
        Ok(Charts { span, calls_ended: self.observations[m::SESSIONS.index].len(), charts })
    }

    fn chart(&self, chart: &Chart, config: &Config) -> io::Result<ChartData> {
        let specs = crate::alarms::deployed(config);
        let period = i64::from(chart.period_seconds) * 1000;
        let points = |b: BTreeMap<i64, Option<f64>>| -> Vec<(i64, f64)> { b.into_iter().filter_map(|(t, v)| v.map(|v| (t, v))).collect() };
        let mut series = Vec::new();
        let mut aws_only = Vec::new();
        for s in chart.series {
            if !s.is_local() {
                aws_only.push(s.label());
                continue;
            }
            match *s {
                Series::Metric { metric, stat, label, axis } => {
                    let b = self.period_statistics(metric, period, None, stat)?;
                    series.push(SeriesData { label: label.to_owned(), axis, points: points(b) });
                }
                Series::PerAgent { metric, stat } => {
                    let mut agents: Vec<(usize, &String)> = self.agents.iter().enumerate().filter(|(_, a)| !a.is_empty()).collect();
                    agents.sort_by(|a, b| a.1.cmp(b.1));
                    for (i, agent) in agents {
                        let b = self.period_statistics(metric, period, Some(i as u32), stat)?;
                        if !b.is_empty() {
                            series.push(SeriesData { label: agent.clone(), axis: Axis::Left, points: points(b) });
                        }
                    }
                }
                Series::PerProvider { .. } => {
                    for ((kind, provider), b) in self.provider_series(period)? {
                        series.push(SeriesData { label: format!("{provider} {kind}"), axis: Axis::Left, points: points(b) });
                    }
                }
                Series::ToolSuccessPercent => {
                    let b = self.tool_success(period)?;
                    series.push(SeriesData { label: s.label().to_owned(), axis: Axis::Left, points: points(b) });
                }
                Series::Aws { .. } => unreachable!("not local"),
            }
        }
        let thresholds = chart
            .thresholds
            .iter()
            .filter_map(|t| {
                let alarm = specs.iter().find(|a| a.parameter == t.parameter)?;
                Some(ThresholdLine { label: t.label.to_owned(), value: alarm.threshold })
            })
            .collect();
        let alarm_periods = match chart.alarm.and_then(|id| specs.iter().find(|a| a.id == id)) {
            Some(spec) => {
                let series = self.alarm_series(spec)?;
                let breaching: Vec<bool> = series.iter().map(|(_, v)| v.is_some_and(|v| spec.breaches(v))).collect();
                crate::alarms::firing_periods(spec, &breaching).into_iter().map(|i| series[i].0).collect()
            }
            None => Vec::new(),
        };
        Ok(ChartData {
            id: chart.id,
            title: chart.display_title(),
            unit: chart.unit,
            right_unit: chart.right_unit,
            period_seconds: chart.period_seconds,
            y_min: chart.y_min,
            y_max: chart.y_max,
            series,
            thresholds,
            alarm: chart.alarm,
            alarm_periods,
            aws_only,
        })
    }
}

/// `100 × (1 − failures / calls)`, where there were calls: the tool alarm's metric math.
fn success_percent(calls: f64, failures: f64) -> Option<f64> {
    (calls > 0.0).then(|| 100.0 * (1.0 - failures / calls))
}

/// The worst `(period start, value)` of an alarm series among the periods `keep` admits.
fn worst_period(spec: &AlarmSpec, series: &[(i64, Option<f64>)], keep: impl Fn(i64) -> bool) -> Option<(i64, f64)> {
    series.iter().filter(|(t, _)| keep(*t)).filter_map(|(t, v)| v.map(|v| (*t, v))).max_by(|a, b| spec.cmp_badness(a.1, b.1))
}

/// The dashboard's views over a replay: what the local report page draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Charts {
    /// First and last event time of the replay, epoch milliseconds.
    pub span: Option<(i64, i64)>,
    /// `session_analytics` events: calls that ended (usage updates are not calls).
    pub calls_ended: u64,
    pub charts: Vec<ChartData>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartData {
    pub id: &'static str,
    /// The title with its unit, as the dashboard shows it.
    pub title: String,
    pub unit: &'static str,
    pub right_unit: Option<&'static str>,
    pub period_seconds: u32,
    /// Fixed ends of the left axis, where the view sets them.
    pub y_min: Option<f64>,
    pub y_max: Option<f64>,
    /// The series the replay has; a series with no points has no observations in the replay.
    pub series: Vec<SeriesData>,
    pub thresholds: Vec<ThresholdLine>,
    /// The alarm whose firing periods are shaded.
    pub alarm: Option<&'static str>,
    /// Start of each period in which that alarm would be in ALARM, epoch milliseconds.
    pub alarm_periods: Vec<i64>,
    /// Series of the view that only CloudWatch has (the function's own health, Lambda, Firehose).
    pub aws_only: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesData {
    pub label: String,
    #[serde(skip)]
    pub axis: Axis,
    /// (period start in epoch milliseconds, value), periods without observations left out.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdLine {
    pub label: String,
    pub value: f64,
}

fn dominant_component(turns: &[TurnPoint]) -> Option<&'static str> {
    let mean = |f: fn(&TurnPoint) -> Option<f64>| {
        let v: Vec<f64> = turns.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    voicelake_shared::diagnosis::dominant_component(
        mean(TurnPoint::eou),
        mean(TurnPoint::hook),
        mean(TurnPoint::ttft),
        mean(TurnPoint::ttfb),
    )
}

/// "1 call", "2 calls".
fn calls(n: impl Into<u64>) -> String {
    match n.into() {
        1 => "1 call".into(),
        n => format!("{n} calls"),
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// The counts as the report has always named them: the function's summary says `events_in`, the
/// report `events`; every other name is the same.
fn report_counts<S: serde::Serializer>(counts: &Counts, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeMap};
    let serde_json::Value::Object(fields) = serde_json::to_value(counts).map_err(S::Error::custom)? else {
        return Err(S::Error::custom("counts serialize as an object"));
    };
    let mut map = serializer.serialize_map(Some(fields.len()))?;
    for (key, value) in &fields {
        map.serialize_entry(if key == "events_in" { "events" } else { key }, value)?;
    }
    map.end()
}

impl Report {
    /// The rows of the latency table, text and page alike: turn latency, each component, each agent.
    pub fn latency_rows(&self) -> Vec<(String, &Summary)> {
        let mut rows = vec![("turn latency".to_owned(), &self.latency_ms)];
        rows.extend(self.components_ms.iter().map(|(name, summary)| (name.to_string(), summary)));
        rows.extend(self.agents.iter().map(|a| (format!("agent {}", a.agent), &a.latency_ms)));
        rows
    }

    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "voicelake report");
        let c = &self.counts;
        let _ = writeln!(
            s,
            "  events {}  turns {} (+{} partial)  sessions {}  skipped {}  rejected {}  nulled values {}",
            c.events_in, c.turns, c.partial_turns, c.sessions, c.skipped, c.rejected, c.nulled_values
        );
        if let (Some(a), Some(b)) = (&self.first_event, &self.last_event) {
            let _ = writeln!(s, "  event time {a} .. {b}");
        }
        if !self.rejected_by_reason.is_empty() {
            let reasons: Vec<String> = self.rejected_by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  rejected by reason: {}", reasons.join(", "));
        }
        if !self.skipped_by_reason.is_empty() {
            let reasons: Vec<String> = self.skipped_by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  skipped by reason: {}", reasons.join(", "));
        }
        for r in &self.input.first_rejects {
            let _ = writeln!(s, "  rejected at {}: {}: {}", one_line(&r.place), r.reason, one_line(&r.detail));
        }
        if let Some(unknown) = self.agents.iter().find(|a| a.agent == "unknown") {
            let _ = writeln!(
                s,
                "  agent unknown: {} turns whose lines name no agent, in an input that names no log group (give --log-group NAME)",
                unknown.latency_ms.count
            );
        }
        if self.input.replaced_bytes > 0 || self.input.joined_lines > 0 {
            let _ = writeln!(
                s,
                "  input: {} bytes not UTF-8 (or NUL) replaced, {} cut lines joined",
                self.input.replaced_bytes, self.input.joined_lines
            );
        }
        let _ = writeln!(s, "\nlatency (ms)                     count    mean     min  stddev     p50     p95     p99     max");
        for (name, x) in self.latency_rows() {
            let [mean, min, sd, p50, p95, p99, max] = [x.mean, x.min, x.std_dev, x.p50, x.p95, x.p99, x.max].map(fmt_ms);
            let name = one_line(&name);
            let _ = writeln!(s, "  {name:<29} {:>7} {mean:>7} {min:>7} {sd:>7} {p50:>7} {p95:>7} {p99:>7} {max:>7}", x.count);
        }
        let _ = writeln!(
            s,
            "  ({} reported by agents, {} computed as eou + on_user_turn_completed hook + llm phase + tts ttfb, {} of them with a tool round)",
            self.latency_reported, self.latency_computed, self.latency_tool_rounds
        );
        let t = &self.target;
        let _ = writeln!(
            s,
            "\ntarget {} ms: {} within, {} over, compliance {}; calls with every turn within {} of {} ({})",
            t.target_ms,
            t.within_target,
            t.over_target,
            t.compliance_pct.map_or("-".into(), |p| format!("{p}%")),
            t.calls_within_target,
            t.calls,
            t.calls_compliance_pct.map_or("-".into(), |p| format!("{p}%"))
        );
        let i = &self.interrupted;
        let _ = writeln!(s, "interrupted: {} turns ({})", i.turns, i.pct.map_or("-".into(), |p| format!("{p}% of complete turns")));
        if !self.slowest_sessions.is_empty() {
            let _ = writeln!(s, "\nslowest sessions (by p95)");
            for x in &self.slowest_sessions {
                let _ = writeln!(
                    s,
                    "  {:<28} {:<16} turns {:>3}  p95 {:>6.0} ms  max {:>6.0} ms  mostly {}",
                    one_line(&x.session_id),
                    one_line(&x.agent),
                    x.turns,
                    x.p95_ms,
                    x.max_ms,
                    x.dominant_component.unwrap_or("-")
                );
            }
        }
        let c = &self.cost;
        let _ = writeln!(
            s,
            "\ncost: {}, total ${:.4}, per call p50 ${} p95 ${} max ${}",
            calls(c.calls),
            c.total_usd,
            c.per_call_usd.p50.map_or("-".into(), |v| format!("{v:.4}")),
            c.per_call_usd.p95.map_or("-".into(), |v| format!("{v:.4}")),
            c.per_call_usd.max.map_or("-".into(), |v| format!("{v:.4}"))
        );
        let tl = &self.tools;
        let _ = write!(
            s,
            "tools: {}, {} with an outcome, {} failed, success {}",
            calls(tl.calls),
            tl.with_outcome,
            tl.failures,
            tl.success_pct.map_or("-".into(), |p| format!("{p}%"))
        );
        if !tl.failures_by_tool.is_empty() {
            let worst: Vec<String> = tl.failures_by_tool.iter().take(3).map(|(n, c)| format!("{} {c}", one_line(n))).collect();
            let _ = write!(s, " (failures: {})", worst.join(", "));
        }
        let e = &self.errors;
        let _ = write!(s, "\nprovider failures: {} events, {} sessions closed by errors", e.events, e.sessions_closed_by_error);
        if !e.by_provider.is_empty() {
            let worst: Vec<String> =
                e.by_provider.iter().take(5).map(|p| format!("{} {} {}", one_line(&p.kind), one_line(&p.provider), p.events)).collect();
            let _ = write!(s, " ({})", worst.join(", "));
        }
        let _ = writeln!(s, "\n\nalarms (default thresholds, evaluated on event time)");
        for a in &self.alarms {
            let state = if a.would_fire { "WOULD FIRE" } else { "ok" };
            let _ = write!(
                s,
                "  {:<30} {:<10} threshold {:<6} breaching {}/{} periods",
                a.alarm, state, a.threshold, a.periods_breaching, a.periods_evaluated
            );
            if let (Some(v), Some(p)) = (a.worst_value, &a.worst_period) {
                let _ = write!(s, ", worst {v} at {p}");
            }
            let _ = writeln!(s);
            if let Some(d) = a.detail.as_ref().filter(|_| a.would_fire) {
                let _ = writeln!(s, "  {:<30} {}", "", one_line(d));
            }
            if let Some(d) = &a.diagnosis {
                let _ = writeln!(s, "  {:<30} {}", "", one_line(&d.headline));
                if let Some(cause) = &d.cause {
                    let _ = writeln!(s, "  {:<30} cause: {}", "", one_line(cause));
                }
                if !d.worst_sessions.is_empty() {
                    let _ = writeln!(s, "  {:<30} worst calls: {}", "", one_line(&d.worst_sessions.join(", ")));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicelake_synth::{self as synth, SynthOptions};

    /// Every store spilled after a record or two, every percentile selected past its limit, calls
    /// grouped five turns at a time: the report and the charts are those of the state in memory.
    #[test]
    fn a_report_past_every_limit_equals_the_report_held_in_memory() {
        let start_ms = 1_788_220_800_000;
        let config = Config::default();
        let mut in_memory = ReportBuilder::with_limits(Limits { chunk_bytes: usize::MAX, values: usize::MAX, group: usize::MAX });
        let mut spilled = ReportBuilder::with_limits(Limits { chunk_bytes: 64, values: 3, group: 5 });
        for calls in [(400, 21), (60, 22)] {
            let batches = synth::generate(&SynthOptions { calls: calls.0, seed: calls.1, start_ms, noise: true, outage: None });
            for batch in &batches {
                let out = voicelake_shared::process_batch(batch, &config, start_ms + 86_400_000);
                in_memory.add(&out).unwrap();
                spilled.add(&out).unwrap();
            }
        }
        assert!(in_memory.turns.len() > 1000 && in_memory.rejects.len() > 10, "{:?} {:?}", in_memory.turns, in_memory.rejects);
        let report = in_memory.finish(&config).unwrap();
        assert!(report.alarms.iter().any(|a| a.diagnosis.is_some()), "a diagnosis is compared too");
        assert!(report.counts.sessions > 400, "{:?}", report.counts);
        assert_eq!(spilled.finish(&config).unwrap(), report);
        assert_eq!(spilled.charts(&config).unwrap(), in_memory.charts(&config).unwrap());
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 95.0), None);
    }
}
