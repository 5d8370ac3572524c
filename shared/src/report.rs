//! The local latency report: what `voicelake replay` prints.
//!
//! Percentiles are nearest-rank over the exact values (the smallest value with at least p% of the
//! values at or below it). CloudWatch estimates percentiles from the same values, so the two agree
//! closely but not always to the millisecond.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use crate::alarms::{self, AlarmSpec, Statistic};
use crate::config::Config;
use crate::metrics::m;
use crate::pipeline::{BatchOutput, BatchStats};
use crate::rows::{LatencySource, SessionRecordType};
use crate::timefmt;

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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub events: u64,
    pub turns: u64,
    pub partial_turns: u64,
    pub sessions: u64,
    pub rejected: u64,
    pub skipped: u64,
    pub nulled_values: u64,
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

#[derive(Debug, Clone)]
struct TurnPoint {
    time: i64,
    session: Option<String>,
    agent: String,
    latency: f64,
    over_target: bool,
    eou: Option<f64>,
    ttft: Option<f64>,
    ttfb: Option<f64>,
}

const COMPONENTS: [&str; 4] = ["eou_delay", "transcription_delay", "llm_ttft", "tts_ttfb"];

/// Accumulates batches; [`ReportBuilder::finish`] computes the report.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    stats: BatchStats,
    turns: Vec<TurnPoint>,
    components: [Vec<(i64, f64)>; 4],
    reported: u64,
    computed: u64,
    calls: Vec<(i64, f64)>,
    /// (time, calls, failures) per ended session.
    tools: Vec<(i64, u64, u64)>,
    failures_by_tool: BTreeMap<String, u64>,
    rejects: Vec<i64>,
    first: Option<i64>,
    last: Option<i64>,
}

impl ReportBuilder {
    pub fn add(&mut self, out: &BatchOutput) {
        self.stats.merge(&out.stats);
        let mut see = |t: i64| {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        };
        for row in &out.turns {
            see(row.event_time);
            for (i, v) in [row.eou_delay_ms, row.transcription_delay_ms, row.llm_ttft_ms, row.tts_ttfb_ms].into_iter().enumerate() {
                if let Some(v) = v {
                    self.components[i].push((row.event_time, v));
                }
            }
            if let Some(latency) = row.total_latency_ms {
                match row.latency_source {
                    Some(LatencySource::Reported) => self.reported += 1,
                    _ => self.computed += 1,
                }
                self.turns.push(TurnPoint {
                    time: row.event_time,
                    session: row.session_id.clone(),
                    agent: row.agent_name.clone(),
                    latency,
                    over_target: row.over_target == Some(true),
                    eou: row.eou_delay_ms,
                    ttft: row.llm_ttft_ms,
                    ttfb: row.tts_ttfb_ms,
                });
            }
        }
        for s in &out.sessions {
            see(s.event_time);
            if s.record_type != SessionRecordType::Analytics {
                continue;
            }
            if let Some(cost) = s.estimated_cost_usd {
                self.calls.push((s.event_time, cost));
            }
            self.tools.push((s.event_time, s.tool_call_count as u64, s.tool_failure_count as u64));
            for call in s.tool_calls.iter().filter(|c| c.success == Some(false)) {
                *self.failures_by_tool.entry(call.name.clone()).or_default() += 1;
            }
        }
        for r in &out.rejects {
            see(r.event_time);
            self.rejects.push(r.event_time);
        }
    }

    pub fn finish(self, config: &Config) -> Report {
        let stats = &self.stats;
        let latencies: Vec<f64> = self.turns.iter().map(|t| t.latency).collect();
        let over = self.turns.iter().filter(|t| t.over_target).count() as u64;
        let complete = self.turns.len() as u64;

        let mut by_agent: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut by_session: HashMap<&str, Vec<&TurnPoint>> = HashMap::new();
        for t in &self.turns {
            by_agent.entry(&t.agent).or_default().push(t.latency);
            if let Some(s) = &t.session {
                by_session.entry(s).or_default().push(t);
            }
        }
        let mut slowest: Vec<SessionLatency> = by_session
            .into_iter()
            .map(|(session, turns)| {
                let summary = Summary::of(turns.iter().map(|t| t.latency).collect());
                SessionLatency {
                    session_id: session.to_owned(),
                    agent: turns[0].agent.clone(),
                    turns: turns.len() as u64,
                    p95_ms: summary.p95.unwrap_or(0.0),
                    max_ms: summary.max.unwrap_or(0.0),
                    dominant_component: dominant_component(&turns),
                }
            })
            .collect();
        slowest.sort_by(|a, b| b.p95_ms.total_cmp(&a.p95_ms).then_with(|| a.session_id.cmp(&b.session_id)));
        slowest.truncate(5);

        let tool_calls: u64 = self.tools.iter().map(|t| t.1).sum();
        let tool_failures: u64 = self.tools.iter().map(|t| t.2).sum();
        let mut failures_by_tool: Vec<(String, u64)> = self.failures_by_tool.clone().into_iter().collect();
        failures_by_tool.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        let costs: Vec<f64> = self.calls.iter().map(|c| c.1).collect();
        let alarms = alarms::DEFAULTS.iter().map(|spec| self.evaluate(spec)).collect();

        Report {
            events: stats.events_in,
            turns: stats.turns,
            partial_turns: stats.partial_turns,
            sessions: stats.sessions,
            rejected: stats.rejected_total(),
            skipped: stats.skipped_total(),
            nulled_values: stats.nulled_values,
            rejected_by_reason: stats.rejected.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            skipped_by_reason: stats.skipped.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            first_event: self.first.map(timefmt::iso),
            last_event: self.last.map(timefmt::iso),
            latency_ms: Summary::of(latencies),
            latency_reported: self.reported,
            latency_computed: self.computed,
            components_ms: COMPONENTS
                .iter()
                .zip(&self.components)
                .map(|(name, values)| (*name, Summary::of(values.iter().map(|v| v.1).collect())))
                .collect(),
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
                total_usd: crate::cost::round_cost(costs.iter().sum()),
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

    /// Evaluates an alarm over consecutive periods of event time, as CloudWatch would have.
    fn evaluate(&self, spec: &AlarmSpec) -> AlarmOutcome {
        let period = i64::from(spec.period_seconds) * 1000;
        // period start → the statistic's inputs
        let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        let mut push = |t: i64, v: f64| buckets.entry(t.div_euclid(period) * period).or_default().push(v);
        let component = |i: usize| &self.components[i];
        match spec.metric {
            n if n == m::TURN_LATENCY.name => self.turns.iter().for_each(|t| push(t.time, t.latency)),
            n if n == m::LLM_TTFT.name => component(2).iter().for_each(|(t, v)| push(*t, *v)),
            n if n == m::TTS_TTFB.name => component(3).iter().for_each(|(t, v)| push(*t, *v)),
            n if n == m::CALL_COST.name => self.calls.iter().for_each(|(t, v)| push(*t, *v)),
            n if n == m::EVENTS_REJECTED.name => self.rejects.iter().for_each(|t| push(*t, 1.0)),
            n if n == m::TOOL_CALLS.name => {
                // Two values per session, calls then failures, summed per period below.
                self.tools.iter().for_each(|(t, calls, failures)| {
                    push(*t, *calls as f64);
                    push(*t, *failures as f64);
                })
            }
            other => unreachable!("no local evaluation for {other}"),
        }
        let value_of = |values: &mut Vec<f64>| -> Option<f64> {
            match spec.statistic {
                Statistic::P95 => {
                    values.sort_by(f64::total_cmp);
                    percentile(values, 95.0)
                }
                Statistic::Average => Some(values.iter().sum::<f64>() / values.len() as f64),
                Statistic::Sum => Some(values.iter().sum()),
                Statistic::ToolSuccessPercent => {
                    let calls: f64 = values.iter().step_by(2).sum();
                    let failures: f64 = values.iter().skip(1).step_by(2).sum();
                    (calls > 0.0).then(|| 100.0 * (1.0 - failures / calls))
                }
            }
        };
        let mut series: Vec<(i64, Option<f64>)> = Vec::new();
        if let (Some(&first), Some(&last)) = (buckets.keys().next(), buckets.keys().last()) {
            let mut t = first;
            while t <= last {
                series.push((t, buckets.get_mut(&t).and_then(value_of)));
                t += period;
            }
        }
        let breaching: Vec<bool> = series.iter().map(|(_, v)| v.is_some_and(|v| spec.breaches(v))).collect();
        let worst = series.iter().filter_map(|(t, v)| v.map(|v| (*t, v))).max_by(|a, b| {
            let ord = a.1.total_cmp(&b.1);
            match spec.comparison {
                alarms::Comparison::GreaterThanThreshold => ord,
                alarms::Comparison::LessThanThreshold => ord.reverse(),
            }
        });
        let detail = worst.filter(|_| spec.metric == m::TURN_LATENCY.name).map(|(start, _)| {
            let in_period = |i: usize| {
                let mut v: Vec<f64> = self.components[i].iter().filter(|(t, _)| *t >= start && *t < start + period).map(|p| p.1).collect();
                v.sort_by(f64::total_cmp);
                percentile(&v, 95.0).map_or("-".to_owned(), |p| format!("{p:.0}"))
            };
            format!("p95 in that period: eou {} ms, llm ttft {} ms, tts ttfb {} ms", in_period(0), in_period(2), in_period(3))
        });
        AlarmOutcome {
            alarm: spec.id,
            metric: spec.metric,
            threshold: spec.threshold,
            would_fire: alarms::would_fire(spec, &breaching),
            periods_evaluated: series.iter().filter(|(_, v)| v.is_some()).count() as u64,
            periods_breaching: breaching.iter().filter(|b| **b).count() as u64,
            worst_value: worst.map(|w| round2(w.1)),
            worst_period: worst.map(|w| timefmt::iso(w.0)),
            detail,
        }
    }
}

fn dominant_component(turns: &[&TurnPoint]) -> Option<&'static str> {
    let mean = |f: fn(&TurnPoint) -> Option<f64>| {
        let v: Vec<f64> = turns.iter().filter_map(|t| f(t)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    [("eou_delay", mean(|t| t.eou)), ("llm_ttft", mean(|t| t.ttft)), ("tts_ttfb", mean(|t| t.ttfb))]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| n)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

impl Report {
    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "voicelake report");
        let _ = writeln!(
            s,
            "  events {}  turns {} (+{} partial)  sessions {}  skipped {}  rejected {}  nulled values {}",
            self.events, self.turns, self.partial_turns, self.sessions, self.skipped, self.rejected, self.nulled_values
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
        let mut line = |name: &str, x: &Summary| {
            let _ = writeln!(
                s,
                "  {name:<20} {:>7} {:>7} {:>7} {:>7} {:>7}",
                x.count,
                fmt_ms(x.p50),
                fmt_ms(x.p95),
                fmt_ms(x.p99),
                fmt_ms(x.max)
            );
        };
        line("turn latency", &self.latency_ms);
        for (name, summary) in &self.components_ms {
            line(name, summary);
        }
        for a in &self.agents {
            line(&format!("agent {}", a.agent), &a.latency_ms);
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
