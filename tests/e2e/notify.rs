//! The notify function end to end: SNS events shaped like CloudWatch's real alarm notifications in,
//! CloudWatch and Logs Insights answered by the SDK's own test rules (moto speaks neither
//! GetMetricData's CBOR nor Insights), SNS and SSM on a moto server, Slack and the generic webhook
//! on local HTTP receivers. Failure paths: the metrics call fails, the Insights query never ends, a
//! webhook answers 500 then 200, a webhook never answers, one fails on the network (its URL appears
//! nowhere), one redirects, one is plain http.

use std::time::Duration;

use aws_lambda_events::event::sns::SnsEvent;
use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryOutput;
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::operation::list_metrics::ListMetricsOutput;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmHistoryItem, ComparisonOperator, Dimension, HistoryItemType, Metric, MetricAlarm, MetricDataResult, StatusCode,
};
use aws_sdk_cloudwatchlogs::operation::get_query_results::GetQueryResultsOutput;
use aws_sdk_cloudwatchlogs::operation::start_query::StartQueryOutput;
use aws_sdk_cloudwatchlogs::operation::stop_query::StopQueryOutput;
use aws_sdk_cloudwatchlogs::types::{QueryStatus, ResultField};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use serde_json::Value;
use voicelake_e2e::{Emulator, FAKE_ENV, Moto, fixture};
use voicelake_notify::aws::{CloudWatch, Logs, Sns, Ssm};
use voicelake_notify::config::{NotifyConfig, Retry};
use voicelake_notify::destination::UrlPolicy;
use voicelake_notify::message::parse_time;
use voicelake_notify::{Notify, NotifyError, Outcome};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOUR: i64 = 3_600_000;
/// The breach window of the fixtures' turn-latency alarm (changed 14:17:32, 3 × 5 min): 14:00–14:15.
const BREACH_START: i64 = 1_795_442_400_000;

/// What CloudWatch and Logs Insights know in a scenario.
#[derive(Clone, Default)]
struct World {
    agents: Vec<&'static str>,
    /// (query id, window start) → value.
    values: Vec<(String, i64, f64)>,
    metrics_fail: bool,
    /// Insights rows, or `None` for a query that never completes.
    rows: Option<Vec<Vec<(&'static str, String)>>>,
    /// (time, new state) of the alarm's history.
    history: Vec<(&'static str, &'static str)>,
    children: Vec<MetricAlarm>,
}

const NORMAL: [f64; 4] = [500.0, 200.0, 400.0, 300.0];

/// Turn latency for `sales` and `support`: sales' TTS went from 300 to 1100 ms in the breach.
fn latency_world() -> World {
    let mut values = vec![
        ("bv".to_owned(), BREACH_START, 1834.0),
        ("hv".into(), BREACH_START - HOUR, 1000.0),
        ("hv".into(), BREACH_START - 25 * HOUR, 980.0),
    ];
    for agent in 0..2 {
        values.push((format!("ba{agent}v"), BREACH_START, if agent == 0 { 2000.0 } else { 1200.0 }));
        for (k, normal) in NORMAL.iter().enumerate() {
            let breach = if agent == 0 && k == 3 { 1100.0 } else { *normal };
            values.push((format!("ba{agent}c{k}"), BREACH_START, breach));
            values.push((format!("ha{agent}c{k}"), BREACH_START - HOUR, *normal));
        }
    }
    let call = |s: &str, agent: &str, p95: f64, ttfb: f64| {
        vec![
            ("session", s.to_owned()),
            ("agent_label", agent.to_owned()),
            ("p95_ms", p95.to_string()),
            ("eou_mean_ms", "480".to_owned()),
            ("ttft_mean_ms", "390".to_owned()),
            ("ttfb_mean_ms", ttfb.to_string()),
            ("turns", "9".to_owned()),
        ]
    };
    World {
        agents: vec!["sales", "support"],
        values,
        rows: Some(vec![
            call("s-101", "sales", 2480.0, 1250.0),
            call("s-102", "sales", 2210.0, 1020.0),
            call("s-207", "support", 1300.0, 310.0),
        ]),
        ..World::default()
    }
}

fn cloudwatch(world: &World) -> aws_sdk_cloudwatch::Client {
    let w = world.clone();
    let list = mock!(aws_sdk_cloudwatch::Client::list_metrics).then_compute_output(move |input| {
        ListMetricsOutput::builder()
            .set_metrics(Some(
                w.agents
                    .iter()
                    .map(|a| {
                        Metric::builder()
                            .namespace(input.namespace().unwrap())
                            .metric_name(input.metric_name().unwrap())
                            .dimensions(Dimension::builder().name("Environment").value("prod").build())
                            .dimensions(Dimension::builder().name("Agent").value(*a).build())
                            .build()
                    })
                    .collect(),
            ))
            .build()
    });
    let w = world.clone();
    let data = if world.metrics_fail {
        mock!(aws_sdk_cloudwatch::Client::get_metric_data).sequence().http_status(500, None).repeatedly().build()
    } else {
        mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_compute_output(move |input| {
            let results = input
                .metric_data_queries()
                .iter()
                .map(|q| {
                    let id = q.id().unwrap();
                    let points: Vec<(i64, f64)> = w.values.iter().filter(|(i, _, _)| i == id).map(|(_, t, v)| (*t, *v)).collect();
                    MetricDataResult::builder()
                        .id(id)
                        .set_timestamps(Some(points.iter().map(|(t, _)| DateTime::from_millis(*t)).collect()))
                        .set_values(Some(points.iter().map(|(_, v)| *v).collect()))
                        .status_code(StatusCode::Complete)
                        .build()
                })
                .collect();
            GetMetricDataOutput::builder().set_metric_data_results(Some(results)).build()
        })
    };
    let w = world.clone();
    let history = mock!(aws_sdk_cloudwatch::Client::describe_alarm_history).then_compute_output(move |input| {
        DescribeAlarmHistoryOutput::builder()
            .set_alarm_history_items(Some(
                w.history
                    .iter()
                    .map(|(at, to)| {
                        AlarmHistoryItem::builder()
                            .alarm_name(input.alarm_name().unwrap())
                            .timestamp(DateTime::from_millis(parse_time(at).unwrap()))
                            .history_item_type(HistoryItemType::StateUpdate)
                            .history_summary(format!("Alarm updated from X to {to}"))
                            .history_data(format!(r#"{{"version":"1.0","newState":{{"stateValue":"{to}"}}}}"#))
                            .build()
                    })
                    .collect(),
            ))
            .build()
    });
    let w = world.clone();
    let alarms = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .then_compute_output(move |_| DescribeAlarmsOutput::builder().set_metric_alarms(Some(w.children.clone())).build());
    mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&list, &data, &history, &alarms], |c| c.retry_config(RetryConfig::disabled()))
}

fn logs(world: &World) -> aws_sdk_cloudwatchlogs::Client {
    let start = mock!(aws_sdk_cloudwatchlogs::Client::start_query).then_output(|| StartQueryOutput::builder().query_id("q-1").build());
    let rows = world.rows.clone();
    let results = mock!(aws_sdk_cloudwatchlogs::Client::get_query_results).then_compute_output(move |_| match &rows {
        Some(rows) => GetQueryResultsOutput::builder()
            .status(QueryStatus::Complete)
            .set_results(Some(
                rows.iter().map(|r| r.iter().map(|(f, v)| ResultField::builder().field(*f).value(v).build()).collect()).collect(),
            ))
            .build(),
        None => GetQueryResultsOutput::builder().status(QueryStatus::Running).build(),
    });
    let stop = mock!(aws_sdk_cloudwatchlogs::Client::stop_query).then_output(|| StopQueryOutput::builder().success(true).build());
    mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&start, &results, &stop])
}

/// Moto with the notification topic (read through a queue) and the two URL parameters, and the
/// two HTTP receivers.
struct Bed {
    _moto: Moto,
    config: aws_config::SdkConfig,
    topic_arn: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    slack: MockServer,
    webhook: MockServer,
}

impl Bed {
    async fn start() -> Bed {
        let moto = Moto::start();
        let config = moto.sdk_config().await;
        let sns = aws_sdk_sns::Client::new(&config);
        let topic_arn = sns.create_topic().name("voicelake-notifications").send().await.unwrap().topic_arn().unwrap().to_owned();
        let (sqs, queue_url) = voicelake_e2e::create_queue(&config, "mailbox").await;
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(queue_arn).send().await.unwrap();
        let slack = MockServer::start().await;
        let webhook = MockServer::start().await;
        let ssm = aws_sdk_ssm::Client::new(&config);
        for (name, url) in [
            ("/voicelake/slack-webhook", format!("{}/services/T0/B0/x", slack.uri())),
            ("/voicelake/webhook", format!("{}/hook", webhook.uri())),
        ] {
            ssm.put_parameter().name(name).value(url).r#type(aws_sdk_ssm::types::ParameterType::SecureString).send().await.unwrap();
        }
        Bed { _moto: moto, config, topic_arn, sqs, queue_url, slack, webhook }
    }

    fn notify(&self, world: &World) -> Notify<CloudWatch, Logs, Ssm, Sns> {
        // The receivers are local stand-ins on plain http.
        self.notify_with(world, UrlPolicy { webhook_hosts: vec![], loopback: true })
    }

    fn notify_with(&self, world: &World, url_policy: UrlPolicy) -> Notify<CloudWatch, Logs, Ssm, Sns> {
        let config = NotifyConfig {
            namespace: "VoiceLake".into(),
            environment: "prod".into(),
            agent_log_groups: vec!["/ecs/voice-agent".into()],
            ingest_log_group: Some("/aws/lambda/voicelake-ingest".into()),
            dashboard: Some("voicelake".into()),
            athena_workgroup: Some("voicelake".into()),
            region: "us-east-1".into(),
            slack_parameter: Some("/voicelake/slack-webhook".into()),
            webhook_parameter: Some("/voicelake/webhook".into()),
            topic_arn: Some(self.topic_arn.clone()),
            flapping_cooldown: Duration::from_secs(1800),
            enrichment_budget: Duration::from_secs(3),
            http_timeout: Duration::from_millis(800),
            retry: Retry { attempts: 3, base: Duration::from_millis(20), cap: Duration::from_millis(100) },
            url_policy,
            pii: voicelake_shared::pii::PiiMode::Hash,
            pseudonym_key: Some(voicelake_shared::pii::PseudonymKey::new(b"the stack's key, 64 random characters").unwrap()),
        };
        Notify::new(
            config,
            CloudWatch(cloudwatch(world)),
            Logs(logs(world)),
            Ssm(aws_sdk_ssm::Client::new(&self.config)),
            Sns(aws_sdk_sns::Client::new(&self.config)),
        )
    }

    async fn set_url(&self, parameter: &str, url: &str) {
        aws_sdk_ssm::Client::new(&self.config)
            .put_parameter()
            .name(parameter)
            .value(url)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }

    async fn receive(&self, server: &MockServer, route: &str, status: u16) {
        Mock::given(method("POST")).and(path(route)).respond_with(ResponseTemplate::new(status).set_body_string("ok")).mount(server).await;
    }

    async fn answer_both(&self) {
        self.receive(&self.slack, "/services/T0/B0/x", 200).await;
        self.receive(&self.webhook, "/hook", 200).await;
    }

    async fn bodies(server: &MockServer) -> Vec<Value> {
        server.received_requests().await.unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
    }

    /// What the email subscribers got: (subject, body) of each message on the topic.
    async fn mail(&self) -> Vec<(String, String)> {
        let out = self.sqs.receive_message().queue_url(&self.queue_url).max_number_of_messages(10).send().await.unwrap();
        out.messages()
            .iter()
            .map(|m| {
                let envelope: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                (envelope["Subject"].as_str().unwrap_or_default().to_owned(), envelope["Message"].as_str().unwrap().to_owned())
            })
            .collect()
    }
}

/// The README shows these renderings of the latency alarm; they must be what the function sends.
/// `VOICELAKE_UPDATE_EXAMPLES=1` rewrites them.
fn examples_are_current(examples: &[(&str, String)]) {
    let dir = voicelake_e2e::repo_root().join("docs/notifications");
    for (name, now) in examples {
        let path = dir.join(name);
        if std::env::var_os("VOICELAKE_UPDATE_EXAMPLES").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, now).unwrap();
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(&kept == now, "{} is not what the function sends; rerun with VOICELAKE_UPDATE_EXAMPLES=1:\n{now}", path.display());
    }
}

fn event(name: &str) -> SnsEvent {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("alarms/{name}"))).unwrap()).unwrap()
}

fn later() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(45)
}

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
async fn a_webhook_that_answers_500_then_200_gets_the_notification_once() {
    let bed = Bed::start().await;
    bed.receive(&bed.slack, "/services/T0/B0/x", 200).await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&bed.webhook)
        .await;
    bed.receive(&bed.webhook, "/hook", 200).await;
    let outcomes = bed.notify(&latency_world()).handle(&event("turn-latency-alarm.json"), later()).await.unwrap();
    assert!(matches!(&outcomes[0], Outcome::Delivered { channels, .. } if channels.contains(&"webhook")));
    assert_eq!(bed.webhook.received_requests().await.unwrap().len(), 2, "one 500, one 200");
    assert_eq!(bed.slack.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_webhook_that_never_answers_fails_the_invocation_after_the_other_channels_delivered() {
    let bed = Bed::start().await;
    bed.receive(&bed.slack, "/services/T0/B0/x", 200).await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&bed.webhook)
        .await;
    let err = bed.notify(&latency_world()).handle(&event("turn-latency-alarm.json"), later()).await.unwrap_err();
    let NotifyError::Delivery { failed } = &err else { panic!("{err}") };
    assert_eq!(failed.iter().map(|(c, _)| *c).collect::<Vec<_>>(), ["webhook"]);
    assert!(err.to_string().contains("3 attempts, last: no answer within 800ms"), "{err}");
    // Lambda retries the failed invocation; Slack and email already have it.
    assert_eq!(bed.slack.received_requests().await.unwrap().len(), 1);
    assert_eq!(bed.mail().await.len(), 1);
}

#[tokio::test]
async fn a_message_that_is_not_an_alarm_is_passed_on_not_dropped() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    let mut e = event("turn-latency-alarm.json");
    e.records[0].sns.message = "hello from a person testing the topic".into();
    e.records[0].sns.subject = Some("just testing".into());
    bed.notify(&World::default()).handle(&e, later()).await.unwrap();
    let hook = &Bed::bodies(&bed.webhook).await[0];
    assert_eq!((hook["alarm"].as_str(), hook["reason"].as_str()), (Some("just testing"), Some("hello from a person testing the topic")));
}

/// The built function under cargo-lambda's runtime emulator: CloudWatch unreachable, so the
/// notification goes out with what the alarm message says and names what it could not gather.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_function_answers_an_alarm_under_the_lambda_runtime_api() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("watch.log");
    let mut env: Vec<(&str, String)> = FAKE_ENV.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.extend([
        ("AWS_ENDPOINT_URL", bed._moto.endpoint.clone()),
        // Nothing listens on the discard port: both enrichment services fail at once.
        ("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9".into()),
        ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "http://127.0.0.1:9".into()),
        ("VOICELAKE_AGENT_LOG_GROUPS", "/ecs/voice-agent".into()),
        ("VOICELAKE_SLACK_WEBHOOK_PARAMETER", "/voicelake/slack-webhook".into()),
        ("VOICELAKE_WEBHOOK_URL_PARAMETER", "/voicelake/webhook".into()),
        ("VOICELAKE_NOTIFICATION_TOPIC", bed.topic_arn.clone()),
        ("VOICELAKE_ALLOW_LOOPBACK_WEBHOOKS", "true".into()),
    ]);
    let emulator = Emulator::start(&voicelake_e2e::workspace_binary("notify"), "notify", &env, &log);
    let event: Value = serde_json::from_str(&std::fs::read_to_string(fixture("alarms/turn-latency-alarm.json")).unwrap()).unwrap();
    let answer = emulator.invoke("notify", &event, dir.path(), &log);
    assert_eq!(answer[0]["delivered"], serde_json::json!(["slack", "webhook", "sns"]), "{answer}");
    let missing = answer[0]["missing"].to_string();
    assert!(missing.contains("GetMetricData") && missing.contains("StartQuery"), "{missing}");
    let slack = &Bed::bodies(&bed.slack).await[0];
    assert!(slack.to_string().contains("1834 ms above the 1200 ms threshold"), "{slack}");
    assert_eq!(bed.mail().await.len(), 1);

    // `voicelake notify test` through the emulator's Lambda Invoke API.
    let lambda = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(voicelake_e2e::REGION))
        .credentials_provider(aws_sdk_sns::config::Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(emulator.endpoint())
        .load()
        .await;
    let answer = voicelake_cli::notify::send_test(&lambda, "notify", "voicelake", voicelake_shared::timefmt::now_ms()).await.unwrap();
    assert_eq!(answer[0]["delivered"], serde_json::json!(["slack", "webhook", "sns"]), "{answer}");
    let test = &Bed::bodies(&bed.webhook).await[1];
    assert_eq!((test["test"].as_bool(), test["title"].as_str()), (Some(true), Some("[test] ALARM: voicelake-turn-latency-p95")));
}

/// Runs the notify handler in place of the deployed function, for `voicelake dlq replay`.
struct InProcess<'a>(&'a Notify<CloudWatch, Logs, Ssm, Sns>);

impl voicelake_cli::dlq::Invoker for InProcess<'_> {
    async fn invoke(&self, payload: &Value) -> Result<Value, String> {
        let event: SnsEvent = serde_json::from_value(payload.clone()).map_err(|e| e.to_string())?;
        self.0.handle(&event, later()).await.map(|o| voicelake_notify::summary(&o)).map_err(|e| e.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_that_fails_every_retry_is_kept_in_the_failure_queue_and_replayed() {
    let bed = Bed::start().await;
    bed.receive(&bed.slack, "/services/T0/B0/x", 503).await;
    bed.receive(&bed.webhook, "/hook", 200).await;
    let (sqs, queue_url) = voicelake_e2e::create_queue(&bed.config, "notify-failures").await;
    let lambda = voicelake_e2e::AsyncInvocation { sqs: sqs.clone(), queue_url: queue_url.clone(), max_retries: 2 };
    let notify = bed.notify(&latency_world());
    let payload = serde_json::to_value(event("turn-latency-alarm.json")).unwrap();
    let function = InProcess(&notify);
    let outcome = lambda.invoke(&payload, || voicelake_cli::dlq::Invoker::invoke(&function, &payload)).await;
    assert_eq!(outcome, voicelake_e2e::AsyncOutcome::Queued);
    // Three invocations, three attempts each.
    assert_eq!(bed.slack.received_requests().await.unwrap().len(), 9);

    // Slack is back: the replay delivers the kept alarm and empties the queue.
    bed.slack.reset().await;
    bed.receive(&bed.slack, "/services/T0/B0/x", 200).await;
    let queue = voicelake_cli::dlq::SqsQueue::new(sqs.clone(), &queue_url, 30);
    let summary = voicelake_cli::dlq::redrive(&queue, &function, 10).await.unwrap();
    assert_eq!((summary.received, summary.replayed), (1, 1), "{summary:?}");
    let slack = &Bed::bodies(&bed.slack).await[0];
    assert!(slack.to_string().contains("TTS time to first byte p95 rose from 300 ms to 1100 ms"));
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

/// What the function logs while `fut` runs, as its JSON log lines, at the level it logs at when
/// deployed (INFO).
async fn logged<T>(fut: impl std::future::Future<Output = T>) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().json().with_max_level(tracing::Level::INFO).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let out = fut.await;
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[tokio::test]
async fn a_webhook_that_fails_on_the_network_fails_without_its_url_anywhere() {
    let bed = Bed::start().await;
    bed.receive(&bed.slack, "/services/T0/B0/x", 200).await;
    // Nothing listens on the discard port: the connection is refused on every attempt.
    bed.set_url("/voicelake/webhook", "http://127.0.0.1:9/hooks/T0SECRETPATH?token=s3cr3t-token").await;
    let notify = bed.notify(&latency_world());
    let (result, logs) = logged(notify.handle(&event("turn-latency-alarm.json"), later())).await;
    let err = result.unwrap_err();
    let NotifyError::Delivery { failed } = &err else { panic!("{err}") };
    assert_eq!(failed.iter().map(|(c, _)| *c).collect::<Vec<_>>(), ["webhook"]);
    let message = err.to_string();
    assert!(message.contains("3 attempts, last:"), "{message}");
    assert!(logs.contains("delivery failed after retries"), "{logs}");
    // The error is the invocation's error: the function's log, Lambda's error message and so the
    // failure queue's body.
    for text in [&message, &logs] {
        for secret in ["T0SECRETPATH", "s3cr3t-token", "127.0.0.1:9", "/hooks/"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[tokio::test]
async fn a_webhook_that_redirects_is_not_followed_and_not_retried() {
    let bed = Bed::start().await;
    bed.receive(&bed.slack, "/services/T0/B0/x", 200).await;
    bed.receive(&bed.slack, "/stolen", 200).await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", format!("{}/stolen", bed.slack.uri())))
        .mount(&bed.webhook)
        .await;
    let err = bed.notify(&latency_world()).handle(&event("turn-latency-alarm.json"), later()).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 307 Temporary Redirect: redirects are not followed"), "{err}");
    assert_eq!(bed.webhook.received_requests().await.unwrap().len(), 1, "a redirect is not retried");
    let slack_paths: Vec<String> = bed.slack.received_requests().await.unwrap().iter().map(|r| r.url.path().to_owned()).collect();
    assert_eq!(slack_paths, ["/services/T0/B0/x"], "nothing reached the redirect's target");
}

#[tokio::test]
async fn plain_http_a_foreign_slack_host_and_private_addresses_are_refused_before_any_request() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    // As deployed: no loopback stand-ins.
    let notify = bed.notify_with(&latency_world(), UrlPolicy::default());
    let err = notify.handle(&event("turn-latency-alarm.json"), later()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("slack: refused: the URL is not https") && text.contains("webhook: refused: the URL is not https"), "{text}");
    assert_eq!(bed.slack.received_requests().await.unwrap().len() + bed.webhook.received_requests().await.unwrap().len(), 0);
    assert_eq!(bed.mail().await.len(), 1, "email still goes out");

    bed.set_url("/voicelake/slack-webhook", "https://hooks.slack.com.attacker.example/services/T0/B0/x").await;
    bed.set_url("/voicelake/webhook", "https://169.254.169.254/latest/meta-data/").await;
    let text = notify.handle(&event("turn-latency-alarm.json"), later()).await.unwrap_err().to_string();
    assert!(text.contains("slack: refused: a Slack webhook must be on hooks.slack.com"), "{text}");
    assert!(text.contains("webhook: refused: the host is a private, loopback, link-local or reserved address"), "{text}");
    assert!(!text.contains("attacker") && !text.contains("169.254"), "{text}");

    // A name that resolves to loopback is refused when the connection is made.
    bed.set_url("/voicelake/webhook", "https://localhost:1/hook").await;
    let text = notify.handle(&event("turn-latency-alarm.json"), later()).await.unwrap_err().to_string();
    assert!(text.contains("resolves only to private, loopback"), "{text}");
}

/// A worst call from the agents' own logs whose id carries the caller's number is shown with the
/// pseudonym the lake has for it (same mode, same key), never the number.
#[tokio::test]
async fn worst_call_ids_from_the_agents_logs_get_the_lakes_pseudonyms() {
    let bed = Bed::start().await;
    bed.answer_both().await;
    let mut world = latency_world();
    let rows = world.rows.as_mut().unwrap();
    rows[0].retain(|(k, _)| *k != "session");
    rows[0].push(("session", "call-_+15105550123_aBc1".into()));
    let notify = bed.notify(&world);
    notify.handle(&event("turn-latency-alarm.json"), later()).await.unwrap();
    let slack = Bed::bodies(&bed.slack).await[0].to_string();
    let hook = Bed::bodies(&bed.webhook).await[0].to_string();
    let (_, mail) = bed.mail().await.remove(0);
    // What the ingest function writes to the lake for a line of that call, under the same key.
    let line = serde_json::json!({"_event_type": "voice_metrics", "_session_id": "call-_+15105550123_aBc1",
        "_timestamp": "2026-11-23T14:05:00Z", "agent_name": "sales", "speech_id": "speech_1", "total_latency": 2.4});
    let batch = voicelake_shared::envelope::LogBatch::of_messages("/ecs/voice-agent", "s", 1_795_442_700_000, vec![line.to_string()]);
    let config = voicelake_shared::Config { pseudonym_key: notify.config.pseudonym_key.clone(), ..Default::default() };
    let lake_id = voicelake_shared::process_batch(&batch, &config, 1_795_442_700_000).turns[0].session_id.clone().unwrap();
    assert!(lake_id.starts_with("call-_phone:"), "{lake_id}");
    for text in [&slack, &hook, &mail] {
        assert!(!text.contains("5105550123"), "{text}");
        assert!(text.contains(&lake_id), "{lake_id} in {text}");
    }
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
