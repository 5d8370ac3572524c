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

/// `voicelake query` runs the saved queries on a local lake, narrowed by agent and time, and shows
/// one call's turns: the same numbers as the replay's report.
#[test]
fn query_runs_the_saved_queries_on_the_local_lake_as_the_report_counts() {
    let dir = tempfile::tempdir().unwrap();
    let traffic = dir.path().join("traffic.jsonl");
    let lake = dir.path().join("lake");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_voicelake")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    run(&["generate", "--calls", "60", "--seed", "4", "--start", "2026-11-20T10:00:00Z", "--clean", "--out", &path(&traffic)]);
    let report: serde_json::Value =
        serde_json::from_str(&run(&["replay", &path(&traffic), "--lake", &path(&lake), "--format", "json"])).unwrap();
    let query = |extra: &[&str]| -> Vec<serde_json::Value> {
        let python = path(&venv_python());
        let queries = path(&repo().join("queries"));
        let script = path(&repo().join("infra/lake_sql.py"));
        let lake = path(&lake);
        let mut args = vec!["query", "--lake", &lake, "--format", "json", "--limit", "1000"];
        args.extend(["--python", &python, "--dir", &queries, "--script", &script]);
        args.extend_from_slice(extra);
        run(&args).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let summary = query(&["latency_summary"]);
    assert_eq!(summary[0]["turns"], report["latency_ms"]["count"]);

    let agent = &report["agents"][0];
    let name = agent["agent"].as_str().unwrap();
    let own = query(&["latency_summary", "--agent", name]);
    assert_eq!(own[0]["turns"], agent["turns"], "{name}");

    // An hour of the run: the turns of that hour only.
    let hourly = query(&["latency_by_hour_agent"]);
    let in_hour: u64 = hourly.iter().filter(|r| r["hour"] == "10").map(|r| r["turns"].as_u64().unwrap()).sum();
    let hour = query(&["latency_summary", "--from", "2026-11-20T10:00:00Z", "--to", "2026-11-20T11:00:00Z"]);
    assert_eq!(hour[0]["turns"].as_u64(), Some(in_hour));

    let slowest = &report["slowest_sessions"][0];
    let turns = query(&["call", "--session", slowest["session_id"].as_str().unwrap()]);
    assert_eq!(turns.len() as u64, slowest["turns"].as_u64().unwrap());
    let max = turns.iter().filter_map(|t| t["total_latency_ms"].as_f64()).fold(0.0, f64::max);
    assert_eq!(max, slowest["max_ms"].as_f64().unwrap());
}
