//! The report's diagnosis on generated traffic, where the answer is known: `voicelake generate`
//! slows the sales agent's TTS for a stretch of the run, and nothing else.

use serde_json::Value;

mod support;
use support::voicelake;

fn report(seed: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let traffic = dir.path().join("traffic.jsonl");
    let lake = dir.path().join("lake");
    let out = traffic.to_str().unwrap();
    voicelake(&["generate", "--calls", "200", "--seed", seed, "--start", "2026-11-23T12:00:00Z", "--out", out]);
    serde_json::from_str(&voicelake(&["replay", out, "--lake", lake.to_str().unwrap(), "--format", "json"])).unwrap()
}

fn alarm<'r>(report: &'r Value, id: &str) -> &'r Value {
    report["alarms"].as_array().unwrap().iter().find(|a| a["alarm"] == id).unwrap()
}

#[test]
fn the_injected_tts_degradation_is_named_with_its_agent_and_calls() {
    for seed in ["7", "11"] {
        let report = report(seed);
        for id in ["TurnLatencyP95Alarm", "TTSTimeToFirstByteP95Alarm"] {
            let a = alarm(&report, id);
            assert_eq!(a["would_fire"], true, "seed {seed}: {a}");
            let d = &a["diagnosis"];
            assert_eq!((d["component"].as_str(), d["agent"].as_str()), (Some("tts_ttfb"), Some("sales-agent")), "seed {seed} {id}: {d}");
            let (value, baseline) = (d["value_ms"].as_f64().unwrap(), d["baseline_ms"].as_f64().unwrap());
            assert!(value > 3.0 * baseline, "seed {seed} {id}: {value} against {baseline}");
            // The window is the alarm's worst period, five minutes.
            let start = chrono::DateTime::parse_from_rfc3339(d["window_start"].as_str().unwrap()).unwrap();
            let end = chrono::DateTime::parse_from_rfc3339(d["window_end"].as_str().unwrap()).unwrap();
            assert_eq!((end - start).num_seconds(), 300);
            assert_eq!(d["window_start"], a["worst_period"]);
            let sessions: Vec<&str> = d["worst_sessions"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
            assert!(!sessions.is_empty() && sessions.len() <= 5, "{sessions:?}");
            let calls = d["worst_calls"].as_array().unwrap();
            assert_eq!(calls.iter().map(|c| c["session_id"].as_str().unwrap()).collect::<Vec<_>>(), sessions);
            assert!(calls.windows(2).all(|w| w[0]["p95_ms"].as_f64() >= w[1]["p95_ms"].as_f64()), "worst first: {calls:?}");
            assert_eq!(calls[0]["agent"], "sales-agent", "the slowest call is one of the degraded agent's");
        }
        // An alarm that would not fire has no diagnosis; the keys of every alarm stay.
        let llm = alarm(&report, "LLMTimeToFirstTokenP95Alarm");
        assert_eq!(llm["would_fire"], false);
        assert!(llm.get("diagnosis").is_none());
        for key in ["alarm", "metric", "threshold", "would_fire", "periods_evaluated", "periods_breaching", "worst_value", "worst_period"] {
            assert!(llm.get(key).is_some(), "{key}");
        }
    }
}

#[test]
fn the_text_report_says_the_cause_and_the_worst_calls() {
    let dir = tempfile::tempdir().unwrap();
    let traffic = dir.path().join("traffic.jsonl");
    let out = traffic.to_str().unwrap();
    voicelake(&["generate", "--calls", "200", "--seed", "7", "--start", "2026-11-23T12:00:00Z", "--out", out]);
    let text = voicelake(&["replay", out, "--lake", dir.path().join("lake").to_str().unwrap()]);
    assert!(text.contains("cause: TTS time to first byte p95"), "{text}");
    assert!(text.contains("for sales-agent"), "{text}");
    assert!(text.contains("worst calls: "), "{text}");
}
