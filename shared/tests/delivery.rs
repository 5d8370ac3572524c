//! How real agents' lines reach CloudWatch: through log routers and container runtimes, written by
//! any logging library. Every line of every fixture, delivered bare, through each wrapper and in
//! each library's envelope, gives the same rows, counts and metric datums; and no line that names
//! a family of the contract is skipped as foreign.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use voicelake_shared::envelope::{LogBatch, LogEvent, MessageType};
use voicelake_shared::reasons::SkipReason;
use voicelake_shared::{BatchOutput, Config, metrics, process_batch};

const NOW: i64 = 1_796_100_000_000;
const LOG_GROUP: &str = "/ecs/support-agent";

fn fixture_lines() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut lines = Vec::new();
    for dir in ["app", "livekit-1.8"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "log" || e == "jsonl")) {
            lines.extend(std::fs::read_to_string(f).unwrap().lines().filter(|l| !l.trim().is_empty()).map(str::to_owned));
        }
    }
    assert!(lines.len() > 150, "{}", lines.len());
    lines
}

/// The log event time of line `i`: the time the wrappers carry, too.
fn log_time(i: usize) -> i64 {
    NOW - 3_600_000 + i as i64 * 1000
}

fn iso(ms: i64) -> String {
    voicelake_shared::timefmt::iso(ms)
}

/// A line's JSON object, where the whole line is one.
fn object(line: &str) -> Option<Map<String, Value>> {
    serde_json::from_str::<Value>(line).ok()?.as_object().cloned()
}

/// A form a line can reach CloudWatch in, as a function of the line and its log time. `None` where
/// the form does not apply (an envelope of fields needs a line that is one JSON object).
type Form = fn(&str, i64) -> Option<String>;

const FORMS: [(&str, Form); 9] = [
    ("FireLens", |line, _| {
        Some(
            json!({"container_id": "7ad5c0", "container_name": "/ecs-support-agent-7-app-a4eafbb3d4c7f1e16e00", "source": "stdout",
                   "log": line, "ecs_cluster": "voice-prod", "ecs_task_definition": "support-agent:7"})
            .to_string(),
        )
    }),
    ("FireLens merged (Reserve_Data On)", |line, _| {
        let mut o = object(line)?;
        for (k, v) in
            [("container_name", "/ecs-support-agent-7-app-a4eaf"), ("source", "stdout"), ("ecs_task_definition", "support-agent:7")]
        {
            if o.contains_key(k) {
                return None;
            }
            o.insert(k.into(), json!(v));
        }
        Some(Value::Object(o).to_string())
    }),
    ("Docker json-file", |line, t| Some(json!({"log": format!("{line}\n"), "stream": "stdout", "time": iso(t)}).to_string())),
    ("containerd CRI", |line, t| Some(format!("{} stdout F {line}", iso(t)))),
    ("EKS Container Insights", |line, t| {
        let mut record = json!({"time": iso(t), "stream": "stdout", "_p": "F", "log": line,
            "kubernetes": {"pod_name": "support-agent-7d9c5b6f4-x2x7q", "namespace_name": "voice", "container_name": "agent"}});
        if let Some(o) = object(line) {
            record["log_processed"] = Value::Object(o);
        }
        Some(record.to_string())
    }),
    ("pino", |line, t| {
        let mut o = object(line)?;
        let message = o.remove("message").or_else(|| o.remove("msg"));
        let mut out = Map::new();
        for (k, v) in [("level", json!(30)), ("time", json!(t)), ("pid", json!(17539)), ("hostname", json!("vm"))] {
            if o.contains_key(k) {
                return None;
            }
            out.insert(k.into(), v);
        }
        out.extend(o);
        if let Some(m) = message {
            out.insert("msg".into(), m);
        }
        Some(Value::Object(out).to_string())
    }),
    ("structlog", |line, _| {
        let mut o = object(line)?;
        if o.contains_key("event") || o.contains_key("level") {
            return None;
        }
        if let Some(m) = o.remove("message").or_else(|| o.remove("msg")) {
            o.insert("event".into(), m);
        }
        o.insert("level".into(), json!("info"));
        Some(Value::Object(o).to_string())
    }),
    ("loguru", |line, t| {
        let mut o = object(line)?;
        let message = o.remove("message").or_else(|| o.remove("msg")).or_else(|| o.remove("event")).unwrap_or(json!(""));
        Some(
            json!({"text": "… | INFO | agent:main:7 - …\n", "record": {"elapsed": {"seconds": 1.0}, "exception": null,
                   "extra": Value::Object(o), "level": {"name": "INFO", "no": 20}, "message": message,
                   "time": {"repr": "…", "timestamp": t as f64 / 1000.0}}})
            .to_string(),
        )
    }),
    ("bunyan", |line, t| {
        let mut o = object(line)?;
        let message = o.remove("message").or_else(|| o.remove("msg"));
        let mut out = Map::new();
        for (k, v) in [("name", json!("voice-agent")), ("hostname", json!("vm")), ("pid", json!(1)), ("level", json!(30))] {
            if o.contains_key(k) {
                return None;
            }
            out.insert(k.into(), v);
        }
        out.extend(o);
        out.insert("msg".into(), message.unwrap_or(json!("")));
        out.insert("time".into(), json!(iso(t)));
        out.insert("v".into(), json!(0));
        Some(Value::Object(out).to_string())
    }),
];

fn batch(messages: Vec<String>) -> LogBatch {
    LogBatch {
        message_type: MessageType::DataMessage,
        owner: "123456789012".into(),
        log_group: LOG_GROUP.into(),
        log_stream: "ecs/agent/abc".into(),
        subscription_filters: vec![],
        log_events: messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| LogEvent { id: format!("e{i:04}"), timestamp: log_time(i), message: m })
            .collect(),
    }
}

/// What must not depend on the form: the rows (a reject's raw line is the delivered text, so only
/// its id and reason), the counts, the datums.
#[derive(Debug, PartialEq)]
struct Essence {
    turns: Vec<Value>,
    sessions: Vec<Value>,
    rejects: Vec<(Option<String>, String)>,
    stats: Value,
    datums: Vec<Value>,
}

fn essence(out: &BatchOutput) -> Essence {
    let mut stats = serde_json::to_value(&out.stats).unwrap();
    stats.as_object_mut().unwrap().remove("replaced_invalid_utf8");
    Essence {
        turns: out.turns.iter().map(|t| serde_json::to_value(t).unwrap()).collect(),
        sessions: out.sessions.iter().map(|s| serde_json::to_value(s).unwrap()).collect(),
        rejects: out.rejects.iter().map(|r| (r.event_id.clone(), r.reason.clone())).collect(),
        stats,
        datums: metrics::datums_for(out, &Config::default(), NOW).into_iter().map(|d| serde_json::to_value(d).unwrap()).collect(),
    }
}

#[test]
fn every_line_in_every_form_gives_the_same_rows_counts_and_metrics() {
    let lines = fixture_lines();
    let config = Config::default();
    for (name, form) in FORMS {
        // The lines the form applies to, bare and delivered.
        let (bare, delivered): (Vec<String>, Vec<String>) =
            lines.iter().enumerate().filter_map(|(i, l)| form(l, log_time(i)).map(|d| (l.clone(), d))).unzip();
        assert!(delivered.len() > 40, "{name}: {} lines", delivered.len());
        // Times are kept by position: the bare batch's events have the times the wrappers carry.
        let times: Vec<usize> = lines.iter().enumerate().filter(|(i, l)| form(l, log_time(*i)).is_some()).map(|(i, _)| i).collect();
        let with_times = |messages: Vec<String>| {
            let mut b = batch(messages);
            for (e, i) in b.log_events.iter_mut().zip(&times) {
                e.timestamp = log_time(*i);
            }
            b
        };
        let want = process_batch(&with_times(bare), &config, NOW);
        let got = process_batch(&with_times(delivered), &config, NOW);
        assert!(want.turns.len() + want.sessions.len() > 5, "{name}: {:?}", want.stats);
        let (w, g) = (essence(&want), essence(&got));
        assert_eq!(g.turns, w.turns, "{name}: turns");
        assert_eq!(g.sessions, w.sessions, "{name}: sessions");
        assert_eq!(g.rejects, w.rejects, "{name}: rejects");
        assert_eq!(g.stats, w.stats, "{name}: counts");
        assert_eq!(g.datums, w.datums, "{name}: datums");
    }
}

/// A generic log group (Container Insights names every workload's group `application`) says
/// nothing about the agent: the wrapper's workload does.
#[test]
fn the_wrappers_workload_names_the_agent_of_a_generic_log_group() {
    let line = r#"{"_event_type": "voice_metrics", "_session_id": "s", "total_latency": 1.1}"#;
    let eks = json!({"time": "2026-11-30T10:00:00Z", "stream": "stdout", "_p": "F", "log": line,
        "kubernetes": {"pod_name": "sales-agent-7d9c5b6f4-x2x7q", "labels": {"app.kubernetes.io/name": "sales-agent"}}})
    .to_string();
    let firelens = json!({"container_name": "app", "source": "stdout", "log": line, "ecs_task_definition": "support-agent:3"}).to_string();
    let mut b = batch(vec![eks, firelens, line.to_owned()]);
    b.log_group = "/aws/containerinsights/voice-prod/application".into();
    let out = process_batch(&b, &Config::default(), NOW);
    let agents: Vec<&str> = out.turns.iter().map(|t| t.agent_name.as_str()).collect();
    assert_eq!(agents, ["sales-agent", "support-agent", "application"]);
    // The wrapper's time, where the line has none.
    assert_eq!(out.turns[0].event_time, voicelake_shared::timefmt::parse_event_time("2026-11-30T10:00:00Z").unwrap());
}

/// Consecutive parts of a line a runtime cut are one line again, in every form that marks parts;
/// Docker's awslogs driver marks nothing, and its parts are joined where the join is whole.
#[test]
fn lines_cut_by_container_runtimes_are_joined() {
    let long =
        json!({"_event_type": "session_analytics", "_session_id": "long-call", "outcome": "booked", "transcript": "a".repeat(40_000)})
            .to_string();
    let (a, b, c) = (&long[..16_384], &long[16_384..32_768], &long[32_768..]);
    let t = "2026-11-30T10:00:00.000000001Z";
    let forms: Vec<(&str, Vec<String>)> = vec![
        ("awslogs", vec![long[..16_384].to_owned(), long[16_384..].to_owned()]),
        ("json-file", [a, b, c].iter().enumerate().map(|(i, p)| json!({"log": if i == 2 { format!("{p}\n") } else { p.to_string() }, "stream": "stdout", "time": t}).to_string()).collect()),
        ("CRI", [a, b, c].iter().enumerate().map(|(i, p)| format!("{t} stdout {} {p}", if i == 2 { "F" } else { "P" })).collect()),
        ("FireLens partial", [a, b, c].iter().enumerate().map(|(i, p)| json!({"container_name": "app", "source": "stdout", "log": p,
            "partial_message": "true", "partial_id": "x", "partial_ordinal": (i + 1).to_string(), "partial_last": if i == 2 { "true" } else { "false" }}).to_string()).collect()),
    ];
    for (name, parts) in forms {
        let n = parts.len() as u64;
        let mut b = batch(parts);
        for e in &mut b.log_events {
            e.timestamp = NOW - 60_000;
        }
        let out = process_batch(&b, &Config::default(), NOW);
        assert_eq!(out.sessions.len(), 1, "{name}: {:?} {:?}", out.stats, out.rejects);
        assert_eq!((out.stats.joined_lines, out.stats.skipped.get(&SkipReason::JoinedPart)), (1, Some(&(n - 1))), "{name}");
        assert!(out.stats.is_balanced() && out.rejects.is_empty(), "{name}");
    }
    // A part whose rest is elsewhere: the reject names the cut and its fix.
    let out = process_batch(&batch(vec![long[..16_384].to_owned()]), &Config::default(), NOW);
    let [r] = out.rejects.as_slice() else { panic!("{:?}", out.stats) };
    assert_eq!(r.reason, "split_line");
    assert!(r.detail.contains("cut at 16384 bytes") && r.detail.contains("mode=blocking"), "{}", r.detail);
}

/// Afterwards a skip means foreign: every family marker, wherever it stands in a line of any form,
/// gives a row or a reject with a reason, never `no_json` or `not_an_event`.
#[test]
fn no_line_that_names_a_family_is_skipped_as_foreign() {
    let mut lines = Vec::new();
    for marker in voicelake_shared::event::markers::read() {
        let fields =
            [("_event_type", marker), ("event_type", marker), ("type", marker), ("message", marker), ("msg", marker), ("event", marker)];
        for (key, value) in fields {
            let named = match key {
                "_event_type" | "event_type" => voicelake_shared::event::markers::APP_EVENTS.contains(&value),
                "type" => !value.contains(' ') && !voicelake_shared::event::markers::APP_EVENTS.contains(&value),
                _ => value.contains(' ') || voicelake_shared::event::markers::APP_EVENTS.contains(&value),
            };
            if !named {
                continue;
            }
            let obj = json!({key: value, "_session_id": "s", "speech_id": "sp", "total_latency": 1.0, "ttft": 0.3});
            lines.push(obj.to_string());
            lines.push(json!({"analytics_data": obj}).to_string());
            lines.push(json!({"a": {"b": obj}}).to_string());
            if value.contains(' ') || voicelake_shared::event::markers::APP_EVENTS.contains(&value) {
                lines.push(format!("2026-11-30 10:00:00,123 - INFO agent - {value} {}", json!({"ttft": 0.4})));
            }
            lines.push(format!("{{\"{key}\": \"{value}\", \"broken"));
            for (_, form) in FORMS {
                lines.extend(form(&obj.to_string(), NOW - 1000));
            }
        }
    }
    assert!(lines.len() > 200, "{}", lines.len());
    let out = process_batch(&batch(lines.clone()), &Config::default(), NOW);
    assert!(out.stats.is_balanced());
    let foreign: BTreeMap<_, _> =
        out.stats.skipped.iter().filter(|(r, _)| matches!(r, SkipReason::NoJson | SkipReason::NotAnEvent)).collect();
    assert!(foreign.is_empty(), "{foreign:?}");
    // And what is foreign stays a skip, not a reject: LiveKit's own lines that merely mention a family.
    let livekit_lines = [
        r#"{"message": "metrics_collected is deprecated. Use session_usage_updated for usage tracking and ChatMessage.metrics for per-turn latency.", "level": "WARNING", "name": "livekit.agents"}"#,
        r#"{"message": "received job request", "job_id": "AJ_1", "level": "INFO"}"#,
        "INFO livekit.agents: registered worker",
    ];
    let out = process_batch(&batch(livekit_lines.iter().map(|l| l.to_string()).collect()), &Config::default(), NOW);
    assert_eq!((out.stats.skipped_total(), out.stats.rejected_total()), (3, 0), "{:?}", out.stats);
}

/// The same turn written twice (by the app's formatter and by LiveKit's root JSON handler) is one
/// turn; where the app's voice_metrics and LiveKit's component metrics describe one turn, the app's
/// event is the turn.
#[test]
fn one_turn_is_one_row() {
    let event = json!({"_event_type": "voice_metrics", "_session_id": "room-7", "speech_id": "speech_1", "_timestamp": 1796099000.0,
        "total_latency": 1.23, "eou_delay": 0.52, "llm_ttft": 0.48, "tts_ttfb": 0.23});
    let twice = vec![
        event.to_string(),
        json!({"message": "Voice metrics", "level": "INFO", "name": "analytics", "analytics_data": event, "room": "room-7"}).to_string(),
    ];
    let out = process_batch(&batch(twice), &Config::default(), NOW);
    assert_eq!((out.turns.len(), out.stats.skipped.get(&SkipReason::DuplicateEvent)), (1, Some(&1)));
    assert_eq!(out.turns[0].total_latency_ms, Some(1230.0));

    let components = ["eou_metrics", "llm_metrics", "tts_metrics"].map(|t| {
        json!({"type": "metrics_collected", "room": "room-7", "metrics": {"type": t, "speech_id": "speech_1", "timestamp": 1796099000.5,
              "end_of_utterance_delay": 0.5, "ttft": 0.5, "ttfb": 0.2}})
        .to_string()
    });
    let mut both = vec![event.to_string()];
    both.extend(components);
    let out = process_batch(&batch(both), &Config::default(), NOW);
    assert_eq!(out.turns.len(), 1, "{:?}", out.turns);
    assert_eq!(out.turns[0].source_format.as_str(), "app_voice_metrics");
    assert_eq!(out.stats.skipped.get(&SkipReason::DuplicateEvent), Some(&3));
}
