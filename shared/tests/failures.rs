//! LiveKit's failure lines and session events, as livekit-agents 1.8 itself wrote them
//! (`tests/fixtures/livekit-1.8/generate.py`), read into `errors` rows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use voicelake_shared::envelope::LogBatch;
use voicelake_shared::metrics::{datums_for, metric};
use voicelake_shared::rows::{ErrorRow, SourceFormat};
use voicelake_shared::{BatchOutput, Config, process_batch};

fn lines(path: &str) -> Vec<String> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/livekit-1.8").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).lines().map(str::to_owned).collect()
}

/// The fixture's lines as one delivery, stamped by CloudWatch a second after the last one was written.
fn run(messages: &[String]) -> BatchOutput {
    let first = 1_796_059_400_000;
    let batch = LogBatch::of_messages("/ecs/booking-agent", "ecs/agent/1", first, messages.iter().cloned());
    let out = process_batch(&batch, &Config::default(), first + 3_600_000);
    assert!(out.stats.is_balanced(), "{:?}", out.stats);
    out
}

fn key(r: &ErrorRow) -> (&str, &str, &str) {
    (r.action.as_str(), r.kind.as_str(), r.provider.as_str())
}

#[test]
fn every_failure_line_livekit_writes_is_an_errors_row() {
    let all = lines("errors.jsonl");
    let out = run(&all);
    // The lines that are not failures: the traceback line of a failed turn, and the kill's steps.
    let others = all
        .iter()
        .filter(|l| {
            ["Error in _llm_inference_task", "\"killing process\"", "sending SIGUSR1", "recovery failed"].iter().any(|m| l.contains(m))
        })
        .count();
    assert_eq!(out.errors.len() + others, all.len(), "{:#?}", out.stats);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    let mut counts: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for r in &out.errors {
        *counts.entry(key(r)).or_default() += 1;
        assert_eq!(r.source_format, SourceFormat::LivekitFailureLog);
        assert!(!r.message.contains('\n'), "the first line only: {}", r.message);
    }
    // Independently of the parser: each wording, counted in the raw lines.
    let count = |needle: &str| all.iter().filter(|l| l.contains(needle)).count();
    let starting = |start: &str| all.iter().filter(|l| l.starts_with(&format!("{{\"message\": \"{start}"))).count();
    let sum = |f: &dyn Fn(&(&str, &str, &str)) -> bool| counts.iter().filter(|(k, _)| f(k)).map(|(_, n)| n).sum::<usize>();
    assert_eq!(sum(&|k| k.0 == "retry" && k.1 == "llm"), starting("failed to generate LLM completion"));
    assert_eq!(sum(&|k| k.0 == "retry" && k.1 == "tts"), starting("failed to synthesize speech"));
    assert_eq!(sum(&|k| k.0 == "retry" && k.1 == "stt"), starting("failed to recognize speech: "));
    assert_eq!(sum(&|k| k.0 == "fallback"), count(", switching to next "));
    assert_eq!(sum(&|k| k.0 == "all_failed"), count("are unavailable, retrying"));
    assert_eq!(sum(&|k| k.0 == "closed"), starting("AgentSession is closing due to unrecoverable error"));
    assert_eq!(sum(&|k| k.0 == "memory"), count("memory usage is above the warning threshold"));
    assert_eq!(sum(&|k| k.0 == "recovered"), count(" recovered\""));
    // Providers come from the plugins' labels.
    assert!(counts.keys().any(|k| *k == ("retry", "tts", "elevenlabs")), "{counts:?}");
    assert!(counts.keys().any(|k| *k == ("fallback", "tts", "elevenlabs")), "{counts:?}");
    assert!(counts.keys().any(|k| *k == ("fallback", "llm", "openai")), "{counts:?}");
    assert!(counts.keys().any(|k| *k == ("retry", "stt", "deepgram")), "{counts:?}");
    assert!(counts.keys().any(|k| *k == ("retry", "llm", "fallback_adapter")), "{counts:?}");

    let llm_503 = out.errors.iter().find(|r| r.action == "retry" && r.provider == "openai" && r.attempt == Some(1)).unwrap();
    assert_eq!((llm_503.error_class.as_deref(), llm_503.status_code, llm_503.recoverable), (Some("http_503"), Some(503), Some(true)));
    assert_eq!(llm_503.session_id.as_deref(), Some("room-booking-0042"), "the job's room is the session");
    let timeout = out.errors.iter().find(|r| r.message.starts_with("failed to generate LLM completion: Request timed out.")).unwrap();
    assert_eq!(timeout.error_class.as_deref(), Some("timeout"));
    let refused = out.errors.iter().find(|r| r.message.contains("could not connect to ElevenLabs")).unwrap();
    assert_eq!(refused.error_class.as_deref(), Some("connection"));
    // A streamed TTS switch carries its error only in the traceback that follows its first line.
    let streamed_switch = all.iter().position(|l| l.contains("error, switching to next TTS\\n")).unwrap();
    let row = out.errors.iter().find(|r| r.event_id == streamed_switch.to_string()).unwrap();
    assert!(row.error_class.is_some(), "{row:?}");

    // The close line names no provider: it takes its session's last failure's.
    let closed = out.errors.iter().find(|r| r.action == "closed").unwrap();
    assert_eq!((closed.kind.as_str(), closed.recoverable, closed.status_code), ("llm", Some(false), Some(503)), "{closed:?}");

    let memory: Vec<f64> = out.errors.iter().filter_map(|r| r.memory_used_percent).collect();
    // 1187.4 MB over the 1000 MB warning (no limit), 1244 and 1612.7 over a 1500 MB limit.
    for expected in [118.7, 82.9, 107.5] {
        assert!(memory.contains(&expected), "{expected} in {memory:?}");
    }
}

#[test]
fn error_and_close_events_are_rows_and_a_close_without_error_is_not() {
    let all = lines("session_events.jsonl");
    let out = run(&all);
    let events: Vec<(&str, &str, &str, Option<bool>)> =
        out.errors.iter().map(|r| (r.action.as_str(), r.kind.as_str(), r.provider.as_str(), r.recoverable)).collect();
    assert_eq!(
        events,
        [
            ("error", "llm", "openai", Some(true)),
            ("error", "llm", "openai", Some(false)),
            ("error", "tts", "elevenlabs", Some(true)),
            ("error", "stt", "deepgram", Some(true)),
            ("error", "tts", "fallback_adapter", Some(true)),
            ("error", "realtime", "openai", Some(false)),
            ("closed", "llm", "openai", Some(false)),
        ]
    );
    assert!(out.errors.iter().all(|r| r.source_format == SourceFormat::LivekitSessionEvent));
    assert_eq!(out.errors[0].model.as_deref(), Some("gpt-4.1-mini"));
    assert_eq!(out.stats.skipped_total(), 3, "closes for other reasons are not failures: {:?}", out.stats.skipped);
}

#[test]
fn only_the_lines_count_as_failures_in_the_metrics() {
    let mut all = lines("errors.jsonl");
    let lines_only = run(&all);
    all.extend(lines("session_events.jsonl"));
    let with_events = run(&all);
    let sum = |out: &BatchOutput, name: &str| -> f64 {
        datums_for(out, &Config::default(), 1_796_059_400_000 + 3_600_000)
            .iter()
            .filter(|d| d.metric_name == name && d.dimensions.len() == 1)
            .map(|d| d.values[0])
            .sum()
    };
    let failures = lines_only.errors.iter().filter(|r| ["retry", "fallback", "all_failed", "closed"].contains(&r.action.as_str())).count();
    assert_eq!(sum(&lines_only, metric::PROVIDER_FAILURES.name), failures as f64);
    assert_eq!(sum(&with_events, metric::PROVIDER_FAILURES.name), failures as f64, "the events restate the lines");
    assert_eq!(sum(&with_events, metric::SESSIONS_CLOSED_BY_ERROR.name), 1.0);
    assert_eq!(
        sum(&with_events, metric::FALLBACK_ACTIVATIONS.name),
        lines_only.errors.iter().filter(|r| r.action == "fallback").count() as f64
    );
    let by_provider = datums_for(&lines_only, &Config::default(), 1_796_059_400_000 + 3_600_000);
    assert!(
        by_provider.iter().any(|d| d.metric_name == metric::PROVIDER_FAILURES.name
            && d.dimensions.iter().any(|(n, v)| *n == "Provider" && v == "elevenlabs")
            && d.dimensions.iter().any(|(n, v)| *n == "Kind" && v == "tts")),
        "{by_provider:?}"
    );
}
