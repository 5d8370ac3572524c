//! What a turn is: the latency the caller waited, by the one definition of
//! [`TurnRow::settle_latency`], its guards against records that contradict themselves, and a
//! turn's parts assembled whole whichever deliveries they come in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use voicelake_shared::envelope::{LogBatch, LogEvent};
use voicelake_shared::metrics::{self, Datum};
use voicelake_shared::rows::{LatencySource, LlmCall, TurnRow};
use voicelake_shared::{BatchOutput, Carrier, Config, Hold, PENDING_TIMEOUT_MS, process_batch, process_batch_carrying};

fn fixture(path: &str) -> Vec<String> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).lines().map(str::to_owned).collect()
}

/// One stream's events, CloudWatch's timestamps a second apart from `first_ms`.
fn events(messages: &[String], first_ms: i64) -> Vec<LogEvent> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| LogEvent { id: format!("{:056}", i + 1), timestamp: first_ms + 1000 * i as i64, message: m.clone() })
        .collect()
}

fn batch(events: &[LogEvent]) -> LogBatch {
    LogBatch { log_events: events.to_vec(), ..LogBatch::of_messages("/ecs/fixture-agent", "fixture/task-1", 0, Vec::<String>::new()) }
}

fn close(actual: Option<f64>, expected: f64) -> bool {
    actual.is_some_and(|a| (a - expected).abs() < 1e-6)
}

macro_rules! assert_ms {
    ($actual:expr, $expected:expr) => {
        assert!(close($actual, $expected), "{} = {:?}, expected {}", stringify!($actual), $actual, $expected)
    };
}

fn parts(eou: f64, hook: Option<f64>, calls: &[LlmCall], ttfb: f64) -> TurnRow {
    TurnRow {
        eou_delay_ms: Some(eou),
        on_user_turn_completed_delay_ms: hook,
        llm_ttft_ms: calls.first().and_then(|c| c.ttft_ms),
        llm_call_parts: calls.to_vec(),
        tts_ttfb_ms: Some(ttfb),
        ..TurnRow::default()
    }
}

fn call(at_ms: i64, duration_ms: Option<f64>, ttft_ms: Option<f64>, own_timestamp: bool) -> LlmCall {
    LlmCall { at_ms, duration_ms, ttft_ms, own_timestamp }
}

#[test]
fn one_llm_call_waits_eou_plus_ttft_plus_ttfb_as_before() {
    let mut turn = parts(500.0, None, &[call(10_000, Some(900.0), Some(300.0), true)], 200.0);
    turn.settle_latency(None, 1500.0);
    assert_ms!(turn.total_latency_ms, 1000.0);
    assert_eq!((turn.latency_source, turn.llm_calls, turn.llm_phase_ms), (Some(LatencySource::Computed), Some(1), Some(300.0)));
    assert_eq!((turn.is_complete, turn.over_target), (true, Some(false)));
}

#[test]
fn the_turn_hook_delays_the_llm_and_is_waited() {
    let mut turn = parts(500.0, Some(400.0), &[call(10_000, Some(900.0), Some(300.0), true)], 200.0);
    turn.settle_latency(None, 1500.0);
    assert_ms!(turn.total_latency_ms, 1400.0);
}

#[test]
fn a_tool_round_waits_from_the_first_calls_start_to_the_last_calls_first_token() {
    // The tool call ends at 1550 after 650 ms (started at 900); the reply's call ends at 3550 after
    // 1200 ms (started at 2350), its first token 300 ms in: the LLM phase is 2650 - 900.
    let calls = [call(3_550, Some(1200.0), Some(300.0), true), call(1_550, Some(650.0), Some(350.0), true)];
    let mut turn = parts(500.0, Some(400.0), &calls, 200.0);
    turn.settle_latency(None, 1500.0);
    assert_ms!(turn.llm_phase_ms, 1750.0);
    assert_ms!(turn.total_latency_ms, 2850.0);
    assert_eq!((turn.latency_source, turn.llm_calls, turn.over_target), (Some(LatencySource::ComputedToolRound), Some(2), Some(true)));
}

#[test]
fn a_tool_round_of_logged_lines_is_placed_by_their_records_and_says_it_is_an_estimate() {
    // `log_metrics()` lines carry no duration: a call is taken to start its ttft before its record.
    let calls = [call(1_000, None, Some(300.0), false), call(2_500, None, Some(200.0), false)];
    let mut turn = parts(500.0, None, &calls, 200.0);
    turn.settle_latency(None, 1500.0);
    // Started at 700 and 2300; the reply's first token at 2500.
    assert_ms!(turn.llm_phase_ms, 2_500.0 - 700.0);
    assert_ms!(turn.total_latency_ms, 500.0 + 1800.0 + 200.0);
    assert_eq!(turn.latency_source, Some(LatencySource::EstimatedToolRound));
}

#[test]
fn a_tool_round_that_cannot_be_placed_has_no_latency_and_says_why() {
    let calls = [call(1_000, Some(700.0), Some(300.0), true), call(2_500, None, None, true)];
    let mut turn = parts(500.0, None, &calls, 200.0);
    turn.settle_latency(None, 1500.0);
    assert_eq!((turn.total_latency_ms, turn.is_complete, turn.llm_phase_ms), (None, false, None));
    assert!(turn.value_issues.iter().any(|i| i.contains("tool round of 2 calls")), "{:?}", turn.value_issues);
}

#[test]
fn a_measured_latency_wins_and_the_parts_are_still_kept() {
    let calls = [call(1_550, Some(650.0), Some(350.0), true), call(3_550, Some(1200.0), Some(300.0), true)];
    let mut turn = parts(500.0, Some(400.0), &calls, 200.0);
    turn.settle_latency(Some(2870.0), 1500.0);
    assert_ms!(turn.total_latency_ms, 2870.0);
    assert_eq!(turn.latency_source, Some(LatencySource::Reported));
    assert_ms!(turn.llm_phase_ms, 1750.0);
}

/// LiveKit 1.8's own metrics of one real tool-calling turn (`tests/fixtures/livekit-1.8/`,
/// `generate.py` made them), and the `e2e_latency` the same run measured on the reply.
#[test]
fn a_real_tool_round_computes_to_what_livekit_measured_end_to_end() {
    let lines = fixture("livekit-1.8/tool_round.jsonl");
    let out = process_batch(&batch(&events(&lines, 1_796_059_561_000)), &Config::default(), 1_796_059_700_000);
    let [turn] = out.turns.as_slice() else { panic!("{:#?}", out.turns) };
    assert_eq!((turn.latency_source, turn.llm_calls), (Some(LatencySource::ComputedToolRound), Some(2)));
    assert_ms!(turn.on_user_turn_completed_delay_ms, 150.4845539999451);
    let measured = 2019.3393230438232; // item.metrics.e2e_latency of the reply, tool_round_events.jsonl
    let computed = turn.total_latency_ms.unwrap();
    // The measured span also holds the few milliseconds between LiveKit's steps.
    assert!((computed - measured).abs() < 0.01 * measured, "computed {computed} ms, measured {measured} ms");
    // The first call's ttft alone, as before, left out most of the wait.
    assert!(550.0 + 421.72 + 210.85 < 0.6 * measured);
}

fn one_line(message: &str) -> BatchOutput {
    let first = 1_795_950_000_000;
    let out = process_batch(&batch(&events(&[message.to_owned()], first)), &Config::default(), first + 60_000);
    assert!(out.stats.is_balanced(), "{:?}", out.stats);
    out
}

#[test]
fn a_delay_longer_than_the_span_it_lies_in_is_nulled_with_an_issue() {
    let out = one_line(
        r#"{"_event_type":"voice_metrics","_session_id":"s","_timestamp":1795950000.0,"eou":{"end_of_utterance_delay":0.3,"transcription_delay":0.45},"llm":{"ttft":0.9,"duration":0.6},"tts":{"ttfb":0.2}}"#,
    );
    let turn = &out.turns[0];
    assert_eq!(turn.transcription_delay_ms, None);
    assert!(turn.value_issues.iter().any(|i| i.starts_with("eou.transcription_delay: 450 ms is longer")), "{:?}", turn.value_issues);
    let out = one_line(
        r#"{"type":"llm_metrics","timestamp":1795950000.0,"duration":0.4,"ttft":0.9,"speech_id":"sp","metadata":{"model_name":"m"}}"#,
    );
    assert_eq!(out.turns[0].llm_ttft_ms, None, "a first token after the call ended");
}

#[test]
fn speaking_times_out_of_order_null_the_delays_they_anchor() {
    let item = |role: &str, metrics: &str| {
        format!(
            r#"{{"message":"conversation_item_added","type":"conversation_item_added","room":"r","timestamp":"2026-11-29T09:00:00Z","item":{{"id":"i_{role}","type":"message","role":"{role}","interrupted":{},"metrics":{metrics}}}}}"#,
            role == "assistant"
        )
    };
    let user = item(
        "user",
        r#"{"started_speaking_at":"2026-11-29T09:00:00Z","stopped_speaking_at":"2026-11-29T08:56:37Z","transcription_delay":203.2,"end_of_turn_delay":203.4}"#,
    );
    let reply = item("assistant", r#"{"llm_node_ttft":0.4,"tts_node_ttfb":0.3}"#);
    let first = 1_795_950_000_000;
    let out = process_batch(&batch(&events(&[user, reply], first)), &Config::default(), first + 60_000);
    let [turn] = out.turns.as_slice() else { panic!("{:#?}", out.turns) };
    assert_eq!((turn.eou_delay_ms, turn.transcription_delay_ms, turn.total_latency_ms), (None, None, None));
    assert!(
        turn.value_issues.iter().any(|i| i.contains("stopped_speaking_at is 203000 ms before started_speaking_at")),
        "{:?}",
        turn.value_issues
    );
    assert_eq!(turn.interrupted, Some(true), "the reply's own flag");
}

#[test]
fn a_realtime_models_cached_input_is_priced_as_cached() {
    let out = one_line(
        r#"{"type":"realtime_model_metrics","timestamp":1795950000.0,"duration":1.2,"ttft":0.5,"input_tokens":900,"output_tokens":80,"input_token_details":{"audio_tokens":700,"text_tokens":200,"cached_tokens":640},"metadata":{"model_name":"gpt-realtime","model_provider":"openai"}}"#,
    );
    assert_eq!((out.turns[0].prompt_tokens, out.turns[0].prompt_cached_tokens), (Some(900), Some(640)));
    let out = one_line(
        r#"{"message":"RealtimeModel metrics","level":"INFO","name":"livekit.agents","timestamp":"2026-11-29T09:00:00Z","room":"r","ttft":0.5,"input_tokens":900,"cached_input_tokens":640,"output_tokens":80}"#,
    );
    assert_eq!((out.turns[0].prompt_tokens, out.turns[0].prompt_cached_tokens), (Some(900), Some(640)));
}

#[test]
fn a_tool_call_with_no_outcome_is_unknown_not_a_success() {
    let out = one_line(
        r#"{"_event_type":"session_analytics","_session_id":"s","_timestamp":1795950000.0,"tool_calls":[{"tool":"a","success":true},{"tool":"b","success":false},{"tool":"c"}]}"#,
    );
    let s = &out.sessions[0];
    assert_eq!((s.tool_call_count, s.tool_outcome_count, s.tool_failure_count), (3, 2, 1));
    assert_eq!(s.tool_calls[2].success, None);
}

// ---- Turns cut across deliveries ----

/// Everything a batch gives that a user sees: rows in a canonical order, and the metrics as
/// CloudWatch would aggregate them.
#[derive(Debug, PartialEq)]
struct Seen {
    turns: Vec<String>,
    sessions: Vec<String>,
    rejects: Vec<String>,
    /// Metric name, dimensions and minute → every value with its count.
    metrics: BTreeMap<String, BTreeMap<String, f64>>,
    events_in: u64,
}

fn seen(outs: &[BatchOutput], config: &Config, now: i64) -> Seen {
    let rows = |f: &dyn Fn(&BatchOutput) -> Vec<String>| {
        let mut v: Vec<String> = outs.iter().flat_map(f).collect();
        v.sort();
        v
    };
    let mut metrics: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for out in outs {
        for d in metrics::datums_for(out, config, now) {
            let Datum { metric_name, dimensions, timestamp_ms, values, counts, .. } = d;
            // Counters are summed, so only their total per minute is seen; distributions keep
            // every value.
            let entry = metrics.entry(format!("{metric_name} {dimensions:?} {timestamp_ms}")).or_default();
            for (v, c) in values.iter().zip(&counts) {
                *entry.entry(format!("{v}")).or_default() += c;
            }
        }
    }
    // A counter split over two outputs is two datums of the same minute: compare sums.
    for (key, values) in metrics.iter_mut() {
        let spec = metrics::metric::ALL.iter().find(|m| key.starts_with(&format!("{} ", m.name))).unwrap();
        if spec.kind == metrics::Kind::Counter {
            let total: f64 = values.iter().map(|(v, c)| v.parse::<f64>().unwrap() * c).sum();
            *values = BTreeMap::from([(format!("sum {total}"), 1.0)]);
        }
    }
    let stats_in: u64 = outs.iter().map(|o| o.stats.events_in).sum();
    Seen {
        turns: rows(&|o| o.turns.iter().map(|r| serde_json::to_string(r).unwrap()).collect()),
        sessions: rows(&|o| o.sessions.iter().map(|r| serde_json::to_string(r).unwrap()).collect()),
        rejects: rows(&|o| o.rejects.iter().map(|r| serde_json::to_string(r).unwrap()).collect()),
        metrics,
        events_in: stats_in,
    }
}

/// The events in two deliveries as the ingest function takes them: the first holds back what it
/// cannot complete, the second is processed with it (the store's part), and what is still held
/// when the input ends is settled.
fn through_a_store(first: &[LogEvent], second: &[LogEvent], config: &Config, now: i64) -> Vec<BatchOutput> {
    let hold = Hold::Incomplete { timeout_ms: PENDING_TIMEOUT_MS, clock_ms: None };
    let mut a = process_batch_carrying(&batch(first), &[], hold, config, now);
    let carried = std::mem::take(&mut a.held);
    let mut b = process_batch_carrying(&batch(second), &carried, hold, config, now);
    let carried = std::mem::take(&mut b.held);
    let end = process_batch_carrying(&batch(&[]), &carried, Hold::Nothing, config, now);
    for out in [&a, &b, &end] {
        assert!(out.stats.is_balanced(), "{:?}", out.stats);
    }
    vec![a, b, end]
}

/// The same, as the replay takes them: both processed on their own first (in parallel), then the
/// carrier joins what each held with what its stream carries.
fn through_the_carrier(first: &[LogEvent], second: &[LogEvent], config: &Config, now: i64) -> Vec<BatchOutput> {
    let mut a = process_batch_carrying(&batch(first), &[], Carrier::FIRST_PASS, config, now);
    let mut b = process_batch_carrying(&batch(second), &[], Carrier::FIRST_PASS, config, now);
    let mut carrier = Carrier::default();
    let mut outs = Vec::new();
    outs.extend(carrier.after(&mut a, config, now));
    outs.extend(carrier.after(&mut b, config, now));
    outs.extend(carrier.finish(config, now));
    outs.push(a);
    outs.push(b);
    for out in &outs {
        assert!(out.stats.is_balanced(), "{:?}", out.stats);
    }
    outs
}

/// Every fixture of a family that assembles turns from several lines, cut at every point into two
/// deliveries, gives the rows and metrics of the uncut input, through the store and the carrier.
#[test]
fn a_turn_cut_anywhere_across_two_deliveries_is_the_uncut_turn() {
    let cases: [(&str, i64); 8] = [
        ("livekit-1.8/tool_round.jsonl", 1_796_059_561_000),
        ("livekit-1.8/tool_round_events.jsonl", 1_796_059_557_000),
        ("livekit-1.8/model_dump.jsonl", 1_795_442_400_000),
        ("livekit-1.8/metrics_collected.jsonl", 1_795_442_400_000),
        ("livekit-1.8/log_metrics.jsonl", 1_795_442_400_000),
        ("livekit-1.8/chat_metrics.jsonl", 1_795_442_400_000),
        ("app/voice_metrics.log", 1_795_442_400_000),
        ("cases/16-tool-round-turn.jsonl", 1_795_950_000_000),
    ];
    let config = Config::default();
    for (path, first) in cases {
        let all = events(&fixture(path), first);
        let now = all.last().unwrap().timestamp + 60_000;
        let uncut = seen(&[process_batch(&batch(&all), &config, now)], &config, now);
        assert!(!uncut.turns.is_empty(), "{path}");
        for at in 0..=all.len() {
            let (a, b) = all.split_at(at);
            assert_eq!(seen(&through_a_store(a, b, &config, now), &config, now), uncut, "{path} cut before line {}, store", at + 1);
            assert_eq!(seen(&through_the_carrier(a, b, &config, now), &config, now), uncut, "{path} cut before line {}, carrier", at + 1);
        }
    }
}

#[test]
fn a_part_whose_turn_never_completes_is_settled_partial_after_the_timeout() {
    let config = Config::default();
    let eou =
        r#"{"type":"eou_metrics","timestamp":1795950000.0,"end_of_utterance_delay":0.5,"transcription_delay":0.2,"speech_id":"lonely"}"#;
    let first = 1_795_950_000_000;
    let hold = Hold::Incomplete { timeout_ms: PENDING_TIMEOUT_MS, clock_ms: None };
    let mut a = process_batch_carrying(&batch(&events(&[eou.to_owned()], first)), &[], hold, &config, first + 1000);
    assert_eq!((a.turns.len(), a.held.len(), a.stats.held), (0, 1, 1));
    assert!(a.stats.is_balanced(), "{:?}", a.stats);
    // Four minutes later the stream is still writing: the part waits.
    let carried = std::mem::take(&mut a.held);
    let later = |ms: i64| vec![LogEvent { id: format!("later-{ms}"), timestamp: first + ms, message: "unrelated".into() }];
    let b = process_batch_carrying(&batch(&later(240_000)), &carried, hold, &config, first + 240_000);
    assert_eq!((b.turns.len(), b.held.len()), (0, 1));
    // Past the timeout it is a partial row, counted once.
    let c = process_batch_carrying(&batch(&later(PENDING_TIMEOUT_MS + 1000)), &b.held, hold, &config, first + 400_000);
    assert_eq!((c.turns.len(), c.held.len(), c.stats.partial_turns, c.stats.carried_in), (1, 0, 1, 1));
    assert!(!c.turns[0].is_complete);
    // A sweep with only the clock does the same for a stream gone quiet.
    let swept = Hold::Incomplete { timeout_ms: PENDING_TIMEOUT_MS, clock_ms: Some(first + PENDING_TIMEOUT_MS + 1) };
    let d = process_batch_carrying(&batch(&[]), &carried, swept, &config, first + 400_000);
    assert_eq!((d.turns.len(), d.held.len()), (1, 0));
}
