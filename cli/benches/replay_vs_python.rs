//! The whole `voicelake replay` of many subscription payloads against the equivalent Python
//! handler (`python_handler.py`: plain `json` + `pyarrow`), on the same generated input in the
//! same run. Prints both rates and their ratio.
//!
//! `cargo bench -p voicelake-cli --bench replay_vs_python` measures (median of 5 runs each, on
//! 3,000 generated calls); under `cargo test` it runs once on a small input, to prove it works.
//! Needs `./infra/bootstrap` (the Python baseline runs on .venv's pyarrow).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use voicelake_cli::replay::LocalReplay;
use voicelake_shared::Config;
use voicelake_synth::{SynthOptions, generate, subscription_lines};

#[derive(serde::Deserialize)]
struct PythonRun {
    seconds: f64,
    payloads: usize,
    events: usize,
    message_bytes: usize,
}

fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(python.exists(), "{} is missing: run ./infra/bootstrap first (the baseline needs pyarrow)", python.display());
    python
}

fn python_run(input: &Path) -> PythonRun {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_handler.py");
    let out = Command::new(python()).arg(script).arg(input).output().expect("python runs");
    assert!(out.status.success(), "the Python handler failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the Python handler prints its measurement")
}

/// One `voicelake replay` of `input` into a fresh lake, report included: seconds and log events.
fn replay_run(input: &Path, config: &Config) -> (f64, u64) {
    let lake = tempfile::tempdir().unwrap();
    let now = voicelake_shared::timefmt::now_ms();
    let started = Instant::now();
    let mut replay = LocalReplay::new(lake.path(), now);
    replay.add_file(input, config, now).unwrap();
    let (builder, _) = replay.finish(config, now).unwrap();
    let report = builder.finish(config).unwrap();
    (started.elapsed().as_secs_f64(), report.counts.events_in)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (calls, runs) = if measuring { (3_000, 5) } else { (100, 1) };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("traffic.jsonl");
    let batches = generate(&SynthOptions { calls, seed: 11, ..SynthOptions::default() });
    std::fs::write(&input, subscription_lines(&batches)).unwrap();
    let config = Config::default();

    let mut python_seconds = Vec::new();
    let mut rust_seconds = Vec::new();
    let mut baseline = None;
    let mut events = 0;
    for _ in 0..runs {
        let p = python_run(&input);
        python_seconds.push(p.seconds);
        let (seconds, replayed_events) = replay_run(&input, &config);
        rust_seconds.push(seconds);
        events = replayed_events;
        baseline = Some(p);
    }
    let p = baseline.expect("at least one run");
    assert_eq!(p.events as u64, events, "both read the same log events");
    let (py, rs) = (median(python_seconds), median(rust_seconds));
    let mb = p.message_bytes as f64 / 1e6;
    println!(
        "replay vs the Python handler: {} payloads, {} log events, {mb:.1} MB of log messages, {} cores",
        p.payloads,
        p.events,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("  python json + pyarrow: {py:.3} s, {:.0} events/s, {:.1} MB/s", p.events as f64 / py, mb / py);
    println!("  voicelake replay:      {rs:.3} s, {:.0} events/s, {:.1} MB/s", p.events as f64 / rs, mb / rs);
    println!("  ratio: voicelake replay runs at {:.2}x the Python handler's speed", py / rs);
}
