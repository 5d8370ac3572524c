//! Hostile data cannot stop delivery or run up the bill: rows are bounded by construction (the true
//! counts kept beside capped lists), dimension values are ones CloudWatch takes, and the labelled
//! dimensions publish a declared set.

use serde_json::json;
use voicelake_shared::envelope::LogBatch;
use voicelake_shared::lake::{MAX_RECORD_BYTES, firehose_record};
use voicelake_shared::metrics::{self, LabelSet, MetricLabels, dimension_value};
use voicelake_shared::rows::caps;
use voicelake_shared::{Config, process_batch};

const NOW: i64 = 1_795_446_000_000;

fn one(message: String) -> voicelake_shared::BatchOutput {
    process_batch(&LogBatch::of_messages("/ecs/agent", "s", NOW - 1000, [message]), &Config::default(), NOW)
}

#[test]
fn a_session_with_thousands_of_tool_calls_is_one_capped_row_with_its_true_counts() {
    let calls: Vec<_> = (0..3000).map(|i| json!({"tool": "lookup", "success": i % 4 != 0, "error": "x".repeat(5000)})).collect();
    let line = json!({"_event_type": "session_analytics", "_session_id": "s-1", "tool_calls": calls}).to_string();
    assert!(line.len() > 10_000_000 / 2, "{} bytes", line.len());
    let out = one(line);
    let [s] = out.sessions.as_slice() else { panic!("{:?}", out.stats) };
    assert_eq!((s.tool_calls.len(), s.tool_call_count, s.tool_failure_count), (caps::TOOL_CALLS, 3000, 750));
    assert!(s.tool_calls.iter().all(|c| c.error.as_ref().is_some_and(|e| e.len() == caps::TEXT_BYTES)));
    assert!(s.value_issues.iter().any(|i| i.contains("3000 calls, the first 100 kept")), "{:?}", s.value_issues);
    assert!(s.value_issues.len() <= caps::VALUE_ISSUES);
    assert!(firehose_record(s).len() < MAX_RECORD_BYTES / 4, "{} bytes", firehose_record(s).len());
}

#[test]
fn value_issues_are_capped_and_say_how_many_more() {
    let calls: Vec<_> = (0..500).map(|_| json!({"tool": "t", "duration": -1})).collect();
    let out = one(json!({"_event_type": "session_analytics", "_session_id": "s", "tool_calls": calls}).to_string());
    let issues = &out.sessions[0].value_issues;
    assert_eq!(issues.len(), caps::VALUE_ISSUES);
    assert!(issues.last().unwrap().starts_with("and ") && issues.last().unwrap().ends_with(" more value issues"), "{issues:?}");
}

#[test]
fn dimension_values_are_printable_ascii_and_never_fold_two_names_into_one() {
    for (name, want) in [("support-agent", "support-agent"), ("", "unknown"), ("  ", "unknown")] {
        assert_eq!(dimension_value(name), want);
    }
    let names = ["agent-ü", "agent-é", "客服", "line\nbreak", "tab\there", &"a".repeat(2000)];
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        let v = dimension_value(name);
        assert!(voicelake_shared::invariants::is_dimension_value(&v) && v.len() <= metrics::MAX_DIMENSION_VALUE, "{name:?} → {v:?}");
        assert!(seen.insert(v.into_owned()), "{name:?} folded into another name");
    }
    assert!(dimension_value("agent-ü").starts_with("agent-_~"), "{}", dimension_value("agent-ü"));
}

#[test]
fn undeclared_agents_tenants_models_and_providers_are_published_as_other() {
    let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}-{i}")).collect::<Vec<_>>();
    let lines: Vec<String> = names("agent", 1000)
        .iter()
        .zip(names("tenant", 1000))
        .map(|(agent, tenant)| {
            json!({"_event_type": "voice_metrics", "_session_id": "s", "agent_name": agent, "tenant_id": tenant, "total_latency": 1.0,
                   "llm": {"ttft": 0.4, "model": format!("m-{agent}"), "provider": "p"}, "tts": {"ttfb": 0.2}})
            .to_string()
        })
        .collect();
    // And a thousand made-up providers failing: any line can name one.
    let mut lines = lines;
    lines.extend((0..1000).map(|i| {
        json!({"message": format!("livekit.plugins.made-up-{i}.tts.TTS error, switching to next TTS"), "room": "r",
               "timestamp": "2026-11-23T14:00:00Z"})
        .to_string()
    }));
    let batch = LogBatch::of_messages("/ecs/agent", "s", NOW - 1000, lines);
    let declared = MetricLabels {
        agents: LabelSet::parse("agent-1,agent-2"),
        tenants: LabelSet::parse("tenant-7"),
        models: LabelSet::parse("p/m-agent-1"),
        providers: LabelSet::parse("made-up-3"),
    };
    let config = Config { model_dimension: true, tenant_dimension: true, metric_labels: declared.clone(), ..Config::default() };
    let out = process_batch(&batch, &config, NOW);
    let datums = metrics::datums_for(&out, &config, NOW);
    let distinct: std::collections::BTreeSet<(&str, &Vec<(&str, String)>)> =
        datums.iter().map(|d| (d.metric_name, &d.dimensions)).collect();
    for kind in ["Agent", "Tenant", "Model", "Provider"] {
        let values: std::collections::BTreeSet<&str> =
            datums.iter().flat_map(|d| d.dimensions.iter()).filter(|(n, _)| *n == kind).map(|(_, v)| v.as_str()).collect();
        assert!(values.len() <= 3 && values.contains("other"), "{kind}: {values:?}");
    }
    // The bound: every metric with each declared value and `other`, not a thousand agents.
    assert!(distinct.len() < 60, "{} custom metrics", distinct.len());
    assert!(out.turns.iter().any(|t| t.agent_name == "agent-999"), "the lake keeps the real names");
    // Unbounded, the same batch would create thousands.
    let unbounded = Config { model_dimension: true, tenant_dimension: true, ..Config::default() };
    let all: std::collections::BTreeSet<_> =
        metrics::datums_for(&out, &unbounded, NOW).into_iter().map(|d| (d.metric_name, d.dimensions)).collect();
    assert!(all.len() > 4000, "{}", all.len());
}
