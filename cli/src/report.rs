//! The local latency report: what `voicelake replay` prints.
//!
//! Percentiles are nearest-rank over the exact values (the smallest value with at least p% of the
//! values at or below it). CloudWatch estimates percentiles from the same values, so the two agree
//! closely but not always to the millisecond.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use voicelake_shared::alarms::{self, AlarmSpec, Statistic};
use voicelake_shared::config::Config;
use voicelake_shared::diagnosis::{
    self, AgentSnapshot, COMPONENTS, Call, Diagnosis, Evidence, RejectReason, Snapshot, ToolFailures, Window,
};
use voicelake_shared::metrics::{self, MetricSpec, m};
use voicelake_shared::rows::{LatencySource, SessionRecordType};
use voicelake_shared::timefmt;
use voicelake_shared::views::{self, Axis, Chart, Series, Stat};
use voicelake_shared::{BatchOutput, BatchStats, Counts};

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Summary {
    pub fn of(mut values: Vec<f64>) -> Summary {
        values.sort_by(f64::total_cmp);
        Summary {
            count: values.len() as u64,
            p50: percentile(&values, 50.0),
            p95: percentile(&values, 95.0),
            p99: percentile(&values, 99.0),
            max: values.last().copied(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetCompliance {
    pub target_ms: f64,
    pub within_target: u64,
    pub over_target: u64,
    /// Share of complete turns at or under the target, in percent.
    pub compliance_pct: Option<f64>,
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
    /// `eou_delay`, `transcription_delay`, `llm_ttft`, `tts_ttfb`, over every turn and component row.
    pub components_ms: BTreeMap<&'static str, Summary>,
    pub target: TargetCompliance,
    pub agents: Vec<AgentSummary>,
    pub slowest_sessions: Vec<SessionLatency>,
    pub cost: CostSummary,
    pub tools: ToolSummary,
    pub alarms: Vec<AlarmOutcome>,
}

/// One complete turn, compact: a replay of months keeps one of these per turn. Names are indexes
/// into the builder's tables and missing components are NaN (56 bytes, where strings and options
/// took about 200).
#[derive(Debug, Clone, Copy)]
struct TurnPoint {
    time: i64,
    /// Into [`ReportBuilder::calls_seen`], or [`NO_SESSION`].
    session: u32,
    /// Into [`ReportBuilder::agents`].
    agent: u32,
    latency: f64,
    eou: f64,
    ttft: f64,
    ttfb: f64,
    over_target: bool,
}

const NO_SESSION: u32 = u32::MAX;

impl TurnPoint {
    fn eou(&self) -> Option<f64> {
        (!self.eou.is_nan()).then_some(self.eou)
    }
    fn ttft(&self) -> Option<f64> {
        (!self.ttft.is_nan()).then_some(self.ttft)
    }
    fn ttfb(&self) -> Option<f64> {
        (!self.ttfb.is_nan()).then_some(self.ttfb)
    }
}

/// Session ids, each stored once: the calls of the replay.
#[derive(Debug, Default)]
struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// One observation of a metric: event time in whole seconds (periods and windows are whole
/// minutes, so seconds place it in the same one as milliseconds would), agent (an index into the
/// builder's agents), value. 16 bytes: a replay keeps several per turn.
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

/// A call that ended (its `session_analytics` event), for a diagnosis.
#[derive(Debug, Clone)]
struct EndedCall {
    time: i64,
    session: String,
    agent: String,
    cost_usd: Option<f64>,
    failed_tool_calls: u64,
}

/// Accumulates batches; [`ReportBuilder::finish`] computes the report, [`ReportBuilder::charts`]
/// the dashboard's views over the same observations.
#[derive(Debug)]
pub struct ReportBuilder {
    stats: BatchStats,
    turns: Vec<TurnPoint>,
    /// By [`MetricSpec::index`]: what the function would publish, at event time, one observation
    /// each (`EventsIn` and `EventsRejected` too: locally they are counted at event time).
    observations: Vec<Vec<Observation>>,
    agents: Vec<String>,
    reported: u64,
    computed: u64,
    failures_by_tool: BTreeMap<String, u64>,
    /// What a diagnosis looks into, at event time: failed tool calls (tool, error), rejects
    /// (reason, raw line), spend (provider/model, USD).
    tool_failures: Vec<(i64, String, Option<String>)>,
    rejects: Vec<(i64, String, String)>,
    spend: Vec<(i64, String, f64)>,
    calls: Vec<EndedCall>,
    /// Every session id seen, on a turn or a session row: the calls.
    calls_seen: Names,
    first: Option<i64>,
    last: Option<i64>,
}

impl Default for ReportBuilder {
    fn default() -> Self {
        ReportBuilder {
            stats: BatchStats::default(),
            turns: Vec::new(),
            observations: vec![Vec::new(); m::ALL.len()],
            agents: Vec::new(),
            reported: 0,
            computed: 0,
            failures_by_tool: BTreeMap::new(),
            tool_failures: Vec::new(),
            rejects: Vec::new(),
            spend: Vec::new(),
            calls: Vec::new(),
            calls_seen: Names::default(),
            first: None,
            last: None,
        }
    }
}

impl ReportBuilder {
    fn agent_id(&mut self, agent: &str) -> u32 {
        match self.agents.iter().position(|a| a == agent) {
            Some(i) => i as u32,
            None => {
                self.agents.push(agent.to_owned());
                (self.agents.len() - 1) as u32
            }
        }
    }

    fn observe(&mut self, spec: MetricSpec, time: i64, agent: u32, value: f64) {
        let second = u32::try_from(time.div_euclid(1000)).unwrap_or_else(|_| unreachable!("event times are within 2000..2100"));
        self.observations[spec.index].push(Observation { second, agent, value });
    }

    fn see(&mut self, t: i64) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }

    pub fn add(&mut self, out: &BatchOutput) {
        self.stats.merge(&out.stats);
        for s in &out.sessions {
            self.calls_seen.id(&s.session_id);
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
                    self.observe(spec, row.event_time, agent, value);
                }
            }
            if let Some(latency) = row.total_latency_ms {
                match row.latency_source {
                    Some(LatencySource::Reported) => self.reported += 1,
                    _ => self.computed += 1,
                }
                let session = row.session_id.as_deref().map_or(NO_SESSION, |s| self.calls_seen.id(s));
                self.turns.push(TurnPoint {
                    time: row.event_time,
                    session,
                    agent,
                    latency,
                    eou: row.eou_delay_ms.unwrap_or(f64::NAN),
                    ttft: row.llm_ttft_ms.unwrap_or(f64::NAN),
                    ttfb: row.tts_ttfb_ms.unwrap_or(f64::NAN),
                    over_target: row.over_target == Some(true),
                });
            } else if let Some(s) = &row.session_id {
                self.calls_seen.id(s);
            }
        }
        for ((index, minute, agent), n) in counted {
            self.observe(m::ALL[index], minute, agent, n);
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
                self.observe(spec, s.event_time, agent, value);
            }
            for call in s.tool_calls.iter().filter(|c| c.success == Some(false)) {
                *self.failures_by_tool.entry(call.name.clone()).or_default() += 1;
                self.tool_failures.push((s.event_time, call.name.clone(), call.error.clone()));
            }
            self.calls.push(EndedCall {
                time: s.event_time,
                session: s.session_id.clone(),
                agent: s.agent_name.clone(),
                cost_usd: s.estimated_cost_usd,
                failed_tool_calls: s.tool_failure_count.max(0) as u64,
            });
            for u in &s.model_usage {
                if let Some(cost) = u.cost_usd {
                    self.spend.push((s.event_time, format!("{}/{}", u.provider, u.model), cost));
                }
            }
        }
        for r in &out.rejects {
            self.see(r.event_time);
            // A reject row has no agent: it could not be read far enough to know one.
            let agent = self.agent_id("");
            self.observe(m::EVENTS_REJECTED, r.event_time, agent, 1.0);
            self.rejects.push((r.event_time, r.reason.clone(), r.raw_message.clone()));
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
                self.observe(m::EVENTS_IN, minute, agent, n);
            }
        }
    }

    fn values(&self, spec: MetricSpec) -> impl Iterator<Item = f64> + '_ {
        self.observations[spec.index].iter().map(|o| o.value)
    }

    pub fn finish(&self, config: &Config) -> Report {
        let stats = &self.stats;
        let latencies: Vec<f64> = self.turns.iter().map(|t| t.latency).collect();
        let over = self.turns.iter().filter(|t| t.over_target).count() as u64;
        let complete = self.turns.len() as u64;

        let mut by_agent: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for t in &self.turns {
            by_agent.entry(&self.agents[t.agent as usize]).or_default().push(t.latency);
        }
        let mut slowest: Vec<SessionLatency> = by_session(&self.calls_seen, self.turns.iter())
            .into_iter()
            .map(|(session, turns)| {
                let summary = Summary::of(turns.iter().map(|t| t.latency).collect());
                SessionLatency {
                    session_id: session.to_owned(),
                    agent: self.agents[turns[0].agent as usize].clone(),
                    turns: turns.len() as u64,
                    p95_ms: summary.p95.unwrap_or(0.0),
                    max_ms: summary.max.unwrap_or(0.0),
                    dominant_component: dominant_component(&turns),
                }
            })
            .collect();
        slowest.sort_by(|a, b| b.p95_ms.total_cmp(&a.p95_ms).then_with(|| a.session_id.cmp(&b.session_id)));
        slowest.truncate(5);

        let tool_calls = self.values(m::TOOL_CALLS).sum::<f64>() as u64;
        let tool_failures = self.values(m::TOOL_CALL_FAILURES).sum::<f64>() as u64;
        let mut failures_by_tool: Vec<(String, u64)> = self.failures_by_tool.clone().into_iter().collect();
        failures_by_tool.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        let costs: Vec<f64> = self.values(m::CALL_COST).collect();
        let alarms = alarms::DEFAULTS.iter().map(|spec| self.evaluate(spec)).collect();

        Report {
            counts: Counts { sessions: self.calls_seen.len() as u64, ..stats.counts() },
            rejected_by_reason: stats.rejected.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            skipped_by_reason: stats.skipped.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            first_event: self.first.map(timefmt::iso),
            last_event: self.last.map(timefmt::iso),
            latency_ms: Summary::of(latencies),
            latency_reported: self.reported,
            latency_computed: self.computed,
            components_ms: COMPONENTS.iter().map(|(name, spec)| (*name, Summary::of(self.values(*spec).collect()))).collect(),
            target: TargetCompliance {
                target_ms: config.latency_target_ms,
                within_target: complete - over,
                over_target: over,
                compliance_pct: (complete > 0).then(|| round2(100.0 * (complete - over) as f64 / complete as f64)),
            },
            agents: by_agent
                .into_iter()
                .map(|(agent, values)| AgentSummary {
                    agent: agent.to_owned(),
                    turns: values.len() as u64,
                    latency_ms: Summary::of(values),
                })
                .collect(),
            slowest_sessions: slowest,
            cost: CostSummary {
                calls: costs.len() as u64,
                total_usd: voicelake_shared::cost::round_cost(costs.iter().sum()),
                per_call_usd: Summary::of(costs),
            },
            tools: ToolSummary {
                calls: tool_calls,
                failures: tool_failures,
                success_pct: (tool_calls > 0).then(|| round2(100.0 * (tool_calls - tool_failures) as f64 / tool_calls as f64)),
                failures_by_tool,
            },
            alarms,
        }
    }

    /// Observations of `spec` by period start, for one agent or all.
    fn buckets(&self, spec: MetricSpec, period_ms: i64, agent: Option<u32>) -> BTreeMap<i64, Vec<f64>> {
        let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for o in self.observations[spec.index].iter().filter(|o| agent.is_none_or(|a| o.agent == a)) {
            buckets.entry(o.time().div_euclid(period_ms) * period_ms).or_default().push(o.value);
        }
        buckets
    }

    /// The alarm's statistic for every period from the first to the last with data (`None` where a
    /// period has none), as CloudWatch would evaluate it on event time.
    fn alarm_series(&self, spec: &AlarmSpec) -> Vec<(i64, Option<f64>)> {
        let period = i64::from(spec.period_seconds) * 1000;
        let metric = m::ALL.iter().find(|x| x.name == spec.metric).copied().unwrap_or_else(|| unreachable!("{} is published", spec.metric));
        let values: BTreeMap<i64, Option<f64>> = match spec.statistic {
            Statistic::ToolSuccessPercent => {
                tool_success(&self.buckets(m::TOOL_CALLS, period, None), &self.buckets(m::TOOL_CALL_FAILURES, period, None))
            }
            Statistic::P95 => self.buckets(metric, period, None).into_iter().map(|(t, v)| (t, statistic(Stat::P95, v))).collect(),
            Statistic::Average => self.buckets(metric, period, None).into_iter().map(|(t, v)| (t, statistic(Stat::Average, v))).collect(),
            Statistic::Sum => self.buckets(metric, period, None).into_iter().map(|(t, v)| (t, statistic(Stat::Sum, v))).collect(),
        };
        let mut series = Vec::new();
        if let (Some(&first), Some(&last)) = (values.keys().next(), values.keys().last()) {
            let mut t = first;
            while t <= last {
                series.push((t, values.get(&t).copied().flatten()));
                t += period;
            }
        }
        series
    }

    /// Evaluates an alarm over consecutive periods of event time, as CloudWatch would have.
    fn evaluate(&self, spec: &AlarmSpec) -> AlarmOutcome {
        let period = i64::from(spec.period_seconds) * 1000;
        let series = self.alarm_series(spec);
        let breaching: Vec<bool> = series.iter().map(|(_, v)| v.is_some_and(|v| spec.breaches(v))).collect();
        let worst = worst_period(spec, &series, |_| true);
        let detail = worst.filter(|_| spec.metric == m::TURN_LATENCY.name).map(|(start, _)| {
            let in_period = |spec: MetricSpec| {
                let v = self.buckets(spec, period, None).remove(&start).unwrap_or_default();
                statistic(Stat::P95, v).map_or("-".to_owned(), |p| format!("{p:.0}"))
            };
            format!(
                "p95 in that period: eou {} ms, llm ttft {} ms, tts ttfb {} ms",
                in_period(m::EOU_DELAY),
                in_period(m::LLM_TTFT),
                in_period(m::TTS_TTFB)
            )
        });
        let would_fire = crate::alarms::would_fire(spec, &breaching);
        let diagnosis =
            worst.filter(|_| would_fire).map(|(start, _)| self.diagnose(spec, Window { start_ms: start, end_ms: start + period }));
        AlarmOutcome {
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
        }
    }

    /// Observations of `spec` in `window`, for one agent or all.
    fn in_window(&self, spec: MetricSpec, window: Window, agent: Option<u32>) -> Vec<f64> {
        self.observations[spec.index]
            .iter()
            .filter(|o| window.contains(o.time()) && agent.is_none_or(|a| o.agent == a))
            .map(|o| o.value)
            .collect()
    }

    /// The alarm's statistic over `window`, as CloudWatch would compute it over one period that long.
    fn alarm_value(&self, spec: &AlarmSpec, window: Window, agent: Option<u32>) -> Option<f64> {
        let metric = m::ALL.iter().find(|x| x.name == spec.metric).copied()?;
        match spec.statistic {
            Statistic::ToolSuccessPercent => success_percent(
                self.in_window(m::TOOL_CALLS, window, agent).iter().sum(),
                self.in_window(m::TOOL_CALL_FAILURES, window, agent).iter().sum(),
            ),
            Statistic::P95 => statistic(Stat::P95, self.in_window(metric, window, agent)),
            Statistic::Average => statistic(Stat::Average, self.in_window(metric, window, agent)),
            Statistic::Sum => statistic(Stat::Sum, self.in_window(metric, window, agent)),
        }
    }

    /// The alarm's statistic of the worst of the periods in `window`.
    fn worst_period_value(&self, spec: &AlarmSpec, window: Window) -> Option<f64> {
        worst_period(spec, &self.alarm_series(spec), |start| window.contains(start)).map(|(_, v)| v)
    }

    fn snapshot(&self, spec: &AlarmSpec, window: Window) -> Snapshot {
        let mut snapshot = Snapshot::empty(window);
        snapshot.value = self.worst_period_value(spec, window);
        for (i, agent) in self.agents.iter().enumerate().filter(|(_, a)| !a.is_empty()) {
            let id = Some(i as u32);
            let components = COMPONENTS.map(|(_, c)| statistic(Stat::P95, self.in_window(c, window, id)));
            let value = self.alarm_value(spec, window, id);
            if value.is_some() || components.iter().any(Option::is_some) {
                snapshot.agents.insert(agent.clone(), AgentSnapshot { value, components });
            }
        }
        for (t, model, cost) in &self.spend {
            if window.contains(*t) {
                *snapshot.cost_by_model.entry(model.clone()).or_default() += cost;
            }
        }
        snapshot
    }

    /// The evidence of a breach in `window`, as the replay holds it, diagnosed.
    fn diagnose(&self, spec: &AlarmSpec, window: Window) -> Diagnosis {
        let hour_before = Window { start_ms: window.start_ms - 3_600_000, end_ms: window.start_ms };
        let baselines = vec![self.snapshot(spec, hour_before), self.snapshot(spec, hour_before.earlier(86_400_000))];
        let mut calls: BTreeMap<String, Call> = by_session(&self.calls_seen, self.turns.iter().filter(|t| window.contains(t.time)))
            .into_iter()
            .map(|(session, turns)| {
                let call = Call {
                    session_id: session.to_owned(),
                    agent: self.agents[turns[0].agent as usize].clone(),
                    p95_ms: Summary::of(turns.iter().map(|t| t.latency).collect()).p95,
                    dominant_component: dominant_component(&turns),
                    ..Call::default()
                };
                (session.to_owned(), call)
            })
            .collect();
        for c in self.calls.iter().filter(|c| window.contains(c.time)) {
            let call = calls.entry(c.session.clone()).or_insert_with(|| Call {
                session_id: c.session.clone(),
                agent: c.agent.clone(),
                ..Call::default()
            });
            call.cost_usd = c.cost_usd;
            call.failed_tool_calls = c.failed_tool_calls;
        }
        let calls = calls.into_values().collect();
        let mut tools: BTreeMap<&str, BTreeMap<Option<&str>, u64>> = BTreeMap::new();
        for (_, tool, error) in self.tool_failures.iter().filter(|(t, ..)| window.contains(*t)) {
            *tools.entry(tool).or_default().entry(error.as_deref()).or_default() += 1;
        }
        let tool_failures = tools
            .into_iter()
            .map(|(tool, errors)| ToolFailures {
                tool: tool.to_owned(),
                failures: errors.values().sum(),
                most_common_error: errors
                    .iter()
                    .filter_map(|(e, n)| e.map(|e| (e, *n)))
                    .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
                    .map(|(e, _)| e.to_owned()),
            })
            .collect();
        let mut reasons: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
        for (_, reason, raw) in self.rejects.iter().filter(|(t, ..)| window.contains(*t)) {
            reasons.entry(reason).or_insert((0, raw)).0 += 1;
        }
        let rejects = reasons
            .into_iter()
            .map(|(reason, (count, raw))| RejectReason {
                reason: reason.to_owned(),
                count,
                example: voicelake_shared::rows::truncate_utf8(raw, 300).to_owned(),
            })
            .collect();
        diagnosis::diagnose(&Evidence {
            alarm: spec,
            breach: self.snapshot(spec, window),
            baselines,
            calls,
            tool_failures,
            rejects,
            error_lines: Vec::new(),
            missing: Vec::new(),
        })
    }

    /// The dashboard's charts ([`views::DASHBOARD`]) computed from the replayed observations.
    pub fn charts(&self, config: &Config) -> Charts {
        let span = self.first.zip(self.last);
        let charts = views::charts().map(|chart| self.chart(chart, config)).collect();
        Charts { span, calls_ended: self.observations[m::SESSIONS.index].len() as u64, charts }
    }

    fn chart(&self, chart: &Chart, config: &Config) -> ChartData {
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
                    let b = self.buckets(metric, period, None).into_iter().map(|(t, v)| (t, statistic(stat, v))).collect();
                    series.push(SeriesData { label: label.to_owned(), axis, points: points(b) });
                }
                Series::PerAgent { metric, stat } => {
                    let mut agents: Vec<(usize, &String)> = self.agents.iter().enumerate().filter(|(_, a)| !a.is_empty()).collect();
                    agents.sort_by(|a, b| a.1.cmp(b.1));
                    for (i, agent) in agents {
                        let b: BTreeMap<i64, Option<f64>> =
                            self.buckets(metric, period, Some(i as u32)).into_iter().map(|(t, v)| (t, statistic(stat, v))).collect();
                        if !b.is_empty() {
                            series.push(SeriesData { label: agent.clone(), axis: Axis::Left, points: points(b) });
                        }
                    }
                }
                Series::ToolSuccessPercent => {
                    let b = tool_success(&self.buckets(m::TOOL_CALLS, period, None), &self.buckets(m::TOOL_CALL_FAILURES, period, None));
                    series.push(SeriesData { label: s.label().to_owned(), axis: Axis::Left, points: points(b) });
                }
                Series::Aws { .. } => unreachable!("not local"),
            }
        }
        let thresholds = chart
            .thresholds
            .iter()
            .filter_map(|t| {
                let alarm = alarms::DEFAULTS.iter().find(|a| a.parameter == t.parameter)?;
                Some(ThresholdLine { label: t.label.to_owned(), value: alarm.threshold })
            })
            .chain(
                // Locally the target (--target-ms) may differ from the alarm's default threshold.
                (chart.id == "turn-latency")
                    .then_some(config.latency_target_ms)
                    .filter(|target| alarms::DEFAULTS.iter().all(|a| a.metric != m::TURN_LATENCY.name || a.threshold != *target))
                    .map(|target| ThresholdLine { label: "latency target".to_owned(), value: target }),
            )
            .collect();
        let alarm_periods = chart
            .alarm
            .and_then(|id| alarms::DEFAULTS.iter().find(|a| a.id == id))
            .map(|spec| {
                let series = self.alarm_series(spec);
                let breaching: Vec<bool> = series.iter().map(|(_, v)| v.is_some_and(|v| spec.breaches(v))).collect();
                crate::alarms::firing_periods(spec, &breaching).into_iter().map(|i| series[i].0).collect()
            })
            .unwrap_or_default();
        ChartData {
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
        }
    }
}

/// A statistic of one period's observations, as CloudWatch computes it (percentiles nearest-rank).
fn statistic(stat: Stat, mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match stat.percentile() {
        Some(p) => {
            values.sort_by(f64::total_cmp);
            percentile(&values, p)?
        }
        None => match stat {
            Stat::Sum => values.iter().sum(),
            Stat::Average => values.iter().sum::<f64>() / values.len() as f64,
            Stat::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            _ => unreachable!("percentiles are handled above"),
        },
    })
}

/// `100 × (1 − failures / calls)` per period, where there were calls: the tool alarm's metric math.
fn tool_success(calls: &BTreeMap<i64, Vec<f64>>, failures: &BTreeMap<i64, Vec<f64>>) -> BTreeMap<i64, Option<f64>> {
    calls.iter().map(|(t, c)| (*t, success_percent(c.iter().sum(), failures.get(t).map_or(0.0, |f| f.iter().sum())))).collect()
}

/// Tool success as the alarm's metric math computes it: `100 × (1 − failures / calls)`.
fn success_percent(calls: f64, failures: f64) -> Option<f64> {
    (calls > 0.0).then(|| 100.0 * (1.0 - failures / calls))
}

/// The worst `(period start, value)` of an alarm series among the periods `keep` admits.
fn worst_period(spec: &AlarmSpec, series: &[(i64, Option<f64>)], keep: impl Fn(i64) -> bool) -> Option<(i64, f64)> {
    series.iter().filter(|(t, _)| keep(*t)).filter_map(|(t, v)| v.map(|v| (*t, v))).max_by(|a, b| spec.cmp_badness(a.1, b.1))
}

/// Turns grouped by call, in session id order.
fn by_session<'t>(names: &'t Names, turns: impl Iterator<Item = &'t TurnPoint>) -> BTreeMap<&'t str, Vec<&'t TurnPoint>> {
    let mut calls: BTreeMap<&str, Vec<&TurnPoint>> = BTreeMap::new();
    for t in turns.filter(|t| t.session != NO_SESSION) {
        calls.entry(names.names[t.session as usize].as_str()).or_default().push(t);
    }
    calls
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

fn dominant_component(turns: &[&TurnPoint]) -> Option<&'static str> {
    let mean = |f: fn(&TurnPoint) -> Option<f64>| {
        let v: Vec<f64> = turns.iter().filter_map(|t| f(t)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    voicelake_shared::diagnosis::dominant_component(mean(TurnPoint::eou), mean(TurnPoint::ttft), mean(TurnPoint::ttfb))
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
        let _ = writeln!(s, "\nlatency (ms)            count     p50     p95     p99     max");
        for (name, x) in self.latency_rows() {
            let [p50, p95, p99, max] = [x.p50, x.p95, x.p99, x.max].map(fmt_ms);
            let _ = writeln!(s, "  {name:<20} {:>7} {p50:>7} {p95:>7} {p99:>7} {max:>7}", x.count);
        }
        let _ = writeln!(
            s,
            "  ({} reported by agents, {} computed as eou + llm ttft + tts ttfb)",
            self.latency_reported, self.latency_computed
        );
        let t = &self.target;
        let _ = writeln!(
            s,
            "\ntarget {} ms: {} within, {} over, compliance {}",
            t.target_ms,
            t.within_target,
            t.over_target,
            t.compliance_pct.map_or("-".into(), |p| format!("{p}%"))
        );
        if !self.slowest_sessions.is_empty() {
            let _ = writeln!(s, "\nslowest sessions (by p95)");
            for x in &self.slowest_sessions {
                let _ = writeln!(
                    s,
                    "  {:<28} {:<16} turns {:>3}  p95 {:>6.0} ms  max {:>6.0} ms  mostly {}",
                    x.session_id,
                    x.agent,
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
            "\ncost: {} calls, total ${:.4}, per call p50 ${} p95 ${} max ${}",
            c.calls,
            c.total_usd,
            c.per_call_usd.p50.map_or("-".into(), |v| format!("{v:.4}")),
            c.per_call_usd.p95.map_or("-".into(), |v| format!("{v:.4}")),
            c.per_call_usd.max.map_or("-".into(), |v| format!("{v:.4}"))
        );
        let tl = &self.tools;
        let _ = write!(
            s,
            "tools: {} calls, {} failed, success {}",
            tl.calls,
            tl.failures,
            tl.success_pct.map_or("-".into(), |p| format!("{p}%"))
        );
        if !tl.failures_by_tool.is_empty() {
            let worst: Vec<String> = tl.failures_by_tool.iter().take(3).map(|(n, c)| format!("{n} {c}")).collect();
            let _ = write!(s, " (failures: {})", worst.join(", "));
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
                let _ = writeln!(s, "  {:<30} {d}", "");
            }
            if let Some(d) = &a.diagnosis {
                let _ = writeln!(s, "  {:<30} {}", "", d.headline);
                if let Some(cause) = &d.cause {
                    let _ = writeln!(s, "  {:<30} cause: {cause}", "");
                }
                if !d.worst_sessions.is_empty() {
                    let _ = writeln!(s, "  {:<30} worst calls: {}", "", d.worst_sessions.join(", "));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
