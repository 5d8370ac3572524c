//! The event contract, family by family, on log lines in the exact shape their producers write
//! (`tests/fixtures/`): LiveKit Agents 1.8 `model_dump()`, `metrics_collected`, `log_metrics()`,
//! chat-message metrics and session usage; application `voice_metrics` and `session_analytics` in
//! every accepted form; and malformed input of every kind.

use std::path::PathBuf;

use voicelake_shared::envelope::{LogBatch, LogEvent, MessageType};
use voicelake_shared::reasons::{RejectReason, SkipReason};
use voicelake_shared::rows::{LatencySource, SessionRecordType, SourceFormat, TurnRow};
use voicelake_shared::{BatchOutput, Config, process_batch, timefmt};

/// CloudWatch's own timestamp for fixture events: 2026-11-23T15:00:00Z, an hour after the events' own.
const CW_TS: i64 = 1_795_446_000_000;
const NOW: i64 = CW_TS + 60_000;

fn fixture(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn lines(path: &str) -> Vec<String> {
    fixture(path).lines().map(str::to_owned).collect()
}

fn batch(messages: &[String]) -> LogBatch {
    LogBatch {
        message_type: MessageType::DataMessage,
        owner: "123456789012".into(),
        log_group: "/ecs/fixture-agent".into(),
        log_stream: "fixture/task-1".into(),
        subscription_filters: vec!["voicelake".into()],
        log_events: messages
            .iter()
            .enumerate()
            .map(|(i, m)| LogEvent { id: format!("{:056}", i + 1), timestamp: CW_TS + i as i64, message: m.clone() })
            .collect(),
    }
}

fn run(path: &str) -> BatchOutput {
    let out = process_batch(&batch(&lines(path)), &Config::default(), NOW);
    assert!(out.stats.is_balanced(), "{path}: every event used, skipped or rejected: {:?}", out.stats);
    out
}

fn close(actual: Option<f64>, expected: f64) -> bool {
    actual.is_some_and(|a| (a - expected).abs() < 1e-6)
}

macro_rules! assert_ms {
    ($actual:expr, $expected:expr) => {
        assert!(close($actual, $expected), "{} = {:?}, expected {}", stringify!($actual), $actual, $expected)
    };
}

fn time(iso: &str) -> i64 {
    timefmt::parse_event_time(iso).unwrap()
}

fn by_speech<'a>(out: &'a BatchOutput, speech: &str) -> &'a TurnRow {
    out.turns.iter().find(|t| t.speech_id.as_deref() == Some(speech)).unwrap_or_else(|| panic!("no turn {speech}: {:#?}", out.turns))
}

#[test]
fn livekit_model_dump_components_assemble_by_speech_id() {
    let out = run("livekit-1.8/model_dump.jsonl");
    let turn = by_speech(&out, "speech_5f1c2d3e4a6b");
    assert!(turn.is_complete);
    assert_eq!(turn.latency_source, Some(LatencySource::Computed));
    assert_ms!(turn.eou_delay_ms, 412.0);
    assert_ms!(turn.transcription_delay_ms, 118.0);
    assert_ms!(turn.llm_ttft_ms, 356.0);
    assert_ms!(turn.tts_ttfb_ms, 152.3); // the first TTS segment's
    assert_ms!(turn.on_user_turn_completed_delay_ms, 0.9);
    // What the caller waited: the transcription delay is inside the end-of-utterance delay; the
    // turn hook runs after it, before the LLM.
    assert_ms!(turn.total_latency_ms, 412.0 + 0.9 + 356.0 + 152.3);
    assert_eq!((turn.llm_calls, turn.llm_phase_ms), (Some(1), Some(356.0)));
    assert_ms!(turn.tts_duration_ms, 934.0 + 611.0);
    assert_ms!(turn.tts_audio_duration_ms, 3840.0 + 2150.0);
    assert_eq!(turn.tts_characters, Some(57 + 31));
    assert_eq!((turn.prompt_tokens, turn.prompt_cached_tokens, turn.completion_tokens), (Some(1432), Some(1024), Some(38)));
    assert_eq!((turn.llm_provider.as_deref(), turn.llm_model.as_deref()), (Some("openai"), Some("gpt-4o-mini")));
    assert_eq!((turn.tts_provider.as_deref(), turn.tts_model.as_deref()), (Some("cartesia"), Some("sonic-2")));
    assert_eq!(turn.component_events, 4);
    assert_eq!(turn.source_format, SourceFormat::LivekitMetrics);
    assert_eq!(turn.event_time, 1_795_442_401_123, "the earliest component's own timestamp");
    assert_eq!(turn.agent_name, "fixture-agent", "named after the log group when the event names none");
    assert_eq!(turn.session_id, None, "bare model_dump() carries no room");

    let realtime = by_speech(&out, "speech_9d8c7b6a5f4e");
    assert!(!realtime.is_complete, "a realtime model has no separate TTS: its turn is not LiveKit's formula");
    assert_ms!(realtime.llm_ttft_ms, 482.0);
    assert_eq!((realtime.prompt_tokens, realtime.completion_tokens), (Some(2210), Some(118)));

    let sentinel = by_speech(&out, "speech_0a1b2c3d4e5f");
    assert_eq!(sentinel.llm_ttft_ms, None, "-1 means no first token");
    assert_eq!(sentinel.value_issues, vec!["ttft: -1, LiveKit's value for not measured".to_string()]);

    let stt = out.turns.iter().find(|t| t.stt_audio_duration_ms.is_some()).expect("the STT meter is kept");
    assert_ms!(stt.stt_audio_duration_ms, 5020.0);
    assert_eq!(stt.speech_id, None);

    assert_eq!(out.stats.skipped.get(&SkipReason::IgnoredMetricsType), Some(&1), "VAD metrics");
    assert_eq!((out.stats.turns, out.stats.partial_turns), (1, 3));
    assert_eq!(out.stats.nulled_values, 1);
}

#[test]
fn metrics_collected_lines_take_the_session_from_the_job_context() {
    let out = run("livekit-1.8/metrics_collected.jsonl");
    assert_eq!(out.turns.len(), 1);
    let turn = &out.turns[0];
    assert!(turn.is_complete);
    assert_eq!(turn.session_id.as_deref(), Some("RM_h7Fq2LkP9w"), "room_id, as no room name is logged");
    assert_ms!(turn.total_latency_ms, 412.0 + 0.9 + 356.0 + 152.3);
    assert_eq!(turn.event_time, 1_795_442_401_123, "the metric's own timestamp wins over the log record's");
    assert_eq!(out.stats.skipped.get(&SkipReason::IgnoredMetricsType), Some(&1));
}

#[test]
fn log_metrics_lines_assemble_by_order_within_their_session() {
    let out = run("livekit-1.8/log_metrics.jsonl");
    let complete: Vec<&TurnRow> = out.turns.iter().filter(|t| t.is_complete).collect();
    assert_eq!(complete.len(), 1);
    let turn = complete[0];
    assert_eq!(turn.source_format, SourceFormat::LivekitLogMetrics);
    assert_eq!(turn.session_id.as_deref(), Some("RM_h7Fq2LkP9w"));
    assert_ms!(turn.eou_delay_ms, 410.0);
    assert_ms!(turn.llm_ttft_ms, 360.0);
    assert_ms!(turn.tts_ttfb_ms, 152.3);
    assert_ms!(turn.total_latency_ms, 410.0 + 360.0 + 152.3);
    assert_ms!(turn.tts_audio_duration_ms, 3840.0 + 2150.0);
    assert_eq!(turn.component_events, 4);
    assert_eq!(turn.event_time, time("2026-11-23T14:00:01.123000+00:00"));

    // The second turn: end of speech not detected (0.0) and no first token (-1): kept, nulled, counted.
    let second = out.turns.iter().find(|t| t.component_events == 2).expect("EOU + LLM of the second turn");
    assert!(!second.is_complete);
    assert_eq!((second.eou_delay_ms, second.transcription_delay_ms, second.llm_ttft_ms), (None, None, None));
    assert_eq!(second.value_issues.len(), 3, "{:?}", second.value_issues);
    assert!(second.value_issues[0].contains("end of speech not detected"));

    let stt = out.turns.iter().find(|t| t.stt_audio_duration_ms.is_some()).expect("the STT meter stays apart");
    assert_eq!(stt.component_events, 1);
    assert_eq!(out.stats.partial_turns, 2);
}

#[test]
fn chat_message_metrics_join_the_user_turn_to_the_reply() {
    let out = run("livekit-1.8/chat_metrics.jsonl");
    assert_eq!(out.stats.skipped.get(&SkipReason::NoMetrics), Some(&1), "the system message");
    assert_eq!(out.turns.len(), 1);
    let turn = &out.turns[0];
    assert_eq!(turn.source_format, SourceFormat::LivekitChatMetrics);
    assert_eq!(turn.latency_source, Some(LatencySource::Reported), "e2e_latency wins");
    assert_ms!(turn.total_latency_ms, 874.0);
    assert_ms!(turn.eou_delay_ms, 402.0);
    assert_ms!(turn.transcription_delay_ms, 131.0);
    assert_ms!(turn.llm_ttft_ms, 288.0);
    assert_ms!(turn.tts_ttfb_ms, 147.0);
    assert_eq!(turn.session_id.as_deref(), Some("room-booking-0042"), "the room name precedes room_id");
    assert_eq!(turn.speech_id.as_deref(), Some("item_3d5f7b9c1e2a"));
    assert_eq!(turn.stt_model.as_deref(), Some("nova-3"));
    assert_eq!(turn.component_events, 2);
    assert_eq!(turn.over_target, Some(false));
}

#[test]
fn session_usage_keeps_the_latest_totals_and_prices_them() {
    let out = run("livekit-1.8/session_usage.jsonl");
    assert_eq!(out.stats.skipped.get(&SkipReason::SupersededUsage), Some(&1));
    assert_eq!(out.sessions.len(), 1);
    let s = &out.sessions[0];
    assert_eq!(s.record_type, SessionRecordType::Usage);
    assert_eq!(s.session_id, "room-booking-0042");
    assert_eq!((s.llm_prompt_tokens, s.llm_cached_tokens, s.llm_completion_tokens), (Some(11890), Some(8192), Some(455)));
    assert_eq!(s.tts_characters, Some(1390));
    assert!(close(s.stt_audio_seconds, 80.5));
    let cost_of = |kind: &str| s.model_usage.iter().find(|u| u.kind.as_str() == kind).and_then(|u| u.cost_usd);
    // gpt-4o-mini: uncached input 0.15, cached 0.075, output 0.60 per million tokens.
    assert_eq!(cost_of("llm"), Some(0.0014));
    assert_eq!(cost_of("tts"), Some(0.0528)); // 1390 characters at $38 per million
    assert_eq!(cost_of("stt"), Some(0.0103)); // 80.5 s at $0.0077 per minute
    assert_eq!(s.estimated_cost_usd, Some(0.0646), "usage only: a running total has no call duration to price transport");
}

#[test]
fn app_voice_metrics_in_every_accepted_form() {
    let out = run("app/voice_metrics.log");
    assert_eq!(out.stats.events_used, 8);
    let t = |speech: &str| by_speech(&out, speech);

    let reported = t("speech_aa01");
    assert_eq!(reported.latency_source, Some(LatencySource::Reported));
    assert_ms!(reported.total_latency_ms, 1021.0);
    assert_eq!(reported.session_id.as_deref(), Some("sess_a1"));
    assert_eq!(reported.event_time, time("2026-11-23T14:00:01.123Z"));
    assert_eq!(
        (reported.agent_name.as_str(), reported.agent_version.as_deref(), reported.tenant_id.as_deref()),
        ("support-agent", Some("1.4.2"), Some("acme"))
    );
    assert_ms!(reported.stt_audio_duration_ms, 2600.0);

    let computed = t("speech_aa02");
    assert_eq!(computed.latency_source, Some(LatencySource::Computed), "behind a Python logging prefix");
    assert_ms!(computed.total_latency_ms, 412.0 + 356.0 + 152.0);
    assert_eq!(computed.event_time, time("2026-11-23T14:00:09.500Z"));

    assert_ms!(t("speech_aa03").total_latency_ms, 950.0); // behind the Lambda prefix

    let nested = t("speech_aa04");
    assert_eq!(nested.event_time, time("2026-11-23T14:00:25+00:00"), "the formatter's timestamp around analytics_data");
    assert_eq!(nested.session_id.as_deref(), Some("sess_a1"), "the event's own _session_id precedes the outer room_id");

    let flat = t("speech_aa05");
    assert_ms!(flat.eou_delay_ms, 400.0);
    assert_ms!(flat.transcription_delay_ms, 100.0);
    assert_ms!(flat.total_latency_ms, 900.0);

    let millis = t("speech_aa06");
    assert_eq!(millis.latency_source, Some(LatencySource::Reported));
    assert_ms!(millis.total_latency_ms, 950.0);
    assert_ms!(millis.llm_ttft_ms, 300.0);

    let legacy = out.turns.iter().find(|r| r.session_id.as_deref() == Some("sess_b2")).unwrap();
    assert_eq!(legacy.event_time, 1_795_442_449_500, "epoch seconds");
    assert_eq!(legacy.agent_name, "support-agent");
    assert_ms!(legacy.eou_delay_ms, 500.0);
    assert_ms!(legacy.total_latency_ms, 1000.0);

    let partial = out.turns.iter().find(|r| r.session_id.as_deref() == Some("call-room-7")).unwrap();
    assert!(!partial.is_complete, "only an LLM ttft: no turn latency");
    assert_eq!(partial.over_target, None);
    assert_eq!(partial.agent_name, "fixture-agent");
    assert_eq!((out.stats.turns, out.stats.partial_turns), (7, 1));
}

#[test]
fn app_session_analytics() {
    let out = run("app/session_analytics.log");
    assert_eq!(out.sessions.len(), 3);
    let full = out.sessions.iter().find(|s| s.session_id == "sess_a1").unwrap();
    assert_eq!(full.record_type, SessionRecordType::Analytics);
    assert!(close(full.duration_seconds, 300.0));
    assert_eq!((full.tool_call_count, full.tool_failure_count), (2, 1));
    assert_eq!(full.tool_calls[1].error.as_deref(), Some("HTTP 503 from upstream"));
    // Personal data is pseudonymized by default: the same address always gives the same value.
    let hashed_email = voicelake_shared::pii::scrub("jane.doe@example.com", voicelake_shared::pii::PiiMode::Hash).into_owned();
    assert!(hashed_email.starts_with("email:") && hashed_email.len() == 22, "{hashed_email}");
    let signals: Vec<(&str, &str)> = full.discovered_signals.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        signals,
        vec![
            ("budget", r#"{"amount": 5000, "currency": "USD"}"#),
            ("email", hashed_email.as_str()),
            ("intent", "book_demo"),
            ("qualified_lead", "true"),
            ("seats", "40"),
        ],
        "strings as they are, other values as their JSON text, nulls dropped"
    );
    assert_eq!((full.llm_prompt_tokens, full.llm_cached_tokens, full.llm_completion_tokens), (Some(18000), Some(9000), Some(1000)));
    // llm 0.002625 + tts 2400 chars × $38/M 0.0912 + stt 2 min × 0.0077 + transport 5 min × $0.01
    assert_eq!(full.estimated_cost_usd, Some(0.1592));
    assert_eq!((full.mos, full.jitter_ms, full.packet_loss_rate), (Some(4.21), Some(12.5), Some(0.004)));

    let failed = out.sessions.iter().find(|s| s.session_id == "sess_c3").unwrap();
    assert_eq!(failed.call_setup_failed, Some(true));
    assert_eq!(failed.setup_failure_reason.as_deref(), Some("SIP 486 busy here"));
    assert_eq!(failed.event_time, time("2026-11-23T14:10:00+00:00"));
    assert_eq!((failed.tool_call_count, failed.tool_failure_count), (2, 1));
    assert_eq!(failed.tool_calls[0].success, Some(false), "status: error");
    assert_eq!(failed.tool_calls[1].success, Some(true), "status: success");
    assert!(failed.value_issues.iter().any(|i| i.starts_with("tool_calls: 1 entries")), "{:?}", failed.value_issues);

    let minimal = out.sessions.iter().find(|s| s.session_id == "sess_d4").unwrap();
    assert!(close(minimal.duration_seconds, 65.0), "duration_ms");
    assert_eq!(minimal.estimated_cost_usd, Some(0.0108), "transport only");
}

#[test]
fn malformed_input_of_every_kind_is_counted_with_a_reason() {
    let rejected = |path: &str, reason: RejectReason, n: u64| {
        let out = run(path);
        assert_eq!(out.stats.rejected.get(&reason), Some(&n), "{path}: {:?}", out.stats);
        assert_eq!(out.rejects.len() as u64, n);
        for r in &out.rejects {
            assert_eq!(r.reason, reason.as_str());
            assert!(r.detail.len() > 20, "a reason a user can act on: {}", r.detail);
            assert!(r.event_id.is_some() && r.log_group.is_some());
        }
        out
    };
    let truncated = rejected("malformed/truncated.log", RejectReason::MalformedJson, 2);
    assert!(truncated.rejects[0].detail.contains("EOF"));
    assert!(truncated.rejects[0].raw_message.starts_with("{\"_event_type\""));
    rejected("malformed/duplicate_keys.log", RejectReason::DuplicateKey, 1);
    rejected("malformed/no_measurements.log", RejectReason::NoMeasurements, 2);
    rejected("malformed/missing_session.log", RejectReason::MissingSessionId, 1);

    let skipped = |path: &str, expected: &[(SkipReason, u64)]| {
        let out = run(path);
        let got: Vec<(SkipReason, u64)> = out.stats.skipped.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, expected, "{path}");
        assert!(out.turns.is_empty() && out.sessions.is_empty() && out.rejects.is_empty());
    };
    skipped("malformed/unknown_event_type.log", &[(SkipReason::NotAnEvent, 1), (SkipReason::UnknownEventType, 1)]);
    skipped("malformed/foreign.log", &[(SkipReason::NoJson, 6), (SkipReason::NotAnEvent, 1)]);
}

#[test]
fn bad_values_cost_only_themselves() {
    let out = run("malformed/python_non_finite.log");
    assert_eq!(out.stats.repaired_non_finite, 3);
    let first = &out.turns[0];
    assert_eq!((first.llm_ttft_ms, first.total_latency_ms), (None, None), "NaN and Infinity become null");
    assert_ms!(first.tts_ttfb_ms, 210.0);
    assert_ms!(first.eou_delay_ms, 380.0);
    assert!(first.value_issues.iter().any(|i| i.contains("NaN/Infinity")));

    let out = run("malformed/wrong_types.log");
    let turn = &out.turns[0];
    assert_eq!(turn.llm_ttft_ms, None, "\"fast\"");
    assert_eq!(turn.prompt_tokens, Some(1432), "numbers as strings are numbers");
    assert_ms!(turn.tts_ttfb_ms, 200.0);
    assert_eq!(turn.eou_delay_ms, None, "an array");
    assert_eq!(turn.total_latency_ms, None, "true");
    let issues = turn.value_issues.join("; ");
    for expected in
        ["llm.ttft: text that is not a number", "eou.delay: an object or array", "stt: not an object", "total_latency: a boolean"]
    {
        assert!(issues.contains(expected), "{expected} in {issues}");
    }
    let session = &out.sessions[0];
    assert_eq!(session.duration_seconds, None);
    assert_eq!(session.mos, None);
    assert_eq!(session.call_setup_failed, None);
    assert!(session.discovered_signals.is_empty());
    assert_eq!(session.value_issues.len(), 5, "{:?}", session.value_issues);

    let out = run("malformed/negative.log");
    let turn = &out.turns[0];
    assert_eq!((turn.eou_delay_ms, turn.llm_ttft_ms, turn.total_latency_ms), (None, None, None));
    assert_ms!(turn.tts_ttfb_ms, 200.0);
    assert_eq!(
        turn.value_issues,
        vec!["eou_delay: negative (-0.4)", "llm_ttft: -1, LiveKit's value for not measured", "total_latency: negative (-3)"]
    );
}

#[test]
fn unusable_event_times_fall_back_to_cloudwatch_and_say_so() {
    let out = run("malformed/bad_timestamps.log");
    assert_eq!(out.turns.len(), 4);
    for (i, t) in out.turns.iter().enumerate() {
        assert_eq!(t.event_time, CW_TS + i as i64);
        assert!(t.value_issues.iter().any(|v| v.starts_with("_timestamp: not a time")), "{:?}", t.value_issues);
    }
    // Without a usable CloudWatch timestamp either, the event is rejected rather than misfiled.
    let mut b = batch(&lines("malformed/bad_timestamps.log")[..1]);
    b.log_events[0].timestamp = 0;
    let out = process_batch(&b, &Config::default(), NOW);
    assert_eq!(out.stats.rejected.get(&RejectReason::BadTimestamp), Some(&1));
    assert_eq!(out.rejects[0].event_time, NOW, "filed under the time it was seen");
}

/// Every fixture line in one batch, plus a 1 MB line, 10,000-deep nesting and bytes that are not
/// UTF-8: each bad line costs itself only.
#[test]
fn a_batch_of_everything_loses_no_good_line() {
    let files = [
        "livekit-1.8/model_dump.jsonl",
        "livekit-1.8/metrics_collected.jsonl",
        "livekit-1.8/chat_metrics.jsonl",
        "livekit-1.8/session_usage.jsonl",
        "app/voice_metrics.log",
        "app/session_analytics.log",
        "malformed/truncated.log",
        "malformed/python_non_finite.log",
        "malformed/wrong_types.log",
        "malformed/duplicate_keys.log",
        "malformed/foreign.log",
        "malformed/no_measurements.log",
    ];
    let mut messages: Vec<String> = files.iter().flat_map(|f| lines(f)).collect();
    let huge =
        format!(r#"{{"_event_type": "voice_metrics", "_session_id": "big", "llm_ttft": 0.3, "padding": "{}"}}"#, "x".repeat(1 << 20));
    messages.push(huge);
    messages.push(format!(r#"{{"_event_type": "voice_metrics", "x": {}{}, "tts_ttfb": 0.2}}"#, "[".repeat(10_000), "]".repeat(10_000)));
    messages.push("\u{fffd}\u{fffd}{\"_event_type\": \"voice_metrics\", \"tts_ttfb\": 0.25}".into());
    let together = process_batch(&batch(&messages), &Config::default(), NOW);
    assert!(together.stats.is_balanced());

    // Each file alone yields the same good turns it yields in the mixed batch (two fixtures share
    // a speech_id on purpose: together they are one turn).
    let speech_ids = |rows: &[TurnRow]| -> std::collections::BTreeSet<String> {
        rows.iter().filter(|r| r.is_complete).filter_map(|r| r.speech_id.clone()).collect()
    };
    let alone: Vec<TurnRow> = files.iter().flat_map(|f| run(f).turns).collect();
    assert_eq!(speech_ids(&together.turns), speech_ids(&alone));
    let alone_sessions: usize = files.iter().map(|f| run(f).sessions.len()).sum();
    assert_eq!(together.sessions.len(), alone_sessions);
    assert!(together.turns.iter().any(|t| t.session_id.as_deref() == Some("big")), "the 1 MB line");
    assert!(together.turns.iter().any(|t| close(t.tts_ttfb_ms, 200.0) && t.session_id.is_none()), "the deep line");
    assert!(together.turns.iter().any(|t| close(t.tts_ttfb_ms, 250.0)), "the line with replaced bytes");
}

#[test]
fn a_control_message_produces_nothing() {
    let mut b = batch(&["CWL CONTROL MESSAGE: Checking health of destination Lambda function.".to_string()]);
    b.message_type = MessageType::ControlMessage;
    let out = process_batch(&b, &Config::default(), NOW);
    assert!(out.stats.control_message);
    assert!(out.turns.is_empty() && out.sessions.is_empty() && out.rejects.is_empty());
    assert_eq!(out.stats.events_in, 0);
}

#[test]
fn the_aws_documentation_subscription_event_decodes() {
    let event: voicelake_shared::envelope::SubscriptionEvent =
        serde_json::from_str(&fixture("subscription/aws-docs-example.json")).unwrap();
    let out = voicelake_shared::process_payload(&event.awslogs.data, &Config::default(), NOW);
    assert_eq!(out.stats.events_in, 2);
    assert_eq!(out.stats.skipped.get(&SkipReason::NoJson), Some(&2), "plain text lines are not agent events");
}

#[test]
fn payloads_that_cannot_be_decoded_become_one_reject_each() {
    for (data, reason) in [("%%%", RejectReason::BadBase64), ("aGVsbG8=", RejectReason::BadGzip)] {
        let out = voicelake_shared::process_payload(data, &Config::default(), NOW);
        assert_eq!(out.stats.rejected.get(&reason), Some(&1));
        assert_eq!(out.rejects[0].stage, "payload");
        assert_eq!(out.rejects[0].raw_message, data);
        assert!(out.stats.is_balanced());
    }
}

/// A batch whose JSON is damaged inside one log event (a lone surrogate escape, which CloudWatch can
/// deliver and a strict parser refuses) loses that event only, kept as a reject row.
#[test]
fn a_log_event_damaged_at_the_batch_level_costs_only_itself() {
    let good = lines("app/voice_metrics.log");
    let mut messages = good.clone();
    messages.insert(1, "PLACEHOLDER".into());
    let text = serde_json::to_string(&batch(&messages)).unwrap().replace("PLACEHOLDER", r"caller said \ud83d then hung up");
    let data = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, gz.finish().unwrap())
    };
    let out = voicelake_shared::process_payload(&data, &Config::default(), NOW);
    let whole = run("app/voice_metrics.log");
    assert_eq!(out.turns.len(), whole.turns.len(), "every good line still makes its turn");
    assert_eq!(out.stats.events_in, good.len() as u64 + 1);
    assert_eq!(out.stats.rejected.get(&RejectReason::BadEventJson), Some(&1));
    assert!(out.stats.is_balanced(), "{:?}", out.stats);
    let reject = out.rejects.iter().find(|r| r.reason == "bad_event_json").unwrap();
    assert_eq!(reject.event_id.as_deref(), Some(format!("{:056}", 2).as_str()));
    assert_eq!(reject.event_time, CW_TS + 1);
    assert_eq!((reject.stage.as_str(), reject.log_stream.as_deref()), ("message", Some("fixture/task-1")));
    assert!(reject.raw_message.contains(r"\ud83d then hung up"), "{}", reject.raw_message);
    voicelake_shared::invariants::check_invariants(&out, &Config::default(), NOW).unwrap();
}
