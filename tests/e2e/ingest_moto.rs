//! The ingest handler with the real SDK clients: Firehose against a moto server, CloudWatch against a
//! recorder that keeps the CBOR wire requests.

use std::collections::{BTreeMap, BTreeSet};
use voicelake_shared::timefmt::now_ms;

use serde_json::Value;
use voicelake_e2e::{CloudWatchRecorder, Lake, Moto, sdk_config};
use voicelake_ingest::aws::{CloudWatchMetrics, FirehoseRecords};
use voicelake_ingest::config::{IngestConfig, RetryPolicy};
use voicelake_ingest::{Ingest, Summary};
use voicelake_shared::envelope::{self, LogBatch};
use voicelake_shared::lake::{PARTITION_KEYS, Table};
use voicelake_shared::{BatchOutput, Config};
use voicelake_synth::{self as synth, SynthOptions};

struct Bed {
    _moto: Moto,
    recorder: CloudWatchRecorder,
    lake: Lake,
    ingest: Ingest<CloudWatchMetrics, FirehoseRecords>,
}

async fn bed(name: &str) -> Bed {
    let moto = Moto::start();
    let recorder = CloudWatchRecorder::start().await;
    let lake = Lake::create(&moto.sdk_config().await, name).await;
    let config = IngestConfig {
        pipeline: Config { environment: "e2e".into(), ..Config::default() },
        namespace: "VoiceLakeE2E".into(),
        streams: lake.streams.clone(),
        retry: RetryPolicy::default(),
    };
    let firehose = aws_sdk_firehose::Client::new(&moto.sdk_config().await);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk_config(&recorder.endpoint()).await);
    let ingest = Ingest::new(config, CloudWatchMetrics::new(cloudwatch), FirehoseRecords::new(firehose));
    Bed { _moto: moto, recorder, lake, ingest }
}

fn event(batch: &LogBatch) -> Value {
    serde_json::to_value(envelope::subscription_event(batch)).unwrap()
}

fn ids(records: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r["event_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_arrives_once_with_its_event_id_and_metrics_count_every_turn() {
    let bed = bed("arrive").await;
    let now = now_ms();
    let batches = synth::generate(&SynthOptions { calls: 40, seed: 3, start_ms: now - 3_600_000, noise: true });

    let mut expected = BatchOutput::default();
    let mut summaries: Vec<Summary> = Vec::new();
    for b in &batches {
        let out = voicelake_shared::process_batch(b, &bed.ingest.config().pipeline, now);
        expected.turns.extend(out.turns);
        expected.sessions.extend(out.sessions);
        expected.rejects.extend(out.rejects);
        summaries.push(bed.ingest.handle(&event(b), now).await.expect("delivered"));
    }

    let turns = bed.lake.records("turns/").await;
    let sessions = bed.lake.records("sessions/").await;
    let rejects = bed.lake.records("rejects/").await;
    assert_eq!(ids(&turns), ids(&expected.turns.iter().map(|t| serde_json::to_value(t).unwrap()).collect::<Vec<_>>()));
    assert_eq!(ids(&turns).iter().collect::<BTreeSet<_>>().len(), turns.len(), "each turn once");
    assert_eq!(sessions.len(), expected.sessions.len());
    assert_eq!(rejects.len(), expected.rejects.len());
    assert!(!rejects.is_empty(), "the noise holds malformed events");

    // Records carry exactly the table's columns and the partition keys.
    for (table, records) in [(Table::Turns, &turns), (Table::Sessions, &sessions), (Table::Rejects, &rejects)] {
        let mut want: BTreeSet<String> = table.schema().fields().iter().map(|f| f.name().clone()).collect();
        want.extend(PARTITION_KEYS.iter().map(|k| k.to_string()));
        for r in records.iter() {
            assert_eq!(r.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>(), want, "{table:?}");
        }
    }
    // And the values the pipeline computed.
    let by_id: BTreeMap<&str, &Value> = turns.iter().map(|t| (t["event_id"].as_str().unwrap(), t)).collect();
    for t in &expected.turns {
        let got = by_id[t.event_id.as_str()];
        assert_eq!(got["total_latency_ms"].as_f64(), t.total_latency_ms);
        assert_eq!(got["event_time"].as_i64(), Some(t.event_time));
        assert_eq!(got["session_id"].as_str(), t.session_id.as_deref());
    }
    for r in &rejects {
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()) && r["raw_message"].is_string());
    }

    // Metrics: every complete turn is one TurnLatency sample, per environment and per agent.
    let complete = expected.turns.iter().filter(|t| t.is_complete).count() as f64;
    let counts = bed.recorder.sample_counts().await;
    let env = vec![("Environment".to_owned(), "e2e".to_owned())];
    assert_eq!(counts[&("TurnLatency".to_owned(), env.clone())], complete);
    let per_agent: f64 = counts.iter().filter(|((name, dims), _)| name == "TurnLatency" && dims.len() == 2).map(|(_, c)| c).sum();
    assert_eq!(per_agent, complete);
    let events_in: u64 = summaries.iter().map(|s| s.counts.events_in).sum();
    let sums = bed.recorder.sums().await;
    assert_eq!(sums[&("EventsIn".to_owned(), env)], events_in as f64, "one EventsIn value per batch, summed");
    assert!(summaries.iter().all(|s| s.records_failed() == 0 && s.metrics.failed_requests == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_message_sends_nothing() {
    let bed = bed("control").await;
    let control = &synth::generate(&SynthOptions { calls: 1, ..SynthOptions::default() })[0];
    assert_eq!(control.message_type, envelope::MessageType::ControlMessage);
    let summary = bed.ingest.handle(&event(control), now_ms()).await.unwrap();
    assert!(summary.control_message);
    assert_eq!(summary.records_sent(), 0);
    assert!(bed.lake.records("").await.is_empty());
    assert!(bed.recorder.requests().await.is_empty(), "not even health metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_that_are_not_subscription_events_land_in_rejects() {
    let bed = bed("foreign").await;
    for payload in [serde_json::json!({"hello": "world"}), serde_json::json!({"awslogs": {"data": "%%%"}})] {
        let summary = bed.ingest.handle(&payload, now_ms()).await.unwrap();
        assert_eq!((summary.counts.rejected, summary.reject_records.sent), (1, 1));
    }
    let rejects = bed.lake.records("rejects/").await;
    let mut reasons: Vec<&str> = rejects.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, vec!["bad_base64", "bad_payload_json"]);
    let foreign = rejects.iter().find(|r| r["reason"] == "bad_payload_json").unwrap();
    assert_eq!(foreign["raw_message"], r#"{"hello":"world"}"#);
    assert!(foreign["event_id"].is_null() && foreign["stage"] == "payload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_fails_the_invocation_and_names_it() {
    let bed = bed("missing").await;
    bed.lake.firehose.delete_delivery_stream().delivery_stream_name(&bed.lake.streams.sessions).send().await.unwrap();
    let batches = synth::generate(&SynthOptions { calls: 6, start_ms: now_ms() - 600_000, ..SynthOptions::default() });
    let with_sessions = batches.iter().find(|b| b.log_events.iter().any(|e| e.message.contains("session_analytics"))).unwrap();
    let err = bed.ingest.handle(&event(with_sessions), now_ms()).await.expect_err("sessions cannot be delivered");
    let message = err.to_string();
    assert!(message.contains(&format!("Firehose stream {}", bed.lake.streams.sessions)), "{message}");
    assert!(message.contains("ResourceNotFoundException"), "{message}");
    assert_eq!(err.summary.session_records.failed, err.summary.counts.sessions);
    // What could be delivered was, and the failure was published for alarms.
    assert_eq!(bed.lake.records("turns/").await.len() as u64, err.summary.turn_records.sent);
    let counts = bed.recorder.sample_counts().await;
    assert!(counts.keys().any(|(name, _)| name == "SendFailures"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_of_any_characters_reach_cloudwatch_as_dimensions_it_accepts() {
    let bed = bed("names").await;
    let now = now_ms();
    let agents = ["agent-ü", "客服-agent", "bell\u{7}agent", "plain-agent", "agent-é"];
    let lines: Vec<String> = agents
        .iter()
        .map(|a| {
            serde_json::json!({"_event_type": "voice_metrics", "_session_id": "s", "agent_name": a, "total_latency": 1.2,
                               "eou_delay": 0.4, "llm_ttft": 0.5, "tts_ttfb": 0.3})
            .to_string()
        })
        .collect();
    let batch = LogBatch::of_messages("/ecs/agents", "s", now - 60_000, lines);
    let summary = bed.ingest.handle(&event(&batch), now).await.expect("delivered");
    assert_eq!((summary.metrics.failed_requests, summary.metrics.refused_datums), (0, 0), "{summary:?}");
    assert_eq!(bed.recorder.refused().await, 0, "CloudWatch refused nothing");
    let published: BTreeSet<String> = bed
        .recorder
        .sample_counts()
        .await
        .into_keys()
        .filter(|(name, _)| name == "TurnLatency")
        .flat_map(|(_, dims)| dims.into_iter().filter(|(n, _)| n == "Agent").map(|(_, v)| v))
        .collect();
    assert_eq!(published.len(), agents.len(), "each agent its own dimension value: {published:?}");
    assert!(published.contains("plain-agent"));
    // The lake keeps the names as logged.
    let turns = bed.lake.records("turns/").await;
    let names: BTreeSet<&str> = turns.iter().map(|t| t["agent_name"].as_str().unwrap()).collect();
    assert_eq!(names, agents.iter().copied().collect());
}
