//! The default alarms: thresholds, statistics and periods. `template.yaml` declares the same alarms
//! (a test compares them) and the local report evaluates them on replayed traffic.

use serde::Serialize;

use crate::diagnosis::COMPONENTS;
use crate::metrics::{MetricSpec, metric};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Statistic {
    /// CloudWatch `p95`.
    P95,
    Average,
    Sum,
    Maximum,
    /// `100 × (1 − ToolCallFailures / ToolCallOutcomes)`, by metric math.
    ToolSuccessPercent,
    /// The sum of each provider's own series (`{Environment, Provider, Kind}`), by a Metrics
    /// Insights query `GROUP BY Provider, Kind`: every provider and kind is a contributor of its
    /// own, and the alarm fires on the worst of them.
    ProviderSum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Comparison {
    GreaterThanThreshold,
    LessThanThreshold,
}

/// What an alarm watches: it decides which evidence explains a breach and how it is worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AlarmKind {
    /// The turn's whole latency.
    TurnLatency,
    /// One component of the turn's latency (one of [`COMPONENTS`]).
    ComponentLatency,
    ToolSuccess,
    Cost,
    Rejects,
    ProviderFailures,
    SessionsClosedByError,
    WorkerMemory,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlarmSpec {
    /// The alarm's logical id in `template.yaml`.
    pub id: &'static str,
    /// The template parameter holding the threshold.
    pub parameter: &'static str,
    pub kind: AlarmKind,
    /// The metric the alarm's statistic is of (for [`Statistic::ToolSuccessPercent`], the outcomes
    /// the failures are a share of).
    #[serde(serialize_with = "metric_name")]
    pub metric: MetricSpec,
    pub statistic: Statistic,
    pub comparison: Comparison,
    pub threshold: f64,
    pub period_seconds: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    /// What an operator should look at first.
    pub description: &'static str,
}

/// Five-minute periods, two of the last three breaching: one slow period does not page, a
/// degradation that lasts ten minutes does. p95 is evaluated even on fewer than 200 samples
/// (`EvaluateLowSampleCountPercentile: evaluate`) because voice agents often take a few calls an hour.
pub const DEFAULTS: [AlarmSpec; 9] = [
    AlarmSpec {
        id: "TurnLatencyP95Alarm",
        parameter: "TurnLatencyP95ThresholdMs",
        kind: AlarmKind::TurnLatency,
        metric: metric::TURN_LATENCY,
        statistic: Statistic::P95,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 1500.0,
        period_seconds: 300,
        evaluation_periods: 3,
        datapoints_to_alarm: 2,
        description: "p95 turn latency is above target. Compare the component alarms and the dashboard's breakdown (EOU delay, LLM ttft, TTS ttfb) to see which component moved; run the saved query 'voicelake/slowest-turns'.",
    },
    AlarmSpec {
        id: "LLMTimeToFirstTokenP95Alarm",
        parameter: "LLMTTFTP95ThresholdMs",
        kind: AlarmKind::ComponentLatency,
        metric: metric::LLM_TTFT,
        statistic: Statistic::P95,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 700.0,
        period_seconds: 300,
        evaluation_periods: 3,
        datapoints_to_alarm: 2,
        description: "p95 LLM time to first token is high. Check the LLM provider's status page, prompt size (LLMPromptTokens) and recent model or prompt changes.",
    },
    AlarmSpec {
        id: "TTSTimeToFirstByteP95Alarm",
        parameter: "TTSTTFBP95ThresholdMs",
        kind: AlarmKind::ComponentLatency,
        metric: metric::TTS_TTFB,
        statistic: Statistic::P95,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 300.0,
        period_seconds: 300,
        evaluation_periods: 3,
        datapoints_to_alarm: 2,
        description: "p95 TTS time to first byte is high. Check the TTS provider's status page, voice or model changes, and whether streaming synthesis is still on.",
    },
    AlarmSpec {
        id: "ToolSuccessRateAlarm",
        parameter: "ToolSuccessRateThresholdPercent",
        kind: AlarmKind::ToolSuccess,
        metric: metric::TOOL_CALL_OUTCOMES,
        statistic: Statistic::ToolSuccessPercent,
        comparison: Comparison::LessThanThreshold,
        threshold: 95.0,
        period_seconds: 900,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        description: "Fewer than the target share of tool calls succeed. Run the saved query 'voicelake/tool-failures' to see which tool and error.",
    },
    AlarmSpec {
        id: "CostPerCallAlarm",
        parameter: "CostPerCallThresholdUsd",
        kind: AlarmKind::Cost,
        metric: metric::CALL_COST,
        statistic: Statistic::Average,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 0.20,
        period_seconds: 3600,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        description: "Average estimated cost per call is above budget. Run the saved query 'voicelake/cost-per-day' and the Athena query 'cost_by_model' to see which provider and model grew.",
    },
    AlarmSpec {
        id: "RejectedEventsAlarm",
        parameter: "RejectedEventsThreshold",
        kind: AlarmKind::Rejects,
        metric: metric::EVENTS_REJECTED,
        statistic: Statistic::Sum,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 10.0,
        period_seconds: 300,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        description: "Agents are logging events the pipeline cannot use. Run the saved query 'voicelake/rejects-by-reason' or query the rejects table: each row has the reason and the raw message.",
    },
    // A provider down for two minutes fails every turn of every live call in that time: each is a
    // retry line or three and a fallback switch. More than 10 in a five-minute period is an outage
    // for a fleet of a few concurrent calls, not the odd timeout; one period of two is enough, since
    // calls are failing while it lasts.
    AlarmSpec {
        id: "ProviderErrorsAlarm",
        parameter: "ProviderFailuresThreshold",
        kind: AlarmKind::ProviderFailures,
        metric: metric::PROVIDER_FAILURES,
        statistic: Statistic::ProviderSum,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 10.0,
        period_seconds: 300,
        evaluation_periods: 2,
        datapoints_to_alarm: 1,
        description: "A model provider is failing: LiveKit is retrying it, falling back from it, or closing sessions over it. The notification names the kind, provider and agent; run the saved query 'voicelake/provider-failures' and check the provider's status page.",
    },
    AlarmSpec {
        id: "SessionsClosedByErrorAlarm",
        parameter: "SessionsClosedByErrorThreshold",
        kind: AlarmKind::SessionsClosedByError,
        metric: metric::SESSIONS_CLOSED_BY_ERROR,
        statistic: Statistic::Sum,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 2.0,
        period_seconds: 300,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        description: "Calls are being dropped: LiveKit closed sessions on an unrecoverable error. Run the saved query 'voicelake/provider-failures' or the Athena query 'failures_by_provider' to see which provider failed first.",
    },
    AlarmSpec {
        id: "WorkerMemoryAlarm",
        parameter: "WorkerMemoryThresholdPercent",
        kind: AlarmKind::WorkerMemory,
        metric: metric::WORKER_MEMORY,
        statistic: Statistic::Maximum,
        comparison: Comparison::GreaterThanThreshold,
        threshold: 80.0,
        period_seconds: 300,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        description: "A LiveKit job process is using more than the threshold share of its memory limit (of its warning threshold when it has none) and may be killed. Check the worker's job_memory_limit_mb and recent prompt or tool changes that hold memory.",
    },
];

fn metric_name<S: serde::Serializer>(metric: &MetricSpec, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(metric.name)
}

impl AlarmSpec {
    /// A latency alarm: the turn's, or one of its components'.
    pub fn is_latency(&self) -> bool {
        matches!(self.kind, AlarmKind::TurnLatency | AlarmKind::ComponentLatency)
    }

    /// An alarm on providers failing: their failure events, or the sessions they closed.
    pub fn is_failure(&self) -> bool {
        matches!(self.kind, AlarmKind::ProviderFailures | AlarmKind::SessionsClosedByError)
    }

    /// For a component's latency alarm, the component's position in [`COMPONENTS`].
    pub fn component(&self) -> Option<usize> {
        match self.kind {
            AlarmKind::ComponentLatency => COMPONENTS.iter().position(|(_, spec)| spec.index == self.metric.index),
            _ => None,
        }
    }

    /// Orders two values of the alarm's statistic so that the worse one is the greater: the higher
    /// for a `GreaterThanThreshold` alarm, the lower for a `LessThanThreshold` one.
    pub fn cmp_badness(&self, a: f64, b: f64) -> std::cmp::Ordering {
        match self.comparison {
            Comparison::GreaterThanThreshold => a.total_cmp(&b),
            Comparison::LessThanThreshold => b.total_cmp(&a),
        }
    }

    pub fn breaches(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::GreaterThanThreshold => value > self.threshold,
            Comparison::LessThanThreshold => value < self.threshold,
        }
    }
}

/// The Lambda event of a test notification: SNS delivering the turn-latency alarm of `stack` in
/// ALARM at `now_ms`, marked with the `voicelake-test` message attribute so that the notify
/// function says it is a test. `voicelake notify test` sends it through the deployed function.
pub fn sample_alarm_event(stack: &str, region: &str, account: &str, now_ms: i64) -> serde_json::Value {
    let spec = &DEFAULTS[0];
    let alarm = format!("{stack}-turn-latency-p95");
    let at = crate::timefmt::utc(now_ms).format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    let message = serde_json::json!({
        "AlarmName": alarm,
        "AlarmDescription": format!("A test notification from `voicelake notify test`: {}", spec.description),
        "AWSAccountId": account,
        "NewStateValue": "ALARM",
        "NewStateReason": "Test notification: no alarm changed state.",
        "StateChangeTime": at,
        "Region": region,
        "AlarmArn": format!("arn:aws:cloudwatch:{region}:{account}:alarm:{alarm}"),
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": spec.metric.name,
            "Namespace": "VoiceLake",
            "StatisticType": "ExtendedStatistic",
            "ExtendedStatistic": "p95",
            "Unit": "Milliseconds",
            "Dimensions": [],
            "Period": spec.period_seconds,
            "EvaluationPeriods": spec.evaluation_periods,
            "DatapointsToAlarm": spec.datapoints_to_alarm,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": spec.threshold,
            "TreatMissingData": "notBreaching",
            "EvaluateLowSampleCountPercentile": "evaluate"
        }
    });
    serde_json::json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": format!("arn:aws:sns:{region}:{account}:{stack}-test"),
        "Sns": {
            "Type": "Notification",
            "MessageId": format!("voicelake-test-{now_ms}"),
            "TopicArn": format!("arn:aws:sns:{region}:{account}:{stack}-test"),
            "Subject": format!("ALARM: \"{alarm}\" (test)"),
            "Message": message.to_string(),
            "Timestamp": crate::timefmt::iso(now_ms),
            "SignatureVersion": "1",
            "Signature": "",
            "SigningCertUrl": "",
            "UnsubscribeUrl": "",
            "MessageAttributes": {"voicelake-test": {"Type": "String", "Value": "true"}}
        }
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_direction() {
        let tools = DEFAULTS.iter().find(|a| a.statistic == Statistic::ToolSuccessPercent).unwrap();
        assert!(tools.breaches(90.0));
        assert!(!tools.breaches(95.0));
        assert!(DEFAULTS[0].breaches(1500.1));
        assert!(!DEFAULTS[0].breaches(1500.0));
    }
}
