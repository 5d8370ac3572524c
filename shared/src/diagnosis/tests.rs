use super::*;
use crate::alarms::DEFAULTS;

const T: i64 = 1_795_442_400_000; // 2026-11-23T14:00:00Z
const HOUR: i64 = 3_600_000;

fn alarm(id: &str) -> &'static AlarmSpec {
    DEFAULTS.iter().find(|a| a.id == id).unwrap()
}

/// Components as (eou, transcription, ttft, ttfb) p95s.
fn snapshot(window: Window, value: f64, agents: &[(&str, [f64; 4])]) -> Snapshot {
    Snapshot {
        window,
        value: Some(value),
        agents: agents
            .iter()
            .map(|(a, c)| {
                let total = c[0] + c[2] + c[3];
                let components = std::array::from_fn(|k| c.get(k).copied());
                ((*a).to_owned(), AgentSnapshot { value: Some(total), components })
            })
            .collect(),
        cost_by_model: BTreeMap::new(),
    }
}

fn evidence<'a>(alarm: &'a AlarmSpec, breach: Snapshot, baselines: Vec<Snapshot>) -> Evidence<'a> {
    Evidence {
        alarm,
        breach,
        baselines,
        calls: vec![],
        tool_failures: vec![],
        rejects: vec![],
        error_lines: vec![],
        failures: vec![],
        serving: BTreeMap::new(),
        missing: vec![],
    }
}

const NORMAL: [f64; 4] = [500.0, 200.0, 400.0, 300.0];
const WINDOW: Window = Window { start_ms: T, end_ms: T + 300_000 };

#[test]
fn one_component_degraded_for_one_agent_is_named_with_both_numbers() {
    let breach = snapshot(WINDOW, 1900.0, &[("sales", [510.0, 200.0, 410.0, 1100.0]), ("support", [520.0, 210.0, 390.0, 310.0])]);
    let before = snapshot(WINDOW.before(), 1200.0, &[("sales", NORMAL), ("support", NORMAL)]);
    let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![before]));
    assert_eq!((d.component, d.agent.as_deref()), (Some("tts_ttfb"), Some("sales")));
    assert_eq!((d.value_ms, d.baseline_ms, d.against), (Some(1100.0), Some(300.0), Some(Against::Earlier)));
    assert_eq!((d.window_start.as_str(), d.window_end.as_str()), ("2026-11-23T14:00:00.000Z", "2026-11-23T14:05:00.000Z"));
    assert_eq!(d.baseline_start.as_deref(), Some("2026-11-23T13:55:00.000Z"));
    assert!(d.cause.as_deref().unwrap().contains("from 300 ms to 1100 ms"), "{d:?}");
    assert!(d.headline.contains("1900 ms above the 1500 ms threshold") && d.headline.contains("+58%"), "{}", d.headline);
    assert!(d.headline.contains("since 14:00 UTC, agent sales"), "{}", d.headline);
}

#[test]
fn a_slow_retrieval_hook_is_named_as_the_cause() {
    let hook = |mut s: Snapshot, agent: &str, ms: f64| {
        s.agents.get_mut(agent).unwrap().components[4] = Some(ms);
        s
    };
    let breach = hook(snapshot(WINDOW, 2100.0, &[("support", NORMAL), ("sales", NORMAL)]), "support", 950.0);
    let before = hook(snapshot(WINDOW.before(), 1200.0, &[("support", NORMAL), ("sales", NORMAL)]), "support", 120.0);
    let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![before]));
    assert_eq!((d.component, d.agent.as_deref()), (Some("on_user_turn_completed_delay"), Some("support")));
    let cause = d.cause.as_deref().unwrap();
    assert!(cause.contains("on_user_turn_completed hook (retrieval)") && cause.contains("from 120 ms to 950 ms"), "{cause}");
}

#[test]
fn of_two_degraded_components_the_larger_rise_is_the_cause() {
    let breach = snapshot(WINDOW, 2300.0, &[("support", [900.0, 200.0, 1100.0, 300.0]), ("sales", NORMAL)]);
    let before = snapshot(WINDOW.before(), 1200.0, &[("support", NORMAL), ("sales", NORMAL)]);
    let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![before]));
    // EOU rose 400 ms, LLM ttft 700 ms.
    assert_eq!((d.component, d.agent.as_deref()), (Some("llm_ttft"), Some("support")));
}

#[test]
fn a_regression_only_in_the_hour_before_is_skipped_for_the_day_earlier() {
    // The hour before had slow TTS and was itself breaching; against it, TTS looks healthy now
    // and the EOU rise would be hidden behind it.
    let breach = snapshot(WINDOW, 1800.0, &[("support", [1100.0, 200.0, 400.0, 300.0])]);
    let bad_hour = snapshot(WINDOW.before(), 2000.0, &[("support", [1100.0, 200.0, 400.0, 900.0])]);
    let day_before = snapshot(WINDOW.earlier(24 * HOUR), 1200.0, &[("support", NORMAL)]);
    let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach.clone(), vec![bad_hour.clone(), day_before]));
    assert_eq!((d.component, d.value_ms, d.baseline_ms), (Some("eou_delay"), Some(1100.0), Some(500.0)));
    assert_eq!(d.baseline_start.as_deref(), Some("2026-11-22T14:00:00.000Z"));
    // Only the degraded hour to compare with: no healthy baseline, and the diagnosis says so.
    let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![bad_hour]));
    assert_eq!((d.component, d.baseline_ms), (Some("eou_delay"), None));
    assert!(d.cause.unwrap().contains("no healthy baseline"));
    assert!(d.missing.iter().any(|m| m.contains("healthy baseline")));
}

#[test]
fn no_data_gives_a_headline_and_says_what_is_missing() {
    let mut breach = Snapshot::empty(WINDOW);
    breach.value = Some(1700.0);
    let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![Snapshot::empty(WINDOW.before())]));
    assert_eq!((d.component, d.agent.clone(), d.cause.clone()), (None, None, None));
    assert!(d.headline.starts_with("TurnLatencyP95Alarm: turn latency p95 1700 ms above"), "{}", d.headline);
    assert!(d.missing.iter().any(|m| m.contains("component p95s")), "{:?}", d.missing);
    let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), Snapshot::empty(WINDOW), vec![]));
    assert!(d.headline.contains("breached since 14:00 UTC"), "{}", d.headline);
}

#[test]
fn a_component_alarm_is_diagnosed_on_its_own_component() {
    // EOU rose more, but the TTS alarm is about TTS: the agent is the one whose TTS moved.
    let breach = snapshot(WINDOW, 900.0, &[("sales", [1500.0, 200.0, 400.0, 500.0]), ("support", [500.0, 200.0, 400.0, 950.0])]);
    let before = snapshot(WINDOW.before(), 300.0, &[("sales", NORMAL), ("support", NORMAL)]);
    let d = diagnose(&evidence(alarm("TTSTimeToFirstByteP95Alarm"), breach, vec![before]));
    assert_eq!((d.component, d.agent.as_deref(), d.value_ms), (Some("tts_ttfb"), Some("support"), Some(950.0)));
}

#[test]
fn without_a_healthy_window_the_agent_drifting_from_the_others_is_named() {
    let breach = snapshot(
        WINDOW,
        1900.0,
        &[("sales", [520.0, 200.0, 420.0, 1100.0]), ("support", [600.0, 200.0, 450.0, 320.0]), ("booking", [560.0, 200.0, 380.0, 280.0])],
    );
    let d = diagnose(&evidence(alarm("TurnLatencyP95Alarm"), breach, vec![]));
    assert_eq!((d.component, d.agent.as_deref()), (Some("tts_ttfb"), Some("sales")));
    assert_eq!((d.value_ms, d.baseline_ms, d.against), (Some(1100.0), Some(300.0), Some(Against::OtherAgents)));
    assert!(d.cause.unwrap().contains("1100 ms for sales against 300 ms for the other agents"));
}

#[test]
fn worst_calls_are_named_worst_first() {
    let breach = snapshot(WINDOW, 1900.0, &[("sales", NORMAL)]);
    let mut e = evidence(alarm("TurnLatencyP95Alarm"), breach, vec![]);
    e.calls = (0..8)
        .map(|i| Call {
            session_id: format!("s{i}"),
            agent: "sales".into(),
            p95_ms: Some(f64::from(i * 100)),
            cost_usd: Some(f64::from(10 - i)),
            failed_tool_calls: u64::from(i % 3 == 0),
            ..Call::default()
        })
        .collect();
    let d = diagnose(&e);
    assert_eq!(d.worst_sessions, ["s7", "s6", "s5", "s4", "s3"]);
    e.alarm = alarm("CostPerCallAlarm");
    assert_eq!(diagnose(&e).worst_sessions, ["s0", "s1", "s2", "s3", "s4"]);
    e.alarm = alarm("ToolSuccessRateAlarm");
    assert_eq!(diagnose(&e).worst_sessions, ["s0", "s3", "s6"]);
    e.alarm = alarm("RejectedEventsAlarm");
    assert!(diagnose(&e).worst_sessions.is_empty());
}

#[test]
fn cost_tools_and_rejects_name_what_grew() {
    let mut breach = Snapshot::empty(WINDOW);
    breach.value = Some(0.25);
    breach.cost_by_model = [("openai/gpt-4o".to_owned(), 9.0), ("openai/gpt-4o-mini".to_owned(), 1.0)].into();
    let mut before = Snapshot::empty(WINDOW.before());
    before.value = Some(0.05);
    before.cost_by_model = [("openai/gpt-4o".to_owned(), 1.0), ("openai/gpt-4o-mini".to_owned(), 0.9)].into();
    let d = diagnose(&evidence(alarm("CostPerCallAlarm"), breach, vec![before]));
    assert_eq!(d.cost_driver.as_deref(), Some("openai/gpt-4o"));
    assert!(d.cause.unwrap().contains("from $1.0000 to $9.0000"));

    let mut tools = Snapshot::empty(WINDOW);
    tools.value = Some(80.0);
    let mut e = evidence(alarm("ToolSuccessRateAlarm"), tools, vec![]);
    e.tool_failures = vec![
        ToolFailures { tool: "crm_lookup".into(), failures: 2, most_common_error: None },
        ToolFailures { tool: "book_slot".into(), failures: 5, most_common_error: Some("timeout".into()) },
    ];
    let d = diagnose(&e);
    assert_eq!(d.failing_tools[0].tool, "book_slot");
    assert_eq!(d.cause.as_deref(), Some("book_slot failed 5 times, most often with: timeout"));
    assert_eq!((times(1u64), times(2u64)), ("once".to_owned(), "2 times".to_owned()));
    assert!(d.headline.contains("tool success 80.0% below the 95.0% threshold"), "{}", d.headline);

    let mut rejects = Snapshot::empty(WINDOW);
    rejects.value = Some(40.0);
    let mut e = evidence(alarm("RejectedEventsAlarm"), rejects, vec![]);
    e.rejects = vec![
        RejectSample { reason: "malformed_json".into(), count: 30, example: "{\"_event_type\": \"voice_me".into() },
        RejectSample { reason: "bad_timestamp".into(), count: 10, example: "{}".into() },
    ];
    let d = diagnose(&e);
    assert_eq!(d.top_rejects[0].reason, "malformed_json");
    assert!(d.cause.unwrap().starts_with("mostly malformed_json (30 lines), for example: {\"_event_type\""));
}
