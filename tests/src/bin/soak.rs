//! Soak: generated traffic of at least 100,000 turns across many log streams through the release
//! `ingest` function under the Lambda runtime emulator (`cargo lambda watch --only-lambda-apis`), sending to
//! moto's Firehose and a CloudWatch recorder. Counts every turn in (what the pipeline makes of the
//! payloads) and out (the records in the lake), samples the function's resident memory after every
//! invocation, and reports events per second end to end.
//!
//! Run: `cargo run --release -p voicelake-e2e --bin soak -- [TURNS] [LOG_STREAMS]` (defaults 100000 64).
//! Needs the tools of `./infra/bootstrap` (moto, cargo-lambda) in `.venv`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;
use voicelake_shared::timefmt::now_ms;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use voicelake_cli::dlq::{Invoker, LambdaInvoker};
use voicelake_e2e::{CloudWatchRecorder, Emulator, Lake, Moto, function_env, sdk_config};
use voicelake_shared::envelope::{self, LogBatch, MessageType};
use voicelake_shared::{BatchOutput, Config};
use voicelake_synth::{self as synth, SynthOptions};

/// Events per payload: a busy log stream's subscription batch.
const EVENTS_PER_PAYLOAD: usize = 600;

/// The payloads, and what the pipeline makes of each: generated calls, spread over `streams` log
/// streams, merged into batches of about [`EVENTS_PER_PAYLOAD`] events.
fn traffic(min_turns: usize, streams: usize, config: &Config) -> Vec<(LogBatch, BatchOutput)> {
    let now = now_ms();
    let mut out = Vec::new();
    let mut turns = 0;
    let mut seed = 1;
    while turns < min_turns {
        let batches = synth::generate(&SynthOptions { calls: 400, seed, start_ms: now - 6 * 3_600_000, noise: true, outage: None });
        seed += 1;
        let mut pending: Option<LogBatch> = None;
        for b in batches.into_iter().filter(|b| b.message_type == MessageType::DataMessage) {
            let merged = pending.get_or_insert_with(|| LogBatch {
                log_stream: format!("voice-agent/task-{:03}", out.len() % streams),
                log_events: Vec::new(),
                ..b.clone()
            });
            merged.log_events.extend(b.log_events);
            if merged.log_events.len() >= EVENTS_PER_PAYLOAD {
                let batch = pending.take().expect("pending");
                let processed = voicelake_shared::process_batch(&batch, config, now);
                turns += processed.turns.len();
                out.push((batch, processed));
            }
        }
    }
    out
}

/// The resident set of the emulator's `ingest` process, in KiB: (now, peak).
fn function_rss_kib() -> Option<(u64, u64)> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let exe = std::fs::read_link(entry.path().join("exe")).ok();
        if exe.is_some_and(|p| p.ends_with("release/ingest")) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let field = |name: &str| {
                status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
            };
            return Some((field("VmRSS:")?, field("VmHWM:")?));
        }
    }
    None
}

/// The `ingest` function built in release, beside this (release) binary.
fn release_ingest() -> Result<PathBuf> {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "-p", "voicelake-ingest", "--bin", "ingest", "--manifest-path"])
        .arg(voicelake_e2e::repo_root().join("Cargo.toml"))
        .status()
        .context("cargo runs")?;
    if !status.success() {
        bail!("cargo build of the release ingest function failed");
    }
    let exe = std::env::current_exe().context("this binary's path")?;
    Ok(exe.parent().context("target/release")?.join("ingest"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let min_turns: usize = args.next().map(|a| a.parse()).transpose().context("TURNS")?.unwrap_or(100_000);
    let streams: usize = args.next().map(|a| a.parse()).transpose().context("LOG_STREAMS")?.unwrap_or(64);

    let moto = Moto::start();
    let recorder = CloudWatchRecorder::start().await;
    let lake = Lake::create(&moto.sdk_config().await, "soak").await;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("watch.log");
    let mut env = function_env(&moto, &recorder, &lake, "soak");
    env.push(("RUST_LOG", "warn".into()));
    eprintln!("building the release function and starting it under cargo lambda watch…");
    let emulator = Emulator::start(&release_ingest()?, "ingest", &env, &log);

    let config = Config { environment: "soak".into(), ..Config::default() };
    let payloads = traffic(min_turns, streams, &config);
    let turns_in: BTreeSet<&str> = payloads.iter().flat_map(|(_, o)| o.turns.iter().map(|t| t.event_id.as_str())).collect();
    let events: usize = payloads.iter().map(|(b, _)| b.log_events.len()).sum();
    let used_streams: BTreeSet<&str> = payloads.iter().map(|(b, _)| b.log_stream.as_str()).collect();
    eprintln!("{} payloads, {events} log events, {} turns, {} log streams", payloads.len(), turns_in.len(), used_streams.len());

    let lambda = aws_sdk_lambda::Client::new(&sdk_config(&emulator.endpoint()).await);
    let invoker = LambdaInvoker::new(lambda, "ingest");
    // The first invocation waits for the function's start and first poll: not timed.
    let warmup = serde_json::to_value(envelope::subscription_event(&payloads[0].0))?;
    invoker.invoke(&warmup).await.map_err(anyhow::Error::msg).context("the first invocation")?;

    let mut rss: Vec<u64> = Vec::new();
    let started = Instant::now();
    for (i, (batch, _)) in payloads.iter().enumerate().skip(1) {
        let event: Value = serde_json::to_value(envelope::subscription_event(batch))?;
        let summary = invoker.invoke(&event).await.map_err(anyhow::Error::msg).with_context(|| format!("invocation {i}"))?;
        if summary["turn_records"]["failed"].as_u64() != Some(0) {
            bail!("invocation {i} failed records: {summary}");
        }
        if let Some((now, _)) = function_rss_kib() {
            rss.push(now);
        }
    }
    let elapsed = started.elapsed();
    let peak = function_rss_kib().map(|(_, hwm)| hwm);

    let records = lake.records("turns/").await;
    let out: Vec<&str> = records.iter().filter_map(|r| r["event_id"].as_str()).collect();
    let unique: BTreeSet<&str> = out.iter().copied().collect();
    let missing = turns_in.difference(&unique).count();
    let unexpected = unique.difference(&turns_in).count();
    let duplicates = out.len() - unique.len();
    let timed_events: usize = payloads.iter().skip(1).map(|(b, _)| b.log_events.len()).sum();

    let quarter = |q: usize| -> u64 {
        let n = rss.len();
        let part = &rss[(n * q / 4)..(n * (q + 1) / 4).max(n * q / 4 + 1).min(n)];
        part.iter().sum::<u64>() / part.len().max(1) as u64
    };
    println!(
        "soak: {} invocations, {timed_events} log events, {} log streams, in {:.1} s",
        payloads.len() - 1,
        used_streams.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "  turns in {}, turns out {} (unique {}), missing {missing}, unexpected {unexpected}, duplicates {duplicates}",
        turns_in.len(),
        out.len(),
        unique.len()
    );
    println!(
        "  end to end (function + moto on this machine): {:.0} events/s, {:.0} turns/s",
        timed_events as f64 / elapsed.as_secs_f64(),
        turns_in.len() as f64 / elapsed.as_secs_f64()
    );
    if !rss.is_empty() {
        println!(
            "  function RSS MiB by quarter of the run: {:.1} {:.1} {:.1} {:.1}; peak (VmHWM) {:.1}",
            quarter(0) as f64 / 1024.0,
            quarter(1) as f64 / 1024.0,
            quarter(2) as f64 / 1024.0,
            quarter(3) as f64 / 1024.0,
            peak.unwrap_or(0) as f64 / 1024.0
        );
    }
    if missing + unexpected + duplicates > 0 {
        bail!("turns were lost or doubled");
    }
    if rss.len() >= 8 && quarter(3) as f64 > quarter(0) as f64 * 1.25 {
        bail!("memory grew over the run: {} KiB → {} KiB", quarter(0), quarter(3));
    }
    drop(emulator);
    Ok(())
}
