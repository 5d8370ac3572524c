//! The notify function end to end: SNS events shaped like CloudWatch's real alarm notifications in,
//! CloudWatch and Logs Insights answered by the SDK's own test rules (moto speaks neither
//! GetMetricData's CBOR nor Insights), SNS and SSM on a moto server, Slack and the generic webhook
//! on local HTTP receivers. Failure paths: the metrics call fails, the Insights query never ends, a
//! webhook answers 500 then 200, a webhook never answers, one fails on the network (its URL appears
//! nowhere), one redirects, one is plain http.

use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{ComparisonOperator, MetricAlarm};
use serde_json::Value;
use voicelake_notify::Outcome;
use voicelake_notify::message::parse_time;

mod notify_bed;
use notify_bed::{BREACH_START, Bed, HOUR, World, event, examples_are_current, latency_world, later};

#[tokio::test]
async fn a_latency_alarm_names_the_component_the_agent_and_the_calls_on_every_channel() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    let world = latency_world();
    let outcomes = bed.notify(&world).handle(&event("turn-latency-alarm.json"), later()).await.unwrap();
    let Outcome::Delivered { channels, notification } = &outcomes[0] else { panic!("{outcomes:?}") };
    assert_eq!(channels, &["slack", "webhook", "sns"]);
    assert!(notification.missing.is_empty(), "{:?}", notification.missing);

    let hook = &Bed::bodies(&bed.webhook).await[0];
    let d = &hook["diagnosis"];
    assert_eq!((d["component"].as_str(), d["agent"].as_str()), (Some("tts_ttfb"), Some("sales")));
    assert_eq!((d["value_ms"].as_f64(), d["baseline_ms"].as_f64()), (Some(1100.0), Some(300.0)));
    assert_eq!(
        (d["window_start"].as_str(), d["window_end"].as_str()),
        (Some("2026-11-23T14:00:00.000Z"), Some("2026-11-23T14:15:00.000Z"))
    );
    assert_eq!(d["worst_sessions"], serde_json::json!(["s-101", "s-102", "s-207"]));
    assert_eq!(d["worst_calls"][0]["dominant_component"], "tts_ttfb");
    assert_eq!((hook["state"].as_str(), hook["previous_state"].as_str(), hook["version"].as_i64()), (Some("ALARM"), Some("OK"), Some(1)));
    // The headline compares with the deployed threshold (1200 ms, not the default) and the baseline.
    let headline = hook["headline"].as_str().unwrap();
    assert!(headline.contains("1834 ms above the 1200 ms threshold") && headline.contains("+83%"), "{headline}");
    let insights = hook["links"]["insights"].as_str().unwrap();
    assert!(
        insights.contains("end~'2026-11-23T14*3a15*3a00.000Z~start~'2026-11-23T14*3a00*3a00.000Z")
            && insights.contains("pct*28latency_ms*2c*2095*29*20as*20p95_ms"),
        "{insights}"
    );

    let slack = &Bed::bodies(&bed.slack).await[0];
    let text = slack.to_string();
    assert!(text.contains("TTS time to first byte p95 rose from 300 ms to 1100 ms (+800 ms) for sales"), "{text}");
    assert!(text.contains("s-101 (sales): p95 2480 ms, mostly TTS time to first byte"), "{text}");
    assert_eq!(slack["blocks"][0]["type"], "header");
    let buttons = slack["blocks"].as_array().unwrap().last().unwrap();
    assert_eq!(buttons["type"], "actions");
    assert_eq!(buttons["elements"].as_array().unwrap().len(), 4);

    let mail = bed.mail().await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].0, "ALARM: voicelake-turn-latency-p95");
    examples_are_current(&[
        ("slack.json", serde_json::to_string_pretty(slack).unwrap() + "\n"),
        ("webhook.json", serde_json::to_string_pretty(hook).unwrap() + "\n"),
        ("email.txt", format!("Subject: {}\n\n{}\n", mail[0].0, mail[0].1)),
    ]);
    assert!(mail[0].1.contains("Component: TTS time to first byte 1100 ms (baseline 300 ms)\nAgent: sales"), "{}", mail[0].1);
}

#[tokio::test]
async fn a_metric_math_alarm_names_the_failing_tool_and_its_error() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    let world = World {
        agents: vec!["booking"],
        values: vec![("bv".into(), BREACH_START, 81.25), ("hv".into(), BREACH_START - HOUR, 99.0), ("ba0v".into(), BREACH_START, 81.25)],
        rows: Some(vec![
            vec![("failed_tool", "book_slot".into()), ("failure", "timeout after 5s".into()), ("failures", "5".into())],
            vec![("failed_tool", "book_slot".into()), ("failure", "409".into()), ("failures", "1".into())],
        ]),
        ..World::default()
    };
    bed.notify(&world).handle(&event("tool-success-alarm.json"), later()).await.unwrap();
    let hook = &Bed::bodies(&bed.webhook).await[0];
    assert_eq!(hook["cause"], "book_slot failed 6 times, most often with: timeout after 5s");
    assert_eq!(hook["diagnosis"]["agent"], "booking");
    assert!(hook["headline"].as_str().unwrap().contains("tool success 81.2% below the 95.0% threshold"), "{}", hook["headline"]);
}

#[tokio::test]
async fn a_composite_alarm_is_diagnosed_through_the_child_that_fired() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    let mut world = latency_world();
    world.children = vec![
        MetricAlarm::builder()
            .alarm_name("voicelake-turn-latency-p95")
            .metric_name("TurnLatency")
            .namespace("VoiceLake")
            .extended_statistic("p95")
            .period(300)
            .evaluation_periods(3)
            .datapoints_to_alarm(2)
            .threshold(1200.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .state_updated_timestamp(DateTime::from_millis(parse_time("2026-11-23T14:17:32.123+0000").unwrap()))
            .build(),
    ];
    bed.notify(&world).handle(&event("paging-composite-alarm.json"), later()).await.unwrap();
    let hook = &Bed::bodies(&bed.webhook).await[0];
    assert_eq!(hook["alarm"], "voicelake-paging");
    assert_eq!(hook["triggered_by"], serde_json::json!(["voicelake-turn-latency-p95"]));
    assert_eq!(hook["diagnosis"]["component"], "tts_ttfb");
    assert!(
        hook["headline"].as_str().unwrap().starts_with("voicelake-paging: TurnLatencyP95Alarm: turn latency p95 1834 ms"),
        "{}",
        hook["headline"]
    );
}

#[tokio::test]
async fn ok_says_how_long_the_alarm_lasted_and_a_flapping_alarm_is_condensed() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    let world =
        World { history: vec![("2026-11-23T14:17:32.123+0000", "ALARM"), ("2026-11-23T15:12:01.500+0000", "OK")], ..World::default() };
    bed.notify(&world).handle(&event("turn-latency-ok.json"), later()).await.unwrap();
    let hook = &Bed::bodies(&bed.webhook).await[0];
    assert_eq!(hook["lasted_seconds"], 3269);
    assert_eq!(hook["headline"], "voicelake-turn-latency-p95 is OK again after 54 min in ALARM.");
    assert!(bed.mail().await[0].1.contains("The alarm lasted 54 min."));

    // In, out and in again within the cooldown: one condensed message.
    let flapping = World {
        history: vec![
            ("2026-11-23T14:05:00.000+0000", "ALARM"),
            ("2026-11-23T14:11:00.000+0000", "OK"),
            ("2026-11-23T14:17:32.123+0000", "ALARM"),
        ],
        ..latency_world()
    };
    bed.notify(&flapping).handle(&event("turn-latency-alarm.json"), later()).await.unwrap();
    let hook = &Bed::bodies(&bed.webhook).await[1];
    assert_eq!(hook["title"], "FLAPPING: voicelake-turn-latency-p95");
    assert_eq!(hook["flapping"]["transitions"], 3);
    // A fourth change within the cooldown is held: nothing more is sent.
    let mut held = flapping.clone();
    held.history.insert(0, ("2026-11-23T14:01:00.000+0000", "OK"));
    let outcomes = bed.notify(&held).handle(&event("turn-latency-alarm.json"), later()).await.unwrap();
    assert_eq!(outcomes, [Outcome::Held]);
    assert_eq!(Bed::bodies(&bed.webhook).await.len(), 2);

    // A new alarm's first evaluation after a deploy (INSUFFICIENT_DATA to OK) is not news.
    let mut first = event("turn-latency-ok.json");
    let message = &mut first.records[0].sns.message;
    *message = message.replace(r#""OldStateValue": "ALARM""#, r#""OldStateValue": "INSUFFICIENT_DATA""#);
    assert!(message.contains("INSUFFICIENT_DATA"));
    let outcomes = bed.notify(&World::default()).handle(&first, later()).await.unwrap();
    assert_eq!(outcomes, [Outcome::NotNews]);
    assert_eq!(Bed::bodies(&bed.webhook).await.len(), 2, "nothing sent");
}

#[tokio::test]
async fn when_metrics_fail_and_insights_never_finishes_the_notification_goes_out_saying_so() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    let world = World { agents: vec!["sales"], metrics_fail: true, rows: None, ..World::default() };
    let started = std::time::Instant::now();
    bed.notify(&world).handle(&event("turn-latency-alarm.json"), later()).await.unwrap();
    // The enrichment budget is 3 s; a poll may start just before it runs out.
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let hook = &Bed::bodies(&bed.webhook).await[0];
    let missing = hook["missing"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect::<Vec<_>>().join(" | ");
    assert!(missing.contains("metric series (GetMetricData)"), "{missing}");
    assert!(
        missing.contains("worst calls (Logs Insights) (GetQueryResults: still running when the enrichment budget ran out; stopped)"),
        "{missing}"
    );
    // What CloudWatch quoted in its reason still makes the headline.
    assert!(hook["headline"].as_str().unwrap().contains("1834 ms above the 1200 ms threshold"), "{}", hook["headline"]);
    let mail = bed.mail().await;
    assert!(mail[0].1.contains("Not known (enrichment failed or ran out of time): "), "{}", mail[0].1);
}

#[tokio::test]
async fn a_cost_alarm_says_what_the_metrics_cannot_tell_and_runs_no_query() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    let mut e = event("turn-latency-alarm.json");
    let mut message: Value = serde_json::from_str(&e.records[0].sns.message).unwrap();
    message["AlarmName"] = "voicelake-cost-per-call".into();
    message["Trigger"] = serde_json::json!({
        "MetricName": "CallCost", "Namespace": "VoiceLake", "StatisticType": "Statistic", "Statistic": "AVERAGE",
        "Dimensions": [{"value": "prod", "name": "Environment"}], "Period": 3600, "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1, "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0.2, "TreatMissingData": "notBreaching"
    });
    e.records[0].sns.message = message.to_string();
    // Changed at 14:17: the hour 13:00–14:00. An Insights query would never finish here.
    let world = World { agents: vec!["sales"], values: vec![("bv".into(), BREACH_START - HOUR, 0.31)], rows: None, ..World::default() };
    let started = std::time::Instant::now();
    bed.notify(&world).handle(&e, later()).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "no query waited on: {:?}", started.elapsed());
    let hook = &Bed::bodies(&bed.webhook).await[0];
    assert!(
        hook["headline"].as_str().unwrap().contains("cost per call, average $0.3100 above the $0.2000 threshold"),
        "{}",
        hook["headline"]
    );
    let missing = hook["missing"].to_string();
    assert!(missing.contains("cost_by_model") && !missing.contains("Logs Insights"), "{missing}");
    assert!(hook["links"]["insights"].as_str().unwrap().contains("end~'2026-11-23T14*3a00*3a00.000Z~start~'2026-11-23T13*3a00*3a00.000Z"));
}

/// A provider alarm is a Metrics Insights query over `{Environment, Kind, Provider}`: the function
/// reads LiveKit's failure lines of the window as the ingest function reads them and names the
/// kind, provider, agent, since when, the error classes and the calls it closed.
#[tokio::test]
async fn a_provider_alarm_names_the_kind_provider_agent_and_closed_calls_on_every_channel() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    // The breach: the 14:00 and 14:05 periods (changed 14:10:32, 2 × 5 min). Insights answers
    // with the raw lines, as LiveKit's JSON formatter wrote them.
    let line = |at: &str, message: &str, room: &str, label: bool| {
        let mut json = serde_json::json!({"message": message, "level": "WARNING", "name": "livekit.agents", "room": room,
            "agent_name": "sales-agent", "timestamp": format!("2026-11-23T{at}+00:00")});
        if label {
            json["tts"] = "livekit.plugins.cartesia.tts.TTS".into();
        }
        vec![
            ("@timestamp", format!("2026-11-23 {at}")),
            ("@message", json.to_string()),
            ("@log", "123456789012:/ecs/sales-agent".to_owned()),
            ("@logStream", format!("sales-agent/{room}")),
        ]
    };
    let retry =
        "failed to synthesize speech: message='Service Unavailable', status_code=503, retryable=True, request_id=req_1, retrying in 0.1s";
    let switch = "livekit.plugins.cartesia.tts.TTS error, switching to next TTS";
    let close = "AgentSession is closing due to unrecoverable error: message='Service Unavailable', status_code=503, retryable=True";
    let mut rows = Vec::new();
    for (i, room) in ["call-1", "call-2", "call-3", "call-4"].iter().enumerate() {
        rows.push(line(&format!("14:0{}:10.000", i + 1), retry, room, true));
        rows.push(line(&format!("14:0{}:12.000", i + 1), retry, room, true));
        rows.push(line(&format!("14:0{}:13.000", i + 1), switch, room, false));
    }
    rows.push(line("14:06:14.000", close, "call-3", false));
    let world = World {
        agents: vec!["sales-agent"],
        values: vec![("bv".into(), BREACH_START, 13.0), ("ba0v".into(), BREACH_START, 13.0), ("hv".into(), BREACH_START - HOUR, 0.0)],
        rows: Some(rows),
        ..World::default()
    };
    let outcomes = bed.notify(&world).handle(&event("provider-failures-alarm.json"), later()).await.unwrap();
    let Outcome::Delivered { channels, notification } = &outcomes[0] else { panic!("{outcomes:?}") };
    assert_eq!(channels, &["slack", "webhook", "sns"]);
    assert!(notification.missing.is_empty(), "{:?}", notification.missing);

    let hook = &Bed::bodies(&bed.webhook).await[0];
    let d = &hook["diagnosis"];
    assert_eq!((d["kind"].as_str(), d["provider"].as_str(), d["agent"].as_str()), (Some("tts"), Some("cartesia"), Some("sales-agent")));
    assert_eq!(d["since"], "2026-11-23T14:01:10.000Z");
    assert_eq!(d["error_classes"], serde_json::json!([["http_503", 9]]));
    assert_eq!(d["sessions_closed"], 1);
    assert_eq!(d["worst_sessions"], serde_json::json!(["call-3", "call-1", "call-2", "call-4"]), "the closed call first");
    assert_eq!(
        (d["window_start"].as_str(), d["window_end"].as_str()),
        (Some("2026-11-23T14:00:00.000Z"), Some("2026-11-23T14:10:00.000Z"))
    );
    let cause = hook["cause"].as_str().unwrap();
    assert!(cause.starts_with("tts cartesia failed 13 times for sales-agent since 14:01 UTC (http_503 ×9)"), "{cause}");
    assert!(cause.contains("1 call closed by the error"), "{cause}");
    let insights = hook["links"]["insights"].as_str().unwrap();
    assert!(insights.contains("switching*20to*20next"), "the link runs the failure lines' query: {insights}");

    let slack = Bed::bodies(&bed.slack).await[0].to_string();
    assert!(
        slack.contains("*Provider*\\ntts cartesia failing since 2026-11-23T14:01:10.000Z; http_503 ×9; 1 closed by the error"),
        "{slack}"
    );
    assert!(slack.contains("*Calls hit (closed first)*\\ncall-3, call-1, call-2, call-4"), "{slack}");
    let mail = bed.mail().await;
    assert_eq!(mail[0].0, "ALARM: voicelake-provider-failures");
    assert!(
        mail[0].1.contains(
            "Provider: tts cartesia failing since 2026-11-23T14:01:10.000Z; http_503 ×9; 1 closed by the error\nAgent: sales-agent"
        ),
        "{}",
        mail[0].1
    );
    examples_are_current(&[("provider-outage-email.txt", format!("Subject: {}\n\n{}\n", mail[0].0, mail[0].1))]);
}
