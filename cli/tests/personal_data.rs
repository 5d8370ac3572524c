//! Personal data in what agents log, through `voicelake replay --pii` into the lake.

use std::path::Path;
use std::process::Command;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

mod support;
use support::{parquet_files, voicelake};

/// Every value of every Parquet file under `dir`, as text to search.
fn lake_text(dir: &Path) -> String {
    let mut text = String::new();
    for file in parquet_files(dir) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap().build().unwrap();
        for batch in reader {
            text.push_str(&format!("{:?}", batch.unwrap()));
        }
    }
    text
}

#[test]
fn personal_data_is_hashed_by_default_and_dropped_or_kept_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/app/session_analytics.log");
    let run = |name: &str, extra: &[&str]| {
        let lake = dir.path().join(name);
        let mut args = vec!["replay", input.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--format", "json"];
        args.extend_from_slice(extra);
        voicelake(&args);
        lake_text(&lake.join("sessions"))
    };
    let hashed = run("hash", &[]);
    assert!(!hashed.contains("jane.doe@example.com") && hashed.contains("email:"), "{hashed}");
    let dropped = run("drop", &["--pii", "drop"]);
    assert!(!dropped.contains("jane.doe@example.com") && dropped.contains("[redacted]"));
    assert!(run("keep", &["--pii", "keep"]).contains("jane.doe@example.com"));
    let out = Command::new(env!("CARGO_BIN_EXE_voicelake"))
        .args(["replay", input.to_str().unwrap(), "--lake", dir.path().join("mask").to_str().unwrap(), "--pii", "mask"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("hash, drop or keep"));
}

/// Ids and names come from agents' logs: a newline or a terminal escape in one stays on its line of
/// the text report and never reaches the terminal.
#[test]
fn control_characters_in_names_and_ids_do_not_reach_the_terminal_report() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hostile.log");
    let mut lines = String::new();
    for (i, latency) in [(1, 2.5), (2, 2.7), (3, 2.9)] {
        lines.push_str(&format!(
            concat!(
                r#"{{"_event_type": "voice_metrics", "_session_id": "sess\nFORGED line\u001b[2J{i}", "_timestamp": "2026-11-23T14:00:0{i}.000Z", "#,
                r#""agent_name": "sales\u202eagent\r\nFORGED agent", "speech_id": "speech_{i}", "total_latency": {latency}}}"#,
                "\n"
            ),
            i = i,
            latency = latency
        ));
    }
    std::fs::write(&input, lines).unwrap();
    let text = voicelake(&["replay", input.to_str().unwrap(), "--lake", dir.path().join("lake").to_str().unwrap()]);
    assert!(text.contains("slowest sessions"), "{text}");
    assert!(!text.lines().any(|l| l.trim_start().starts_with("FORGED")), "{text}");
    assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{202e}'), "{text:?}");
}

/// One call reads "1 call", and nothing costs `$-0.0000`.
#[test]
fn one_call_is_singular_and_an_empty_replay_costs_zero() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let text = voicelake(&["replay", empty.to_str().unwrap(), "--lake", dir.path().join("a").to_str().unwrap()]);
    assert!(text.contains("total $0.0000") && !text.contains("-0.0000"), "{text}");
    let one = dir.path().join("one.log");
    std::fs::write(
        &one,
        r#"{"_event_type": "session_analytics", "_session_id": "s1", "_timestamp": "2026-11-23T14:05:00Z", "agent_name": "a", "duration_seconds": 60, "tool_calls": [{"tool": "t", "success": false, "error": "x"}]}"#,
    )
    .unwrap();
    let text = voicelake(&["replay", one.to_str().unwrap(), "--lake", dir.path().join("b").to_str().unwrap()]);
    assert!(text.contains("cost: 1 call,") && text.contains("tools: 1 call,"), "{text}");
}
