//! What to ask CloudWatch about a breach, and how the answers become the diagnosis's evidence.
//! Pure: the requests are plain values that `aws.rs` turns into SDK calls, and the answers come
//! back as plain series and rows.

use std::collections::BTreeMap;

use voicelake_shared::alarms::{AlarmKind, AlarmSpec, Statistic};
use voicelake_shared::diagnosis::{
    self, AgentSnapshot, COMPONENTS, Call, FailureFact, ProviderFailures, RejectSample, Snapshot, ToolFailures, Window,
};
use voicelake_shared::metrics::metric;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Agents asked about per alarm: GetMetricData takes 500 queries and 100,800 data points a call;
/// 20 agents of a latency alarm take 202 queries.
pub const MAX_AGENTS: usize = 20;

/// One query of a GetMetricData call.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// A metric of the namespace under `Environment` (and `Agent` when given).
    Stat { id: String, metric: &'static str, agent: Option<String>, stat: &'static str, period_s: u32, return_data: bool },
    /// Metric math over other queries of the call.
    Expr { id: String, expression: String },
}

/// One series of a GetMetricData answer: (epoch ms, value) points.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub id: String,
    pub points: Vec<(i64, f64)>,
}

/// The windows a diagnosis compares and the one GetMetricData call that measures them all.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPlan {
    pub breach: Window,
    /// The hour before the breach, then that hour a day earlier.
    pub baselines: [Window; 2],
    pub start_ms: i64,
    pub end_ms: i64,
    pub agents: Vec<String>,
    pub queries: Vec<Query>,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn stat_name(spec: &AlarmSpec) -> &'static str {
    match spec.statistic {
        Statistic::P95 => "p95",
        Statistic::Average => "Average",
        Statistic::Maximum => "Maximum",
        // The provider alarm's value is one provider's sum; the environment's sum bounds it.
        Statistic::Sum | Statistic::ToolSuccessPercent | Statistic::ProviderSum => "Sum",
    }
}

/// The metric whose `Agent` dimension lists the agents an alarm concerns.
pub fn agent_metric(spec: &AlarmSpec) -> &'static str {
    spec.metric.name
}

/// The queries of `spec`'s statistic under `prefix`: the value itself, with its inputs first when
/// it is metric math.
fn value_queries(spec: &AlarmSpec, prefix: &str, agent: Option<&str>, period_s: u32, out: &mut Vec<Query>) {
    let stat =
        |id: String, metric, stat, return_data| Query::Stat { id, metric, agent: agent.map(str::to_owned), stat, period_s, return_data };
    if spec.kind == AlarmKind::ToolSuccess {
        out.push(stat(format!("{prefix}n"), metric::TOOL_CALL_OUTCOMES.name, "Sum", false));
        out.push(stat(format!("{prefix}f"), metric::TOOL_CALL_FAILURES.name, "Sum", false));
        // The alarm's own expression: no calls gives no value, not 100 %.
        out.push(Query::Expr {
            id: format!("{prefix}v"),
            expression: format!("IF({prefix}n > 0, 100 * (1 - FILL({prefix}f, 0) / {prefix}n))"),
        });
    } else {
        out.push(stat(format!("{prefix}v"), spec.metric.name, stat_name(spec), true));
    }
}

impl MetricPlan {
    /// The call for `spec` breached over `breach`, for `agents` (at most [`MAX_AGENTS`]).
    ///
    /// The breach window is one data point of its own length; the baselines are hourly points.
    /// Data points fall at `start + k × period`, so the call starts a whole number of both periods
    /// before the breach, at least a day and an hour earlier.
    pub fn new(spec: &AlarmSpec, breach: Window, agents: &[String]) -> MetricPlan {
        let period_s = ((breach.end_ms - breach.start_ms) / 1000).max(60) as u32;
        let p = i64::from(period_s) * 1000;
        let lcm = p / gcd(p, HOUR_MS) * HOUR_MS;
        let back = (DAY_MS + HOUR_MS + lcm - 1) / lcm * lcm;
        let hour_before = Window { start_ms: breach.start_ms - HOUR_MS, end_ms: breach.start_ms };
        let agents: Vec<String> = agents.iter().take(MAX_AGENTS).cloned().collect();
        let mut queries = Vec::new();
        for (w, period_s) in [("b", period_s), ("h", 3600)] {
            value_queries(spec, w, None, period_s, &mut queries);
            for (i, agent) in agents.iter().enumerate() {
                let prefix = format!("{w}a{i}");
                value_queries(spec, &prefix, Some(agent), period_s, &mut queries);
                if spec.is_latency() {
                    for (k, (_, component)) in COMPONENTS.iter().enumerate() {
                        queries.push(Query::Stat {
                            id: format!("{prefix}c{k}"),
                            metric: component.name,
                            agent: Some(agent.clone()),
                            stat: "p95",
                            period_s,
                            return_data: true,
                        });
                    }
                }
            }
        }
        MetricPlan {
            breach,
            baselines: [hour_before, hour_before.earlier(DAY_MS)],
            start_ms: breach.start_ms - back,
            end_ms: breach.end_ms,
            agents,
            queries,
        }
    }

    /// The breach and baseline snapshots from the call's answer. A window without a point for a
    /// query has `None` there.
    pub fn snapshots(&self, series: &[Series]) -> (Snapshot, Vec<Snapshot>) {
        let by_id: BTreeMap<&str, &Series> = series.iter().map(|s| (s.id.as_str(), s)).collect();
        let at = |id: &str, t: i64| by_id.get(id).and_then(|s| s.points.iter().find(|(pt, _)| *pt == t)).map(|(_, v)| *v);
        let snapshot = |w: &str, window: Window| {
            let mut agents = BTreeMap::new();
            for (i, agent) in self.agents.iter().enumerate() {
                let prefix = format!("{w}a{i}");
                let snap = AgentSnapshot {
                    value: at(&format!("{prefix}v"), window.start_ms),
                    components: std::array::from_fn(|k| at(&format!("{prefix}c{k}"), window.start_ms)),
                };
                if snap.value.is_some() || snap.components.iter().any(Option::is_some) {
                    agents.insert(agent.clone(), snap);
                }
            }
            Snapshot { window, value: at(&format!("{w}v"), window.start_ms), agents, cost_by_model: BTreeMap::new() }
        };
        (snapshot("b", self.breach), self.baselines.iter().map(|b| snapshot("h", *b)).collect())
    }
}

/// A row of a Logs Insights answer: field name to value.
pub type Row = BTreeMap<String, String>;

fn number(row: &Row, field: &str) -> Option<f64> {
    row.get(field).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite())
}

/// The calls of `queries/insights/worst-calls.logsinsights`.
pub fn calls_from_rows(rows: &[Row]) -> Vec<Call> {
    rows.iter()
        .filter_map(|r| {
            Some(Call {
                session_id: r.get("session").filter(|s| !s.is_empty())?.clone(),
                agent: r.get("agent_label").cloned().unwrap_or_default(),
                p95_ms: number(r, "p95_ms"),
                dominant_component: diagnosis::dominant_component(
                    number(r, "eou_mean_ms"),
                    number(r, "hook_mean_ms"),
                    number(r, "ttft_mean_ms"),
                    number(r, "ttfb_mean_ms"),
                ),
                cost_usd: None,
                failed_tool_calls: 0,
            })
        })
        .collect()
}

/// The provider failures of `queries/insights/failure-lines.logsinsights` (one row per raw line):
/// the lines go through the pipeline the ingest function runs, by log stream in time order as
/// CloudWatch delivered them, and are grouped as the local report groups them. Lines before
/// `window` say only since when a provider has been failing.
pub fn failures_from_rows(rows: &[Row], config: &voicelake_shared::Config, window: Window) -> Vec<ProviderFailures> {
    use voicelake_shared::envelope::{LogBatch, LogEvent};
    let mut streams: BTreeMap<(String, String), Vec<LogEvent>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let (Some(message), Some(time)) = (r.get("@message"), r.get("@timestamp").and_then(|t| insights_time(t))) else { continue };
        // `@log` is `account:log-group`.
        let group = r.get("@log").map_or("", |l| l.split_once(':').map_or(l.as_str(), |(_, g)| g));
        let stream = r.get("@logStream").cloned().unwrap_or_default();
        streams.entry((group.to_owned(), stream)).or_default().push(LogEvent {
            id: i.to_string(),
            timestamp: time,
            message: message.clone(),
        });
    }
    let (mut inside, mut before) = (Vec::new(), Vec::new());
    for ((group, stream), mut events) in streams {
        events.sort_by_key(|e| e.timestamp);
        let mut batch = LogBatch::of_stream(&group, &stream);
        batch.log_events = events;
        let out = voicelake_shared::process_batch(&batch, config, window.end_ms);
        for fact in out.errors.iter().map(FailureFact::of) {
            if window.contains(fact.time) { inside.push(fact) } else { before.push(fact) }
        }
    }
    diagnosis::group_failures(inside, before)
}

/// Logs Insights' `@timestamp`: `2026-11-30 17:25:09.414`, UTC.
fn insights_time(text: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok().map(|t| t.and_utc().timestamp_millis())
}

/// The failing tools of `queries/insights/tool-failures.logsinsights` (one row per tool and error).
pub fn tool_failures_from_rows(rows: &[Row]) -> Vec<ToolFailures> {
    let mut by_tool: BTreeMap<&str, Vec<(Option<&str>, u64)>> = BTreeMap::new();
    for r in rows {
        let (Some(tool), Some(n)) = (r.get("failed_tool"), number(r, "failures")) else { continue };
        by_tool.entry(tool).or_default().push((r.get("failure").map(String::as_str).filter(|e| !e.is_empty()), n as u64));
    }
    by_tool
        .into_iter()
        .map(|(tool, errors)| ToolFailures {
            tool: tool.to_owned(),
            failures: errors.iter().map(|(_, n)| n).sum(),
            most_common_error: errors
                .iter()
                .filter_map(|(e, n)| e.map(|e| (e, *n)))
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(e, _)| e.to_owned()),
        })
        .collect()
}

/// The reasons of `queries/insights/rejects-by-reason.logsinsights` (one row per reason and log
/// group), summed over log groups.
pub fn rejects_from_rows(rows: &[Row]) -> Vec<RejectSample> {
    let mut by_reason: BTreeMap<&str, RejectSample> = BTreeMap::new();
    for r in rows {
        let (Some(reason), Some(n)) = (r.get("reason"), number(r, "rejected")) else { continue };
        let entry = by_reason.entry(reason).or_insert_with(|| RejectSample { reason: reason.clone(), count: 0, example: String::new() });
        entry.count += n as u64;
        if entry.example.is_empty() {
            entry.example = r.get("example").cloned().unwrap_or_default();
        }
    }
    by_reason.into_values().collect()
}

/// The lines of `queries/insights/ingest-errors.logsinsights`, newest first: the message and what
/// failed when the line says, else the raw line.
pub fn error_lines_from_rows(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| {
            let at = r.get("@timestamp").map(String::as_str).unwrap_or("");
            let text = match (r.get("fields.message"), r.get("fields.failures").or(r.get("fields.reason"))) {
                (Some(m), Some(detail)) => format!("{m}: {detail}"),
                (Some(m), None) => m.clone(),
                _ => r.get("@message")?.clone(),
            };
            Some(format!("{at} {text}").trim().to_owned())
        })
        .take(5)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicelake_shared::alarms::DEFAULTS;

    const T: i64 = 1_795_442_400_000; // 2026-11-23T14:00:00Z

    fn spec(id: &str) -> AlarmSpec {
        *DEFAULTS.iter().find(|a| a.id == id).unwrap()
    }

    #[test]
    fn failure_lines_are_read_as_the_pipeline_reads_them_and_grouped_by_provider() {
        let line = |time: &str, message: &str, extra: &str| {
            format!(
                r#"{{"message": "{message}", "level": "WARNING", "name": "livekit.agents", {extra}"room": "call-1", "timestamp": "2026-11-23T{time}+00:00"}}"#
            )
        };
        let row = |at: &str, message: String| {
            let fields = [
                ("@timestamp", format!("2026-11-23 {at}")),
                ("@message", message),
                ("@log", "123456789012:/ecs/sales-agent".into()),
                ("@logStream", "s".into()),
            ];
            fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Row>()
        };
        let retry = "failed to synthesize speech: message='x', status_code=503, retryable=True, retrying in 0.1s";
        let rows = [
            row("13:30:00.000", line("13:30:00", retry, r#""tts": "livekit.plugins.cartesia.tts.TTS", "#)),
            row("14:01:10.000", line("14:01:10", retry, r#""tts": "livekit.plugins.cartesia.tts.TTS", "#)),
            row("14:01:12.500", line("14:01:12.5", "AgentSession is closing due to unrecoverable error: message='x', status_code=503", "")),
            row("14:02:00.000", line("14:02:00", "LLM metrics", "")),
        ];
        let window = Window { start_ms: T, end_ms: T + 600_000 };
        let failures = failures_from_rows(&rows, &voicelake_shared::Config::default(), window);
        assert_eq!(failures.len(), 1, "{failures:?}");
        let f = &failures[0];
        assert_eq!((f.kind.as_str(), f.provider.as_str(), f.agent.as_str(), f.events), ("tts", "cartesia", "sales-agent", 2));
        assert_eq!(f.first_ms, T - 1_800_000, "since the failure of the hour before");
        assert_eq!(f.sessions.get("call-1"), Some(&(2, true)));
        assert_eq!(f.error_classes.get("http_503"), Some(&2));
    }

    #[test]
    fn one_call_measures_the_breach_and_both_baselines_on_their_own_periods() {
        let breach = Window { start_ms: T, end_ms: T + 900_000 };
        let plan = MetricPlan::new(&spec("TurnLatencyP95Alarm"), breach, &["sales".into(), "support".into()]);
        // Overall value + 2 agents × (value + 5 components), for each of two periods.
        assert_eq!(plan.queries.len(), 2 * (1 + 2 * 6));
        assert_eq!(plan.baselines[0], Window { start_ms: T - HOUR_MS, end_ms: T });
        assert_eq!(plan.baselines[1], Window { start_ms: T - HOUR_MS - DAY_MS, end_ms: T - DAY_MS });
        for period in [900_000, HOUR_MS] {
            assert_eq!((breach.start_ms - plan.start_ms) % period, 0, "points of period {period} fall on the windows");
        }
        assert!(plan.start_ms <= plan.baselines[1].start_ms);
        // An odd breach length (7 minutes) still lands on a point.
        let odd = MetricPlan::new(&spec("TurnLatencyP95Alarm"), Window { start_ms: T, end_ms: T + 420_000 }, &[]);
        assert_eq!(((T - odd.start_ms) % 420_000, (T - odd.start_ms) % HOUR_MS), (0, 0));
    }

    #[test]
    fn answers_become_snapshots_with_gaps_where_there_was_no_data() {
        let breach = Window { start_ms: T, end_ms: T + 900_000 };
        let plan = MetricPlan::new(&spec("TurnLatencyP95Alarm"), breach, &["sales".into(), "support".into()]);
        let s = |id: &str, points: &[(i64, f64)]| Series { id: id.into(), points: points.to_vec() };
        let (b, baselines) = plan.snapshots(&[
            s("bv", &[(T - 900_000, 900.0), (T, 1900.0)]),
            s("ba0c3", &[(T, 1100.0)]),
            s("ba0v", &[(T, 2000.0)]),
            s("hv", &[(T - HOUR_MS, 1000.0), (T - HOUR_MS - DAY_MS, 950.0)]),
            s("ha0c3", &[(T - HOUR_MS, 300.0)]),
        ]);
        assert_eq!(b.value, Some(1900.0));
        assert_eq!(b.agents["sales"].components, [None, None, None, Some(1100.0), None]);
        assert!(!b.agents.contains_key("support"), "no data for support");
        assert_eq!((baselines[0].value, baselines[1].value), (Some(1000.0), Some(950.0)));
        assert_eq!(baselines[0].agents["sales"].components[3], Some(300.0));
        assert!(baselines[1].agents.is_empty());
    }

    #[test]
    fn tool_success_is_the_alarms_own_math_per_window_and_agent() {
        let plan = MetricPlan::new(&spec("ToolSuccessRateAlarm"), Window { start_ms: T, end_ms: T + 900_000 }, &["sales".into()]);
        let exprs: Vec<&str> = plan
            .queries
            .iter()
            .filter_map(|q| if let Query::Expr { expression, .. } = q { Some(expression.as_str()) } else { None })
            .collect();
        assert_eq!(exprs[0], "IF(bn > 0, 100 * (1 - FILL(bf, 0) / bn))");
        assert_eq!(exprs.len(), 4);
    }

    #[test]
    fn insights_rows_become_calls_tools_rejects_and_error_lines() {
        let row = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Row>();
        let calls = calls_from_rows(&[
            row(&[
                ("session", "s1"),
                ("agent_label", "sales"),
                ("p95_ms", "2400.5"),
                ("eou_mean_ms", "500"),
                ("ttft_mean_ms", "400"),
                ("ttfb_mean_ms", "1300"),
            ]),
            row(&[("agent_label", "sales"), ("p95_ms", "9")]),
        ]);
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].p95_ms, calls[0].dominant_component), (Some(2400.5), Some("tts_ttfb")));

        let tools = tool_failures_from_rows(&[
            row(&[("failed_tool", "book_slot"), ("failure", "timeout"), ("failures", "4")]),
            row(&[("failed_tool", "book_slot"), ("failure", "409 conflict"), ("failures", "1")]),
            row(&[("failed_tool", "crm_lookup"), ("failures", "2")]),
        ]);
        assert_eq!((tools[0].tool.as_str(), tools[0].failures, tools[0].most_common_error.as_deref()), ("book_slot", 5, Some("timeout")));
        assert_eq!(tools[1].most_common_error, None);

        let rejects = rejects_from_rows(&[
            row(&[("reason", "malformed_json"), ("rejected", "7"), ("example", "{\"_event_type\":"), ("log_group", "/a")]),
            row(&[("reason", "malformed_json"), ("rejected", "3"), ("example", "x"), ("log_group", "/b")]),
        ]);
        assert_eq!((rejects[0].count, rejects[0].example.as_str()), (10, "{\"_event_type\":"));

        let lines = error_lines_from_rows(&[
            row(&[("@timestamp", "2026-11-23 14:12:00.000"), ("fields.message", "invocation"), ("fields.failures", "turns: throttled")]),
            row(&[("@message", "panicked at src/main.rs")]),
        ]);
        assert_eq!(lines, ["2026-11-23 14:12:00.000 invocation: turns: throttled", "panicked at src/main.rs"]);
    }
}
