//! The tree stays readable: no Rust source file of the workspace is over 700 lines. (No function is
//! over 100: clippy's `too_many_lines`, at the threshold `clippy.toml` sets, is an error in
//! `./infra/test`.)

use std::path::{Path, PathBuf};

use voicelake_e2e::repo_root;

const MAX_FILE_LINES: usize = 700;

/// Every `.rs` file under the workspace's crates, the generated and installed ones left out.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if !matches!(name, "target" | "corpus" | "artifacts") && !name.starts_with('.') {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_700_lines() {
    let root = repo_root();
    let mut files = Vec::new();
    for crate_dir in ["shared", "cli", "functions", "tests", "infra"] {
        sources(&root.join(crate_dir), &mut files);
    }
    assert!(files.len() > 50, "the walk found the sources: {}", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_FILE_LINES).then(|| format!("{} ({lines} lines)", f.strip_prefix(&root).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_FILE_LINES} lines, give each job its own file: {long:?}");
}
