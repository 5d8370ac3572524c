//! `voicelake generate` and `voicelake replay`, run as a user runs them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use voicelake_cli::report::percentile;
use voicelake_shared::envelope::{self, LogEvent, SubscriptionEvent};
use voicelake_shared::lake;
use voicelake_shared::{BatchOutput, Config, Hold, PENDING_TIMEOUT_MS, process_batch_carrying};

mod support;
use support::{START, generate, parquet_files, voicelake};

fn replay_json(input: &Path, lake: &Path) -> Value {
    serde_json::from_str(&voicelake(&["replay", input.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--format", "json"])).unwrap()
}

#[test]
fn sessions_counts_calls_not_session_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 60, true);
    let report = replay_json(&input, &dir.path().join("lake"));
    assert_eq!(report["sessions"], 60, "every generated call once, whatever its usage updates");
    assert_eq!(report["cost"]["calls"], 60, "each call ends with one session_analytics or usage total");
}

#[test]
fn replay_writes_the_lake_that_holds_exactly_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 80, false);
    let report = replay_json(&input, &dir.path().join("lake"));
    for key in ["turns", "sessions", "rejected", "skipped"] {
        assert!(report[key].is_u64(), "{key} in {report}");
    }
    for key in ["count", "p50", "p95", "p99", "max"] {
        assert!(report["latency_ms"][key].is_number(), "latency_ms.{key} in {report}");
    }

    // The rows, computed without the binary from the same input, as the ingest function makes them:
    // one batch after the other, each stream's held parts carried into its next batch.
    let config = Config::default();
    let now = chrono::Utc::now().timestamp_millis();
    let mut expected = BatchOutput::default();
    let mut carried: BTreeMap<(String, String), Vec<LogEvent>> = BTreeMap::new();
    let hold = Hold::Incomplete { timeout_ms: PENDING_TIMEOUT_MS, clock_ms: None };
    let mut take = |out: BatchOutput| {
        expected.turns.extend(out.turns);
        expected.sessions.extend(out.sessions);
        expected.rejects.extend(out.rejects);
    };
    let mut last_batch = None;
    for line in std::fs::read_to_string(&input).unwrap().lines() {
        let event: SubscriptionEvent = serde_json::from_str(line).unwrap();
        let batch = envelope::parse_batch(envelope::inflate(&event.awslogs.data).unwrap()).unwrap().batch;
        let key = (batch.log_group.clone(), batch.log_stream.clone());
        let mut out = process_batch_carrying(&batch, &carried.remove(&key).unwrap_or_default(), hold, &config, now);
        carried.insert(key, std::mem::take(&mut out.held));
        take(out);
        last_batch = Some(batch);
    }
    let mut empty = last_batch.unwrap();
    empty.log_events.clear();
    for ((group, stream), events) in carried {
        (empty.log_group, empty.log_stream) = (group, stream);
        take(process_batch_carrying(&empty, &events, Hold::Nothing, &config, now));
    }
    assert_eq!(report["rejected"].as_u64().unwrap() as usize, expected.rejects.len());

    for (table, rows) in [
        ("turns", lake::encode_partitioned(&expected.turns).unwrap()),
        ("sessions", lake::encode_partitioned(&expected.sessions).unwrap()),
        ("rejects", lake::encode_partitioned(&expected.rejects).unwrap()),
    ] {
        let files = parquet_files(&dir.path().join("lake").join(table));
        assert_eq!(files.len(), rows.len(), "{table}: one file per hour partition");
        for (file, expected) in files.iter().zip(&rows) {
            let rel = file.strip_prefix(dir.path().join("lake")).unwrap().to_string_lossy().into_owned();
            assert!(rel.starts_with(&format!("{table}/dt={}/hour={}/replay-", expected.partition.dt, expected.partition.hour)), "{rel}");
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap()).unwrap().build().unwrap();
            let read: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
            let want = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(expected.bytes.clone())).unwrap().build().unwrap();
            let want: Vec<_> = want.collect::<Result<_, _>>().unwrap();
            assert_eq!(read, want, "{rel}");
            assert_eq!(read.iter().map(|b| b.num_rows()).sum::<usize>(), expected.rows);
        }
    }
}

/// The event object of a log message, if it is one of the contract's (`analytics_data` unwrapped).
fn event_object(message: &str) -> Option<Value> {
    let at = message.find('{')?;
    let v: Value = serde_json::Deserializer::from_str(&message[at..]).into_iter::<Value>().next()?.ok()?;
    if v.get("_event_type").is_some()
        || v.get("type").is_some()
        || v.get("message").is_some_and(|m| m.as_str().is_some_and(|m| m.ends_with(" metrics")))
    {
        if let Some(inner) = v.get("analytics_data") {
            let mut inner = inner.clone();
            if inner.get("_timestamp").is_none() {
                inner["_timestamp"] = v["timestamp"].clone();
            }
            return Some(inner);
        }
        return Some(v);
    }
    None
}
/// A turn's parts: eou, hook, LLM calls as (start, ttft), ttfb.
#[derive(Default)]
struct Turn {
    eou: Option<f64>,
    hook: Option<f64>,
    calls: Vec<(f64, f64)>,
    ttfb: Option<f64>,
}
impl Turn {
    fn latency(&self) -> Option<f64> {
        let phase = match self.calls.as_slice() {
            [] => return None,
            [(_, ttft)] => *ttft,
            calls => {
                let first = calls.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
                let last = calls.iter().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
                last.0 + last.1 - first
            }
        };
        Some(self.eou? + self.hook.unwrap_or(0.0) + phase + self.ttfb?)
    }
}

/// The log messages of a file of subscription events, in order.
fn subscription_messages(input: &Path) -> Vec<String> {
    let mut messages = Vec::new();
    for line in std::fs::read_to_string(input).unwrap().lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let gz = base64::engine::general_purpose::STANDARD.decode(event["awslogs"]["data"].as_str().unwrap()).unwrap();
        let mut json = String::new();
        flate2::read::GzDecoder::new(gz.as_slice()).read_to_string(&mut json).unwrap();
        let batch: Value = serde_json::from_str(&json).unwrap();
        messages.extend(batch["logEvents"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap().to_owned()));
    }
    messages
}

/// The contract's latency rules, written again over plain JSON values: a turn waits eou + the
/// `on_user_turn_completed` hook + the LLM phase + ttfb unless its agent measured it; the LLM phase
/// is the one call's ttft, or from the first call's start (its timestamp less its duration; a
/// `log_metrics()` line's record time less its ttft) to the last call's first token. A turn's
/// lines are assembled across the whole stream, whichever delivery they came in.
fn independent_latencies(input: &Path) -> Vec<f64> {
    let secs = |v: &Value| v.as_f64().map(|s| s * 1000.0);
    let record_ms = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().timestamp_millis() as f64;
    let mut latencies = Vec::new();
    let mut by_speech: BTreeMap<String, Turn> = BTreeMap::new();
    let mut logged: BTreeMap<String, Vec<Turn>> = BTreeMap::new();
    for message in subscription_messages(input) {
        let Some(v) = event_object(&message) else { continue };
        if v["_event_type"] == "voice_metrics" {
            let turn = Turn {
                eou: secs(&v["eou"]["end_of_utterance_delay"]),
                hook: secs(&v["eou"]["on_user_turn_completed_delay"]),
                calls: secs(&v["llm"]["ttft"]).map(|t| (0.0, t)).into_iter().collect(),
                ttfb: secs(&v["tts"]["ttfb"]),
            };
            latencies.extend(secs(&v["total_latency"]).or_else(|| turn.latency()));
        } else if v["type"] == "metrics_collected" {
            let m = &v["metrics"];
            let Some(speech) = m["speech_id"].as_str() else { continue };
            let turn = by_speech.entry(speech.to_owned()).or_default();
            match m["type"].as_str().unwrap() {
                "eou_metrics" => {
                    turn.eou = turn.eou.or(secs(&m["end_of_utterance_delay"]));
                    turn.hook = turn.hook.or(secs(&m["on_user_turn_completed_delay"]));
                }
                "llm_metrics" => {
                    let at = secs(&m["timestamp"]).unwrap();
                    turn.calls.push((at - secs(&m["duration"]).unwrap(), secs(&m["ttft"]).unwrap()));
                }
                "tts_metrics" => turn.ttfb = turn.ttfb.or(secs(&m["ttfb"])),
                _ => {}
            }
        } else if let Some(kind) = v["message"].as_str().filter(|m| m.ends_with(" metrics")) {
            let turns = logged.entry(v["room_id"].as_str().unwrap().to_owned()).or_default();
            match kind {
                "EOU metrics" => turns.push(Turn { eou: secs(&v["end_of_utterance_delay"]), ..Turn::default() }),
                "LLM metrics" => {
                    if let Some(t) = turns.last_mut() {
                        let ttft = secs(&v["ttft"]).unwrap();
                        t.calls.push((record_ms(&v["timestamp"]) - ttft, ttft));
                    }
                }
                "TTS metrics" => {
                    if let Some(t) = turns.last_mut() {
                        t.ttfb = t.ttfb.or(secs(&v["ttfb"]));
                    }
                }
                _ => {}
            }
        } else if v["type"] == "conversation_item_added" && v["item"]["role"] == "assistant" {
            latencies.extend(secs(&v["item"]["metrics"]["e2e_latency"]));
        }
    }
    latencies.extend(by_speech.values().chain(logged.values().flatten()).filter_map(Turn::latency));
    latencies.sort_by(f64::total_cmp);
    latencies
}

#[test]
fn the_report_s_percentiles_equal_an_independent_computation_from_the_raw_logs() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 120, true);
    let report = replay_json(&input, &dir.path().join("lake"));
    let latencies = independent_latencies(&input);
    assert!(latencies.len() > 500);
    let got = &report["latency_ms"];
    assert_eq!(got["count"].as_u64(), Some(latencies.len() as u64));
    for (key, p) in [("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("max", 100.0)] {
        let expected = percentile(&latencies, p).unwrap();
        let actual = got[key].as_f64().unwrap();
        assert!((actual - expected).abs() < 1e-6, "{key}: report {actual}, independent {expected}");
    }
}

#[test]
fn replay_reads_aws_cli_output_raw_lines_and_single_events() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let lines: Vec<String> = std::fs::read_to_string(fixtures.join("app/voice_metrics.log")).unwrap().lines().map(str::to_owned).collect();

    // `aws logs filter-log-events --log-group-name … > events.json`
    let events: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, m)| {
            serde_json::json!({"logStreamName": "agent/1", "timestamp": 1_795_442_401_000i64 + i as i64,
            "message": m, "ingestionTime": 1_795_442_402_000i64, "eventId": format!("{i:056}")})
        })
        .collect();
    let cli = dir.path().join("events.json");
    std::fs::write(&cli, serde_json::to_string_pretty(&serde_json::json!({"events": events, "searchedLogStreams": []})).unwrap()).unwrap();
    let from_cli = replay_json(&cli, &dir.path().join("a"));

    // The same messages as raw JSON lines.
    let raw = dir.path().join("raw.log");
    std::fs::write(&raw, lines.join("\n")).unwrap();
    let from_raw = replay_json(&raw, &dir.path().join("b"));

    // A single subscription event, pretty-printed, as `sam local generate-event` writes one.
    let single = dir.path().join("event.json");
    std::fs::copy(fixtures.join("subscription/aws-docs-example.json"), &single).unwrap();
    let from_single = replay_json(&single, &dir.path().join("c"));

    assert_eq!(from_cli["turns"], 7);
    assert_eq!(from_cli["latency_ms"], from_raw["latency_ms"]);
    assert_eq!(from_raw["turns"], 7);
    assert_eq!(from_single["events"], 2);
    assert_eq!(from_single["skipped"], 2);
    let files = parquet_files(&dir.path().join("a"));
    assert!(files.iter().all(|f| f.to_string_lossy().contains("turns/dt=2026-11-23/hour=14/")), "{files:?}");
}

#[test]
fn text_report_names_the_alarms_and_the_slowest_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 200, false);
    let text = voicelake(&["replay", input.to_str().unwrap(), "--lake", dir.path().join("lake").to_str().unwrap()]);
    for expected in
        ["turn latency", "slowest sessions", "TurnLatencyP95Alarm", "TTSTimeToFirstByteP95Alarm", "WOULD FIRE", "compliance", "lake:"]
    {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
}

/// The same traffic as subscription events (plain and gzip'd), and as the archive a subscription
/// filter to Firehose leaves in S3 (decoded payloads, each gzip'd, back to back, one of them pretty-
/// printed), gives the same report.
#[test]
fn every_archive_form_of_the_same_events_gives_the_same_report() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let batches = voicelake_synth::generate(&voicelake_synth::SynthOptions {
        calls: 40,
        seed: 23,
        start_ms: voicelake_shared::timefmt::parse_event_time(START).unwrap(),
        noise: true,
        outage: None,
    });
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, voicelake_synth::subscription_lines(&batches)).unwrap();
    let gzipped = dir.path().join("events.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&gzipped).unwrap(), flate2::Compression::fast());
    gz.write_all(voicelake_synth::subscription_lines(&batches).as_bytes()).unwrap();
    gz.finish().unwrap();
    // Firehose's archive: each record a gzip'd decoded payload, the records back to back, and a
    // CONTROL_MESSAGE among them as a new subscription sends one.
    let archive = dir.path().join("firehose-archive");
    let mut file = std::fs::File::create(&archive).unwrap();
    let mut control = batches[0].clone();
    control.message_type = voicelake_shared::envelope::MessageType::ControlMessage;
    for (i, b) in std::iter::once(&control).chain(&batches).enumerate() {
        let json = if i == 3 { serde_json::to_string_pretty(b).unwrap() } else { serde_json::to_string(b).unwrap() };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(json.as_bytes()).unwrap();
        file.write_all(&gz.finish().unwrap()).unwrap();
    }
    drop(file);
    let report = |input: &Path| {
        let mut r = replay_json(input, &dir.path().join(format!("lake-{}", input.file_name().unwrap().to_string_lossy())));
        // Where a reject was read from names the input.
        r.as_object_mut().unwrap().remove("input");
        r
    };
    let want = report(&events);
    assert!(want["turns"].as_u64().unwrap() > 300, "{want}");
    assert_eq!(report(&gzipped), want);
    assert_eq!(report(&archive), want);
}

/// One log group's traffic as the subscription delivers it and as `aws logs filter-log-events`
/// returns it (every stream interleaved by time): the same turns, latencies, agents and cost, once
/// `--log-group` says which group the output is of. Without it the agent is `unknown`, not the
/// file's name.
#[test]
fn aws_logs_output_and_raw_lines_give_the_rows_of_the_subscription_events_of_their_log_group() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 120, false);
    let group = "/ecs/sales-agent";
    let mut subscription = Vec::new();
    let mut events = Vec::new();
    for line in std::fs::read_to_string(&input).unwrap().lines() {
        let event: SubscriptionEvent = serde_json::from_str(line).unwrap();
        let batch = envelope::decode(&event.awslogs.data).unwrap().batch;
        if batch.log_group != group {
            continue;
        }
        subscription.push(line.to_owned());
        for e in &batch.log_events {
            events.push(serde_json::json!({"logStreamName": batch.log_stream, "timestamp": e.timestamp, "message": e.message,
                "ingestionTime": e.timestamp + 400, "eventId": e.id}));
        }
    }
    events.sort_by_key(|e| (e["timestamp"].as_i64().unwrap(), e["eventId"].as_str().unwrap().to_owned()));
    assert!(subscription.len() > 5 && events.len() > 100, "{} batches, {} events", subscription.len(), events.len());
    let sub = dir.path().join("sales.jsonl");
    std::fs::write(&sub, subscription.join("\n")).unwrap();
    let cli = dir.path().join("fle_all.json");
    std::fs::write(&cli, serde_json::to_string_pretty(&serde_json::json!({"events": events, "searchedLogStreams": []})).unwrap()).unwrap();

    let a = replay_json(&sub, &dir.path().join("a"));
    let run = |lake: &str, extra: &[&str]| -> Value {
        let mut args = vec!["replay", cli.to_str().unwrap(), "--lake", lake, "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&voicelake(&args)).unwrap()
    };
    let b = run(dir.path().join("b").to_str().unwrap(), &["--log-group", group]);
    // Means and deviations are sums taken in arrival order, which differs: equal to 1e-9.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-9 * x.abs().max(1.0)
            }
            (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
            (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
            _ => a == b,
        }
    }
    for key in ["events", "turns", "partial_turns", "sessions", "latency_ms", "components_ms", "agents", "cost", "alarms"] {
        assert!(same(&a[key], &b[key]), "{key}: {} against {}", a[key], b[key]);
    }
    // The same events as raw lines (what `docker logs` gives): no stream, no CloudWatch time; each
    // line's time is its own or its neighbour's.
    let raw = dir.path().join("agent.log");
    let text: String = events.iter().map(|e| e["message"].as_str().unwrap().trim_end_matches('\n').to_owned() + "\n").collect();
    std::fs::write(&raw, text).unwrap();
    let lines: Value = serde_json::from_str(&voicelake(&[
        "replay",
        raw.to_str().unwrap(),
        "--lake",
        dir.path().join("r").to_str().unwrap(),
        "--format",
        "json",
        "--log-group",
        group,
    ]))
    .unwrap();
    for key in [
        "events",
        "turns",
        "partial_turns",
        "sessions",
        "latency_ms",
        "components_ms",
        "agents",
        "cost",
        "alarms",
        "first_event",
        "last_event",
    ] {
        assert!(same(&a[key], &lines[key]), "raw lines, {key}: {} against {}", a[key], lines[key]);
    }
    let unnamed = run(dir.path().join("c").to_str().unwrap(), &[]);
    let agents: Vec<&str> = unnamed["agents"].as_array().unwrap().iter().map(|a| a["agent"].as_str().unwrap()).collect();
    assert!(agents.contains(&"unknown") && !agents.iter().any(|a| a.contains("fle_all")), "{agents:?}");
}

/// Rows of a lake, read back from every visible Parquet object of a table.
fn lake_rows(lake: &Path, table: &str) -> usize {
    parquet_files(&lake.join(table))
        .iter()
        .filter(|f| !f.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|f| {
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap()).unwrap().build().unwrap();
            reader.map(|b| b.unwrap().num_rows()).sum::<usize>()
        })
        .sum()
}

/// The lake stays true: the same input replayed again replaces what it wrote (the README's quick
/// start replays one file three times), and outputs that cannot be written fail before any work.
#[test]
fn a_second_replay_of_the_same_input_replaces_its_rows_and_bad_outputs_fail_first() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 40, false);
    let lake = dir.path().join("lake");
    let first = replay_json(&input, &lake);
    let turns = lake_rows(&lake, "turns");
    assert_eq!(turns as u64, first["turns"].as_u64().unwrap() + first["partial_turns"].as_u64().unwrap());
    let objects = parquet_files(&lake).len();
    voicelake(&[
        "replay",
        input.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        "--html",
        dir.path().join("p.html").to_str().unwrap(),
    ]);
    replay_json(&input, &lake);
    assert_eq!(lake_rows(&lake, "turns"), turns, "replayed three times, the rows are there once");
    assert_eq!(parquet_files(&lake).len(), objects);
    // Another input adds its own rows beside them.
    let other = dir.path().join("other.jsonl");
    std::fs::copy(&input, &other).unwrap();
    replay_json(&other, &lake);
    assert_eq!(lake_rows(&lake, "turns"), 2 * turns);

    let fails = |args: &[&str]| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_voicelake")).args(args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let fresh = dir.path().join("fresh");
    let page_dir = dir.path().join("a-folder");
    std::fs::create_dir(&page_dir).unwrap();
    let err = fails(&["replay", input.to_str().unwrap(), "--lake", fresh.to_str().unwrap(), "--html", page_dir.to_str().unwrap()]);
    assert!(err.contains("is a directory"), "{err}");
    assert!(!fresh.exists() || parquet_files(&fresh).is_empty(), "nothing written before the check");
    let file = dir.path().join("lake-is-a-file");
    std::fs::write(&file, "x").unwrap();
    let err = fails(&["replay", input.to_str().unwrap(), "--lake", file.to_str().unwrap()]);
    assert!(err.contains("is a file, not a directory"), "{err}");
}

/// Without `--start`, generated traffic ends before now whatever its size: a day of calls does
/// not reach into the future, where the report would see a clock error.
#[test]
fn generated_traffic_never_lies_in_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.jsonl");
    // 6,000 calls start over a day.
    voicelake(&["generate", "--calls", "6000", "--seed", "3", "--out", out.to_str().unwrap()]);
    let now = chrono::Utc::now().timestamp_millis();
    let mut last = 0;
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let event: SubscriptionEvent = serde_json::from_str(line).unwrap();
        let batch = envelope::decode(&event.awslogs.data).unwrap().batch;
        last = batch.log_events.iter().map(|e| e.timestamp).fold(last, i64::max);
    }
    assert!(last > now - 6 * 3_600_000 && last <= now, "the last event is {} s from now", (last - now) / 1000);
}

/// An outage `voicelake generate --outage` injects is what the replay diagnoses: the provider alarm
/// names its kind, provider and agent, its worst period lies inside it, and the failures and closed
/// calls equal what the raw lines say, counted here without the pipeline.
#[test]
fn an_injected_outage_is_diagnosed_with_its_provider_agent_window_and_closed_calls() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("traffic.jsonl");
    let args = ["generate", "--calls", "150", "--seed", "5", "--start", START, "--out", input.to_str().unwrap()];
    voicelake(&[&args[..], &["--clean", "--outage", "tts:cartesia:sales-agent@20+15"]].concat());
    let report = replay_json(&input, &dir.path().join("lake"));

    // The raw lines, decoded from the subscription events, and counted by their wording.
    let mut messages = Vec::new();
    for line in std::fs::read_to_string(&input).unwrap().lines() {
        let event: SubscriptionEvent = serde_json::from_str(line).unwrap();
        let batch = envelope::decode(&event.awslogs.data).unwrap().batch;
        messages.extend(batch.log_events.into_iter().map(|e| e.message));
    }
    let failure_lines = messages
        .iter()
        .filter(|m| {
            let v: Value = serde_json::from_str(m).unwrap_or(Value::Null);
            let text = v["message"].as_str().unwrap_or_default();
            text.starts_with("failed to synthesize speech: ")
                || text.ends_with(" error, switching to next TTS")
                || text.starts_with("AgentSession is closing due to unrecoverable error")
        })
        .count();
    let closes: std::collections::BTreeSet<String> = messages
        .iter()
        .filter(|m| m.contains("AgentSession is closing due to unrecoverable error"))
        .map(|m| serde_json::from_str::<Value>(m).unwrap()["room"].as_str().unwrap().to_owned())
        .collect();
    assert!(failure_lines > 30 && !closes.is_empty(), "{failure_lines} lines, {} closes", closes.len());

    let errors = &report["errors"];
    assert_eq!(errors["events"].as_u64(), Some(failure_lines as u64));
    assert_eq!(errors["sessions_closed_by_error"].as_u64(), Some(closes.len() as u64));
    assert_eq!(errors["by_provider"][0]["kind"], "tts");
    assert_eq!(errors["by_provider"][0]["provider"], "cartesia");
    assert_eq!(errors["by_provider"][0]["events"].as_u64(), Some(failure_lines as u64));

    let alarm = report["alarms"].as_array().unwrap().iter().find(|a| a["alarm"] == "ProviderErrorsAlarm").unwrap();
    assert_eq!(alarm["would_fire"], true, "{alarm}");
    let d = &alarm["diagnosis"];
    assert_eq!(
        (d["kind"].as_str(), d["provider"].as_str(), d["agent"].as_str()),
        (Some("tts"), Some("cartesia"), Some("sales-agent")),
        "{d}"
    );
    let start = voicelake_shared::timefmt::parse_event_time(START).unwrap();
    let (from, until) = (start + 20 * 60_000, start + 35 * 60_000);
    let at = |k: &str| voicelake_shared::timefmt::parse_event_time(d[k].as_str().unwrap()).unwrap();
    assert!(at("window_start") >= from - 300_000 && at("window_end") <= until + 300_000, "{d}");
    assert!((from..until).contains(&at("since")), "{d}");
    let worst: Vec<&str> = d["worst_sessions"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(!worst.is_empty());
    // Calls LiveKit closed come first.
    let closed_in_window = d["sessions_closed"].as_u64().unwrap() as usize;
    assert!(worst.iter().take(closed_in_window).all(|s| closes.contains(*s)), "{worst:?} {closes:?}");

    // The latency alarm that fires with it says the failures coincide.
    let tts = report["alarms"].as_array().unwrap().iter().find(|a| a["alarm"] == "TTSTimeToFirstByteP95Alarm").unwrap();
    assert!(tts["diagnosis"]["cause"].as_str().unwrap().contains("failures of cartesia"), "{tts}");
}

/// Raw lines carry no CloudWatch time: a line that gives none itself (a malformed event, an event
/// without a time) takes the nearest line's that does, and stays in its hour, not at the replay's clock.
#[test]
fn untimed_raw_lines_take_the_nearest_timed_lines_time() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        // Before any timed line: the first timed line's time.
        r#"{"_event_type": "voice_metrics", "_session_id": "s-1", "speech_id": "sp-1", "agent_name": "a", "total_latency": 0.9}"#,
        r#"{"_event_type": "voice_metrics", "_session_id": "s-1", "speech_id": "sp-2", "agent_name": "a", "_timestamp": "2026-11-20T10:15:00Z", "total_latency": 1.1}"#,
        r#"{"_event_type": "voice_metrics", "_session_id": "s-1", "speech_id": "sp-3", "eou": {"end"#,
        r#"{"_event_type": "voice_metrics", "_session_id": "s-1", "speech_id": "sp-4", "agent_name": "a", "total_latency": 1.3}"#,
        r#"{"_event_type": "voice_metrics", "_session_id": "s-1", "speech_id": "sp-5", "agent_name": "a", "_timestamp": "2026-11-20T10:40:00Z", "total_latency": 1.2}"#,
    ];
    let input = dir.path().join("agent.log");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let lake = dir.path().join("lake");
    let report = replay_json(&input, &lake);
    assert_eq!(report["turns"].as_u64(), Some(4), "{report}");
    assert_eq!(
        (report["first_event"].as_str(), report["last_event"].as_str()),
        (Some("2026-11-20T10:15:00.000Z"), Some("2026-11-20T10:40:00.000Z"))
    );
    let rejected = report["alarms"].as_array().unwrap().iter().find(|a| a["alarm"] == "RejectedEventsAlarm").unwrap();
    assert_eq!(rejected["worst_period"], "2026-11-20T10:15:00.000Z", "the malformed line is in its hour: {rejected}");
    // Every row of the lake is in the 10:00 hour.
    for file in parquet_files(&lake) {
        assert!(file.to_string_lossy().contains("dt=2026-11-20/hour=10"), "{}", file.display());
    }
}
