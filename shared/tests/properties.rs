//! Whatever arrives, the pipeline neither panics nor loses count, and never emits a value
//! CloudWatch would refuse.

use std::io::Write;

use base64::Engine;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use voicelake_shared::envelope::{self, LogBatch, LogEvent, MessageType};
use voicelake_shared::metrics::{self, MAX_VALUES_PER_DATUM};
use voicelake_shared::{BatchOutput, Config, process_batch, process_payload};

const NOW: i64 = 1_795_446_000_000;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn batch(messages: Vec<String>) -> LogBatch {
    LogBatch {
        message_type: MessageType::DataMessage,
        owner: "1".into(),
        log_group: "/g".into(),
        log_stream: "s".into(),
        subscription_filters: vec![],
        log_events: messages
            .into_iter()
            .enumerate()
            .map(|(i, message)| LogEvent { id: i.to_string(), timestamp: NOW - 1000 + i as i64, message })
            .collect(),
    }
}

/// Everything the pipeline emits is usable: counts balance, numbers are finite and non-negative,
/// datums are within CloudWatch's limits.
fn check(out: &BatchOutput) {
    assert!(out.stats.is_balanced(), "{:?}", out.stats);
    for t in &out.turns {
        let values = [
            t.total_latency_ms,
            t.eou_delay_ms,
            t.transcription_delay_ms,
            t.llm_ttft_ms,
            t.llm_duration_ms,
            t.tts_ttfb_ms,
            t.tts_duration_ms,
            t.tts_audio_duration_ms,
            t.stt_duration_ms,
            t.stt_audio_duration_ms,
        ];
        assert!(values.iter().flatten().all(|v| v.is_finite() && *v >= 0.0), "{t:?}");
        assert!([t.prompt_tokens, t.prompt_cached_tokens, t.completion_tokens, t.tts_characters].iter().flatten().all(|v| *v >= 0));
        assert_eq!(t.is_complete, t.total_latency_ms.is_some());
    }
    for s in &out.sessions {
        let values =
            [s.duration_seconds, s.estimated_cost_usd, s.mos, s.jitter_ms, s.packet_loss_rate, s.stt_audio_seconds, s.tts_audio_seconds];
        assert!(values.iter().flatten().all(|v| v.is_finite() && *v >= 0.0), "{s:?}");
    }
    for (table, size) in voicelake_shared::invariants::record_sizes(out) {
        assert!(size <= voicelake_shared::lake::MAX_RECORD_BYTES, "a {table} record of {size} bytes");
    }
    let datums = metrics::datums_for(out, &Config::default(), NOW);
    for d in &datums {
        assert!(d.dimensions.iter().all(|(_, v)| voicelake_shared::invariants::is_dimension_value(v)), "{d:?}");
        assert!(d.values.len() <= MAX_VALUES_PER_DATUM && d.values.len() == d.counts.len());
        assert!(d.values.iter().chain(&d.counts).all(|v| v.is_finite() && *v >= 0.0), "{d:?}");
    }
    for request in metrics::split_requests(datums) {
        assert!(request.len() <= metrics::MAX_DATUMS_PER_REQUEST);
        assert!(request.iter().map(|d| d.estimated_bytes()).sum::<usize>() <= metrics::MAX_REQUEST_BYTES);
    }
    for table_ok in [
        voicelake_shared::lake::record_batch(&out.turns).is_ok(),
        voicelake_shared::lake::record_batch(&out.sessions).is_ok(),
        voicelake_shared::lake::record_batch(&out.rejects).is_ok(),
    ] {
        assert!(table_ok, "every row fits its table's schema");
    }
}

/// Field names of the contract, so that random objects reach every family's code.
const KEYS: &[&str] = &[
    "_event_type",
    "event_type",
    "type",
    "message",
    "_session_id",
    "session_id",
    "room",
    "room_id",
    "job_id",
    "speech_id",
    "_timestamp",
    "timestamp",
    "created_at",
    "total_latency",
    "total_latency_ms",
    "eou",
    "llm",
    "tts",
    "stt",
    "llm_ttft",
    "tts_ttfb",
    "eou_delay",
    "ttft",
    "ttfb",
    "duration",
    "end_of_utterance_delay",
    "transcription_delay",
    "prompt_tokens",
    "completion_tokens",
    "characters_count",
    "audio_duration",
    "metadata",
    "metrics",
    "item",
    "usage",
    "model_usage",
    "role",
    "e2e_latency",
    "llm_node_ttft",
    "tts_node_ttfb",
    "end_of_turn_delay",
    "tool_calls",
    "discovered_signals",
    "metrics_summary",
    "duration_seconds",
    "mos",
    "packet_loss_rate",
    "call_setup_failed",
    "agent_name",
    "delay",
    "success",
    "tool",
    "name",
    "analytics_data",
];
/// Values that steer classification: every family marker, one ignored one, and the chat roles and
/// usage kinds.
fn markers() -> Vec<&'static str> {
    voicelake_shared::event::markers::read().chain(["vad_metrics", "VAD metrics", "assistant", "user", "llm", "tts", "stt"]).collect()
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(|f| json!(f)),
        (-2.0f64..5.0).prop_map(|f| json!(f)),
        any::<i64>().prop_map(|i| json!(i)),
        prop::sample::select(markers()).prop_map(|s| json!(s)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["2026-11-23T14:00:01Z", "1795442401.5", "NaN", "-1", "0.35", "1e400"]).prop_map(|s| json!(s)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())),
        ]
    })
}

fn message() -> impl Strategy<Value = String> {
    (value(), prop::sample::select(vec!["", "2026-11-23 14:00:01,123 INFO agent: ", "t\tid\tINFO\t"]), any::<u8>()).prop_map(
        |(v, prefix, cut)| {
            let text = format!("{prefix}{v}");
            // Now and then cut the line, as log drivers do.
            if cut < 16 && text.len() > 4 {
                let mut at = text.len() * usize::from(cut) / 16;
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text[..at].to_string()
            } else {
                text
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_envelope_decoder_never_panics_on_any_text(data in ".{0,400}") {
        let out = process_payload(&data, &Config::default(), NOW);
        check(&out);
    }

    #[test]
    fn the_envelope_decoder_never_panics_on_any_gzip_content(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let data = base64::engine::general_purpose::STANDARD.encode(gzip(&bytes));
        check(&process_payload(&data, &Config::default(), NOW));
        let truncated = base64::engine::general_purpose::STANDARD.encode(&gzip(&bytes)[..bytes.len() / 2]);
        check(&process_payload(&truncated, &Config::default(), NOW));
    }

    /// Raw text spliced into one message's JSON, unescaped: whatever it breaks, nothing panics and
    /// the counts balance; where the damage stays inside that event, the other events keep their
    /// rows.
    #[test]
    fn damage_spliced_into_one_event_never_costs_more_than_the_batch(raw in r#"[a-z \\"{}\[\],:\x00-\x1f]{0,40}"#) {
        let good = r#"{\"_event_type\": \"voice_metrics\", \"_session_id\": \"s1\", \"total_latency_ms\": 900}"#;
        let text = serde_json::to_string(&batch(vec!["GOOD".into(), "PLACEHOLDER".into(), "GOOD".into()]))
            .unwrap()
            .replace("GOOD", good)
            .replace("PLACEHOLDER", &raw);
        let data = base64::engine::general_purpose::STANDARD.encode(gzip(text.as_bytes()));
        let out = process_payload(&data, &Config::default(), NOW);
        check(&out);
        // Damage that stays inside its event (the reject holds that event, id 1, and no other)
        // costs only that event. Damage that closes it early can leave it a valid event of its
        // own and merge the rest with the next, which is then kept raw: the reject then holds the
        // next event's id, not its own (the raw text has no digits to fake one).
        let damaged: Vec<_> = out.rejects.iter().filter(|r| r.reason == "bad_event_json").collect();
        if damaged.len() == 1
            && damaged[0].raw_message.matches(r#""id":"#).count() == 1
            && damaged[0].raw_message.contains(r#""id":"1""#)
        {
            prop_assert_eq!(out.turns.len(), 2, "{:?}", out.rejects);
        }
    }

    #[test]
    fn arbitrary_messages_never_panic(messages in prop::collection::vec(".{0,200}", 0..20)) {
        check(&process_batch(&batch(messages), &Config::default(), NOW));
    }

    #[test]
    fn objects_of_the_contract_vocabulary_with_any_values(messages in prop::collection::vec(message(), 1..24)) {
        let b = batch(messages);
        let out = process_batch(&b, &Config::default(), NOW);
        check(&out);
        // And the same batch survives the envelope round trip unchanged.
        let again = process_payload(&envelope::encode(&b), &Config::default(), NOW);
        prop_assert_eq!(again.turns, out.turns);
        prop_assert_eq!(again.stats, out.stats);
    }
}

/// A `session_analytics` event as large and as strange as an agent may log one: thousands of tool
/// calls with long errors, hundreds of signals, identifiers and labels of any characters.
fn hostile_session() -> impl Strategy<Value = String> {
    let text = |max: usize| prop::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect::<String>());
    (0usize..4000, 0usize..2000, 0usize..300, text(400), text(300), text(300), text(3000)).prop_map(
        |(calls, error_len, signals, session, agent, tenant, reason)| {
            let error: String = "é错\u{1}".chars().cycle().take(error_len).collect();
            let tool_calls: Vec<Value> =
                (0..calls).map(|i| json!({"tool": format!("tool-{}", i % 7), "success": i % 3 != 0, "error": error})).collect();
            let discovered: Map<String, Value> =
                (0..signals).map(|i| (format!("{i}{}", "k".repeat(300)), json!("v".repeat(5000)))).collect();
            json!({
                "_event_type": "session_analytics", "_session_id": session, "agent_name": agent, "tenant_id": tenant,
                "agent_version": agent, "outcome": reason, "setup_failure_reason": reason, "call_setup_failed": true,
                "tool_calls": tool_calls, "discovered_signals": discovered, "duration_seconds": 60,
                "llm_model": agent, "metrics_summary": {"llm_prompt_tokens": 10}
            })
            .to_string()
        },
    )
}

fn hostile_turn() -> impl Strategy<Value = String> {
    let text = |max: usize| prop::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect::<String>());
    (text(300), text(300), text(300)).prop_map(|(agent, tenant, model)| {
        json!({"_event_type": "voice_metrics", "_session_id": "s", "agent_name": agent, "tenant_id": tenant, "total_latency": 1.0,
               "llm": {"ttft": 0.3, "model": model, "provider": tenant}, "tts": {"ttfb": 0.2, "model": model}})
        .to_string()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// No input makes a Firehose record exceed its limit or a dimension value one CloudWatch
    /// refuses, with every labelled dimension on and unbounded.
    #[test]
    fn no_input_makes_a_record_too_large_or_a_dimension_invalid(session in hostile_session(), turn in hostile_turn()) {
        let config = Config { model_dimension: true, tenant_dimension: true, ..Config::default() };
        let out = process_batch(&batch(vec![session, turn]), &config, NOW);
        check(&out);
        prop_assert!(voicelake_shared::invariants::check_invariants(&out, &config, NOW).is_ok(), "{:?}", voicelake_shared::invariants::check_invariants(&out, &config, NOW));
    }
}
