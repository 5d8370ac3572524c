//! The saved Logs Insights queries a notification runs, compiled in from `queries/` (query-sync
//! deploys the same files), each with the reader of its rows.

use voicelake_shared::alarms::{AlarmKind, AlarmSpec};
use voicelake_shared::diagnosis::{Call, ProviderFailures, RejectSample, ToolFailures, Window};

use crate::config::NotifyConfig;
use crate::enrich::{self, Row};

/// What an alarm is explained by in the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogQuery {
    WorstCalls,
    ToolFailures,
    RejectsByReason,
    CostPerDay,
    FailureLines,
    /// For the pipeline's own alarms, which voicelake does not diagnose.
    IngestErrors,
}

/// What a query's rows tell, each read by the parser of that query's columns.
#[derive(Debug, Default)]
pub struct RowEvidence {
    pub calls: Vec<Call>,
    pub tool_failures: Vec<ToolFailures>,
    pub rejects: Vec<RejectSample>,
    pub failures: Vec<ProviderFailures>,
    pub error_lines: Vec<String>,
}

impl LogQuery {
    /// The query that explains `spec` (`None`: an alarm that is not one of voicelake's diagnosed ones).
    pub fn of(spec: Option<&AlarmSpec>) -> LogQuery {
        match spec.map(|s| s.kind) {
            None => LogQuery::IngestErrors,
            Some(AlarmKind::ToolSuccess) => LogQuery::ToolFailures,
            Some(AlarmKind::Rejects) => LogQuery::RejectsByReason,
            Some(AlarmKind::Cost) => LogQuery::CostPerDay,
            Some(AlarmKind::ProviderFailures | AlarmKind::SessionsClosedByError) => LogQuery::FailureLines,
            Some(AlarmKind::TurnLatency | AlarmKind::ComponentLatency | AlarmKind::WorkerMemory) => LogQuery::WorstCalls,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            LogQuery::WorstCalls => include_str!("../../../queries/insights/worst-calls.logsinsights"),
            LogQuery::ToolFailures => include_str!("../../../queries/insights/tool-failures.logsinsights"),
            LogQuery::RejectsByReason => include_str!("../../../queries/insights/rejects-by-reason.logsinsights"),
            LogQuery::CostPerDay => include_str!("../../../queries/insights/cost-per-day.logsinsights"),
            LogQuery::FailureLines => include_str!("../../../queries/insights/failure-lines.logsinsights"),
            LogQuery::IngestErrors => include_str!("../../../queries/insights/ingest-errors.logsinsights"),
        }
    }

    /// What the query finds, as a notification names it when it is missing.
    pub fn what(self) -> &'static str {
        match self {
            LogQuery::WorstCalls => "worst calls (Logs Insights)",
            LogQuery::ToolFailures => "failing tools (Logs Insights)",
            LogQuery::RejectsByReason => "reject reasons (Logs Insights)",
            LogQuery::CostPerDay => "cost by day (Logs Insights)",
            LogQuery::FailureLines => "provider failure lines (Logs Insights)",
            LogQuery::IngestErrors => "the ingest function's errors (Logs Insights)",
        }
    }

    /// Whether it reads the ingest function's log group rather than the agents'.
    pub fn on_ingest(self) -> bool {
        matches!(self, LogQuery::RejectsByReason | LogQuery::IngestErrors)
    }

    /// Whether the function runs it: a cost alarm's query is only linked, its answer (spend per day)
    /// says nothing the diagnosis can use, and a query costs its scan.
    pub fn runs(self) -> bool {
        self != LogQuery::CostPerDay
    }

    /// The time it reads for a breach in `window`: failure lines of the hour before too, since when a
    /// provider has been failing.
    pub fn span(self, window: Window) -> Window {
        match self {
            LogQuery::FailureLines => Window { start_ms: window.start_ms - enrich::HOUR_MS, ..window },
            _ => window,
        }
    }

    /// What its rows tell. Failure lines are read through the ingest pipeline with the function's
    /// privacy settings (`config`), and grouped for the breach in `window`.
    pub fn read(self, rows: &[Row], config: &NotifyConfig, window: Window) -> RowEvidence {
        match self {
            LogQuery::WorstCalls => RowEvidence { calls: enrich::calls_from_rows(rows), ..RowEvidence::default() },
            LogQuery::ToolFailures => RowEvidence { tool_failures: enrich::tool_failures_from_rows(rows), ..RowEvidence::default() },
            LogQuery::RejectsByReason => RowEvidence { rejects: enrich::rejects_from_rows(rows), ..RowEvidence::default() },
            LogQuery::FailureLines => {
                let reading = voicelake_shared::Config {
                    pii: config.pii,
                    pseudonym_key: config.pseudonym_key.clone(),
                    ..voicelake_shared::Config::default()
                };
                RowEvidence { failures: enrich::failures_from_rows(rows, &reading, window), ..RowEvidence::default() }
            }
            LogQuery::IngestErrors => RowEvidence { error_lines: enrich::error_lines_from_rows(rows), ..RowEvidence::default() },
            LogQuery::CostPerDay => RowEvidence::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicelake_shared::alarms::DEFAULTS;

    /// Every deployed alarm is explained by a query of its own kind, and the pipeline's by the ingest
    /// function's errors.
    #[test]
    fn each_alarm_kind_has_its_query() {
        let of = |id: &str| LogQuery::of(DEFAULTS.iter().find(|s| s.id == id));
        assert_eq!(of("TurnLatencyP95Alarm"), LogQuery::WorstCalls);
        assert_eq!(of("TTSTimeToFirstByteP95Alarm"), LogQuery::WorstCalls);
        assert_eq!(of("ToolSuccessRateAlarm"), LogQuery::ToolFailures);
        assert_eq!(of("CostPerCallAlarm"), LogQuery::CostPerDay);
        assert_eq!(of("RejectedEventsAlarm"), LogQuery::RejectsByReason);
        assert_eq!(of("ProviderErrorsAlarm"), LogQuery::FailureLines);
        assert_eq!(of("SessionsClosedByErrorAlarm"), LogQuery::FailureLines);
        assert_eq!(of("NotOneOfOurs"), LogQuery::IngestErrors);
        assert!(LogQuery::IngestErrors.on_ingest() && !LogQuery::CostPerDay.runs());
        let window = Window { start_ms: 10 * enrich::HOUR_MS, end_ms: 10 * enrich::HOUR_MS + 300_000 };
        assert_eq!(LogQuery::FailureLines.span(window).start_ms, 9 * enrich::HOUR_MS);
        assert_eq!(LogQuery::WorstCalls.span(window), window);
    }
}
