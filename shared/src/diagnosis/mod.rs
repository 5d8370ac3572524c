//! What an alarm's breach means, said the way an on-call engineer needs it: what breached, by how
//! much, since when and for which agent; the component whose p95 moved most against a baseline
//! that was itself healthy; the worst calls of the window; for cost, tools and rejects, what grew.
//!
//! Pure: the local report feeds it the replayed observations of the worst period, and a function
//! answering a real alarm feeds it what CloudWatch returns for the breach window. Both get the same
//! answer from the same numbers.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::alarms::{AlarmKind, AlarmSpec};
use crate::metrics::{MetricSpec, metric};
use crate::timefmt;

mod failures;
mod wording;

pub use failures::{FailureFact, ProviderFailures, group_failures};
pub use wording::label;

use failures::{explain_failures, most_failing};
use wording::{headline, ms, times};

/// The components of turn latency, by the names the report and the diagnosis use.
pub const COMPONENTS: [(&str, MetricSpec); 5] = [
    ("eou_delay", metric::EOU_DELAY),
    ("transcription_delay", metric::TRANSCRIPTION_DELAY),
    ("llm_ttft", metric::LLM_TTFT),
    ("tts_ttfb", metric::TTS_TTFB),
    ("on_user_turn_completed_delay", metric::HOOK_DELAY),
];

/// A span of event time, `[start_ms, end_ms)`, epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    /// The window of the same length that ends where this one starts.
    pub fn before(self) -> Window {
        Window { start_ms: 2 * self.start_ms - self.end_ms, end_ms: self.start_ms }
    }

    /// This window moved back by `ms`.
    pub fn earlier(self, ms: i64) -> Window {
        Window { start_ms: self.start_ms - ms, end_ms: self.end_ms - ms }
    }

    pub fn contains(self, t: i64) -> bool {
        (self.start_ms..self.end_ms).contains(&t)
    }
}

/// One agent over a window: the alarm's statistic and each component's p95 (in [`COMPONENTS`]
/// order), `None` where there was no data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentSnapshot {
    pub value: Option<f64>,
    pub components: [Option<f64>; COMPONENTS.len()],
}

/// What was measured over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub window: Window,
    /// The alarm's statistic over all agents: of the breach period, or for a baseline of its
    /// worst period, so that a baseline counts as healthy only when none of its periods breached.
    pub value: Option<f64>,
    pub agents: BTreeMap<String, AgentSnapshot>,
    /// Spend by `provider/model` (cost alarms).
    pub cost_by_model: BTreeMap<String, f64>,
}

impl Snapshot {
    pub fn empty(window: Window) -> Snapshot {
        Snapshot { window, value: None, agents: BTreeMap::new(), cost_by_model: BTreeMap::new() }
    }
}

/// One call of the breach window: what it measured there.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Call {
    pub session_id: String,
    pub agent: String,
    /// p95 of its turns in the window.
    pub p95_ms: Option<f64>,
    /// The component with the largest mean share of the call's turn latency.
    pub dominant_component: Option<&'static str>,
    /// Its estimated cost, when it ended in the window.
    pub cost_usd: Option<f64>,
    pub failed_tool_calls: u64,
}

/// The calls an alarm is about, worst first: the slowest for latency, the costliest for cost, those
/// with failed tools for tool success. Other alarms are not about calls.
fn worst_calls(alarm: &AlarmSpec, calls: &[Call]) -> Vec<Call> {
    let key: fn(&Call) -> Option<f64> = match alarm.kind {
        AlarmKind::TurnLatency | AlarmKind::ComponentLatency => |c| c.p95_ms,
        AlarmKind::Cost => |c| c.cost_usd,
        AlarmKind::ToolSuccess => |c| (c.failed_tool_calls > 0).then_some(c.failed_tool_calls as f64),
        AlarmKind::Rejects | AlarmKind::ProviderFailures | AlarmKind::SessionsClosedByError | AlarmKind::WorkerMemory => |_| None,
    };
    let mut worst: Vec<(f64, &Call)> = calls.iter().filter_map(|c| key(c).map(|k| (k, c))).collect();
    worst.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.session_id.cmp(&b.1.session_id)));
    worst.into_iter().take(WORST_CALLS).map(|(_, c)| c.clone()).collect()
}

/// A failing tool of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolFailures {
    pub tool: String,
    pub failures: u64,
    /// The error it failed with most often, when it said one.
    pub most_common_error: Option<String>,
}

/// A reject reason of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectSample {
    pub reason: String,
    pub count: u64,
    /// One raw line, as kept in the rejects table.
    pub example: String,
}

/// Everything known about a breach. What could not be gathered stays empty and is named in
/// `missing`, so that the diagnosis says what it does not know instead of guessing.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence<'a> {
    pub alarm: &'a AlarmSpec,
    pub breach: Snapshot,
    /// Candidate baselines, preferred first: the hour before, then that hour a day earlier
    /// (used when the hour before was also breaching).
    pub baselines: Vec<Snapshot>,
    /// Calls of the breach window, any order.
    pub calls: Vec<Call>,
    pub tool_failures: Vec<ToolFailures>,
    pub rejects: Vec<RejectSample>,
    /// The ingest function's last error lines (pipeline alarms).
    pub error_lines: Vec<String>,
    /// Provider failures of the breach window, by kind, provider and agent.
    pub failures: Vec<ProviderFailures>,
    /// Providers that served turns in the breach window, by kind (`tts` → `cartesia`), for each agent.
    pub serving: BTreeMap<(String, String), Vec<String>>,
    pub missing: Vec<String>,
}

/// How many calls a diagnosis names.
pub const WORST_CALLS: usize = 5;

/// What the breach means.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// What breached, by how much, since when, for which agent.
    pub headline: String,
    /// Why, in one sentence, when the evidence says.
    pub cause: Option<String>,
    /// For latency alarms: `eou_delay`, `transcription_delay`, `llm_ttft`, `tts_ttfb` or
    /// `on_user_turn_completed_delay`.
    pub component: Option<&'static str>,
    pub agent: Option<String>,
    /// The component's p95 for that agent in the breach window, and what it is compared with.
    pub value_ms: Option<f64>,
    pub baseline_ms: Option<f64>,
    pub against: Option<Against>,
    /// RFC 3339.
    pub window_start: String,
    pub window_end: String,
    pub baseline_start: Option<String>,
    pub baseline_end: Option<String>,
    /// Session ids, worst first.
    pub worst_sessions: Vec<String>,
    pub worst_calls: Vec<Call>,
    /// Cost alarms: the `provider/model` whose spend grew most.
    pub cost_driver: Option<String>,
    pub failing_tools: Vec<ToolFailures>,
    pub top_rejects: Vec<RejectSample>,
    pub error_lines: Vec<String>,
    /// Provider alarms: the failing model's kind and provider, the first failure (RFC 3339),
    /// failure events by error class (most first), the provider now serving in its place, and
    /// the sessions LiveKit closed over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_classes: Vec<(String, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_closed: Option<u64>,
    /// What could not be gathered.
    pub missing: Vec<String>,
}

/// The first baseline whose alarm value was there and healthy: comparing with a window that was
/// already degraded would hide the component that degraded.
fn healthy_baseline<'s>(alarm: &AlarmSpec, baselines: &'s [Snapshot]) -> Option<&'s Snapshot> {
    baselines.iter().find(|b| b.value.is_some_and(|v| !alarm.breaches(v)))
}

/// What a component's p95 is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Against {
    /// The same agent in a healthy window before.
    Earlier,
    /// The other agents in the breach window (the median of theirs): one agent drifting away.
    OtherAgents,
}

/// The (agent, component) that moved most: the largest rise of a component's p95 for one agent
/// against its baseline, the same agent earlier when a healthy window is known, else the other
/// agents at the same time. With neither, the largest p95 of the window stands in, and the cause
/// says so.
struct Moved<'a> {
    agent: &'a str,
    component: usize,
    value: f64,
    baseline: Option<(f64, Against)>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn most_moved<'a>(breach: &'a Snapshot, baseline: Option<&Snapshot>, only: Option<usize>) -> Option<Moved<'a>> {
    let mut candidates = Vec::new();
    for (agent, now) in &breach.agents {
        for (i, value) in now.components.iter().enumerate() {
            if only.is_some_and(|c| c != i) {
                continue;
            }
            let Some(value) = *value else { continue };
            let earlier = baseline.and_then(|b| b.agents.get(agent)).and_then(|a| a.components[i]).map(|b| (b, Against::Earlier));
            let others = || {
                median(breach.agents.iter().filter(|(a, _)| *a != agent).filter_map(|(_, s)| s.components[i]).collect())
                    .map(|b| (b, Against::OtherAgents))
            };
            candidates.push(Moved { agent, component: i, value, baseline: earlier.or_else(others) });
        }
    }
    let rise = |m: &Moved| m.baseline.map(|(b, _)| m.value - b);
    let with_baseline = candidates.iter().filter(|m| rise(m).is_some_and(|r| r > 0.0)).count();
    if with_baseline > 0 {
        candidates.retain(|m| rise(m).is_some_and(|r| r > 0.0));
        candidates.sort_by(|a, b| rise(b).unwrap().total_cmp(&rise(a).unwrap()).then_with(|| a.agent.cmp(b.agent)));
    } else {
        candidates.sort_by(|a, b| b.value.total_cmp(&a.value).then_with(|| a.agent.cmp(b.agent)));
    }
    candidates.into_iter().next()
}

/// The agent whose own alarm statistic breached most, for alarms that are not about one component.
fn worst_agent<'a>(alarm: &AlarmSpec, breach: &'a Snapshot) -> Option<&'a str> {
    let mut agents: Vec<(&str, f64)> = breach.agents.iter().filter_map(|(a, s)| s.value.map(|v| (a.as_str(), v))).collect();
    agents.sort_by(|a, b| alarm.cmp_badness(b.1, a.1).then_with(|| a.0.cmp(b.0)));
    agents.first().map(|(a, _)| *a)
}

/// Diagnoses a breach from what is known of it.
pub fn diagnose(e: &Evidence) -> Diagnosis {
    let alarm = e.alarm;
    let baseline = healthy_baseline(alarm, &e.baselines);
    let mut missing = e.missing.clone();
    if baseline.is_none() && !e.baselines.is_empty() {
        missing.push("a healthy baseline (every candidate window was breaching or had no data)".into());
    }
    let mut d = Diagnosis::of_window(e.breach.window, baseline, worst_calls(alarm, &e.calls));
    if alarm.is_latency() {
        explain_latency(&mut d, e, baseline, &mut missing);
    } else if alarm.is_failure() {
        match most_failing(&e.failures) {
            Some(f) => explain_failures(&mut d, f, e),
            None => missing.push("the failure lines of the breach window".into()),
        }
    } else {
        d.agent = worst_agent(alarm, &e.breach).map(str::to_owned);
    }
    if alarm.kind == AlarmKind::Cost {
        explain_cost(&mut d, e, baseline, &mut missing);
    }
    explain_tools(&mut d, e);
    explain_rejects(&mut d, e);
    d.error_lines = e.error_lines.clone();
    d.headline = headline(alarm, &e.breach, baseline, d.agent.as_deref());
    missing.dedup();
    d.missing = missing;
    d
}

impl Diagnosis {
    /// Nothing explained yet: the breach window, its baseline's and the worst calls.
    fn of_window(window: Window, baseline: Option<&Snapshot>, calls: Vec<Call>) -> Diagnosis {
        Diagnosis {
            window_start: timefmt::iso(window.start_ms),
            window_end: timefmt::iso(window.end_ms),
            baseline_start: baseline.map(|b| timefmt::iso(b.window.start_ms)),
            baseline_end: baseline.map(|b| timefmt::iso(b.window.end_ms)),
            worst_sessions: calls.iter().map(|c| c.session_id.clone()).collect(),
            worst_calls: calls,
            headline: String::new(),
            cause: None,
            component: None,
            agent: None,
            value_ms: None,
            baseline_ms: None,
            against: None,
            cost_driver: None,
            failing_tools: Vec::new(),
            top_rejects: Vec::new(),
            error_lines: Vec::new(),
            kind: None,
            provider: None,
            since: None,
            error_classes: Vec::new(),
            fallback: None,
            sessions_closed: None,
            missing: Vec::new(),
        }
    }
}

/// The component that moved most, for which agent and against what; then the provider failures
/// that coincide with it.
fn explain_latency(d: &mut Diagnosis, e: &Evidence, baseline: Option<&Snapshot>, missing: &mut Vec<String>) {
    if let Some(moved) = most_moved(&e.breach, baseline, e.alarm.component()) {
        let (name, _) = COMPONENTS[moved.component];
        d.component = Some(name);
        d.agent = Some(moved.agent.to_owned());
        d.value_ms = Some(moved.value);
        d.baseline_ms = moved.baseline.map(|(b, _)| b);
        d.against = moved.baseline.map(|(_, against)| against);
        d.cause = Some(match moved.baseline {
            Some((b, Against::Earlier)) if moved.value > b => format!(
                "{} p95 rose from {} to {} (+{}) for {}, the largest rise of any component",
                label(name),
                ms(b),
                ms(moved.value),
                ms(moved.value - b),
                moved.agent
            ),
            Some((b, Against::OtherAgents)) if moved.value > b => format!(
                "{} p95 is {} for {} against {} for the other agents (+{}), the largest gap of any component",
                label(name),
                ms(moved.value),
                moved.agent,
                ms(b),
                ms(moved.value - b)
            ),
            _ => format!(
                "{} p95 is {} for {}, the largest component; no healthy baseline to compare with",
                label(name),
                ms(moved.value),
                moved.agent
            ),
        });
    } else {
        missing.push("component p95s for the breach window".into());
    }
    if let Some(f) = most_failing(&e.failures) {
        // Failures that coincide with a rise: retries and fallbacks cost time before they cost calls.
        let also = format!(
            "{} {} failures of {} ({}) coincide with it{}",
            f.events,
            f.kind,
            f.provider,
            f.agent,
            if f.fell_back { ", and LiveKit fell back from it" } else { "" }
        );
        d.cause = Some(match d.cause.take() {
            Some(cause) => format!("{cause}; {also}"),
            None => also,
        });
    }
}

/// The model whose spend grew most against the baseline.
fn explain_cost(d: &mut Diagnosis, e: &Evidence, baseline: Option<&Snapshot>, missing: &mut Vec<String>) {
    let before = baseline.map(|b| &b.cost_by_model);
    let growth = |model: &str, now: f64| now - before.and_then(|b| b.get(model)).copied().unwrap_or(0.0);
    let driver = e.breach.cost_by_model.iter().max_by(|a, b| growth(a.0, *a.1).total_cmp(&growth(b.0, *b.1)).then_with(|| b.0.cmp(a.0)));
    if let Some((model, now)) = driver {
        let was = before.and_then(|b| b.get(model)).copied();
        d.cause = Some(match was {
            Some(was) => format!("spend on {model} grew from ${was:.4} to ${now:.4} in the window"),
            None => format!("spend on {model} was ${now:.4} in the window, the most of any model"),
        });
        d.cost_driver = Some(model.clone());
    } else {
        missing.push("cost by provider and model".into());
    }
}

/// The tool that failed most, and with what.
fn explain_tools(d: &mut Diagnosis, e: &Evidence) {
    if e.tool_failures.is_empty() {
        return;
    }
    let mut tools = e.tool_failures.clone();
    tools.sort_by(|a, b| b.failures.cmp(&a.failures).then_with(|| a.tool.cmp(&b.tool)));
    let top = &tools[0];
    if d.cause.is_none() {
        d.cause = Some(match &top.most_common_error {
            Some(err) => format!("{} failed {}, most often with: {err}", top.tool, times(top.failures)),
            None => format!("{} failed {}", top.tool, times(top.failures)),
        });
    }
    d.failing_tools = tools;
}

/// The most common reject reasons.
fn explain_rejects(d: &mut Diagnosis, e: &Evidence) {
    if e.rejects.is_empty() {
        return;
    }
    let mut rejects = e.rejects.clone();
    rejects.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    rejects.truncate(3);
    if d.cause.is_none() {
        d.cause = Some(format!("mostly {} ({} lines), for example: {}", rejects[0].reason, rejects[0].count, rejects[0].example));
    }
    d.top_rejects = rejects;
}

/// The component with the largest mean of a call's turns: end-of-utterance delay, the
/// `on_user_turn_completed` hook, LLM time to first token or TTS time to first byte (transcription
/// happens inside the EOU delay).
pub fn dominant_component(
    eou_mean: Option<f64>,
    hook_mean: Option<f64>,
    ttft_mean: Option<f64>,
    ttfb_mean: Option<f64>,
) -> Option<&'static str> {
    [("eou_delay", eou_mean), ("on_user_turn_completed_delay", hook_mean), ("llm_ttft", ttft_mean), ("tts_ttfb", ttfb_mean)]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests;
