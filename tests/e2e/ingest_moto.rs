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
    // With a provider outage, so that the errors stream and the failure metrics carry rows too.
    let outage = Some(synth::Outage { kind: "tts".into(), provider: "cartesia".into(), agent: None, start_minute: 10, minutes: 20 });
    let batches = synth::generate(&SynthOptions { calls: 40, seed: 3, start_ms: now - 3_600_000, noise: true, outage });

    let mut expected = BatchOutput::default();
    let mut summaries: Vec<Summary> = Vec::new();
    for b in &batches {
        let out = voicelake_shared::process_batch(b, &bed.ingest.config().pipeline, now);
        expected.turns.extend(out.turns);
        expected.sessions.extend(out.sessions);
        expected.rejects.extend(out.rejects);
        expected.errors.extend(out.errors);
        summaries.push(bed.ingest.handle(&event(b), now).await.expect("delivered"));
    }

    let turns = bed.lake.records("turns/").await;
    let sessions = bed.lake.records("sessions/").await;
    let rejects = bed.lake.records("rejects/").await;
    let errors = bed.lake.records("errors/").await;
    assert!(!errors.is_empty(), "the outage's failure lines");
    assert_eq!(ids(&errors), ids(&expected.errors.iter().map(|e| serde_json::to_value(e).unwrap()).collect::<Vec<_>>()));
    assert_eq!(ids(&turns), ids(&expected.turns.iter().map(|t| serde_json::to_value(t).unwrap()).collect::<Vec<_>>()));
    assert_eq!(ids(&turns).iter().collect::<BTreeSet<_>>().len(), turns.len(), "each turn once");
    assert_eq!(sessions.len(), expected.sessions.len());
    assert_eq!(rejects.len(), expected.rejects.len());
    assert!(!rejects.is_empty(), "the noise holds malformed events");

    // Records carry exactly the table's columns and the partition keys.
    for (table, records) in [(Table::Turns, &turns), (Table::Sessions, &sessions), (Table::Rejects, &rejects), (Table::Errors, &errors)] {
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
    assert_eq!(sums[&("EventsIn".to_owned(), env.clone())], events_in as f64, "one EventsIn value per batch, summed");
    // Every failure line is one ProviderFailures, for the environment and for its provider and kind.
    let failures = expected.errors.iter().filter(|e| e.source_format == voicelake_shared::rows::SourceFormat::LivekitFailureLog).count();
    assert_eq!(sums[&("ProviderFailures".to_owned(), env)], failures as f64);
    let by_provider: f64 = sums
        .iter()
        .filter(|((name, dims), _)| name == "ProviderFailures" && dims.iter().any(|(k, v)| k == "Provider" && v == "cartesia"))
        .map(|(_, v)| v)
        .sum();
    let cartesia = expected.errors.iter().filter(|e| e.provider == "cartesia").count();
    assert_eq!(by_provider, cartesia as f64);
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

/// The lines of one generated stream with tool rounds, chat turns and logged metrics: each cut
/// point splits them into two deliveries, two invocations of the function with its store of
/// pending parts (DynamoDB on moto), then the scheduled sweep. The lake and the metrics get what
/// the uncut stream gives, every turn once and whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario: the deliveries, every cut, and the comparison of rows and metrics")]
async fn a_turn_cut_across_two_invocations_is_sent_once_whole_through_the_store() {
    use voicelake_e2e::create_pending_table;
    use voicelake_ingest::aws::DynamoPending;
    use voicelake_shared::envelope::LogEvent;

    let moto = Moto::start();
    let recorder = CloudWatchRecorder::start().await;
    let aws = moto.sdk_config().await;
    let lake = Lake::create(&aws, "cut").await;
    let now = now_ms();
    // One stream of each agent's first call, its lines in order: the sales agent's tool rounds
    // (seed 9 makes some), the booking agent's chat turns.
    let batches = synth::generate(&SynthOptions { calls: 8, seed: 9, start_ms: now - 3_600_000, noise: false, outage: None });
    let mut streams: BTreeMap<String, Vec<LogEvent>> = BTreeMap::new();
    for b in batches.iter().filter(|b| b.message_type == envelope::MessageType::DataMessage) {
        streams.entry(format!("{}:{}", b.log_group, b.log_stream)).or_default().extend(b.log_events.iter().cloned());
    }
    // 30 lines of an agent's stream, around the first reply call of a tool round where it has one.
    let pick = |agent: &str| -> Vec<LogEvent> {
        let mut first_stream = None;
        for (key, events) in streams.iter().filter(|(k, _)| k.starts_with(&format!("/ecs/{agent}"))) {
            first_stream.get_or_insert(events);
            let mut calls: BTreeMap<String, usize> = BTreeMap::new();
            for (i, e) in events.iter().enumerate() {
                let v: Value = serde_json::from_str(&e.message).unwrap_or_default();
                if v["metrics"]["type"] == "llm_metrics" {
                    let n = calls.entry(v["metrics"]["speech_id"].as_str().unwrap_or_default().to_owned()).or_default();
                    *n += 1;
                    if *n == 2 {
                        let _ = key;
                        return events[i.saturating_sub(15)..(i + 15).min(events.len())].to_vec();
                    }
                }
            }
        }
        first_stream.expect("a stream of the agent").iter().take(30).cloned().collect()
    };
    let sweep = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    for (agent, events) in [("sales-agent", pick("sales-agent")), ("booking-agent", pick("booking-agent"))] {
        let batch_of = |events: &[LogEvent], stream: &str| LogBatch {
            message_type: envelope::MessageType::DataMessage,
            owner: "123456789012".into(),
            log_group: format!("/ecs/{agent}"),
            log_stream: stream.to_owned(),
            subscription_filters: vec!["voicelake".into()],
            log_events: events.to_vec(),
        };
        let ingest_for = |environment: String, table: String| {
            let aws = aws.clone();
            let recorder_endpoint = recorder.endpoint();
            let streams = lake.streams.clone();
            async move {
                let config = IngestConfig {
                    pipeline: Config { environment, ..Config::default() },
                    namespace: "VoiceLakeCut".into(),
                    streams,
                    retry: RetryPolicy::default(),
                };
                let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk_config(&recorder_endpoint).await);
                let dynamo = create_pending_table(&aws, &table).await;
                Ingest::new(config, CloudWatchMetrics::new(cloudwatch), FirehoseRecords::new(aws_sdk_firehose::Client::new(&aws)))
                    .with_pending(DynamoPending::new(dynamo, table))
            }
        };
        // The uncut stream, in one delivery.
        let uncut = ingest_for(format!("{agent}-uncut"), format!("{agent}-uncut")).await;
        uncut.handle(&event(&batch_of(&events, "whole")), now).await.expect("delivered");
        uncut.handle(&sweep, now + 600_000).await.expect("swept");
        for at in 0..=events.len() {
            let env = format!("{agent}-cut-{at}");
            let ingest = ingest_for(env.clone(), env.clone()).await;
            let (a, b) = events.split_at(at);
            for part in [a, b].into_iter().filter(|p| !p.is_empty()) {
                ingest.handle(&event(&batch_of(part, "whole")), now).await.expect("delivered");
            }
            ingest.handle(&sweep, now + 600_000).await.expect("swept");
        }
    }
    // Per environment: the rows (without the environment) and the metrics' sample counts and sums.
    let turns = lake.records("turns/").await;
    let rows_of = |env: &str| -> Vec<String> {
        let mut rows: Vec<String> = turns
            .iter()
            .filter(|r| r["environment"] == env)
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("environment");
                r.to_string()
            })
            .collect();
        rows.sort();
        rows
    };
    let counts = recorder.sample_counts().await;
    let sums = recorder.sums().await;
    let metrics_of = |env: &str| -> Vec<(String, f64, f64)> {
        counts
            .iter()
            .filter(|((_, dims), _)| dims.contains(&("Environment".to_owned(), env.to_owned())))
            // A LiveKit call's usage updates are running totals: within one delivery only the latest
            // becomes a row and the others are skipped as superseded; across two, each delivery's
            // latest is a row (the `calls` view takes the newest). Not turns: left out here.
            .filter(|((name, _), _)| name != "EventsSkipped")
            .map(|((name, dims), n)| {
                let others: Vec<_> = dims.iter().filter(|(d, _)| d != "Environment").collect();
                // A counter is one value per request and minute: more invocations send more of them
                // with the same sum. A distribution keeps every observation.
                let spec = voicelake_shared::metrics::metric::ALL.iter().find(|m| m.name == name.as_str()).unwrap();
                let n = if spec.kind == voicelake_shared::metrics::Kind::Counter { 0.0 } else { *n };
                (format!("{name} {others:?}"), n, (sums[&(name.clone(), dims.clone())] * 1e6).round() / 1e6)
            })
            .collect()
    };
    for agent in ["sales-agent", "booking-agent"] {
        let whole = format!("{agent}-uncut");
        assert!(rows_of(&whole).iter().any(|r| r.contains("\"is_complete\":true")), "{agent}: complete turns");
        if agent == "sales-agent" {
            assert!(rows_of(&whole).iter().any(|r| r.contains("computed_tool_round")), "{agent}: a tool round");
        }
        let cuts = turns.iter().filter(|r| r["environment"].as_str().is_some_and(|e| e.starts_with(&format!("{agent}-cut-")))).count();
        assert!(cuts > 0);
        for at in 0..=30 {
            let env = format!("{agent}-cut-{at}");
            if !turns.iter().any(|r| r["environment"] == env.as_str()) {
                continue;
            }
            assert_eq!(rows_of(&env), rows_of(&whole), "{env}: the rows");
            assert_eq!(metrics_of(&env), metrics_of(&whole), "{env}: the metrics");
        }
    }
}
