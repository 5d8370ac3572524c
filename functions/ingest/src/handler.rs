//! One invocation: decode, parse, aggregate (the pure pipeline of `voicelake-shared`), then send
//! metrics and the three tables' records concurrently. Anything that could not be sent fails the
//! invocation with an error naming it, so that Lambda retries the batch and, after its retries,
//! keeps it in the on-failure destination.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::time::{Instant, timeout_at};
use voicelake_shared::BatchOutput;
use voicelake_shared::Counts;
use voicelake_shared::lake::{self, LakeRow, Table};
use voicelake_shared::metrics::{self, Datum, dim, m};

use crate::config::IngestConfig;
use crate::deliver::{self, MetricsOutcome, StreamOutcome};
use crate::sinks::{MetricsSink, RecordSink};

/// What an invocation did: logged as one structured line, and returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub log_group: String,
    pub log_stream: String,
    pub control_message: bool,
    #[serde(flatten)]
    pub counts: Counts,
    pub turn_records: StreamOutcome,
    pub session_records: StreamOutcome,
    pub reject_records: StreamOutcome,
    pub metrics: MetricsOutcome,
    pub duration_ms: u64,
}

impl Summary {
    /// What sending a table's records did.
    pub fn records(&self, table: Table) -> &StreamOutcome {
        match table {
            Table::Turns => &self.turn_records,
            Table::Sessions => &self.session_records,
            Table::Rejects => &self.reject_records,
        }
    }

    fn total(&self, count: fn(&StreamOutcome) -> u64) -> u64 {
        Table::ALL.iter().map(|t| count(self.records(*t))).sum()
    }

    pub fn records_failed(&self) -> u64 {
        self.total(|o| o.failed)
    }

    pub fn records_retried(&self) -> u64 {
        self.total(|o| o.retried)
    }

    pub fn records_sent(&self) -> u64 {
        self.total(|o| o.sent)
    }
}

/// The invocation could not deliver everything.
#[derive(Debug, thiserror::Error)]
#[error("not delivered: {}", .failures.join("; "))]
pub struct DeliveryError {
    pub failures: Vec<String>,
    pub summary: Box<Summary>,
}

/// The template's function timeout: the budget of an invocation without a context.
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Kept back from the sends for the failure metric and the summary line.
pub const FINISH_RESERVE: Duration = Duration::from_millis(1500);
/// Kept back from the failure metric for the summary line and the runtime's answer.
pub const LOG_RESERVE: Duration = Duration::from_millis(300);

impl DeliveryError {
    /// Whether the invocation ran out of time rather than being refused.
    pub fn is_deadline(&self) -> bool {
        self.failures.iter().any(|f| f.contains(deliver::DEADLINE))
    }
}

/// The error Lambda records for a failed invocation: a type a reader can alarm and search on (the
/// runtime would otherwise name the Rust type), and the failures.
impl From<DeliveryError> for lambda_runtime::Diagnostic {
    fn from(e: DeliveryError) -> Self {
        let error_type = if e.is_deadline() { "DeadlineExceeded" } else { "DeliveryFailed" };
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: e.to_string() }
    }
}

pub struct Ingest<M, R> {
    config: IngestConfig,
    metrics: M,
    records: R,
}

fn records<R: LakeRow>(rows: &[R]) -> Vec<Vec<u8>> {
    rows.iter().map(lake::firehose_record).collect()
}

/// A table's rows of the batch as Firehose records.
fn table_records(out: &BatchOutput, table: Table) -> Vec<Vec<u8>> {
    match table {
        Table::Turns => records(&out.turns),
        Table::Sessions => records(&out.sessions),
        Table::Rejects => records(&out.rejects),
    }
}

impl<M: MetricsSink, R: RecordSink> Ingest<M, R> {
    pub fn new(config: IngestConfig, metrics: M, records: R) -> Self {
        Ingest { config, metrics, records }
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    pub fn metrics(&self) -> &M {
        &self.metrics
    }

    pub fn records_sink(&self) -> &R {
        &self.records
    }

    /// Handles one invocation payload at `now_ms`, with the whole of the function's timeout.
    pub async fn handle(&self, payload: &Value, now_ms: i64) -> Result<Summary, DeliveryError> {
        self.handle_until(payload, now_ms, Instant::now() + FUNCTION_TIMEOUT).await
    }

    /// Handles one invocation payload at `now_ms`, finishing before `deadline` (the invocation's,
    /// from its context): sends get the time up to [`FINISH_RESERVE`] before it, so that the
    /// failure metric and the summary line still go out when a sink never answers.
    pub async fn handle_until(&self, payload: &Value, now_ms: i64, deadline: Instant) -> Result<Summary, DeliveryError> {
        let started = Instant::now();
        let sends_until = deadline.checked_sub(FINISH_RESERVE).unwrap_or(started).max(started);
        let cfg = &self.config.pipeline;

        // Decode and parse. A payload that is not a subscription event still becomes a reject row.
        let out: BatchOutput = voicelake_shared::process_event(payload, cfg, now_ms);

        log_rejects(&out);

        // Aggregate.
        let requests = metrics::split_requests(metrics::datums_for(&out, cfg, now_ms));
        let [turns, sessions, rejects] = Table::ALL.map(|t| table_records(&out, t));

        // Send.
        let streams = &self.config.streams;
        let send = |table: Table, records| deliver::send_records(&self.records, streams.of(table), records, self.config.retry, sends_until);
        let (turn_records, session_records, reject_records, metrics) = tokio::join!(
            send(Table::Turns, &turns),
            send(Table::Sessions, &sessions),
            send(Table::Rejects, &rejects),
            deliver::send_metrics(&self.metrics, &self.config.namespace, &requests, sends_until),
        );

        let stats = &out.stats;
        let mut summary = Summary {
            log_group: out.log_group.clone(),
            log_stream: out.log_stream.clone(),
            control_message: stats.control_message,
            counts: stats.counts(),
            turn_records,
            session_records,
            reject_records,
            metrics,
            duration_ms: 0,
        };

        let mut failures = Vec::new();
        for table in Table::ALL {
            let (stream, o) = (streams.of(table), summary.records(table));
            if o.failed > 0 {
                failures.push(format!(
                    "{} of {} records to Firehose stream {stream}: {}",
                    o.failed,
                    o.sent + o.failed,
                    o.error.as_deref().unwrap_or("unknown error")
                ));
            }
        }
        if summary.metrics.failed_requests > 0 {
            failures.push(format!(
                "{} of {} PutMetricData requests to namespace {}: {}",
                summary.metrics.failed_requests,
                summary.metrics.requests,
                self.config.namespace,
                summary.metrics.error.as_deref().unwrap_or("unknown error")
            ));
        }
        // Best effort, so that a failure can be alarmed on even before Lambda's retries run out, and
        // refused datums (which no retry sends) are counted.
        let mut health = Vec::new();
        if !failures.is_empty() {
            health.push(self.health_datum(m::SEND_FAILURES, summary.records_failed() + summary.metrics.failed_requests, now_ms));
        }
        if summary.metrics.refused_datums > 0 {
            tracing::error!(refused = summary.metrics.refused_datums, refusal = ?summary.metrics.refusal, "metric datums refused");
            health.push(self.health_datum(m::DATUMS_REFUSED, summary.metrics.refused_datums, now_ms));
        }
        if !health.is_empty() {
            let metric_until = deadline.checked_sub(LOG_RESERVE).unwrap_or(sends_until).max(sends_until);
            let _ = timeout_at(metric_until, self.metrics.put_metric_data(&self.config.namespace, &health)).await;
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        log_summary(&summary, &failures);
        if failures.is_empty() { Ok(summary) } else { Err(DeliveryError { failures, summary: Box::new(summary) }) }
    }

    fn health_datum(&self, spec: metrics::MetricSpec, count: u64, now_ms: i64) -> Datum {
        Datum {
            metric_name: spec.name,
            unit: spec.unit,
            dimensions: vec![(dim::ENVIRONMENT, metrics::dimension_value(&self.config.pipeline.environment).into_owned())],
            timestamp_ms: metrics::minute(now_ms),
            values: vec![count as f64],
            counts: vec![1.0],
        }
    }
}

/// Rejects logged one per line (the saved query `rejects-by-reason` counts them), at most
/// [`MAX_REJECT_LINES`] per invocation: the rejects table has them all.
const MAX_REJECT_LINES: usize = 50;

fn log_rejects(out: &BatchOutput) {
    for r in out.rejects.iter().take(MAX_REJECT_LINES) {
        tracing::warn!(
            reason = %r.reason,
            event_id = r.event_id.as_deref().unwrap_or(""),
            log_group = r.log_group.as_deref().unwrap_or(""),
            log_stream = r.log_stream.as_deref().unwrap_or(""),
            detail = %voicelake_shared::rows::truncate_utf8(&r.detail, 500),
            "rejected"
        );
    }
}

/// One structured line per invocation, fields at the top level so Logs Insights can query them.
fn log_summary(s: &Summary, failures: &[String]) {
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                log_group = %s.log_group,
                log_stream = %s.log_stream,
                control_message = s.control_message,
                events_in = s.counts.events_in,
                turns = s.counts.turns,
                partial_turns = s.counts.partial_turns,
                sessions = s.counts.sessions,
                rejected = s.counts.rejected,
                skipped = s.counts.skipped,
                nulled_values = s.counts.nulled_values,
                records_sent = s.records_sent(),
                records_retried = s.records_retried(),
                records_failed = s.records_failed(),
                datums_sent = s.metrics.datums,
                metric_requests = s.metrics.requests,
                metric_requests_failed = s.metrics.failed_requests,
                metric_datums_refused = s.metrics.refused_datums,
                duration_ms = s.duration_ms,
                failures = %failures.join("; "),
                "invocation"
            )
        };
    }
    if failures.is_empty() {
        line!(info);
    } else {
        line!(error);
    }
}
