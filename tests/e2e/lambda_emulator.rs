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
    let batches = synth::generate(&SynthOptions { calls: 12, seed: 9, start_ms: now - 1_800_000, noise: true });
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
