//! The fault tests' bed: moto with a lake, the CloudWatch recorder, the ingest handler over them as
//! the function builds it, generated traffic, and what the dedupe views do to what arrived.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use voicelake_cli::dlq::Invoker;
use voicelake_ingest::Ingest;
use voicelake_ingest::aws::{self, CloudWatchMetrics, FirehoseRecords};
use voicelake_ingest::config::{IngestConfig, RetryPolicy};
use voicelake_ingest::sinks::RecordSink;
use voicelake_shared::envelope::{self, LogBatch, MessageType};
use voicelake_shared::lake::Table;
use voicelake_shared::timefmt::now_ms;
use voicelake_shared::{BatchOutput, Config};
use voicelake_synth::{self as synth, SynthOptions};

use crate::{CloudWatchRecorder, Lake, Moto, sdk_config};

pub fn event(batch: &LogBatch) -> Value {
    serde_json::to_value(envelope::subscription_event(batch)).unwrap()
}

pub fn config(lake: &Lake) -> IngestConfig {
    IngestConfig {
        pipeline: Config { environment: "faults".into(), ..Config::default() },
        namespace: "VoiceLakeFaults".into(),
        streams: lake.streams.clone(),
        retry: RetryPolicy { attempts: 3, base: Duration::from_millis(20), cap: Duration::from_millis(100) },
    }
}

/// A Firehose client as the function builds it, with short timeouts so that a hang fails fast.
pub async fn firehose(endpoint: &str, attempts: u32) -> aws_sdk_firehose::Client {
    let shared = sdk_config(endpoint).await;
    let conf = aws_sdk_firehose::config::Builder::from(&shared)
        .retry_config(aws::retry_config(attempts))
        .timeout_config(aws::timeout_config(Duration::from_secs(2), Duration::from_secs(6)))
        .build();
    aws_sdk_firehose::Client::from_conf(conf)
}

pub async fn cloudwatch(recorder: &CloudWatchRecorder) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&sdk_config(&recorder.endpoint()).await)
}

/// moto with a lake, the CloudWatch recorder, and ingest handlers over them.
pub struct Bed {
    pub moto: Moto,
    pub recorder: CloudWatchRecorder,
    pub lake: Lake,
}

impl Bed {
    pub async fn start(name: &str) -> Bed {
        let moto = Moto::start();
        let recorder = CloudWatchRecorder::start().await;
        let lake = Lake::create(&moto.sdk_config().await, name).await;
        Bed { moto, recorder, lake }
    }

    /// The handler as the function builds it, its Firehose calls going to `endpoint` (moto, or a
    /// proxy in front of it) with `attempts` SDK attempts per call.
    pub async fn ingest(&self, endpoint: &str, attempts: u32) -> Ingest<CloudWatchMetrics, FirehoseRecords> {
        Ingest::new(
            config(&self.lake),
            CloudWatchMetrics::new(cloudwatch(&self.recorder).await),
            FirehoseRecords::new(firehose(endpoint, attempts).await),
        )
    }
}

/// Generated traffic: the data batches (no control messages), and what the pipeline makes of each.
pub fn traffic(calls: usize, seed: u64) -> Vec<(LogBatch, BatchOutput)> {
    let now = now_ms();
    synth::generate(&SynthOptions { calls, seed, start_ms: now - 3_600_000, noise: true, outage: None })
        .into_iter()
        .filter(|b| b.message_type == MessageType::DataMessage)
        .map(|b| {
            let out = voicelake_shared::process_batch(&b, &Config { environment: "faults".into(), ..Config::default() }, now);
            (b, out)
        })
        .collect()
}

pub fn event_ids(records: &[Value]) -> Vec<String> {
    records.iter().map(|r| r["event_id"].as_str().expect("an event id").to_owned()).collect()
}

/// What the dedupe views do: one row per event id. Copies of a row must be equal, so it does not
/// matter which one the view keeps.
pub fn dedupe(records: &[Value]) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for r in records {
        let id = r["event_id"].as_str().unwrap().to_owned();
        if let Some(first) = out.get(&id) {
            assert_eq!(first, r, "a retried batch writes the same row again");
        } else {
            out.insert(id, r.clone());
        }
    }
    out
}

/// The event ids of the turns or sessions the pipeline made of `outputs`.
pub fn expected_ids<'a>(outputs: impl Iterator<Item = &'a BatchOutput>, table: Table) -> BTreeSet<String> {
    outputs
        .flat_map(|o| match table {
            Table::Turns => o.turns.iter().map(|t| t.event_id.clone()).collect::<Vec<_>>(),
            Table::Sessions => o.sessions.iter().map(|s| s.event_id.clone()).collect(),
            Table::Rejects => o.rejects.iter().filter_map(|r| r.event_id.clone()).collect(),
            Table::Errors => o.errors.iter().map(|e| e.event_id.clone()).collect(),
        })
        .collect()
}

/// The ingest handler as an [`Invoker`], for replaying the queue in process.
pub struct InProcess<'a, R: RecordSink>(pub &'a Ingest<CloudWatchMetrics, R>);

impl<R: RecordSink> Invoker for InProcess<'_, R> {
    async fn invoke(&self, payload: &Value) -> Result<Value, String> {
        self.0.handle(payload, now_ms()).await.map(|s| serde_json::to_value(s).unwrap()).map_err(|e| e.to_string())
    }
}
