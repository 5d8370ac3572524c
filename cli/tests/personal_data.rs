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
