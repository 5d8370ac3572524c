//! The dashboard's views, defined once: `template.yaml`'s CloudWatch dashboard body is
//! [`dashboard_body`] of this list (a test keeps them equal), and the local report page draws the
//! same views from replayed traffic, so that it previews what CloudWatch will show.

use serde_json::{Value, json};

use crate::metrics::{MetricSpec, metric};

/// A CloudWatch statistic, as a view asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    P50,
    P95,
    P99,
    Sum,
    Average,
    Maximum,
}

impl Stat {
    /// The statistic's name in a dashboard or `GetMetricData` request.
    pub fn cloudwatch(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Sum => "Sum",
            Stat::Average => "Average",
            Stat::Maximum => "Maximum",
        }
    }

    /// The percentile a `pNN` statistic asks for.
    pub fn percentile(self) -> Option<f64> {
        match self {
            Stat::P50 => Some(50.0),
            Stat::P95 => Some(95.0),
            Stat::P99 => Some(99.0),
            _ => None,
        }
    }
}

/// Which side of a chart a series is read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Left,
    Right,
}

/// One line of a chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Series {
    /// One of voicelake's metrics, over the whole environment.
    Metric { metric: MetricSpec, stat: Stat, label: &'static str, axis: Axis },
    /// One line per agent: a `SEARCH` over the `{Environment, Agent}` dimension set.
    PerAgent { metric: MetricSpec, stat: Stat },
    /// One line per provider and kind: a `SEARCH` over `{Environment, Kind, Provider}`.
    PerProvider { metric: MetricSpec, stat: Stat },
    /// `100 × (1 − ToolCallFailures / ToolCallOutcomes)`, by metric math: what the tool alarm evaluates.
    ToolSuccessPercent,
    /// A metric AWS publishes about one of the stack's resources. Only CloudWatch has it.
    Aws {
        namespace: &'static str,
        metric: &'static str,
        dimension: &'static str,
        /// The `!Sub` reference naming the resource, e.g. `${IngestFunction}`.
        resource: &'static str,
        stat: Stat,
        label: &'static str,
        axis: Axis,
    },
}

impl Series {
    /// Whether the local replay has the observations of this series.
    pub fn is_local(&self) -> bool {
        !matches!(self, Series::Aws { .. }) && !matches!(self, Series::Metric { metric, .. } if LOCAL_UNAVAILABLE.contains(&metric.name))
    }

    pub fn label(&self) -> &'static str {
        match self {
            Series::Metric { label, .. } | Series::Aws { label, .. } => label,
            Series::PerAgent { .. } => "per agent",
            Series::PerProvider { .. } => "per provider",
            Series::ToolSuccessPercent => "tool success %",
        }
    }
}

/// Metrics that only the deployed function measures: processing-time health, not event time.
const LOCAL_UNAVAILABLE: [&str; 6] = [
    metric::INGEST_LAG.name,
    metric::SEND_FAILURES.name,
    metric::DATUMS_REFUSED.name,
    metric::DATUMS_OUT_OF_WINDOW.name,
    metric::EVENTS_SKIPPED.name,
    metric::VALUES_NULLED.name,
];

/// A horizontal line at a threshold, from a template parameter (an alarm's, where the local page
/// takes its default from [`crate::alarms::DEFAULTS`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub label: &'static str,
    pub parameter: &'static str,
    pub color: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chart {
    /// A stable id: the local page's element id, and the test's handle on the chart.
    pub id: &'static str,
    /// The title; units are in [`Chart::unit`].
    pub title: &'static str,
    /// What the left axis measures, e.g. `ms`.
    pub unit: &'static str,
    /// What the right axis measures, where a series uses it.
    pub right_unit: Option<&'static str>,
    pub period_seconds: u32,
    pub series: &'static [Series],
    pub thresholds: &'static [Threshold],
    /// Shade the periods in which this alarm (an id of [`crate::alarms::DEFAULTS`]) would be firing.
    pub alarm: Option<&'static str>,
    pub y_min: Option<f64>,
    pub y_max: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Widget {
    /// The dashboard's heading: links to the saved queries, Athena, the failure queue and the lake.
    Header,
    Chart(Chart),
    /// The states of the stack's alarms.
    Alarms,
}

/// A widget and its place on CloudWatch's 24-column grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub widget: Widget,
}

impl Chart {
    /// The title with its unit, where the unit is a measure (`ms`, `%`, `USD`) rather than a count.
    pub fn display_title(&self) -> String {
        match self.unit {
            "ms" | "%" | "USD" => format!("{} ({})", self.title, self.unit),
            _ => self.title.to_owned(),
        }
    }
}

impl View {
    pub fn chart(&self) -> Option<&Chart> {
        match &self.widget {
            Widget::Chart(c) => Some(c),
            _ => None,
        }
    }
}

const fn own(metric: MetricSpec, stat: Stat, label: &'static str) -> Series {
    Series::Metric { metric, stat, label, axis: Axis::Left }
}

const fn own_right(metric: MetricSpec, stat: Stat, label: &'static str) -> Series {
    Series::Metric { metric, stat, label, axis: Axis::Right }
}

const fn aws(
    namespace: &'static str,
    metric: &'static str,
    dimension: &'static str,
    resource: &'static str,
    stat: Stat,
    label: &'static str,
    axis: Axis,
) -> Series {
    Series::Aws { namespace, metric, dimension, resource, stat, label, axis }
}

/// A metric of the ingest function, from `AWS/Lambda`.
const fn ingest_function(metric: &'static str, stat: Stat, label: &'static str, axis: Axis) -> Series {
    aws("AWS/Lambda", metric, "FunctionName", "${IngestFunction}", stat, label, axis)
}

/// A metric of one of the lake's delivery streams, from `AWS/Firehose`.
const fn firehose(metric: &'static str, stream: &'static str, stat: Stat, label: &'static str, axis: Axis) -> Series {
    aws("AWS/Firehose", metric, "DeliveryStreamName", stream, stat, label, axis)
}

/// A chart with its identity and nothing drawn yet: each view of [`DASHBOARD`] names its series.
const fn chart(id: &'static str, title: &'static str, unit: &'static str, period_seconds: u32) -> Chart {
    Chart { id, title, unit, right_unit: None, period_seconds, series: &[], thresholds: &[], alarm: None, y_min: None, y_max: None }
}

impl Chart {
    /// The chart placed on the dashboard's 24-column grid.
    const fn at(self, x: u32, y: u32, width: u32, height: u32) -> View {
        View { x, y, width, height, widget: Widget::Chart(self) }
    }
}

const fn at(x: u32, y: u32, width: u32, height: u32, widget: Widget) -> View {
    View { x, y, width, height, widget }
}

/// The alarms the alarm widget shows: the logical ids of every alarm in `template.yaml`.
pub const ALARM_IDS: [&str; 15] = [
    "TurnLatencyP95Alarm",
    "LLMTimeToFirstTokenP95Alarm",
    "TTSTimeToFirstByteP95Alarm",
    "ToolSuccessRateAlarm",
    "CostPerCallAlarm",
    "RejectedEventsAlarm",
    "ProviderErrorsAlarm",
    "SessionsClosedByErrorAlarm",
    "WorkerMemoryAlarm",
    "SendFailuresAlarm",
    "IngestErrorsAlarm",
    "IngestThrottlesAlarm",
    "FailureQueueAlarm",
    "FirehoseDeliveryAlarm",
    "PagingAlarm",
];

const HEADER_MARKDOWN: &str = "## voicelake: ${EnvironmentName}\nTurn latency = what the agent measured (e2e_latency), else end-of-utterance delay + on_user_turn_completed hook + LLM phase (time to first token; a tool round from the first call's start to the last call's first token) + TTS time to first byte. Saved queries: [Logs Insights, folder voicelake](https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#logsV2:logs-insights) (slowest turns, one session's turns, component regressions, tool failures, provider failures, cost, leads, rejects) \u{b7} [Athena, workgroup ${AthenaWorkGroup}](https://${AWS::Region}.console.aws.amazon.com/athena/home?region=${AWS::Region}#/query-editor) (latency by hour and agent, slowest sessions, failures by provider, cost by model; database ${LakeDatabase}) \u{b7} [Failure queue](https://${AWS::Region}.console.aws.amazon.com/sqs/v3/home?region=${AWS::Region}#/queues) \u{b7} lake: s3://${LakeBucket}";

/// The dashboard, top to bottom.
pub const DASHBOARD: &[View] = &[
    at(0, 0, 24, 3, Widget::Header),
    Chart {
        series: &[
            own(metric::TURN_LATENCY, Stat::P50, "p50"),
            own(metric::TURN_LATENCY, Stat::P95, "p95"),
            own(metric::TURN_LATENCY, Stat::P99, "p99"),
        ],
        thresholds: &[Threshold { label: "target", parameter: "TurnLatencyP95ThresholdMs", color: Some("#d62728") }],
        alarm: Some("TurnLatencyP95Alarm"),
        y_min: Some(0.0),
        ..chart("turn-latency", "Turn latency", "ms", 300)
    }
    .at(0, 3, 12, 7),
    Chart {
        series: &[
            own(metric::EOU_DELAY, Stat::P95, "end of utterance"),
            own(metric::LLM_TTFT, Stat::P95, "LLM ttft"),
            own(metric::TTS_TTFB, Stat::P95, "TTS ttfb"),
            own(metric::TRANSCRIPTION_DELAY, Stat::P95, "transcription (inside EOU)"),
            own(metric::HOOK_DELAY, Stat::P95, "on_user_turn_completed hook"),
        ],
        thresholds: &[
            Threshold { label: "LLM ttft alarm", parameter: "LLMTTFTP95ThresholdMs", color: None },
            Threshold { label: "TTS ttfb alarm", parameter: "TTSTTFBP95ThresholdMs", color: None },
        ],
        y_min: Some(0.0),
        ..chart("components", "Components, p95", "ms", 300)
    }
    .at(12, 3, 12, 7),
    Chart {
        series: &[Series::PerAgent { metric: metric::TURN_LATENCY, stat: Stat::P95 }],
        y_min: Some(0.0),
        ..chart("agents", "Turn latency p95 by agent", "ms", 300)
    }
    .at(0, 10, 12, 6),
    Chart {
        series: &[
            own(metric::TURNS, Stat::Sum, "turns"),
            own(metric::TURNS_OVER_TARGET, Stat::Sum, "turns over target"),
            own_right(metric::SESSIONS, Stat::Sum, "calls ended"),
        ],
        right_unit: Some("calls"),
        ..chart("volume", "Turns and calls", "turns", 300)
    }
    .at(12, 10, 6, 6),
    Chart {
        series: &[own(metric::TURNS_INTERRUPTED, Stat::Average, "interrupted")],
        y_min: Some(0.0),
        y_max: Some(100.0),
        ..chart("interrupted", "Interrupted turns", "%", 300)
    }
    .at(18, 10, 6, 6),
    Chart {
        series: &[Series::ToolSuccessPercent, own_right(metric::TOOL_CALLS, Stat::Sum, "tool calls")],
        right_unit: Some("calls"),
        thresholds: &[Threshold { label: "alarm", parameter: "ToolSuccessRateThresholdPercent", color: None }],
        alarm: Some("ToolSuccessRateAlarm"),
        y_min: Some(0.0),
        y_max: Some(100.0),
        ..chart("tools", "Tool success", "%", 900)
    }
    .at(0, 16, 8, 6),
    Chart {
        series: &[
            own(metric::CALL_COST, Stat::Average, "per call, average"),
            own(metric::CALL_COST, Stat::Maximum, "per call, max"),
            own_right(metric::CALL_COST, Stat::Sum, "spend"),
        ],
        thresholds: &[Threshold { label: "per-call alarm", parameter: "CostPerCallThresholdUsd", color: None }],
        alarm: Some("CostPerCallAlarm"),
        right_unit: Some("USD"),
        ..chart("cost", "Cost", "USD", 3600)
    }
    .at(8, 16, 8, 6),
    Chart {
        series: &[
            own(metric::LLM_PROMPT_TOKENS, Stat::Sum, "LLM input tokens"),
            own(metric::LLM_COMPLETION_TOKENS, Stat::Sum, "LLM output tokens"),
            own_right(metric::TTS_CHARACTERS, Stat::Sum, "TTS characters"),
            own_right(metric::STT_AUDIO_SECONDS, Stat::Sum, "STT seconds"),
        ],
        right_unit: Some("characters, seconds"),
        ..chart("usage", "Usage", "tokens", 3600)
    }
    .at(16, 16, 8, 6),
    Chart {
        series: &[
            own(metric::EVENTS_IN, Stat::Sum, "in"),
            own(metric::EVENTS_SKIPPED, Stat::Sum, "skipped (not agent events)"),
            own(metric::EVENTS_REJECTED, Stat::Sum, "rejected"),
            own(metric::VALUES_NULLED, Stat::Sum, "values nulled"),
            own(metric::SEND_FAILURES, Stat::Sum, "send failures"),
            own(metric::DATUMS_REFUSED, Stat::Sum, "metric datums refused"),
            own(metric::DATUMS_OUT_OF_WINDOW, Stat::Sum, "outside metric window"),
        ],
        alarm: Some("RejectedEventsAlarm"),
        ..chart("events", "Pipeline: events", "events", 300)
    }
    .at(0, 22, 8, 6),
    Chart {
        series: &[
            own(metric::INGEST_LAG, Stat::P95, "ingest lag p95 (ms)"),
            ingest_function("Duration", Stat::P95, "function duration p95 (ms)", Axis::Left),
            ingest_function("Errors", Stat::Sum, "errors", Axis::Right),
            ingest_function("Throttles", Stat::Sum, "throttles", Axis::Right),
        ],
        right_unit: Some("count"),
        ..chart("function", "Pipeline: lag and function", "ms", 300)
    }
    .at(8, 22, 8, 6),
    Chart {
        series: &[
            firehose("DeliveryToS3.Records", "${TurnsStream}", Stat::Sum, "turn records", Axis::Left),
            firehose("DeliveryToS3.Records", "${SessionsStream}", Stat::Sum, "session records", Axis::Left),
            firehose("FailedConversion.Records", "${TurnsStream}", Stat::Sum, "failed conversions (turns)", Axis::Right),
            aws(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                "${IngestFailureQueue.QueueName}",
                Stat::Maximum,
                "batches in failure queue",
                Axis::Right,
            ),
        ],
        right_unit: Some("count"),
        ..chart("delivery", "Pipeline: lake delivery", "records", 300)
    }
    .at(16, 22, 8, 6),
    Chart {
        series: &[
            own(metric::CALL_DURATION, Stat::P50, "duration p50 (s)"),
            own(metric::CALL_DURATION, Stat::P95, "duration p95 (s)"),
            own_right(metric::CALL_SETUP_FAILURES, Stat::Sum, "setup failures"),
            own_right(metric::CALL_MOS, Stat::Average, "MOS"),
            own(metric::CALL_JITTER, Stat::P95, "jitter p95 (ms)"),
            own_right(metric::CALL_PACKET_LOSS, Stat::Average, "packet loss (%)"),
        ],
        right_unit: Some("count, MOS, %"),
        ..chart("quality", "Calls: duration and quality", "s, ms", 900)
    }
    .at(0, 28, 24, 6),
    Chart {
        series: &[
            Series::PerProvider { metric: metric::PROVIDER_FAILURES, stat: Stat::Sum },
            own(metric::FALLBACK_ACTIVATIONS, Stat::Sum, "fallback switches"),
            own_right(metric::SESSIONS_CLOSED_BY_ERROR, Stat::Sum, "sessions closed by errors"),
        ],
        right_unit: Some("sessions"),
        thresholds: &[Threshold { label: "provider alarm", parameter: "ProviderFailuresThreshold", color: Some("#d62728") }],
        alarm: Some("ProviderErrorsAlarm"),
        y_min: Some(0.0),
        ..chart("failures", "Provider failures", "failures", 300)
    }
    .at(0, 34, 16, 6),
    Chart {
        series: &[own(metric::WORKER_MEMORY, Stat::Maximum, "job process, max")],
        thresholds: &[Threshold { label: "alarm", parameter: "WorkerMemoryThresholdPercent", color: None }],
        alarm: Some("WorkerMemoryAlarm"),
        y_min: Some(0.0),
        ..chart("worker-memory", "Worker memory (of its limit)", "%", 300)
    }
    .at(16, 34, 8, 6),
    at(0, 40, 24, 4, Widget::Alarms),
];

/// The charts of the dashboard, in order.
pub fn charts() -> impl Iterator<Item = &'static Chart> {
    DASHBOARD.iter().filter_map(View::chart)
}

fn metric_line(series: &Series, period_seconds: u32) -> Vec<Value> {
    let env = ["Environment", "${EnvironmentName}"];
    let options = |stat: Stat, label: &str, axis: Axis| {
        let mut o = json!({"stat": stat.cloudwatch(), "label": label});
        if axis == Axis::Right {
            o["yAxis"] = json!("right");
        }
        o
    };
    match *series {
        Series::Metric { metric, stat, label, axis } => {
            vec![json!(["${MetricsNamespace}", metric.name, env[0], env[1], options(stat, label, axis)])]
        }
        Series::PerAgent { metric, stat } => {
            let search = format!(
                "SEARCH('{{${{MetricsNamespace}},Environment,Agent}} Environment=\"${{EnvironmentName}}\" MetricName=\"{}\"', '{}', {period_seconds})",
                metric.name,
                stat.cloudwatch()
            );
            vec![json!([{"expression": search, "id": "byagent", "label": ""}])]
        }
        Series::PerProvider { metric, stat } => {
            let search = format!(
                "SEARCH('{{${{MetricsNamespace}},Environment,Kind,Provider}} Environment=\"${{EnvironmentName}}\" MetricName=\"{}\"', '{}', {period_seconds})",
                metric.name,
                stat.cloudwatch()
            );
            vec![json!([{"expression": search, "id": "byprovider", "label": ""}])]
        }
        Series::ToolSuccessPercent => vec![
            json!(["${MetricsNamespace}", metric::TOOL_CALL_OUTCOMES.name, env[0], env[1], {"id": "calls", "stat": "Sum", "visible": false}]),
            json!(["${MetricsNamespace}", metric::TOOL_CALL_FAILURES.name, env[0], env[1], {"id": "failures", "stat": "Sum", "visible": false}]),
            json!([{"expression": "IF(calls > 0, 100 * (1 - FILL(failures, 0) / calls))", "id": "success", "label": "tool success %"}]),
        ],
        Series::Aws { namespace, metric, dimension, resource, stat, label, axis } => {
            vec![json!([namespace, metric, dimension, resource, options(stat, label, axis)])]
        }
    }
}

fn widget_json(view: &View) -> Value {
    let (kind, properties) = match &view.widget {
        Widget::Header => ("text", json!({"markdown": HEADER_MARKDOWN})),
        Widget::Alarms => {
            let arns: Vec<String> = ALARM_IDS.iter().map(|id| format!("${{{id}.Arn}}")).collect();
            ("alarm", json!({"title": "Alarms", "alarms": arns}))
        }
        Widget::Chart(c) => {
            let mut p = json!({
                "title": c.display_title(),
                "region": "${AWS::Region}",
                "view": "timeSeries",
                "period": c.period_seconds,
                "metrics": c.series.iter().flat_map(|s| metric_line(s, c.period_seconds)).collect::<Vec<_>>(),
                "stacked": false,
            });
            if !c.thresholds.is_empty() {
                let lines: Vec<Value> = c
                    .thresholds
                    .iter()
                    .map(|t| {
                        let mut line = json!({"label": t.label, "value": format!("${{{}}}", t.parameter)});
                        if let Some(color) = t.color {
                            line["color"] = json!(color);
                        }
                        line
                    })
                    .collect();
                p["annotations"] = json!({"horizontal": lines});
            }
            if c.y_min.is_some() || c.y_max.is_some() {
                let mut left = json!({});
                if let Some(min) = c.y_min {
                    left["min"] = json!(min as i64);
                }
                if let Some(max) = c.y_max {
                    left["max"] = json!(max as i64);
                }
                if c.unit == "ms" {
                    left["showUnits"] = json!(false);
                }
                p["yAxis"] = json!({"left": left});
            }
            ("metric", p)
        }
    };
    json!({"type": kind, "x": view.x, "y": view.y, "width": view.width, "height": view.height, "properties": properties})
}

/// The CloudWatch dashboard body of [`DASHBOARD`], with `${…}` references for `!Sub`.
pub fn dashboard_body() -> Value {
    json!({"widgets": DASHBOARD.iter().map(widget_json).collect::<Vec<_>>()})
}

/// [`dashboard_body`] as `template.yaml` holds it: one widget a line. A threshold's `value` is a
/// number in the body CloudWatch validates, so its `${Parameter}` stands unquoted for `!Sub` to put
/// the number there; the text is JSON only once substituted.
pub fn dashboard_body_text() -> String {
    let widgets: Vec<String> = DASHBOARD.iter().map(|v| widget_json(v).to_string()).collect();
    let mut text = format!("{{\"widgets\": [\n{}\n]}}\n", widgets.join(",\n"));
    for parameter in threshold_parameters() {
        text = text.replace(&format!("\"${{{parameter}}}\""), &format!("${{{parameter}}}"));
    }
    text
}

/// The template parameters the dashboard's threshold lines are drawn at.
fn threshold_parameters() -> impl Iterator<Item = &'static str> {
    let mut parameters: Vec<&'static str> = charts().flat_map(|c| c.thresholds.iter().map(|t| t.parameter)).collect();
    parameters.sort_unstable();
    parameters.dedup();
    parameters.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_has_no_overlaps_and_fits_24_columns() {
        for (i, a) in DASHBOARD.iter().enumerate() {
            assert!(a.x + a.width <= 24, "view {i} is wider than the grid");
            for b in &DASHBOARD[i + 1..] {
                let apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn chart_ids_are_unique_and_every_alarm_threshold_is_an_alarm_parameter() {
        let mut ids: Vec<&str> = charts().map(|c| c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), charts().count());
        for c in charts() {
            if let Some(alarm) = c.alarm {
                assert!(crate::alarms::DEFAULTS.iter().any(|a| a.id == alarm), "{alarm}");
            }
        }
    }

    #[test]
    fn the_body_text_is_the_body_with_its_thresholds_as_numbers() {
        let text = dashboard_body_text();
        assert!(serde_json::from_str::<Value>(&text).is_err(), "the thresholds stand unquoted until !Sub fills them in");
        let mut quoted = text.clone();
        for p in threshold_parameters() {
            assert!(text.contains(&format!("\"value\":${{{p}}}")), "{p}");
            quoted = quoted.replace(&format!("${{{p}}}"), &format!("\"${{{p}}}\""));
        }
        let parsed: Value = serde_json::from_str(&quoted).unwrap();
        assert_eq!(parsed, dashboard_body());
    }
}
