//! What the CLI's test files share: where the repository and its test tools are, the binary, the
//! lake's files. Each test file uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Python of the virtual environment `./infra/test` creates (`.venv`, or `$VOICELAKE_VENV`).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("VOICELAKE_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run ./infra/test, which installs the pinned tools into .venv", python.display());
    python
}

/// Runs the `voicelake` binary; it must succeed. Its standard output.
pub fn voicelake(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_voicelake")).args(args).output().expect("the binary runs");
    assert!(out.status.success(), "voicelake {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// When generated traffic starts, in the tests that generate it.
pub const START: &str = "2026-11-23T12:00:00Z";

/// `voicelake generate` of `calls` calls (seed 11) into `dir`; `clean`: without the foreign and
/// malformed lines.
pub fn generate(dir: &Path, calls: usize, clean: bool) -> PathBuf {
    let path = dir.join("traffic.jsonl");
    let calls = calls.to_string();
    let mut args = vec!["generate", "--calls", &calls, "--seed", "11", "--start", START, "--out", path.to_str().unwrap()];
    if clean {
        args.push("--clean");
    }
    voicelake(&args);
    path
}

/// Every Parquet file under `dir`, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if dir.exists() {
        for entry in walk(dir) {
            if entry.extension().is_some_and(|e| e == "parquet") {
                files.push(entry);
            }
        }
    }
    files.sort();
    files
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
