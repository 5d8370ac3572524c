//! The ingest function reads real agents' lines however they were delivered: the same lines bare,
//! wrapped by a log router (FireLens, Docker json-file, containerd CRI, EKS Fluent Bit) and written
//! by a logging library (pino, structlog), send the same records and the same metric datums.

use std::sync::Mutex;

use serde_json::{Value, json};
use voicelake_ingest::Ingest;
use voicelake_ingest::config::{IngestConfig, RetryPolicy, Streams};
use voicelake_ingest::sinks::{BatchAnswer, MetricsSink, RecordSink, SendError};
use voicelake_shared::envelope::{self, LogBatch};
use voicelake_shared::metrics::Datum;

#[derive(Default)]
struct Recorder {
    records: Mutex<Vec<(String, Vec<u8>)>>,
    datums: Mutex<Vec<Datum>>,
}

impl MetricsSink for Recorder {
    async fn put_metric_data(&self, _: &str, datums: &[Datum]) -> Result<(), SendError> {
        self.datums.lock().unwrap().extend_from_slice(datums);
        Ok(())
    }
}

impl RecordSink for Recorder {
    async fn put_record_batch(&self, stream: &str, records: &[Vec<u8>]) -> Result<BatchAnswer, SendError> {
        self.records.lock().unwrap().extend(records.iter().map(|r| (stream.to_owned(), r.clone())));
        Ok(BatchAnswer::default())
    }
}

const NOW: i64 = 1_796_100_000_000;

/// A log message and its CloudWatch time.
type Timed = (String, i64);

fn lines() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    [
        "app/voice_metrics.log",
        "app/session_analytics.log",
        "livekit-1.8/tool_round.jsonl",
        "livekit-1.8/log_metrics_json.jsonl",
        "livekit-1.8/chat_metrics.jsonl",
    ]
    .iter()
    .flat_map(|f| std::fs::read_to_string(root.join(f)).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
    .filter(|l| !l.trim().is_empty())
    .collect()
}

fn iso(ms: i64) -> String {
    voicelake_shared::timefmt::iso(ms)
}

/// What the function sent for `messages`, its records without the raw text of rejects.
async fn sent(messages: &[Timed]) -> (Vec<(String, Value)>, Vec<Datum>) {
    let config = IngestConfig {
        pipeline: Default::default(),
        namespace: "t".into(),
        streams: Streams { turns: "turns".into(), sessions: "sessions".into(), rejects: "rejects".into(), errors: "errors".into() },
        retry: RetryPolicy::default(),
    };
    let ingest = Ingest::new(config, Recorder::default(), Recorder::default());
    let mut batch = LogBatch::of_messages("/ecs/support-agent", "ecs/agent/abc", 0, messages.iter().map(|(m, _)| m.clone()));
    for (e, (_, time)) in batch.log_events.iter_mut().zip(messages) {
        e.timestamp = *time;
    }
    let payload = serde_json::to_value(envelope::subscription_event(&batch)).unwrap();
    ingest.handle(&payload, NOW).await.expect("delivered");
    let records = std::mem::take(&mut *ingest.records_sink().records.lock().unwrap());
    let records = records
        .into_iter()
        .map(|(stream, bytes)| {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            v.as_object_mut().unwrap().remove("raw_message");
            v.as_object_mut().unwrap().remove("raw_bytes");
            (stream, v)
        })
        .collect();
    let mut datums = std::mem::take(&mut *ingest.metrics().datums.lock().unwrap());
    // Pipeline health is of the payload, not of the events.
    datums.retain(|d| !["EventsIn", "IngestLag"].contains(&d.metric_name));
    (records, datums)
}

#[tokio::test]
async fn every_delivery_of_the_same_lines_sends_the_same_records_and_datums() {
    let bare = lines();
    let t = |i: usize| NOW - 3_600_000 + i as i64 * 1000;
    let object = |l: &str| serde_json::from_str::<Value>(l).ok().and_then(|v| v.as_object().cloned());
    let forms: Vec<(&str, Vec<Option<String>>)> = vec![
        ("FireLens", bare.iter().map(|l| Some(json!({"container_name": "app", "source": "stdout", "log": l, "ecs_task_definition": "support-agent:3"}).to_string())).collect()),
        ("json-file", bare.iter().enumerate().map(|(i, l)| Some(json!({"log": format!("{l}\n"), "stream": "stdout", "time": iso(t(i))}).to_string())).collect()),
        ("CRI", bare.iter().enumerate().map(|(i, l)| Some(format!("{} stdout F {l}", iso(t(i))))).collect()),
        ("EKS", bare.iter().enumerate().map(|(i, l)| Some(json!({"time": iso(t(i)), "stream": "stdout", "_p": "F", "log": l, "kubernetes": {"pod_name": "support-agent-7d9c5b6f4-x2x7q"}}).to_string())).collect()),
        ("pino", bare.iter().enumerate().map(|(i, l)| {
            let mut o = object(l)?;
            if ["level", "time", "pid"].iter().any(|k| o.contains_key(*k)) { return None; }
            let m = o.remove("message");
            o.insert("level".into(), json!(30));
            o.insert("time".into(), json!(t(i)));
            if let Some(m) = m { o.insert("msg".into(), m); }
            Some(Value::Object(o).to_string())
        }).collect()),
    ];
    for (name, delivered) in forms {
        let (want_lines, got_lines): (Vec<Timed>, Vec<Timed>) =
            bare.iter().zip(delivered).enumerate().filter_map(|(i, (b, d))| d.map(|d| ((b.clone(), t(i)), (d, t(i))))).unzip();
        assert!(got_lines.len() >= 10, "{name}");
        let (want, got) = (sent(&want_lines).await, sent(&got_lines).await);
        assert!(want.0.len() >= 5, "{name}: {} records", want.0.len());
        assert_eq!(got.0, want.0, "{name}: records");
        assert_eq!(got.1, want.1, "{name}: datums");
    }
}
