//! Small inputs shaped like what real deployments write (`tests/fixtures/cases/`), each one instance
//! of a kind of fault voicelake once got wrong, replayed as a user replays them, with the right
//! result computed by hand from the raw lines.

use std::path::Path;

use serde_json::Value;

mod support;
use support::voicelake;

fn replay(case: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cases").join(case);
    let lake = dir.path().join("lake");
    serde_json::from_str(&voicelake(&["replay", input.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--format", "json"])).unwrap()
}

fn latency(r: &Value) -> (u64, f64) {
    (r["latency_ms"]["count"].as_u64().unwrap_or(0), r["latency_ms"]["p95"].as_f64().unwrap_or(f64::NAN))
}

#[test]
fn a_firelens_record_is_the_line_it_carries() {
    // 500 (eou) + 400 (ttft) + 200 (ttfb), the line's agent_name.
    let r = replay("15-firelens-record.jsonl");
    assert_eq!(latency(&r), (1, 1100.0), "{r}");
    assert_eq!(r["agents"][0]["agent"], "support-agent");
}

#[test]
fn agents_js_lines_through_pino_are_turns_with_their_own_times() {
    // EOU 612.5 ms (+1.2 ms on_user_turn_completed) + LLM ttft 451.27 + TTS ttfb 233.1, in
    // milliseconds already (`…Ms`); the time is pino's `time`, epoch milliseconds.
    let r = replay("15-agents-js-pino.jsonl");
    let (count, p95) = latency(&r);
    assert_eq!(count, 1, "{r}");
    assert!((p95 - 1298.07).abs() < 0.01, "{p95}");
    // The turn's time is its first line's (pino's `time`), not the replay's clock.
    assert_eq!(r["first_event"], "2024-11-10T10:29:20.104Z");
}

#[test]
fn the_same_turn_from_two_handlers_is_one_turn() {
    let r = replay("15-same-turn-two-handlers.jsonl");
    assert_eq!(latency(&r), (1, 1230.0), "{r}");
    assert_eq!(r["skipped_by_reason"]["duplicate_event"], 1);
}

#[test]
fn a_latin1_byte_costs_nothing_but_itself() {
    let r = replay("15-latin1-byte.jsonl");
    assert_eq!(latency(&r), (2, 1100.0), "{r}");
    assert_eq!((r["rejected"].as_u64(), r["input"]["replaced_bytes"].as_u64()), (Some(0), Some(1)));
}

#[test]
fn a_decoded_payload_is_its_batch() {
    // eou_delay 450 + llm_ttft 500 + tts_ttfb 200 = 1150 ms: the line reports no total. (The case's
    // README gives 1100 ms, which these components do not add up to.)
    let r = replay("15-decoded-payload.json");
    assert_eq!(latency(&r), (1, 1150.0), "{r}");
    assert_eq!(r["first_event"], "2022-05-10T10:53:20.000Z");
}

#[test]
fn livekits_dev_format_lines_are_read() {
    let r = replay("15-livekit-dev-format.log");
    assert_eq!(latency(&r).0, 1, "{r}");
    // Nine lines: the EOU, two LLM and the TTS line make the turn; the tool and AFC lines and a
    // print() are the only ones skipped, as foreign.
    assert_eq!((r["events"].as_u64(), r["skipped"].as_u64(), r["rejected"].as_u64()), (Some(9), Some(5), Some(0)), "{r}");
}

#[test]
fn a_line_docker_cut_at_16_kib_is_joined() {
    let r = replay("15-docker-16k-split.jsonl");
    assert_eq!((latency(&r).0, r["rejected"].as_u64()), (2, Some(0)), "{r}");
    assert_eq!(r["input"]["joined_lines"], 1);
}

/// One application line, captured as real software delivers it (`tests/fixtures/delivery/`, its
/// README says how each was made): every form gives the one turn of 1100 ms the line holds (and
/// agents-js's metrics the 0.27 ms its `onUserTurnCompleted` hook took on top).
#[test]
fn every_captured_delivery_of_one_line_gives_its_turn() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/delivery");
    // Not CloudWatch message texts: a request dump and the Forward protocol's records.
    let not_messages = ["docker-awslogs-putlogevents.jsonl", "docker-fluentd-forward.jsonl", "docker-awslogs-split-summary.json"];
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if not_messages.contains(&name.as_str()) || !(name.ends_with(".jsonl") || name.ends_with(".log")) {
            continue;
        }
        let lake = tempfile::tempdir().unwrap();
        let r: Value = serde_json::from_str(&voicelake(&[
            "replay",
            path.to_str().unwrap(),
            "--lake",
            lake.path().to_str().unwrap(),
            "--format",
            "json",
        ]))
        .unwrap();
        let turns = if name == "python-json-logger.jsonl" { 2 } else { 1 };
        let waited = if name.starts_with("agents-js-logmetrics") { 1100.27 } else { 1100.0 };
        assert_eq!(latency(&r), (turns, waited), "{name}: {r}");
        assert_eq!((r["rejected"].as_u64(), r["skipped_by_reason"].get("not_an_event")), (Some(0), None), "{name}: {r}");
        checked += 1;
    }
    assert!(checked >= 18, "{checked} forms");
}

#[test]
fn a_tool_round_turn_is_what_the_caller_waited() {
    // 500 (eou) + 400 (the retrieval hook) + 1750 (the LLM phase: the tool call starts at
    // 1.55 - 0.65 = 0.90 s, the reply's call at 3.55 - 1.20 = 2.35 s, its first token 0.30 s later,
    // at 2.65 s) + 200 (ttfb) = 2850 ms.
    let r = replay("16-tool-round-turn.jsonl");
    let (count, p95) = latency(&r);
    assert_eq!(count, 1, "{r}");
    assert!((p95 - 2850.0).abs() < 0.01, "{p95}");
    assert_eq!((r["latency_computed"].as_u64(), r["latency_tool_rounds"].as_u64()), (Some(1), Some(1)), "{r}");
    assert!((r["components_ms"]["on_user_turn_completed_delay"]["max"].as_f64().unwrap() - 400.0).abs() < 0.01, "{r}");
}

#[test]
fn speaking_times_out_of_order_null_their_delays_and_the_turn_waits_for_a_measured_latency() {
    // The second user message stopped speaking 203 s before it started: its end-of-turn and
    // transcription delays are nulled, so its reply (no e2e_latency) has no latency; the two
    // replies with e2e_latency are the turns.
    let r = replay("16-stale-speaking-anchor.jsonl");
    assert_eq!(latency(&r).0, 2, "{r}");
    assert!((r["latency_ms"]["max"].as_f64().unwrap() - 1508.0).abs() < 0.01, "{r}");
    assert!(r["components_ms"]["eou_delay"]["max"].as_f64().unwrap() < 1000.0, "{r}");
    assert!(r["nulled_values"].as_u64().unwrap() >= 1, "{r}");
}
