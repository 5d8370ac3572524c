//! The report page (`voicelake replay --html`, `voicelake demo`) opened in a real headless Chromium
//! (`infra/check_page.py`): no console errors, no network, every chart with its data, no
//! overlapping labels, readable with no turns, one turn, one agent and a week of data, in light and
//! dark mode.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

mod support;
use support::{repo, venv_python};

const T0: i64 = 1_795_442_400_000; // 2026-11-23T14:00:00Z
const MIN: i64 = 60_000;

fn iso(ms: i64) -> String {
    voicelake_shared::timefmt::iso(ms)
}

fn turn(agent: &str, at: i64, eou: f64, ttft: f64, ttfb: f64) -> String {
    format!(
        r#"{{"_event_type": "voice_metrics", "_session_id": "s-{agent}-{at}", "_timestamp": "{}", "agent_name": "{agent}", "eou": {{"end_of_utterance_delay": {eou}}}, "llm": {{"ttft": {ttft}}}, "tts": {{"ttfb": {ttfb}}}}}"#,
        iso(at)
    )
}

fn call(agent: &str, at: i64) -> String {
    format!(
        r#"{{"_event_type": "session_analytics", "_session_id": "c-{agent}-{at}", "_timestamp": "{}", "agent_name": "{agent}", "duration": 61, "tool_calls": [{{"tool": "lookup", "success": true}}]}}"#,
        iso(at)
    )
}

/// Replays `lines` as a raw log file and returns the page's path.
fn page(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let input = dir.join(format!("{name}.log"));
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let html = dir.join(format!("{name}.html"));
    let out = Command::new(env!("CARGO_BIN_EXE_voicelake"))
        .args([
            "replay",
            input.to_str().unwrap(),
            "--lake",
            dir.join(format!("{name}-lake")).to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    html
}

fn check(spec: &Value, dir: &Path) -> (bool, String) {
    let path = dir.join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let out = Command::new(venv_python()).arg(repo().join("infra/check_page.py")).arg(&path).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_page_loads_cleanly_and_every_chart_has_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Known input: turns in three five-minute periods (14:00, 14:05, 14:30), two agents.
    let known = vec![
        turn("a", T0 + MIN, 0.5, 0.6, 0.3),
        turn("a", T0 + 2 * MIN, 0.9, 0.8, 0.3),
        turn("b", T0 + 3 * MIN, 0.4, 0.4, 0.2),
        turn("a", T0 + 7 * MIN, 0.7, 0.6, 0.3),
        turn("a", T0 + 31 * MIN, 0.3, 0.3, 0.2),
        turn("b", T0 + 33 * MIN, 0.3, 0.4, 0.2),
        call("a", T0 + 8 * MIN),
        call("b", T0 + 20 * MIN),
    ];
    let one_turn = vec![turn("solo", T0, 0.4, 0.5, 0.2)];
    let no_turns = vec![call("a", T0), "a line that is not an agent event".to_owned()];
    let one_agent: Vec<String> = (0..12).map(|i| turn("only", T0 + i * 5 * MIN, 0.4, 0.5 + 0.01 * i as f64, 0.2)).collect();
    let week: Vec<String> = (0..84)
        .flat_map(|i| {
            let at = T0 + i * 120 * MIN;
            [turn("north", at, 0.4, 0.5, 0.2), turn("south", at + 7 * MIN, 0.5, 0.6, 0.25), call("north", at + 9 * MIN)]
        })
        .collect();

    let traffic = d.join("traffic.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_voicelake"))
        .args(["generate", "--calls", "60", "--seed", "5", "--start", &iso(T0), "--out", traffic.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = d.join("generated.html");
    let out = Command::new(env!("CARGO_BIN_EXE_voicelake"))
        .args(["replay", traffic.to_str().unwrap(), "--lake", d.join("gen-lake").to_str().unwrap(), "--html", generated.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());

    let spec = json!([
        {
            "path": page(d, "known", &known),
            // p50/p95/p99 × 3 periods; agent a in 3 periods, b in 2; turns and over-target in 3,
            // calls ended in 2 (14:05 and 14:20).
            "charts": {
                "turn-latency": {"series": 3, "points": 9},
                "agents": {"series": 2, "points": 5},
                "volume": {"series": 3, "points": 8},
                "components": {"series": 3, "points": 9},
                "function": {"series": 0, "points": 0},
            },
        },
        {"path": page(d, "one-turn", &one_turn), "charts": {"turn-latency": {"series": 3, "points": 3}, "agents": {"series": 1, "points": 1}}},
        {"path": page(d, "no-turns", &no_turns), "charts": {"turn-latency": {"series": 0, "points": 0}, "volume": {"series": 1, "points": 1}}},
        {"path": page(d, "one-agent", &one_agent), "charts": {"turn-latency": {"series": 3, "points": 36}, "agents": {"series": 1, "points": 12}}},
        {"path": page(d, "week", &week), "charts": {"agents": {"series": 2, "points": 168}}},
        {"path": generated, "screenshot": d.join("generated.png")},
    ]);
    let (ok, output) = check(&spec, d);
    assert!(ok, "{output}");
    assert!(output.contains("week.html (dark)"), "{output}");
    let shot = std::fs::read(d.join("generated.png")).unwrap();
    assert!(shot.starts_with(b"\x89PNG") && shot.len() > 20_000, "a screenshot of the whole page");
    assert!(d.join("generated-dark.png").exists());
}

/// The checker finds what it looks for: a console error, overlapping labels, a chart without its
/// markers, empty axes and a request to the network.
#[test]
fn the_checker_fails_a_broken_page() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.html");
    std::fs::write(
        &broken,
        r#"<!doctype html><html><head><title>broken</title></head><body>
<script>console.error("boom")</script>
<figure class="card" id="chart-a" data-series="1" data-points="2"><h3>A</h3>
<svg width="200" height="100"><text x="10" y="20">event time (UTC)</text><text x="12" y="22">overlapping</text><text x="100" y="80">1</text><text x="150" y="80">2</text><circle cx="5" cy="5" r="2"/></svg></figure>
<figure class="card" id="chart-b" data-series="0" data-points="0"><h3>B</h3><svg width="10" height="10"></svg></figure>
<img src="http://127.0.0.1:9/pixel.png">
</body></html>"#,
    )
    .unwrap();
    let (ok, output) = check(&json!([{"path": broken, "charts": {"a": {"series": 1, "points": 2}}}]), dir.path());
    assert!(!ok, "{output}");
    for expected in [
        "console error: boom",
        "labels overlap",
        "1 markers drawn for 2 points",
        "chart b: empty axes drawn",
        "request: http://127.0.0.1:9/pixel.png",
    ] {
        assert!(output.contains(expected), "missing {expected:?} in:\n{output}");
    }
}
