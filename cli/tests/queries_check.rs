//! `voicelake queries check`: the repository's saved queries pass it, and broken ones do not.

use std::path::Path;
use std::process::Command;

mod support;
use support::{repo, venv_python};

fn queries_check(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_voicelake"))
        .args(["queries", "check", "--dir"])
        .arg(dir)
        .arg("--python")
        .arg(venv_python())
        .arg("--checker")
        .arg(repo().join("infra/check_queries.py"))
        .arg("--fixtures")
        .arg(repo().join("tests/fixtures"))
        .output()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            copy_dir(&path, &to.join(path.file_name().unwrap()));
        } else {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn the_repo_s_queries_pass_their_check_in_duckdb_against_the_report() {
    let out = queries_check(&repo().join("queries"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("agree with the report"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn the_check_catches_broken_queries() {
    let dir = tempfile::tempdir().unwrap();
    let bad_insights = dir.path().join("a");
    copy_dir(&repo().join("queries"), &bad_insights);
    let path = bad_insights.join("insights/slowest-turns.logsinsights");
    let text = std::fs::read_to_string(&path).unwrap().replace("llm.ttft", "llm.time_to_first_token");
    std::fs::write(&path, text).unwrap();
    let out = queries_check(&bad_insights);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("llm.time_to_first_token is neither in the contract"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad_sql = dir.path().join("b");
    copy_dir(&repo().join("queries"), &bad_sql);
    let path = bad_sql.join("athena/slowest_sessions.sql");
    let text = std::fs::read_to_string(&path).unwrap().replace("GROUP BY session_id", "GROUP session_id");
    std::fs::write(&path, text).unwrap();
    let out = queries_check(&bad_sql);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("slowest_sessions.sql: not valid Trino SQL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let wrong_answer = dir.path().join("c");
    copy_dir(&repo().join("queries"), &wrong_answer);
    let path = wrong_answer.join("athena/latency_summary.sql");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("approx_percentile(total_latency_ms, 0.95) AS p95_ms", "approx_percentile(total_latency_ms, 0.90) AS p95_ms");
    std::fs::write(&path, text).unwrap();
    let out = queries_check(&wrong_answer);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL latency_summary p95"), "{}", String::from_utf8_lossy(&out.stdout));
}
