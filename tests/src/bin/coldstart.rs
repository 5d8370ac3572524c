//! Cold start and memory of the release `ingest` binary, under a stand-in for the Lambda runtime API.
//!
//! Cold start: process start to the first poll of `/runtime/invocation/next`, over fresh processes.
//! Memory: the process's peak resident set (VmHWM) after it handled one subscription payload of
//! 1 MB decompressed, sending to moto's Firehose and a CloudWatch recorder.
//!
//! Run: `cargo run --release -p voicelake-e2e --bin coldstart` (builds the function in release).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use voicelake_shared::timefmt::now_ms;

use voicelake_e2e::{CloudWatchRecorder, FAKE_ENV, Lake, Moto, repo_root};
use voicelake_shared::envelope;
use voicelake_synth as synth;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers `/next`: the first poll gets `event` (or waits forever when there is none), later polls
/// wait; the time of the first poll is kept.
struct Next {
    first_poll: Arc<Mutex<Option<Instant>>>,
    event: Option<Vec<u8>>,
}

impl Respond for Next {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut first = self.first_poll.lock().unwrap();
        let is_first = first.is_none();
        first.get_or_insert_with(Instant::now);
        match (&self.event, is_first) {
            (Some(event), true) => ResponseTemplate::new(200)
                .insert_header("Lambda-Runtime-Aws-Request-Id", "00000000-0000-0000-0000-000000000001")
                .insert_header("Lambda-Runtime-Deadline-Ms", (now_ms() + 60_000).to_string())
                .insert_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:ingest")
                .insert_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                .set_body_bytes(event.clone()),
            _ => ResponseTemplate::new(200).set_delay(Duration::from_secs(600)),
        }
    }
}

struct Run {
    to_first_poll: Duration,
    peak_rss_kib: Option<u64>,
    response: Option<String>,
}

async fn run(binary: &std::path::Path, event: Option<Vec<u8>>, env: &[(String, String)]) -> Run {
    let server = MockServer::start().await;
    let first_poll = Arc::new(Mutex::new(None));
    Mock::given(method("GET"))
        .and(path("/2018-06-01/runtime/invocation/next"))
        .respond_with(Next { first_poll: first_poll.clone(), event: event.clone() })
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path_regex("^/2018-06-01/runtime/")).respond_with(ResponseTemplate::new(202)).mount(&server).await;
    let api = server.address().to_string();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", api.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "ingest"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ingest"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the function starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let to_first_poll = loop {
        if let Some(t) = *first_poll.lock().unwrap() {
            break t - started;
        }
        assert!(Instant::now() < deadline, "no poll of the runtime API within 30 s");
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    let mut response = None;
    let mut peak_rss_kib = None;
    if event.is_some() {
        loop {
            let requests = server.received_requests().await.unwrap_or_default();
            if let Some(r) = requests.iter().find(|r| r.method.as_str() == "POST") {
                response = Some(format!("{} {}", r.url.path(), String::from_utf8_lossy(&r.body)));
                break;
            }
            assert!(Instant::now() < deadline, "no answer to the invocation within 30 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        peak_rss_kib = status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
    }
    let _ = child.kill();
    let _ = child.wait();
    Run { to_first_poll, peak_rss_kib, response }
}

#[tokio::main]
async fn main() {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--package", "voicelake-ingest", "--bin", "ingest"])
        .current_dir(repo_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the function failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let binary = target.join("release/ingest");

    let moto = Moto::start();
    let recorder = CloudWatchRecorder::start().await;
    let lake = Lake::create(&moto.sdk_config().await, "coldstart").await;
    let mut env: Vec<(String, String)> = FAKE_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.extend([
        ("VOICELAKE_TURNS_STREAM".into(), lake.streams.turns.clone()),
        ("VOICELAKE_SESSIONS_STREAM".into(), lake.streams.sessions.clone()),
        ("VOICELAKE_REJECTS_STREAM".into(), lake.streams.rejects.clone()),
        ("VOICELAKE_ERRORS_STREAM".into(), lake.streams.errors.clone()),
        ("AWS_ENDPOINT_URL".into(), moto.endpoint.clone()),
        ("AWS_ENDPOINT_URL_CLOUDWATCH".into(), recorder.endpoint()),
    ]);

    let runs = 20;
    let mut starts = Vec::with_capacity(runs);
    for _ in 0..runs {
        starts.push(run(&binary, None, &env).await.to_first_poll);
    }
    starts.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;

    let mut batch = synth::batch_of_size(1 << 20, 42);
    let shift = now_ms() - 1_800_000 - batch.log_events[0].timestamp;
    for e in &mut batch.log_events {
        e.timestamp += shift;
    }
    let event = serde_json::to_vec(&envelope::subscription_event(&batch)).unwrap();
    let invoked = run(&binary, Some(event.clone()), &env).await;
    let response = invoked.response.unwrap_or_default();
    assert!(response.contains("/response"), "the invocation failed: {response}");

    println!("binary: {} ({:.1} MiB)", binary.display(), std::fs::metadata(&binary).unwrap().len() as f64 / 1048576.0);
    println!(
        "cold start, process start to first poll of the runtime API, {runs} runs: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        ms(starts[runs / 2]),
        ms(starts[runs * 9 / 10]),
        ms(starts[runs - 1])
    );
    println!(
        "peak memory (VmHWM) after one payload of {} events, {} KiB compressed, 1 MiB decompressed: {:.1} MiB",
        batch.log_events.len(),
        event.len() / 1024,
        invoked.peak_rss_kib.unwrap_or(0) as f64 / 1024.0
    );
}
