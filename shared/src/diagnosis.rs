//! What an alarm's breach means, said the way an on-call engineer needs it: what breached, by how
//! much, since when and for which agent; the component whose p95 moved most against a baseline
//! that was itself healthy; the worst calls of the window; for cost, tools and rejects, what grew.
//!
//! Pure: the local report feeds it the replayed observations of the worst period, and a function
//! answering a real alarm feeds it what CloudWatch returns for the breach window. Both get the same
//! answer from the same numbers.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::alarms::{AlarmKind, AlarmSpec, Comparison, Statistic};
use crate::metrics::{MetricSpec, m};
use crate::timefmt;

/// The components of turn latency, by the names the report and the diagnosis use.
pub const COMPONENTS: [(&str, MetricSpec); 5] = [
    ("eou_delay", m::EOU_DELAY),
    ("transcription_delay", m::TRANSCRIPTION_DELAY),
    ("llm_ttft", m::LLM_TTFT),
    ("tts_ttfb", m::TTS_TTFB),
    ("on_user_turn_completed_delay", m::HOOK_DELAY),
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
pub struct RejectReason {
    pub reason: String,
    pub count: u64,
    /// One raw line, as kept in the rejects table.
    pub example: String,
}

/// One provider's failures in the breach window, for one agent: what the `errors` rows say.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProviderFailures {
    /// `llm`, `stt`, `tts`, `realtime`.
    pub kind: String,
    pub provider: String,
    pub agent: String,
    /// Failure events: retries, fallback switches, all providers failing, sessions closed.
    pub events: u64,
    /// The first failure's time, epoch milliseconds.
    pub first_ms: i64,
    /// Failure events by error class (`http_503`, `timeout`, …).
    pub error_classes: BTreeMap<String, u64>,
    /// Whether a FallbackAdapter switched away from it.
    pub fell_back: bool,
    /// Failure events by session, and whether LiveKit closed that session over it.
    pub sessions: BTreeMap<String, (u64, bool)>,
}

/// What a diagnosis reads of one `errors` row.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureFact {
    pub time: i64,
    pub agent: String,
    pub session: Option<String>,
    pub kind: String,
    pub provider: String,
    pub action: String,
    pub class: Option<String>,
    /// A failure event ([`crate::metrics::failure_observations`] counts it as `ProviderFailures`).
    pub counted: bool,
}

impl FailureFact {
    pub fn of(row: &crate::rows::ErrorRow) -> FailureFact {
        let mut counted = false;
        crate::metrics::failure_observations(row, |spec, _| counted |= spec.index == m::PROVIDER_FAILURES.index);
        FailureFact {
            time: row.event_time,
            agent: row.agent_name.clone(),
            session: row.session_id.clone(),
            kind: row.kind.clone(),
            provider: row.provider.clone(),
            action: row.action.clone(),
            class: row.error_class.clone(),
            counted,
        }
    }

    fn is_close(&self) -> bool {
        self.action == crate::failure::Action::Closed.as_str()
    }
}

/// The failures of a breach window by kind, provider and agent, from its facts; `earlier` (the
/// facts of the hour before it) only says since when each has been failing. Sessions a close names
/// are marked closed in every group that failed them.
pub fn group_failures(
    window: impl IntoIterator<Item = FailureFact>,
    earlier: impl IntoIterator<Item = FailureFact>,
) -> Vec<ProviderFailures> {
    let mut groups: BTreeMap<(String, String, String), ProviderFailures> = BTreeMap::new();
    let mut closed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for f in window {
        if f.is_close()
            && let Some(s) = &f.session
        {
            closed.insert(s.clone());
        }
        // Process lines, and closes no failure before them explains, are not a provider's.
        if !f.counted || f.kind == "unknown" || f.kind == "process" {
            continue;
        }
        let g = groups.entry((f.kind.clone(), f.provider.clone(), f.agent.clone())).or_insert_with(|| ProviderFailures {
            kind: f.kind.clone(),
            provider: f.provider.clone(),
            agent: f.agent.clone(),
            first_ms: f.time,
            ..ProviderFailures::default()
        });
        g.events += 1;
        g.first_ms = g.first_ms.min(f.time);
        g.fell_back |= f.action == crate::failure::Action::Fallback.as_str();
        if let Some(c) = f.class {
            *g.error_classes.entry(c).or_default() += 1;
        }
        if let Some(s) = f.session {
            g.sessions.entry(s).or_default().0 += 1;
        }
    }
    for f in earlier.into_iter().filter(|f| f.counted) {
        if let Some(g) = groups.get_mut(&(f.kind, f.provider, f.agent)) {
            g.first_ms = g.first_ms.min(f.time);
        }
    }
    let mut failures: Vec<ProviderFailures> = groups.into_values().collect();
    for g in &mut failures {
        for (session, (_, was_closed)) in g.sessions.iter_mut() {
            *was_closed = closed.contains(session);
        }
    }
    failures
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
    pub rejects: Vec<RejectReason>,
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
    pub top_rejects: Vec<RejectReason>,
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

fn ms(v: f64) -> String {
    format!("{v:.0} ms")
}

fn amount(alarm: &AlarmSpec, v: f64) -> String {
    match alarm.kind {
        AlarmKind::TurnLatency | AlarmKind::ComponentLatency => ms(v),
        AlarmKind::Cost => format!("${v:.4}"),
        AlarmKind::ToolSuccess | AlarmKind::WorkerMemory => format!("{v:.1}%"),
        AlarmKind::Rejects | AlarmKind::ProviderFailures | AlarmKind::SessionsClosedByError => format!("{v:.0}"),
    }
}

fn hhmm(ms: i64) -> String {
    timefmt::iso(ms).get(11..16).map_or_else(|| timefmt::iso(ms), |t| format!("{t} UTC"))
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
    let window = e.breach.window;
    let baseline = healthy_baseline(alarm, &e.baselines);
    let mut missing = e.missing.clone();
    if baseline.is_none() && !e.baselines.is_empty() {
        missing.push("a healthy baseline (every candidate window was breaching or had no data)".into());
    }

    let calls = worst_calls(alarm, &e.calls);

    let mut d = Diagnosis {
        headline: String::new(),
        cause: None,
        component: None,
        agent: None,
        value_ms: None,
        baseline_ms: None,
        against: None,
        window_start: timefmt::iso(window.start_ms),
        window_end: timefmt::iso(window.end_ms),
        baseline_start: baseline.map(|b| timefmt::iso(b.window.start_ms)),
        baseline_end: baseline.map(|b| timefmt::iso(b.window.end_ms)),
        worst_sessions: calls.iter().map(|c| c.session_id.clone()).collect(),
        worst_calls: calls,
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
    };

    if alarm.is_latency() {
        if let Some(moved) = most_moved(&e.breach, baseline, alarm.component()) {
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
    } else if alarm.is_failure() {
        match most_failing(&e.failures) {
            Some(f) => explain_failures(&mut d, f, e),
            None => missing.push("the failure lines of the breach window".into()),
        }
    } else {
        d.agent = worst_agent(alarm, &e.breach).map(str::to_owned);
    }
    if alarm.is_latency()
        && let Some(f) = most_failing(&e.failures)
    {
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

    if alarm.kind == AlarmKind::Cost {
        let before = baseline.map(|b| &b.cost_by_model);
        let growth = |model: &str, now: f64| now - before.and_then(|b| b.get(model)).copied().unwrap_or(0.0);
        let driver =
            e.breach.cost_by_model.iter().max_by(|a, b| growth(a.0, *a.1).total_cmp(&growth(b.0, *b.1)).then_with(|| b.0.cmp(a.0)));
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

    if !e.tool_failures.is_empty() {
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

    if !e.rejects.is_empty() {
        let mut rejects = e.rejects.clone();
        rejects.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        rejects.truncate(3);
        if d.cause.is_none() {
            d.cause = Some(format!("mostly {} ({} lines), for example: {}", rejects[0].reason, rejects[0].count, rejects[0].example));
        }
        d.top_rejects = rejects;
    }
    d.error_lines = e.error_lines.clone();

    d.headline = headline(alarm, &e.breach, baseline, d.agent.as_deref());
    missing.dedup();
    d.missing = missing;
    d
}

/// The provider with the most failure events (ties: the earliest to fail). A FallbackAdapter's own
/// retries (`fallback_adapter`) and every provider failing (`all`) follow from the providers'
/// failures: a provider is named before them.
fn most_failing(failures: &[ProviderFailures]) -> Option<&ProviderFailures> {
    let real = |f: &ProviderFailures| !matches!(f.provider.as_str(), "fallback_adapter" | "all" | "unknown");
    failures.iter().max_by(|a, b| {
        real(a)
            .cmp(&real(b))
            .then_with(|| a.events.cmp(&b.events))
            .then_with(|| b.first_ms.cmp(&a.first_ms))
            .then_with(|| b.agent.cmp(&a.agent))
    })
}

/// Kind, provider, agent, since when, the error classes, the fallback serving, the calls hit.
fn explain_failures(d: &mut Diagnosis, f: &ProviderFailures, e: &Evidence) {
    d.kind = Some(f.kind.clone());
    d.provider = Some(f.provider.clone());
    d.agent = Some(f.agent.clone());
    d.since = Some(timefmt::iso(f.first_ms));
    let mut classes: Vec<(String, u64)> = f.error_classes.iter().map(|(c, n)| (c.clone(), *n)).collect();
    classes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    d.error_classes = classes;
    let serving = e.serving.get(&(f.agent.clone(), f.kind.clone())).into_iter().flatten();
    d.fallback = serving.filter(|p| !same_provider(p, &f.provider)).min().cloned().filter(|_| f.fell_back);
    let closed = f.sessions.values().filter(|(_, closed)| *closed).count() as u64;
    d.sessions_closed = Some(closed);
    let mut sessions: Vec<(&String, &(u64, bool))> = f.sessions.iter().collect();
    // Calls LiveKit closed first, then by failures.
    sessions.sort_by(|a, b| b.1.1.cmp(&a.1.1).then_with(|| b.1.0.cmp(&a.1.0)).then_with(|| a.0.cmp(b.0)));
    d.worst_sessions = sessions.iter().take(WORST_CALLS).map(|(s, _)| (*s).clone()).collect();
    let classes = d.error_classes.iter().take(3).map(|(c, n)| format!("{c} ×{n}")).collect::<Vec<_>>().join(", ");
    let mut cause = format!("{} {} failed {} for {} since {}", f.kind, f.provider, times(f.events), f.agent, hhmm(f.first_ms));
    if !classes.is_empty() {
        cause.push_str(&format!(" ({classes})"));
    }
    match (&d.fallback, f.fell_back) {
        (Some(next), _) => cause.push_str(&format!("; LiveKit fell back to {next}")),
        (None, true) => cause.push_str("; LiveKit fell back from it"),
        _ => {}
    }
    if closed > 0 {
        cause.push_str(&format!("; {closed} {} closed by the error", if closed == 1 { "call" } else { "calls" }));
    }
    d.cause = Some(cause);
}

/// `ElevenLabs` as LiveKit's metrics name a provider and `elevenlabs` as its plugin's label does;
/// `api.openai.com` and `openai`: one names the other as a whole word.
fn same_provider(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let words = |s: &str| s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    a == b || words(&a).contains(&b) || words(&b).contains(&a)
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

/// A component's name in a sentence.
pub fn label(component: &str) -> &'static str {
    match component {
        "eou_delay" => "end-of-utterance delay",
        "transcription_delay" => "transcription delay",
        "llm_ttft" => "LLM time to first token",
        "tts_ttfb" => "TTS time to first byte",
        "on_user_turn_completed_delay" => "on_user_turn_completed hook (retrieval)",
        _ => "component",
    }
}

/// What the alarm measures, in words.
fn measured(alarm: &AlarmSpec) -> String {
    let what = match alarm.kind {
        AlarmKind::ToolSuccess => return "tool success".into(),
        AlarmKind::TurnLatency => "turn latency",
        AlarmKind::ComponentLatency => alarm.component().map_or(alarm.metric.name, |i| label(COMPONENTS[i].0)),
        AlarmKind::Cost => "cost per call",
        AlarmKind::Rejects => "rejected events",
        AlarmKind::ProviderFailures => "a provider's failures",
        AlarmKind::SessionsClosedByError => "sessions closed by errors",
        AlarmKind::WorkerMemory => "worker memory (% of limit)",
    };
    match alarm.statistic {
        Statistic::P95 => format!("{what} p95"),
        Statistic::Average => format!("{what}, average"),
        _ => what.to_owned(),
    }
}

fn headline(alarm: &AlarmSpec, breach: &Snapshot, baseline: Option<&Snapshot>, agent: Option<&str>) -> String {
    let mut h = format!("{}: {}", alarm.id, measured(alarm));
    match breach.value {
        Some(v) => {
            let over = match alarm.comparison {
                Comparison::GreaterThanThreshold => "above",
                Comparison::LessThanThreshold => "below",
            };
            h.push_str(&format!(" {} {over} the {} threshold", amount(alarm, v), amount(alarm, alarm.threshold)));
            if let Some(b) = baseline.and_then(|b| b.value).filter(|b| *b != 0.0) {
                h.push_str(&format!(" ({:+.0}% on the baseline {})", 100.0 * (v - b) / b, amount(alarm, b)));
            }
        }
        None => h.push_str(" breached"),
    }
    h.push_str(&format!(" since {}", hhmm(breach.window.start_ms)));
    if let Some(agent) = agent {
        h.push_str(&format!(", agent {agent}"));
    }
    h
}

/// "once", "2 times".
fn times(n: impl Into<u64>) -> String {
    match n.into() {
        1 => "once".into(),
        n => format!("{n} times"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::DEFAULTS;

    const T: i64 = 1_795_442_400_000; // 2026-11-23T14:00:00Z
    const HOUR: i64 = 3_600_000;

    fn alarm(id: &str) -> &'static AlarmSpec {
        DEFAULTS.iter().find(|a| a.id == id).unwrap()
    }

    /// Components as (eou, transcription, ttft, ttfb) p95s.
    fn snapshot(window: Window, value: f64, agents: &[(&str, [f64; 4])]) -> Snapshot {
        Snapshot {
            window,
            value: Some(value),
            agents: agents
                .iter()
                .map(|(a, c)| {
                    let total = c[0] + c[2] + c[3];
                    let components = std::array::from_fn(|k| c.get(k).copied());
                    ((*a).to_owned(), AgentSnapshot { value: Some(total), components })
                })
                .collect(),
            cost_by_model: BTreeMap::new(),
        }
    }

    fn evidence<'a>(alarm: &'a AlarmSpec, breach: Snapshot, baselines: Vec<Snapshot>) -> Evidence<'a> {
        Evidence {
            alarm,
            breach,
            baselines,
            calls: vec![],
            tool_failures: vec![],
            rejects: vec![],
            error_lines: vec![],
            failures: vec![],
            serving: BTreeMap::new(),
            missing: vec![],
        }
    }

    const NORMAL: [f64; 4] = [500.0, 200.0, 400.0, 300.0];
    const WINDOW: Window = Window { start_ms: T, end_ms: T + 300_000 };

    #[test]
    fn one_component_degraded_for_one_agent_is_named_with_both_numbers() {
        let breach = snapshot(WINDOW, 1900.0, &[("sales", [510.0, 200.0, 410.0, 1100.0]), ("support", [520.0, 210.0, 390.0, 310.0])]);
        let before = snapshot(WINDOW.before(), 1200.0, &[("sales", NORMAL), ("support", NORMAL)]);
        let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![before]));
        assert_eq!((d.component, d.agent.as_deref()), (Some("tts_ttfb"), Some("sales")));
        assert_eq!((d.value_ms, d.baseline_ms, d.against), (Some(1100.0), Some(300.0), Some(Against::Earlier)));
        assert_eq!((d.window_start.as_str(), d.window_end.as_str()), ("2026-11-23T14:00:00.000Z", "2026-11-23T14:05:00.000Z"));
        assert_eq!(d.baseline_start.as_deref(), Some("2026-11-23T13:55:00.000Z"));
        assert!(d.cause.as_deref().unwrap().contains("from 300 ms to 1100 ms"), "{d:?}");
        assert!(d.headline.contains("1900 ms above the 1500 ms threshold") && d.headline.contains("+58%"), "{}", d.headline);
        assert!(d.headline.contains("since 14:00 UTC, agent sales"), "{}", d.headline);
    }

    #[test]
    fn a_slow_retrieval_hook_is_named_as_the_cause() {
        let hook = |mut s: Snapshot, agent: &str, ms: f64| {
            s.agents.get_mut(agent).unwrap().components[4] = Some(ms);
            s
        };
        let breach = hook(snapshot(WINDOW, 2100.0, &[("support", NORMAL), ("sales", NORMAL)]), "support", 950.0);
        let before = hook(snapshot(WINDOW.before(), 1200.0, &[("support", NORMAL), ("sales", NORMAL)]), "support", 120.0);
        let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![before]));
        assert_eq!((d.component, d.agent.as_deref()), (Some("on_user_turn_completed_delay"), Some("support")));
        let cause = d.cause.as_deref().unwrap();
        assert!(cause.contains("on_user_turn_completed hook (retrieval)") && cause.contains("from 120 ms to 950 ms"), "{cause}");
    }

    #[test]
    fn of_two_degraded_components_the_larger_rise_is_the_cause() {
        let breach = snapshot(WINDOW, 2300.0, &[("support", [900.0, 200.0, 1100.0, 300.0]), ("sales", NORMAL)]);
        let before = snapshot(WINDOW.before(), 1200.0, &[("support", NORMAL), ("sales", NORMAL)]);
        let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![before]));
        // EOU rose 400 ms, LLM ttft 700 ms.
        assert_eq!((d.component, d.agent.as_deref()), (Some("llm_ttft"), Some("support")));
    }

    #[test]
    fn a_regression_only_in_the_hour_before_is_skipped_for_the_day_earlier() {
        // The hour before had slow TTS and was itself breaching; against it, TTS looks healthy now
        // and the EOU rise would be hidden behind it.
        let breach = snapshot(WINDOW, 1800.0, &[("support", [1100.0, 200.0, 400.0, 300.0])]);
        let bad_hour = snapshot(WINDOW.before(), 2000.0, &[("support", [1100.0, 200.0, 400.0, 900.0])]);
        let day_before = snapshot(WINDOW.earlier(24 * HOUR), 1200.0, &[("support", NORMAL)]);
        let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach.clone(), vec![bad_hour.clone(), day_before]));
        assert_eq!((d.component, d.value_ms, d.baseline_ms), (Some("eou_delay"), Some(1100.0), Some(500.0)));
        assert_eq!(d.baseline_start.as_deref(), Some("2026-11-22T14:00:00.000Z"));
        // Only the degraded hour to compare with: no healthy baseline, and the diagnosis says so.
        let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![bad_hour]));
        assert_eq!((d.component, d.baseline_ms), (Some("eou_delay"), None));
        assert!(d.cause.unwrap().contains("no healthy baseline"));
        assert!(d.missing.iter().any(|m| m.contains("healthy baseline")));
    }

    #[test]
    fn no_data_gives_a_headline_and_says_what_is_missing() {
        let mut breach = Snapshot::empty(WINDOW);
        breach.value = Some(1700.0);
        let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![Snapshot::empty(WINDOW.before())]));
        assert_eq!((d.component, d.agent.clone(), d.cause.clone()), (None, None, None));
        assert!(d.headline.starts_with("TurnLatencyP95Alarm: turn latency p95 1700 ms above"), "{}", d.headline);
        assert!(d.missing.iter().any(|m| m.contains("component p95s")), "{:?}", d.missing);
        let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), Snapshot::empty(WINDOW), vec![]));
        assert!(d.headline.contains("breached since 14:00 UTC"), "{}", d.headline);
    }

    #[test]
    fn a_component_alarm_is_diagnosed_on_its_own_component() {
        // EOU rose more, but the TTS alarm is about TTS: the agent is the one whose TTS moved.
        let breach = snapshot(WINDOW, 900.0, &[("sales", [1500.0, 200.0, 400.0, 500.0]), ("support", [500.0, 200.0, 400.0, 950.0])]);
        let before = snapshot(WINDOW.before(), 300.0, &[("sales", NORMAL), ("support", NORMAL)]);
        let d = diagnose(&evidence(alarm("TTSTimeToFirstByteP95Alarm"), breach, vec![before]));
        assert_eq!((d.component, d.agent.as_deref(), d.value_ms), (Some("tts_ttfb"), Some("support"), Some(950.0)));
    }

    #[test]
    fn without_a_healthy_window_the_agent_drifting_from_the_others_is_named() {
        let breach = snapshot(
            WINDOW,
            1900.0,
            &[
                ("sales", [520.0, 200.0, 420.0, 1100.0]),
                ("support", [600.0, 200.0, 450.0, 320.0]),
                ("booking", [560.0, 200.0, 380.0, 280.0]),
            ],
        );
        let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![]));
        assert_eq!((d.component, d.agent.as_deref()), (Some("tts_ttfb"), Some("sales")));
        assert_eq!((d.value_ms, d.baseline_ms, d.against), (Some(1100.0), Some(300.0), Some(Against::OtherAgents)));
        assert!(d.cause.unwrap().contains("1100 ms for sales against 300 ms for the other agents"));
    }

    #[test]
    fn worst_calls_are_named_worst_first() {
        let breach = snapshot(WINDOW, 1900.0, &[("sales", NORMAL)]);
        let mut e = evidence(alarm("TurnLatencyP95Alarm"), breach, vec![]);
        e.calls = (0..8)
            .map(|i| Call {
                session_id: format!("s{i}"),
                agent: "sales".into(),
                p95_ms: Some(f64::from(i * 100)),
                cost_usd: Some(f64::from(10 - i)),
                failed_tool_calls: u64::from(i % 3 == 0),
                ..Call::default()
            })
            .collect();
        let d = diagnose(&e);
        assert_eq!(d.worst_sessions, ["s7", "s6", "s5", "s4", "s3"]);
        e.alarm = alarm("CostPerCallAlarm");
        assert_eq!(diagnose(&e).worst_sessions, ["s0", "s1", "s2", "s3", "s4"]);
        e.alarm = alarm("ToolSuccessRateAlarm");
        assert_eq!(diagnose(&e).worst_sessions, ["s0", "s3", "s6"]);
        e.alarm = alarm("RejectedEventsAlarm");
        assert!(diagnose(&e).worst_sessions.is_empty());
    }

    #[test]
    fn cost_tools_and_rejects_name_what_grew() {
        let mut breach = Snapshot::empty(WINDOW);
        breach.value = Some(0.25);
        breach.cost_by_model = [("openai/gpt-4o".to_owned(), 9.0), ("openai/gpt-4o-mini".to_owned(), 1.0)].into();
        let mut before = Snapshot::empty(WINDOW.before());
        before.value = Some(0.05);
        before.cost_by_model = [("openai/gpt-4o".to_owned(), 1.0), ("openai/gpt-4o-mini".to_owned(), 0.9)].into();
        let d = diagnose(&evidence(alarm("CostPerCallAlarm"), breach, vec![before]));
        assert_eq!(d.cost_driver.as_deref(), Some("openai/gpt-4o"));
        assert!(d.cause.unwrap().contains("from $1.0000 to $9.0000"));

        let mut tools = Snapshot::empty(WINDOW);
        tools.value = Some(80.0);
        let mut e = evidence(alarm("ToolSuccessRateAlarm"), tools, vec![]);
        e.tool_failures = vec![
            ToolFailures { tool: "crm_lookup".into(), failures: 2, most_common_error: None },
            ToolFailures { tool: "book_slot".into(), failures: 5, most_common_error: Some("timeout".into()) },
        ];
        let d = diagnose(&e);
        assert_eq!(d.failing_tools[0].tool, "book_slot");
        assert_eq!(d.cause.as_deref(), Some("book_slot failed 5 times, most often with: timeout"));
        assert_eq!((times(1u64), times(2u64)), ("once".to_owned(), "2 times".to_owned()));
        assert!(d.headline.contains("tool success 80.0% below the 95.0% threshold"), "{}", d.headline);

        let mut rejects = Snapshot::empty(WINDOW);
        rejects.value = Some(40.0);
        let mut e = evidence(alarm("RejectedEventsAlarm"), rejects, vec![]);
        e.rejects = vec![
            RejectReason { reason: "malformed_json".into(), count: 30, example: "{\"_event_type\": \"voice_me".into() },
            RejectReason { reason: "bad_timestamp".into(), count: 10, example: "{}".into() },
        ];
        let d = diagnose(&e);
        assert_eq!(d.top_rejects[0].reason, "malformed_json");
        assert!(d.cause.unwrap().starts_with("mostly malformed_json (30 lines), for example: {\"_event_type\""));
    }
}
