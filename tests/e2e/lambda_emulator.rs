//! The built function through the real Lambda runtime API: cargo-lambda's emulator (`cargo lambda
//! watch`) runs the `ingest` binary, `cargo lambda invoke --data-file` sends subscription events,
//! and the function sends to moto's Firehose and to the CloudWatch recorder.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use voicelake_e2e::{CloudWatchRecorder, FAKE_ENV, Lake, Moto, free_port, repo_root, tool};
use voicelake_shared::envelope;
use voicelake_shared::synth::{self, SynthOptions};

/// The emulator and everything it started, stopped as one process group.
struct Emulator {
    child: Child,
    port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The emulator leads its own process group; `--` keeps the negative id from reading as an option.
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

fn cargo_lambda() -> Command {
    let mut c = Command::new(tool("cargo-lambda"));
    c.arg("lambda");
    let venv_bin = tool("cargo-lambda").parent().unwrap().to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    c.env("PATH", std::env::join_paths(std::iter::once(venv_bin).chain(std::env::split_paths(&path))).unwrap());
    c.current_dir(repo_root());
    c
}

fn watch(env: &[(&str, String)], log: &Path) -> Emulator {
    let port = free_port();
    let mut cmd = cargo_lambda();
    cmd.args(["watch", "--ignore-changes", "--package", "voicelake-ingest", "--bin", "ingest"]);
    cmd.args(["--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()]);
    for (k, v) in env {
        cmd.arg("--env-var").arg(format!("{k}={v}"));
    }
    let out = std::fs::File::create(log).unwrap();
    cmd.stdout(out.try_clone().unwrap()).stderr(out).process_group(0);
    let child = cmd.spawn().expect("cargo lambda watch starts");
    let emulator = Emulator { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the emulator did not listen: {}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
    emulator
}

fn invoke(emulator: &Emulator, event: &Value, dir: &Path, log: &Path) -> Value {
    let file = dir.join(format!("event-{}.json", free_port()));
    std::fs::write(&file, serde_json::to_vec_pretty(event).unwrap()).unwrap();
    let out = cargo_lambda()
        .args(["invoke", "ingest", "--data-file", file.to_str().unwrap(), "--output-format", "json"])
        .args(["--invoke-address", "127.0.0.1", "--invoke-port", &emulator.port.to_string()])
        .output()
        .expect("cargo lambda invoke runs");
    assert!(
        out.status.success(),
        "invoke failed: {}\n--- emulator log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_runs_under_the_lambda_runtime_api() {
    let moto = Moto::start();
    let recorder = CloudWatchRecorder::start().await;
    let lake = Lake::create(&moto.sdk_config().await, "emulator").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("watch.log");

    let mut env: Vec<(&str, String)> = FAKE_ENV.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.extend([
        ("VOICELAKE_TURNS_STREAM", lake.streams.turns.clone()),
        ("VOICELAKE_SESSIONS_STREAM", lake.streams.sessions.clone()),
        ("VOICELAKE_REJECTS_STREAM", lake.streams.rejects.clone()),
        ("VOICELAKE_ENVIRONMENT", "emulator".into()),
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", recorder.endpoint()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
    ]);
    let emulator = watch(&env, &log);

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
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
}
