//! The built function through the real Lambda runtime API: the workspace's `ingest` binary polls
//! cargo-lambda's emulator (`cargo lambda watch --only-lambda-apis`), `cargo lambda invoke
//! --data-file` sends subscription events, and the function sends to moto's Firehose and to the
//! CloudWatch recorder.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use voicelake_e2e::{CloudWatchRecorder, Emulator, FAKE_ENV, FUNCTION_ARN, Lake, Moto, create_queue, function_env, repo_root};
use voicelake_shared::envelope;
use voicelake_synth::{self as synth, SynthOptions};

fn invoke(emulator: &Emulator, event: &Value, dir: &Path, log: &Path) -> Value {
    emulator.invoke("ingest", event, dir, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_runs_under_the_lambda_runtime_api() {
    let moto = Moto::start();
    let recorder = CloudWatchRecorder::start().await;
    let lake = Lake::create(&moto.sdk_config().await, "emulator").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("watch.log");

    let mut env = function_env(&moto, &recorder, &lake, "emulator");
    env.push(("AWS_LAMBDA_LOG_FORMAT", "JSON".into()));
    let emulator = Emulator::ingest(&env, &log);

    let now = voicelake_shared::timefmt::now_ms();
    let batches = synth::generate(&SynthOptions { calls: 12, seed: 9, start_ms: now - 1_800_000, noise: true, outage: None });
    let data = batches.iter().skip(1).find(|b| b.log_events.len() > 20).expect("a busy batch");
    let expected =
        voicelake_shared::process_batch(data, &voicelake_shared::Config { environment: "emulator".into(), ..Default::default() }, now);

    let event = serde_json::to_value(envelope::subscription_event(data)).unwrap();
    let summary = invoke(&emulator, &event, dir.path(), &log);
    assert_eq!(summary["events_in"], data.log_events.len());
    assert_eq!(summary["turns"], expected.stats.turns);
    assert_eq!(summary["turn_records"]["sent"], expected.turns.len());
    assert_eq!(summary["turn_records"]["failed"], 0);
    assert_eq!(summary["metrics"]["failed_requests"], 0);

    let turns = lake.records("turns/").await;
    assert_eq!(turns.len(), expected.turns.len());
    let mut got: Vec<&str> = turns.iter().map(|t| t["event_id"].as_str().unwrap()).collect();
    let mut want: Vec<&str> = expected.turns.iter().map(|t| t.event_id.as_str()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(turns.iter().all(|t| t["environment"] == "emulator"));
    let counts = recorder.sample_counts().await;
    let latency = counts.get(&("TurnLatency".to_owned(), vec![("Environment".to_owned(), "emulator".to_owned())])).copied();
    assert_eq!(latency.unwrap_or(0.0), expected.stats.turns as f64);

    let control = serde_json::to_value(envelope::subscription_event(&batches[0])).unwrap();
    let summary = invoke(&emulator, &control, dir.path(), &log);
    assert_eq!(summary["control_message"], true);
    assert_eq!(lake.records("turns/").await.len(), expected.turns.len(), "a control message sends nothing");

    let log_text = std::fs::read_to_string(&log).unwrap();
    let line = log_text.lines().find(|l| l.contains("\"invocation\"")).expect("the summary line in the function's log");
    let json: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(json["fields"]["events_in"].as_u64(), Some(data.log_events.len() as u64), "{json}");

    // Batches kept in the on-failure queue go through the same function again with `voicelake dlq
    // replay`, over the real Lambda Invoke API of the emulator and moto's SQS.
    let (sqs, queue_url) = create_queue(&moto.sdk_config().await, "emulator-failures").await;
    let kept = batches.iter().skip(1).filter(|b| !std::ptr::eq(*b, data)).find(|b| b.log_events.len() > 5).expect("another batch");
    let kept_out =
        voicelake_shared::process_batch(kept, &voicelake_shared::Config { environment: "emulator".into(), ..Default::default() }, now);
    let kept_event = serde_json::to_value(envelope::subscription_event(kept)).unwrap();
    let record = voicelake_cli::dlq::invocation_record(FUNCTION_ARN, &kept_event, 3, "not delivered: ResourceNotFoundException");
    let mut dropped = record.clone();
    dropped.as_object_mut().unwrap().remove("requestPayload");
    for body in [record.to_string(), dropped.to_string()] {
        sqs.send_message().queue_url(&queue_url).message_body(body).send().await.unwrap();
    }
    let out = voicelake_e2e::voicelake()
        .args(["dlq", "replay", "--queue-url", &queue_url, "--function", "ingest", "--visibility-timeout", "1"])
        .envs(FAKE_ENV)
        .env("AWS_ENDPOINT_URL_SQS", &moto.endpoint)
        .env("AWS_ENDPOINT_URL_LAMBDA", format!("http://127.0.0.1:{}", emulator.port))
        .current_dir(repo_root())
        .output()
        .expect("voicelake runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a message that cannot be replayed makes the exit status fail");
    assert!(stdout.contains("received 2, replayed and deleted 1"), "{stdout}\n{stderr}");
    assert!(stdout.contains("cannot be replayed") && stdout.contains("requestPayload"), "{stdout}");
    let turns = lake.records("turns/").await;
    assert_eq!(turns.len(), expected.turns.len() + kept_out.turns.len(), "the replayed batch's turns arrived");
    for t in &kept_out.turns {
        assert!(turns.iter().any(|r| r["event_id"] == t.event_id.as_str()));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let left = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.unwrap();
    assert_eq!(left.messages().len(), 1, "only the message without its payload stays");
}

/// A turn cut across two deliveries, through the real runtime with the store of pending parts
/// (DynamoDB on moto): the first invocation holds its parts, the second completes the turn and
/// holds it while lines may still join it (`SETTLE_MS`), the stream's next delivery, 36 s on,
/// sends it once, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_holds_a_cut_turn_in_its_store_until_the_rest_arrives() {
    let moto = Moto::start();
    let recorder = CloudWatchRecorder::start().await;
    let aws = moto.sdk_config().await;
    let lake = Lake::create(&aws, "held").await;
    voicelake_e2e::create_pending_table(&aws, "held-parts").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("watch.log");
    let mut env = function_env(&moto, &recorder, &lake, "held");
    env.push(("VOICELAKE_PENDING_TABLE", "held-parts".into()));
    let emulator = Emulator::ingest(&env, &log);

    // The tool-round case (tests/fixtures/cases), moved to a minute ago: eou and the tool call in
    // one delivery, the reply's call and the speech in the next.
    let now = voicelake_shared::timefmt::now_ms();
    let shift = (now - 60_000 - 1_795_950_000_000) as f64 / 1000.0;
    let lines: Vec<String> = std::fs::read_to_string(voicelake_e2e::fixture("cases/16-tool-round-turn.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["timestamp"] = serde_json::json!(v["timestamp"].as_f64().unwrap() + shift);
            v.to_string()
        })
        .collect();
    let batch = envelope::LogBatch::of_messages("/ecs/clinic-agent", "clinic/task-1", now - 60_000, lines);
    let (first, second) = batch.log_events.split_at(2);
    let part = |events: &[envelope::LogEvent]| {
        let mut b = batch.clone();
        b.log_events = events.to_vec();
        serde_json::to_value(envelope::subscription_event(&b)).unwrap()
    };
    let summary = invoke(&emulator, &part(first), dir.path(), &log);
    assert_eq!((summary["turns"].as_u64(), summary["pending"]["held"].as_u64()), (Some(0), Some(2)), "{summary}");
    assert!(lake.records("turns/").await.is_empty(), "nothing of the turn is sent yet");
    let summary = invoke(&emulator, &part(second), dir.path(), &log);
    assert_eq!((summary["pending"]["taken"].as_u64(), summary["pending"]["held"].as_u64()), (Some(0), Some(4)), "{summary}");
    assert!(lake.records("turns/").await.is_empty(), "a turn that just completed may still take in a late line");
    let later = envelope::LogEvent { id: "later".into(), timestamp: now - 60_000 + 40_000, message: "call still going".into() };
    let summary = invoke(&emulator, &part(&[later]), dir.path(), &log);
    assert_eq!((summary["turns"].as_u64(), summary["pending"]["taken"].as_u64()), (Some(1), Some(4)), "{summary}");
    let turns = lake.records("turns/").await;
    let [turn] = turns.as_slice() else { panic!("{turns:?}") };
    assert!((turn["total_latency_ms"].as_f64().unwrap() - 2850.0).abs() < 0.01, "{turn}");
    assert_eq!((turn["latency_source"].as_str(), turn["llm_calls"].as_u64()), (Some("computed_tool_round"), Some(2)));
    let counts = recorder.sample_counts().await;
    assert_eq!(counts.get(&("TurnLatency".to_owned(), vec![("Environment".to_owned(), "held".to_owned())])), Some(&1.0));
    // The schedule's sweep finds nothing left of the stream.
    let sweep = serde_json::json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let summary = invoke(&emulator, &sweep, dir.path(), &log);
    assert_eq!((summary["pending"]["sweep"].as_bool(), summary["turns"].as_u64()), (Some(true), Some(0)), "{summary}");
}

/// The stack's pseudonym key, generated into Secrets Manager (moto) and read by the built function
/// at cold start: a caller's number in a SIP room's session id leaves the function as the
/// HMAC-SHA-256 pseudonym that Python's own `hmac` computes from the same key, and not as the plain
/// hash that enumerating the exchange would find.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_keys_pseudonyms_with_the_stacks_secret() {
    let moto = Moto::start();
    let recorder = CloudWatchRecorder::start().await;
    let aws = moto.sdk_config().await;
    let lake = Lake::create(&aws, "keyed").await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let key = "Qm9uZCBqYW1lcyBib25kIDAwNyBrZXkgb2YgdGhlIHN0YWNr";
    let arn = secrets.create_secret().name("voicelake-PseudonymKey").secret_string(key).send().await.unwrap().arn().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("watch.log");
    let mut env = function_env(&moto, &recorder, &lake, "keyed");
    env.push(("VOICELAKE_PSEUDONYM_KEY_ARN", arn));
    let emulator = Emulator::ingest(&env, &log);

    let now = voicelake_shared::timefmt::now_ms();
    let line = serde_json::json!({
        "_event_type": "voice_metrics", "_session_id": "call-_+15105550123_aBc1", "_timestamp": voicelake_shared::timefmt::iso(now - 60_000),
        "agent_name": "sales-agent", "speech_id": "speech_1", "total_latency": 1.2,
    });
    let batch = envelope::LogBatch::of_messages("/ecs/sales-agent", "sales/task-1", now - 60_000, vec![line.to_string()]);
    let summary = invoke(&emulator, &serde_json::to_value(envelope::subscription_event(&batch)).unwrap(), dir.path(), &log);
    assert_eq!(summary["turn_records"]["sent"], 1, "{summary}");

    let python = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, hmac, sys; print(hmac.new(sys.argv[1].encode(), b'phone:15105550123', hashlib.sha256).hexdigest()[:16])",
            key,
        ])
        .output()
        .expect("python3 runs");
    let expected = format!("call-_phone:{}_aBc1", String::from_utf8(python.stdout).unwrap().trim());
    let turns = lake.records("turns/").await;
    assert_eq!(turns[0]["session_id"].as_str(), Some(expected.as_str()), "{turns:?}");
    let plain = voicelake_shared::pii::scrub("call-_+15105550123_aBc1", voicelake_shared::pii::PiiMode::Hash);
    assert_ne!(turns[0]["session_id"].as_str(), Some(plain.as_ref()));
    assert!(!std::fs::read_to_string(&log).unwrap().contains(key), "the key is never logged");
}
