//! One invocation: decode, parse with the parts its stream carries, aggregate (the pure pipeline of
//! `voicelake-shared`), then send metrics and the three tables' records concurrently. Anything that
//! could not be sent fails the invocation with an error naming it, so that Lambda retries the batch
//! and, after its retries, keeps it in the on-failure destination. A scheduled invocation sweeps
//! the parts of streams gone quiet.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::time::{Instant, timeout_at};
use voicelake_shared::Counts;
use voicelake_shared::envelope::{Decoded, LogBatch, LogEvent, MessageType};
use voicelake_shared::lake::{self, LakeRow, Table};
use voicelake_shared::metrics::{self, Datum, dim, metric};
use voicelake_shared::{BatchOutput, Delivered, Hold, PENDING_TIMEOUT_MS, SETTLE_MS};

use crate::config::IngestConfig;
use crate::deliver::{self, MetricsOutcome, StreamOutcome};
use crate::pending::{NoStore, PendingStore, StreamKey};
use crate::sinks::{MetricsSink, RecordSink, SendError};

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
    pub error_records: StreamOutcome,
    pub metrics: MetricsOutcome,
    pub pending: PendingOutcome,
    pub duration_ms: u64,
}

/// What the invocation did with the parts of turns cut across deliveries.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PendingOutcome {
    /// Whether this was the scheduled sweep of streams gone quiet.
    pub sweep: bool,
    /// Log events the stream carried in from the store.
    pub carried: u64,
    /// Carried events this invocation used (and took from the store).
    pub taken: u64,
    /// Log events now held in the store for the stream's next delivery.
    pub held: u64,
}

impl Summary {
    /// What sending a table's records did.
    pub fn records(&self, table: Table) -> &StreamOutcome {
        match table {
            Table::Turns => &self.turn_records,
            Table::Sessions => &self.session_records,
            Table::Rejects => &self.reject_records,
            Table::Errors => &self.error_records,
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

    /// Adds another summary's counts (a sweep's streams).
    fn add(&mut self, other: &Summary) {
        let (c, o) = (&mut self.counts, &other.counts);
        c.events_in += o.events_in;
        c.turns += o.turns;
        c.partial_turns += o.partial_turns;
        c.sessions += o.sessions;
        c.rejected += o.rejected;
        c.skipped += o.skipped;
        c.nulled_values += o.nulled_values;
        for (mine, theirs) in [
            (&mut self.turn_records, &other.turn_records),
            (&mut self.session_records, &other.session_records),
            (&mut self.reject_records, &other.reject_records),
            (&mut self.error_records, &other.error_records),
        ] {
            mine.sent += theirs.sent;
            mine.failed += theirs.failed;
            mine.retried += theirs.retried;
        }
        self.metrics.datums += other.metrics.datums;
        self.metrics.requests += other.metrics.requests;
        self.metrics.failed_requests += other.metrics.failed_requests;
        self.pending.carried += other.pending.carried;
        self.pending.taken += other.pending.taken;
        self.pending.held += other.pending.held;
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

pub struct Ingest<M, R, P = NoStore> {
    config: IngestConfig,
    metrics: M,
    records: R,
    pending: P,
}

/// Whether an invocation is the schedule's (EventBridge), not a subscription's.
fn is_scheduled(payload: &Value) -> bool {
    payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// A batch of no events of a stream: what a sweep processes with the stream's parts.
fn quiet_stream(key: &StreamKey) -> Decoded {
    Decoded { batch: LogBatch::of_stream(&key.log_group, &key.log_stream), replaced_invalid_utf8: false, damaged: Vec::new() }
}

/// What a batch gave with the parts its stream carried: the output, and the parts taken from the
/// store (put back if the output cannot be sent).
struct Assembled {
    out: BatchOutput,
    key: Option<StreamKey>,
    taken: Vec<LogEvent>,
    pending: PendingOutcome,
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
        Table::Errors => records(&out.errors),
    }
}

impl<M: MetricsSink, R: RecordSink> Ingest<M, R, NoStore> {
    /// Without a store of pending parts: every turn is settled in the invocation that has its lines.
    pub fn new(config: IngestConfig, metrics: M, records: R) -> Self {
        Ingest { config, metrics, records, pending: NoStore }
    }
}

impl<M: MetricsSink, R: RecordSink, P: PendingStore> Ingest<M, R, P> {
    /// With a store that keeps the parts of turns cut across invocations.
    pub fn with_pending<Q: PendingStore>(self, pending: Q) -> Ingest<M, R, Q> {
        Ingest { config: self.config, metrics: self.metrics, records: self.records, pending }
    }

    pub fn pending(&self) -> &P {
        &self.pending
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
        if is_scheduled(payload) {
            return self.sweep(now_ms, deadline).await;
        }
        let started = Instant::now();
        let cfg = &self.config.pipeline;
        // Decode and parse, with the parts the stream carries. A payload that is not a subscription
        // event still becomes a reject row.
        let assembled = match voicelake_shared::decode_event(payload, cfg, now_ms) {
            Delivered::Rejected(out) => Assembled { out, key: None, taken: Vec::new(), pending: PendingOutcome::default() },
            Delivered::Batch(decoded) => {
                let hold = Hold::Incomplete { timeout_ms: PENDING_TIMEOUT_MS, clock_ms: None };
                self.assemble(&decoded, hold, now_ms).await.map_err(|e| self.store_failure(&decoded.batch, e, started))?
            }
        };
        self.send_assembled(assembled, now_ms, deadline, started).await
    }

    /// The scheduled sweep: the streams with parts held since before the settling time get them
    /// processed with the clock, so that a stream gone quiet (its call ended) still has its last
    /// turns settled, whole or, past the timeout, partial.
    async fn sweep(&self, now_ms: i64, deadline: Instant) -> Result<Summary, DeliveryError> {
        let started = Instant::now();
        let quiet = quiet_stream(&StreamKey { log_group: String::new(), log_stream: String::new() });
        let keys = self.pending.stale(now_ms - SETTLE_MS).await.map_err(|e| self.store_failure(&quiet.batch, e, started))?;
        let mut total = Summary { pending: PendingOutcome { sweep: true, ..PendingOutcome::default() }, ..Summary::default() };
        let mut failures = Vec::new();
        for key in keys {
            let decoded = quiet_stream(&key);
            let hold = Hold::Incomplete { timeout_ms: PENDING_TIMEOUT_MS, clock_ms: Some(now_ms) };
            let assembled = match self.assemble(&decoded, hold, now_ms).await {
                Ok(a) => a,
                Err(e) => {
                    failures.push(format!("pending parts of {}: {e}", key.encode()));
                    continue;
                }
            };
            match self.send_assembled(assembled, now_ms, deadline, Instant::now()).await {
                Ok(s) => total.add(&s),
                Err(e) => {
                    total.add(&e.summary);
                    failures.extend(e.failures);
                }
            }
        }
        total.duration_ms = started.elapsed().as_millis() as u64;
        if failures.is_empty() { Ok(total) } else { Err(DeliveryError { failures, summary: Box::new(total) }) }
    }

    /// Processes a decoded batch with the parts its stream holds in the store: takes the parts it
    /// used, holds what it cannot complete yet. A part a concurrent invocation took first is left
    /// to it, and the batch processed again without it.
    async fn assemble(&self, decoded: &Decoded, hold: Hold, now_ms: i64) -> Result<Assembled, SendError> {
        let cfg = &self.config.pipeline;
        let batch = &decoded.batch;
        if !self.pending.keeps_parts() || batch.message_type == MessageType::ControlMessage {
            let out = voicelake_shared::process_delivered(decoded, &[], Hold::Nothing, cfg, now_ms);
            return Ok(Assembled { out, key: None, taken: Vec::new(), pending: PendingOutcome::default() });
        }
        let key = StreamKey { log_group: batch.log_group.clone(), log_stream: batch.log_stream.clone() };
        let carried = self.pending.load(&key).await?;
        let mut taken: Vec<LogEvent> = Vec::new();
        let mut lost: HashSet<String> = HashSet::new();
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let in_store: Vec<LogEvent> =
                carried.iter().filter(|e| !lost.contains(&e.id) && !taken.iter().any(|t| t.id == e.id)).cloned().collect();
            let usable: Vec<LogEvent> = taken.iter().chain(&in_store).cloned().collect();
            let out = voicelake_shared::process_delivered(decoded, &usable, hold, cfg, now_ms);
            let held: HashSet<&str> = out.held.iter().map(|e| e.id.as_str()).collect();
            let used: Vec<String> = in_store.iter().filter(|e| !held.contains(e.id.as_str())).map(|e| e.id.clone()).collect();
            let got = match self.pending.take(&key, &used).await {
                Ok(got) => got,
                Err(e) => {
                    self.put_back(&key, &taken, now_ms).await;
                    return Err(e);
                }
            };
            let got: HashSet<String> = got.into_iter().collect();
            taken.extend(in_store.iter().filter(|e| got.contains(&e.id)).cloned());
            let missed: Vec<String> = used.into_iter().filter(|id| !got.contains(id)).collect();
            if !missed.is_empty() && attempt < ATTEMPTS {
                lost.extend(missed);
                continue;
            }
            if !missed.is_empty() {
                tracing::warn!(stream = %key.encode(), parts = missed.len(), "pending parts taken by a concurrent invocation of the stream");
            }
            // What is held and not in the store: the batch's own events, and carried ones taken.
            let still_stored: HashSet<&str> = in_store.iter().filter(|e| !got.contains(&e.id)).map(|e| e.id.as_str()).collect();
            let to_put: Vec<LogEvent> = out.held.iter().filter(|e| !still_stored.contains(e.id.as_str())).cloned().collect();
            if let Err(e) = self.pending.put(&key, &to_put, now_ms).await {
                self.put_back(&key, &taken, now_ms).await;
                return Err(e);
            }
            let pending =
                PendingOutcome { sweep: false, carried: carried.len() as u64, taken: taken.len() as u64, held: out.held.len() as u64 };
            return Ok(Assembled { out, key: Some(key), taken, pending });
        }
        unreachable!("the last attempt returns")
    }

    /// Puts parts taken from the store back, so that a retry of the batch finds them. Best effort:
    /// a part that cannot be put back is logged by its event id.
    async fn put_back(&self, key: &StreamKey, taken: &[LogEvent], now_ms: i64) {
        if taken.is_empty() {
            return;
        }
        if let Err(e) = self.pending.put(key, taken, now_ms).await {
            let ids: Vec<&str> = taken.iter().map(|e| e.id.as_str()).collect();
            tracing::error!(stream = %key.encode(), error = %e, event_ids = ?ids, "pending parts could not be put back");
        }
    }

    fn store_failure(&self, batch: &LogBatch, e: SendError, started: Instant) -> DeliveryError {
        let summary = Summary {
            log_group: batch.log_group.clone(),
            log_stream: batch.log_stream.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            ..Summary::default()
        };
        let failures = vec![format!("the pending-parts store: {e}")];
        log_summary(&summary, &failures);
        DeliveryError { failures, summary: Box::new(summary) }
    }

    /// Sends an assembled batch; on failure, its taken parts go back to the store.
    async fn send_assembled(&self, a: Assembled, now_ms: i64, deadline: Instant, started: Instant) -> Result<Summary, DeliveryError> {
        let result = self.send(a.out, a.pending, now_ms, deadline, started).await;
        if result.is_err()
            && let Some(key) = &a.key
        {
            self.put_back(key, &a.taken, now_ms).await;
        }
        result
    }

    /// Aggregates and sends a batch's output.
    async fn send(
        &self,
        out: BatchOutput,
        pending: PendingOutcome,
        now_ms: i64,
        deadline: Instant,
        started: Instant,
    ) -> Result<Summary, DeliveryError> {
        let sends_until = deadline.checked_sub(FINISH_RESERVE).unwrap_or(started).max(started);
        let cfg = &self.config.pipeline;

        log_rejects(&out);

        // Aggregate.
        let requests = metrics::split_requests(metrics::datums_for(&out, cfg, now_ms));
        let [turns, sessions, rejects, errors] = Table::ALL.map(|t| table_records(&out, t));

        // Send.
        let streams = &self.config.streams;
        let send = |table: Table, records| deliver::send_records(&self.records, streams.of(table), records, self.config.retry, sends_until);
        let (turn_records, session_records, reject_records, error_records, metrics) = tokio::join!(
            send(Table::Turns, &turns),
            send(Table::Sessions, &sessions),
            send(Table::Rejects, &rejects),
            send(Table::Errors, &errors),
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
            error_records,
            metrics,
            pending,
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
            health.push(self.health_datum(metric::SEND_FAILURES, summary.records_failed() + summary.metrics.failed_requests, now_ms));
        }
        if summary.metrics.refused_datums > 0 {
            tracing::error!(refused = summary.metrics.refused_datums, refusal = ?summary.metrics.refusal, "metric datums refused");
            health.push(self.health_datum(metric::DATUMS_REFUSED, summary.metrics.refused_datums, now_ms));
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
                sweep = s.pending.sweep,
                pending_carried = s.pending.carried,
                pending_taken = s.pending.taken,
                pending_held = s.pending.held,
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
