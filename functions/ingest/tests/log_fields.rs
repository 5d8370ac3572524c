//! The ingest function's log lines carry only the fields the saved queries may use
//! (`voicelake_shared::queries::INGEST_LOG_FIELDS`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use voicelake_ingest::Ingest;
use voicelake_ingest::config::{IngestConfig, RetryPolicy, Streams};
use voicelake_ingest::sinks::{BatchAnswer, MetricsSink, RecordSink, SendError};
use voicelake_shared::envelope;
use voicelake_shared::metrics::Datum;
use voicelake_shared::synth::{self, SynthOptions};

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

#[tokio::test]
async fn every_logged_field_is_one_the_queries_know() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = IngestConfig {
        pipeline: Default::default(),
        namespace: "t".into(),
        streams: Streams { turns: "t".into(), sessions: "s".into(), rejects: "r".into() },
        retry: RetryPolicy::default(),
    };
    let ingest = Ingest::new(config, Ok_, Ok_);
    let now = 1_795_446_000_000;
    for b in synth::generate(&SynthOptions { calls: 20, start_ms: now - 3_600_000, ..SynthOptions::default() }) {
        ingest.handle(&serde_json::to_value(envelope::subscription_event(&b)).unwrap(), now).await.unwrap();
    }
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
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
