//! The message CloudWatch publishes to SNS when an alarm changes state, for metric alarms, metric
//! math alarms and composite alarms, and which of voicelake's alarms it is.

use chrono::DateTime;
use serde::Deserialize;
use voicelake_shared::alarms::{AlarmSpec, Comparison, DEFAULTS, Statistic};
use voicelake_shared::aws_names::region_in;
use voicelake_shared::diagnosis::Window;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Alarm,
    Ok,
    InsufficientData,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Alarm => "ALARM",
            State::Ok => "OK",
            State::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dimension {
    #[serde(alias = "name")]
    pub name: String,
    #[serde(alias = "value")]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricRef {
    pub metric_name: String,
    pub namespace: String,
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricStat {
    pub metric: MetricRef,
    pub period: u32,
    pub stat: String,
}

/// One entry of a metric math alarm's `Metrics`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MathQuery {
    pub id: String,
    #[serde(default)]
    pub metric_stat: Option<MetricStat>,
    #[serde(default)]
    pub expression: Option<String>,
    /// A Metrics Insights query's period (a `MetricStat` has its own).
    #[serde(default)]
    pub period: Option<u32>,
    #[serde(default)]
    pub return_data: Option<bool>,
}

/// What a metric alarm watches.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Trigger {
    #[serde(default)]
    pub metric_name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub statistic: Option<String>,
    #[serde(default)]
    pub extended_statistic: Option<String>,
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    #[serde(default)]
    pub period: Option<u32>,
    pub evaluation_periods: u32,
    #[serde(default)]
    pub datapoints_to_alarm: Option<u32>,
    pub comparison_operator: String,
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Metric math alarms.
    #[serde(default)]
    pub metrics: Vec<MathQuery>,
}

impl Trigger {
    /// The metric names the alarm reads, directly or through metric math.
    pub fn metric_names(&self) -> Vec<&str> {
        self.metric_name
            .iter()
            .map(String::as_str)
            .chain(self.metrics.iter().filter_map(|q| q.metric_stat.as_ref()).map(|s| s.metric.metric_name.as_str()))
            .collect()
    }

    /// The period of the evaluated series: the trigger's, or for metric math that of its inputs.
    pub fn period_seconds(&self) -> Option<u32> {
        self.period
            .or_else(|| self.metrics.iter().filter_map(|q| q.metric_stat.as_ref()).map(|s| s.period).max())
            .or_else(|| self.metrics.iter().filter_map(|q| q.period).max())
    }
}

/// A child of a composite alarm that put it into its state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TriggeringChild {
    pub arn: String,
    #[serde(default)]
    pub state: Option<ChildState>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildState {
    pub value: State,
    #[serde(default)]
    pub timestamp: Option<String>,
}

impl TriggeringChild {
    /// The alarm's name: the last part of its ARN (`arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`).
    pub fn name(&self) -> &str {
        self.arn.splitn(7, ':').nth(6).unwrap_or(&self.arn)
    }
}

/// The SNS message of an alarm's state change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmMessage {
    pub alarm_name: String,
    #[serde(default)]
    pub alarm_description: Option<String>,
    #[serde(rename = "AWSAccountId", default)]
    pub account_id: Option<String>,
    pub new_state_value: State,
    #[serde(default)]
    pub old_state_value: Option<State>,
    #[serde(default)]
    pub new_state_reason: String,
    pub state_change_time: String,
    #[serde(default)]
    pub alarm_arn: Option<String>,
    /// Metric and metric math alarms.
    #[serde(default)]
    pub trigger: Option<Trigger>,
    /// Composite alarms.
    #[serde(default)]
    pub alarm_rule: Option<String>,
    #[serde(default)]
    pub triggering_children: Vec<TriggeringChild>,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("the SNS message is not a CloudWatch alarm notification: {0}")]
    NotAnAlarm(#[from] serde_json::Error),
    #[error("the alarm's StateChangeTime {0:?} is not a timestamp")]
    BadTime(String),
}

impl AlarmMessage {
    pub fn parse(text: &str) -> Result<AlarmMessage, MessageError> {
        let message: AlarmMessage = serde_json::from_str(text)?;
        message.state_change_ms()?;
        Ok(message)
    }

    pub fn state_change_ms(&self) -> Result<i64, MessageError> {
        parse_time(&self.state_change_time).ok_or_else(|| MessageError::BadTime(self.state_change_time.clone()))
    }

    pub fn is_composite(&self) -> bool {
        self.alarm_rule.is_some()
    }

    /// An OK that follows INSUFFICIENT_DATA: a new alarm's first evaluation, or data coming back
    /// without ever breaching. The stack's email subscriptions filter the same change out.
    pub fn is_not_news(&self) -> bool {
        self.new_state_value == State::Ok && self.old_state_value == Some(State::InsufficientData)
    }

    /// The region code, from the alarm's ARN (the message's `Region` is a display name). Only a
    /// code shaped like one (`us-east-1`, `us-gov-west-1`): it becomes the host of console links.
    pub fn region(&self) -> Option<String> {
        self.alarm_arn.as_deref().and_then(region_in)
    }

    /// Which default alarm this is, with the threshold it was deployed with.
    pub fn spec(&self) -> Option<AlarmSpec> {
        spec_of(self.trigger.as_ref()?)
    }

    /// The span the alarm evaluated when it changed state.
    pub fn breach_window(&self) -> Option<Window> {
        window_of(self.trigger.as_ref()?, self.state_change_ms().ok()?)
    }

    /// The datapoints CloudWatch quotes in the reason ("… datapoints [1834.0 (23/11/26 14:10:00),
    /// 1712.0 (…)] were greater …"): what is known of the breach when the metrics cannot be read.
    pub fn reason_values(&self) -> Vec<f64> {
        let Some(list) = self.new_state_reason.split_once('[').and_then(|(_, rest)| rest.split_once(']')).map(|(l, _)| l) else {
            return Vec::new();
        };
        list.split("), ").filter_map(|p| p.split_whitespace().next()?.parse::<f64>().ok()).filter(|v| v.is_finite()).collect()
    }
}

/// Which default alarm a trigger is, with the threshold and periods it was deployed with.
pub fn spec_of(trigger: &Trigger) -> Option<AlarmSpec> {
    let names = trigger.metric_names();
    let comparison = match trigger.comparison_operator.as_str() {
        "LessThanThreshold" | "LessThanOrEqualToThreshold" => Comparison::LessThanThreshold,
        _ => Comparison::GreaterThanThreshold,
    };
    let stat = trigger.extended_statistic.as_deref().or(trigger.statistic.as_deref()).map(str::to_ascii_lowercase);
    let spec = DEFAULTS.iter().find(|a| {
        a.comparison == comparison
            && match a.statistic {
                Statistic::ToolSuccessPercent => names.contains(&a.metric.name) && !trigger.metrics.is_empty(),
                Statistic::P95 => names == [a.metric.name] && stat.as_deref() == Some("p95"),
                Statistic::Average => names == [a.metric.name] && stat.as_deref() == Some("average"),
                Statistic::Sum => names == [a.metric.name] && stat.as_deref() == Some("sum"),
                Statistic::Maximum => names == [a.metric.name] && stat.as_deref() == Some("maximum"),
                // A Metrics Insights alarm: its one query is SQL over the metric.
                Statistic::ProviderSum => {
                    trigger.metrics.iter().filter_map(|q| q.expression.as_deref()).any(|e| e.contains(&format!("SUM({})", a.metric.name)))
                }
            }
    })?;
    Some(AlarmSpec {
        threshold: trigger.threshold.unwrap_or(spec.threshold),
        period_seconds: trigger.period_seconds().unwrap_or(spec.period_seconds),
        evaluation_periods: trigger.evaluation_periods,
        datapoints_to_alarm: trigger.datapoints_to_alarm.unwrap_or(trigger.evaluation_periods),
        ..*spec
    })
}

/// The alarm's evaluation periods, ending at the last whole period before it changed state.
pub fn window_of(trigger: &Trigger, changed_ms: i64) -> Option<Window> {
    let period_ms = i64::from(trigger.period_seconds()?) * 1000;
    let end_ms = changed_ms - changed_ms.rem_euclid(period_ms);
    Some(Window { start_ms: end_ms - i64::from(trigger.evaluation_periods.max(1)) * period_ms, end_ms })
}

/// CloudWatch's timestamps: `2026-11-23T14:10:32.123+0000`, and RFC 3339 from other sources.
pub fn parse_time(text: &str) -> Option<i64> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicelake_shared::aws_names::is_region_code;

    fn fixture(name: &str) -> AlarmMessage {
        let path = format!("{}/../../tests/fixtures/alarms/{name}", env!("CARGO_MANIFEST_DIR"));
        let event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        AlarmMessage::parse(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn a_metric_alarm_is_known_with_its_deployed_threshold_and_window() {
        let m = fixture("turn-latency-alarm.json");
        assert_eq!((m.new_state_value, m.old_state_value), (State::Alarm, Some(State::Ok)));
        let spec = m.spec().unwrap();
        assert_eq!((spec.id, spec.threshold), ("TurnLatencyP95Alarm", 1200.0));
        assert_eq!(m.reason_values(), [1834.0, 1712.0]);
        assert_eq!(m.region().as_deref(), Some("us-east-1"));
        for region in ["us-gov-west-1", "ap-southeast-2", "eu-central-1", "cn-north-1", "il-central-1"] {
            assert!(is_region_code(region), "{region}");
        }
        for bad in ["evil.example#", "us-east-1.evil.example", "US-EAST-1", "us-east", "", "a-b-c-d-1"] {
            assert!(!is_region_code(bad), "{bad}");
        }
        // Changed at 14:17:32: three five-minute periods ending at 14:15.
        let w = m.breach_window().unwrap();
        assert_eq!(
            (voicelake_shared::timefmt::iso(w.start_ms), voicelake_shared::timefmt::iso(w.end_ms)),
            ("2026-11-23T14:00:00.000Z".into(), "2026-11-23T14:15:00.000Z".into())
        );
    }

    #[test]
    fn a_metric_math_alarm_is_the_tool_success_alarm() {
        let m = fixture("tool-success-alarm.json");
        let spec = m.spec().unwrap();
        assert_eq!((spec.id, spec.threshold, spec.period_seconds), ("ToolSuccessRateAlarm", 95.0, 900));
        assert_eq!(m.breach_window().unwrap().end_ms - m.breach_window().unwrap().start_ms, 900_000);
    }

    #[test]
    fn a_composite_alarm_names_its_children() {
        let m = fixture("paging-composite-alarm.json");
        assert!(m.is_composite() && m.spec().is_none() && m.breach_window().is_none());
        assert_eq!(m.triggering_children.iter().map(TriggeringChild::name).collect::<Vec<_>>(), ["voicelake-turn-latency-p95"]);
    }

    #[test]
    fn an_ok_message_and_a_pipeline_alarm() {
        let m = fixture("turn-latency-ok.json");
        assert_eq!((m.new_state_value, m.old_state_value), (State::Ok, Some(State::Alarm)));
        let m = fixture("ingest-errors-alarm.json");
        assert!(m.spec().is_none(), "AWS/Lambda Errors is not one of the defaults");
    }

    #[test]
    fn not_an_alarm_is_an_error_that_says_so() {
        let e = AlarmMessage::parse("{\"hello\": 1}").unwrap_err();
        assert!(e.to_string().contains("not a CloudWatch alarm notification"), "{e}");
        assert_eq!(parse_time("2026-11-23T14:10:32.123+0000"), Some(1_795_443_032_123));
    }
}
