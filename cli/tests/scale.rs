//! Scale: a replay of 200 MiB of subscription events, generated here, stays under 256 MiB (measured
//! by the process itself: its peak resident memory) and within a few MiB of the peak of a replay of
//! its first quarter, so memory does not grow with the input; its report equals the report of the
//! same input replayed in small pieces.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use voicelake_synth::{self as synth, SynthOptions};

const INPUT_BYTES: usize = 200 << 20;
const PIECE_BYTES: usize = 4 << 20;
const BOUND_MIB: u64 = 256;
/// How much more the whole may peak at than its first quarter: allocator noise, not growth (the
/// report's state past its limits is in temporary files).
const GROWTH_MIB: u64 = 24;
/// 2026-09-01T00:00:00Z: a day of traffic per generation, one after another, until 200 MiB.
const START_MS: i64 = 1_788_220_800_000;
const DAY_MS: i64 = 86_400_000;

/// Days of a busy fleet's traffic, as one file and as pieces of about 4 MB with the same lines.
fn input(dir: &Path) -> (PathBuf, Vec<PathBuf>, usize) {
    let whole_path = dir.join("all.jsonl");
    let mut whole = std::io::BufWriter::new(std::fs::File::create(&whole_path).unwrap());
    let mut pieces = Vec::new();
    let mut piece: Option<(std::io::BufWriter<std::fs::File>, usize)> = None;
    let mut total = 0;
    let mut day = 0;
    while total < INPUT_BYTES {
        let batches = synth::generate(&SynthOptions {
            calls: 15_000,
            seed: 40 + day as u64,
            start_ms: START_MS + day * DAY_MS,
            noise: true,
            outage: None,
        });
        for line in synth::subscription_lines(&batches).lines() {
            if total >= INPUT_BYTES {
                break;
            }
            writeln!(whole, "{line}").unwrap();
            total += line.len() + 1;
            let (out, size) = piece.get_or_insert_with(|| {
                let path = dir.join(format!("piece-{:04}.jsonl", pieces.len()));
                pieces.push(path.clone());
                (std::io::BufWriter::new(std::fs::File::create(path).unwrap()), 0)
            });
            writeln!(out, "{line}").unwrap();
            *size += line.len() + 1;
            if *size >= PIECE_BYTES {
                piece.take().unwrap().0.flush().unwrap();
            }
        }
        day += 1;
    }
    if let Some((mut out, _)) = piece {
        out.flush().unwrap();
    }
    whole.flush().unwrap();
    (whole_path, pieces, total)
}

/// The JSON report and the peak memory the replay reported, in MiB.
fn replay(files: &[PathBuf], lake: &Path) -> (Value, u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_voicelake"))
        .arg("replay")
        .args(files)
        .args(["--lake", lake.to_str().unwrap(), "--format", "json"])
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed: {stderr}");
    let peak = stderr
        .split("peak memory ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the replay reports its peak memory: {stderr}"));
    (serde_json::from_slice(&out.stdout).unwrap(), peak)
}

#[test]
fn a_replay_of_200_mb_stays_under_256_mib_and_reports_as_its_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, pieces, bytes) = input(dir.path());
    assert!(bytes >= INPUT_BYTES && pieces.len() >= 50, "{bytes} bytes in {} pieces", pieces.len());

    let (report, peak) = replay(&[whole], &dir.path().join("lake-whole"));
    eprintln!("{} MB of input, {} turns: peak memory {peak} MiB", bytes >> 20, report["turns"]);
    assert!(peak < BOUND_MIB, "peak memory {peak} MiB for {} MB of input", bytes >> 20);
    assert!(report["turns"].as_u64().unwrap() > 400_000, "{}", report["turns"]);

    let (in_pieces, _) = replay(&pieces, &dir.path().join("lake-pieces"));
    assert_eq!(report, in_pieces, "the report of the whole equals the report of its pieces");

    let (_, quarter) = replay(&pieces[..pieces.len() / 4], &dir.path().join("lake-quarter"));
    eprintln!("the first quarter of the pieces: peak memory {quarter} MiB");
    assert!(
        peak <= quarter + GROWTH_MIB,
        "peak memory {peak} MiB for the whole, {quarter} MiB for its first quarter: it grows with the input"
    );
}
