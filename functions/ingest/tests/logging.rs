//! What the ingest function logs, through the subscriber `main` installs: only the fields the
//! saved queries may use (`voicelake_shared::queries::INGEST_LOG_FIELDS`), and the summary line and
//! the failure metric even when a sink never answers before the invocation's deadline.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use voicelake_ingest::Ingest;
use voicelake_ingest::config::{IngestConfig, RetryPolicy, Streams};
use voicelake_ingest::sinks::{BatchAnswer, MetricsSink, RecordSink, SendError};
use voicelake_runtime::logging;
use voicelake_shared::envelope;
use voicelake_shared::metrics::Datum;
use voicelake_synth::{self as synth, SynthOptions};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Ok_;
impl MetricsSink for Ok_ {
    async fn put_metric_data(&self, _: &str, _: &[Datum]) -> Result<(), SendError> {
        Ok(())
    }
}
impl RecordSink for Ok_ {
    async fn put_record_batch(&self, _: &str, _: &[Vec<u8>]) -> Result<BatchAnswer, SendError> {
        Ok(BatchAnswer::default())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

/// Logs through the production subscriber into a buffer, for the current thread.
fn capture() -> (Buffer, tracing::subscriber::DefaultGuard) {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let guard = tracing::subscriber::set_default(logging::subscriber(move || writer.clone()));
    (buffer, guard)
}

fn config() -> IngestConfig {
    IngestConfig {
        pipeline: Default::default(),
        namespace: "t".into(),
        streams: Streams { turns: "t".into(), sessions: "s".into(), rejects: "r".into(), errors: "e".into() },
        retry: RetryPolicy::default(),
    }
}

#[tokio::test]
async fn every_logged_field_is_one_the_queries_know() {
    let (buffer, _guard) = capture();
    let ingest = Ingest::new(config(), Ok_, Ok_);
    let now = 1_795_446_000_000;
    for b in synth::generate(&SynthOptions { calls: 20, start_ms: now - 3_600_000, ..SynthOptions::default() }) {
        ingest.handle(&serde_json::to_value(envelope::subscription_event(&b)).unwrap(), now).await.unwrap();
    }
    let lines = buffer.lines();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "rejected"), "the noise holds rejects");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "invocation"));
    for line in &lines {
        for key in line["fields"].as_object().unwrap().keys() {
            let field = format!("fields.{key}");
            assert!(
                voicelake_shared::queries::INGEST_LOG_FIELDS.contains(&field.as_str()),
                "{field} is logged but unknown to the query check"
            );
        }
    }
}

/// Never answers, as a connection that hangs past every timeout.
struct Hangs;
impl RecordSink for Hangs {
    async fn put_record_batch(&self, _: &str, _: &[Vec<u8>]) -> Result<BatchAnswer, SendError> {
        std::future::pending().await
    }
}

/// Answers and keeps what it was sent.
#[derive(Default)]
struct Recorder(Mutex<Vec<Datum>>);
impl MetricsSink for Recorder {
    async fn put_metric_data(&self, _: &str, datums: &[Datum]) -> Result<(), SendError> {
        self.0.lock().unwrap().extend_from_slice(datums);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_never_answers_still_gets_a_summary_and_a_failure_metric_before_the_deadline() {
    let (buffer, _guard) = capture();
    let ingest = Ingest::new(config(), Recorder::default(), Hangs);
    let now = 1_795_446_000_000;
    let batches = synth::generate(&SynthOptions { calls: 5, start_ms: now - 600_000, noise: false, ..SynthOptions::default() });
    let batch = batches.iter().find(|b| b.message_type == envelope::MessageType::DataMessage).expect("a batch of log events");
    let start = tokio::time::Instant::now();
    let deadline = start + std::time::Duration::from_secs(10);

    let payload = serde_json::to_value(envelope::subscription_event(batch)).unwrap();
    // Lambda would end the invocation at the deadline; here the test fails instead of hanging.
    let err = tokio::time::timeout_at(deadline, ingest.handle_until(&payload, now, deadline))
        .await
        .expect("the handler answers before the deadline")
        .expect_err("nothing reached Firehose");

    assert!(tokio::time::Instant::now() < deadline, "finished before the deadline");
    assert!(err.is_deadline(), "{err}");
    assert_eq!(lambda_runtime::Diagnostic::from(err).error_type, "DeadlineExceeded");
    let sent = ingest_metrics(&ingest);
    let failures: Vec<&Datum> = sent.iter().filter(|d| d.metric_name == "SendFailures").collect();
    assert_eq!(failures.len(), 1, "the failure metric is sent");
    assert!(failures[0].values[0] > 0.0);
    let summary = buffer.lines().into_iter().find(|l| l["fields"]["message"] == "invocation").expect("the summary line is logged");
    assert_eq!(summary["level"], "ERROR");
    assert!(summary["fields"]["records_failed"].as_u64().unwrap() > 0);
    assert!(summary["fields"]["failures"].as_str().unwrap().contains("DeadlineExceeded"));
}

fn ingest_metrics(ingest: &Ingest<Recorder, Hangs>) -> Vec<Datum> {
    ingest.metrics().0.lock().unwrap().clone()
}
