//! The dashboard's views over a replay: every point is the statistic of a period's raw values,
//! computed here again by hand, and the shaded periods are those in which the alarm would be firing.

use voicelake_cli::report::{ChartData, Charts, ReportBuilder};
use voicelake_shared::envelope::{LogBatch, LogEvent, MessageType};
use voicelake_shared::{Config, process_batch};

const T0: i64 = 1_795_442_400_000; // 2026-11-23T14:00:00Z
const MIN: i64 = 60_000;

fn turn_line(agent: &str, at: i64, eou: f64, ttft: f64, ttfb: f64) -> String {
    let time = voicelake_shared::timefmt::iso(at);
    format!(
        r#"{{"_event_type": "voice_metrics", "_session_id": "s-{agent}-{at}", "_timestamp": "{time}", "agent_name": "{agent}", "eou": {{"end_of_utterance_delay": {eou}}}, "llm": {{"ttft": {ttft}}}, "tts": {{"ttfb": {ttfb}}}}}"#
    )
}

fn call_line(agent: &str, at: i64, tools: &[bool]) -> String {
    let time = voicelake_shared::timefmt::iso(at);
    let calls: Vec<String> = tools.iter().map(|ok| format!(r#"{{"tool": "lookup", "success": {ok}}}"#)).collect();
    format!(
        r#"{{"_event_type": "session_analytics", "_session_id": "c-{agent}-{at}", "_timestamp": "{time}", "agent_name": "{agent}", "duration": 60, "tool_calls": [{}]}}"#,
        calls.join(", ")
    )
}

fn builder(lines: &[String]) -> ReportBuilder {
    let batch = LogBatch {
        message_type: MessageType::DataMessage,
        owner: "test".into(),
        log_group: "g".into(),
        log_stream: "s".into(),
        subscription_filters: vec![],
        log_events: lines.iter().enumerate().map(|(i, m)| LogEvent { id: i.to_string(), timestamp: T0, message: m.clone() }).collect(),
    };
    let mut b = ReportBuilder::default();
    b.add(&process_batch(&batch, &Config::default(), T0)).unwrap();
    b
}

fn chart<'a>(charts: &'a Charts, id: &str) -> &'a ChartData {
    charts.charts.iter().find(|c| c.id == id).unwrap()
}

fn points(c: &ChartData, label: &str) -> Vec<(i64, f64)> {
    c.series.iter().find(|s| s.label == label).unwrap_or_else(|| panic!("{label} in {}", c.id)).points.clone()
}

/// Agent a: 14:01, 14:02 (period 14:00), 14:07 (14:05), 14:31 (14:30); agent b: 14:03, 14:33.
/// Latencies in seconds as agents log them; the turn latency is their sum.
fn known() -> Vec<String> {
    vec![
        turn_line("a", T0 + MIN, 0.5, 0.6, 0.3),      // 1400
        turn_line("a", T0 + 2 * MIN, 0.9, 0.8, 0.3),  // 2000
        turn_line("b", T0 + 3 * MIN, 0.4, 0.4, 0.2),  // 1000
        turn_line("a", T0 + 7 * MIN, 0.7, 0.6, 0.3),  // 1600
        turn_line("a", T0 + 31 * MIN, 0.3, 0.3, 0.2), // 800
        turn_line("b", T0 + 33 * MIN, 0.3, 0.4, 0.2), // 900
        call_line("a", T0 + 8 * MIN, &[true, true, false]),
        call_line("b", T0 + 20 * MIN, &[true]),
        "a foreign line that is skipped".into(),
    ]
}

#[test]
fn each_point_is_its_periods_statistic() {
    let charts = builder(&known()).charts(&Config::default()).unwrap();
    let latency = chart(&charts, "turn-latency");
    let p = 5 * MIN;
    assert_eq!(points(latency, "p50"), vec![(T0, 1400.0), (T0 + p, 1600.0), (T0 + 6 * p, 800.0)]);
    assert_eq!(points(latency, "p95"), vec![(T0, 2000.0), (T0 + p, 1600.0), (T0 + 6 * p, 900.0)]);
    assert_eq!(points(latency, "p99"), points(latency, "p95"));

    let agents = chart(&charts, "agents");
    assert_eq!(agents.series.len(), 2);
    assert_eq!(points(agents, "a"), vec![(T0, 2000.0), (T0 + p, 1600.0), (T0 + 6 * p, 800.0)]);
    assert_eq!(points(agents, "b"), vec![(T0, 1000.0), (T0 + 6 * p, 900.0)]);

    let volume = chart(&charts, "volume");
    assert_eq!(points(volume, "turns"), vec![(T0, 3.0), (T0 + p, 1.0), (T0 + 6 * p, 2.0)]);
    assert_eq!(points(volume, "turns over target"), vec![(T0, 1.0), (T0 + p, 1.0), (T0 + 6 * p, 0.0)]);
    assert_eq!(points(volume, "calls ended"), vec![(T0 + p, 1.0), (T0 + 4 * p, 1.0)]);
    assert_eq!(charts.calls_ended, 2);

    let components = chart(&charts, "components");
    assert_eq!(points(components, "LLM ttft"), vec![(T0, 800.0), (T0 + p, 600.0), (T0 + 6 * p, 400.0)]);
    assert!(points(components, "transcription (inside EOU)").is_empty(), "no agent logged a transcription delay");

    // 15-minute periods: at 14:00 two of three tool calls succeeded, at 14:15 the one did.
    assert_eq!(points(chart(&charts, "tools"), "tool success %"), vec![(T0, 100.0 * (1.0 - 1.0 / 3.0)), (T0 + 3 * p, 100.0)]);

    // One event in per log line, at event time: 9 lines, all at T0's minute as CloudWatch stamped them.
    assert_eq!(points(chart(&charts, "events"), "in"), vec![(T0, 9.0)]);
}

#[test]
fn the_shading_is_where_the_alarm_would_be_firing() {
    let charts = builder(&known()).charts(&Config::default()).unwrap();
    let latency = chart(&charts, "turn-latency");
    // p95 breaches 1500 ms at 14:00 and 14:05: two of three periods, so ALARM at the end of 14:05
    // and still at 14:10 (14:00 and 14:05 within the last three); OK from 14:15.
    assert_eq!(latency.alarm_periods, vec![T0 + 5 * MIN, T0 + 10 * MIN]);
    assert_eq!(latency.thresholds.len(), 1, "the default target is the alarm threshold: one line");
    assert_eq!(latency.thresholds[0].value, 1500.0);

    let report = builder(&known()).finish(&Config::default()).unwrap();
    let alarm = report.alarms.iter().find(|a| a.alarm == "TurnLatencyP95Alarm").unwrap();
    assert!(alarm.would_fire);
    let tools = report.alarms.iter().find(|a| a.alarm == "ToolSuccessRateAlarm").unwrap();
    assert_eq!(tools.would_fire, !chart(&charts, "tools").alarm_periods.is_empty());
}

/// As in the stack, the target is the turn-latency alarm's threshold: one line, at the target, and
/// the alarm's periods judged against it.
#[test]
fn the_target_is_the_threshold_the_chart_draws_and_the_alarm_uses() {
    let config = Config { latency_target_ms: 1200.0, ..Config::default() };
    let charts = builder(&known()).charts(&config).unwrap();
    let values: Vec<f64> = chart(&charts, "turn-latency").thresholds.iter().map(|t| t.value).collect();
    assert_eq!(values, vec![1200.0]);
    let report = builder(&known()).finish(&config).unwrap();
    let alarm = report.alarms.iter().find(|a| a.alarm == "TurnLatencyP95Alarm").unwrap();
    assert_eq!(alarm.threshold, 1200.0);
    assert_eq!(alarm.would_fire, !chart(&charts, "turn-latency").alarm_periods.is_empty());
}

#[test]
fn what_only_aws_measures_is_named_not_drawn() {
    let charts = builder(&known()).charts(&Config::default()).unwrap();
    let function = chart(&charts, "function");
    assert!(function.series.is_empty());
    assert_eq!(function.aws_only.len(), 4);
    assert!(chart(&charts, "events").aws_only.contains(&"send failures"));
}

#[test]
fn no_input_no_points() {
    let charts = builder(&[]).charts(&Config::default()).unwrap();
    assert_eq!(charts.span, None);
    assert!(charts.charts.iter().all(|c| c.series.iter().all(|s| s.points.is_empty()) && c.alarm_periods.is_empty()));
}
