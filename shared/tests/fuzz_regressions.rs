//! Inputs the fuzz targets (`shared/fuzz`, run by `./infra/fuzz`) found or that reach deep paths,
//! kept under `tests/fixtures/fuzz/TARGET/` and run here through the same entry points and checks.

use std::path::PathBuf;

use voicelake_shared::envelope::LogBatch;
use voicelake_shared::invariants::check_invariants;
use voicelake_shared::{BatchOutput, Config};

const NOW: i64 = 1_795_442_400_000;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fuzz").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

fn check(path: &std::path::Path, out: &BatchOutput) {
    if let Err(e) = check_invariants(out, &Config::default(), NOW) {
        panic!("{}: {e}", path.display());
    }
}

#[test]
fn payload_inputs() {
    let inputs = inputs("payload");
    assert!(!inputs.is_empty());
    for (path, data) in inputs {
        check(&path, &voicelake_shared::process_payload(&String::from_utf8_lossy(&data), &Config::default(), NOW));
    }
}

#[test]
fn batch_json_inputs() {
    let inputs = inputs("batch_json");
    assert!(!inputs.is_empty());
    for (path, data) in inputs {
        if let Ok(decoded) = voicelake_shared::envelope::parse_batch(data) {
            check(&path, &voicelake_shared::process_batch(&decoded.batch, &Config::default(), NOW));
        }
    }
}

#[test]
fn message_inputs() {
    let inputs = inputs("messages");
    assert!(!inputs.is_empty());
    for (path, data) in inputs {
        let text = String::from_utf8_lossy(&data);
        let batch = LogBatch::of_messages("/ecs/voice-agent", "fuzz", NOW - 1000, text.lines());
        check(&path, &voicelake_shared::process_batch(&batch, &Config::default(), NOW));
    }
}
