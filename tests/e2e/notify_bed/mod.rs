//! What the notify tests share: the CloudWatch and Logs Insights a scenario knows (the SDK's own
//! test rules), and the bed of moto (SNS, SSM) and the HTTP receivers the notification goes to.

#![allow(dead_code)]

use std::time::Duration;

use aws_lambda_events::event::sns::SnsEvent;
use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryOutput;
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::operation::list_metrics::ListMetricsOutput;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{AlarmHistoryItem, Dimension, HistoryItemType, Metric, MetricAlarm, MetricDataResult, StatusCode};
use aws_sdk_cloudwatchlogs::operation::get_query_results::GetQueryResultsOutput;
use aws_sdk_cloudwatchlogs::operation::start_query::StartQueryOutput;
use aws_sdk_cloudwatchlogs::operation::stop_query::StopQueryOutput;
use aws_sdk_cloudwatchlogs::types::{QueryStatus, ResultField};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use serde_json::Value;
use voicelake_e2e::{Moto, fixture};
use voicelake_notify::Notify;
use voicelake_notify::aws::{CloudWatch, Logs, Sns, Ssm};
use voicelake_notify::config::{NotifyConfig, Retry};
use voicelake_notify::destination::UrlPolicy;
use voicelake_notify::message::parse_time;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const HOUR: i64 = 3_600_000;
/// The breach window of the fixtures' turn-latency alarm (changed 14:17:32, 3 × 5 min): 14:00–14:15.
pub const BREACH_START: i64 = 1_795_442_400_000;

/// What CloudWatch and Logs Insights know in a scenario.
#[derive(Clone, Default)]
pub struct World {
    pub agents: Vec<&'static str>,
    /// (query id, window start) → value.
    pub values: Vec<(String, i64, f64)>,
    pub metrics_fail: bool,
    /// Insights rows, or `None` for a query that never completes.
    pub rows: Option<Vec<Vec<(&'static str, String)>>>,
    /// (time, new state) of the alarm's history.
    pub history: Vec<(&'static str, &'static str)>,
    pub children: Vec<MetricAlarm>,
}

pub const NORMAL: [f64; 4] = [500.0, 200.0, 400.0, 300.0];

/// Turn latency for `sales` and `support`: sales' TTS went from 300 to 1100 ms in the breach.
pub fn latency_world() -> World {
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

pub fn cloudwatch(world: &World) -> aws_sdk_cloudwatch::Client {
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

pub fn logs(world: &World) -> aws_sdk_cloudwatchlogs::Client {
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
pub struct Bed {
    pub _moto: Moto,
    pub config: aws_config::SdkConfig,
    pub topic_arn: String,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub slack: MockServer,
    pub webhook: MockServer,
}

impl Bed {
    pub async fn start() -> Bed {
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

    pub fn notify(&self, world: &World) -> Notify<CloudWatch, Logs, Ssm, Sns> {
        // The receivers are local stand-ins on plain http.
        self.notify_with(world, UrlPolicy { webhook_hosts: vec![], loopback: true })
    }

    pub fn notify_with(&self, world: &World, url_policy: UrlPolicy) -> Notify<CloudWatch, Logs, Ssm, Sns> {
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

    pub async fn set_url(&self, parameter: &str, url: &str) {
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

    pub async fn receive(&self, server: &MockServer, route: &str, status: u16) {
        Mock::given(method("POST")).and(path(route)).respond_with(ResponseTemplate::new(status).set_body_string("ok")).mount(server).await;
    }

    pub async fn answer_both(&self) {
        self.receive(&self.slack, "/services/T0/B0/x", 200).await;
        self.receive(&self.webhook, "/hook", 200).await;
    }

    pub async fn bodies(server: &MockServer) -> Vec<Value> {
        server.received_requests().await.unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
    }

    /// What the email subscribers got: (subject, body) of each message on the topic.
    pub async fn mail(&self) -> Vec<(String, String)> {
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
pub fn examples_are_current(examples: &[(&str, String)]) {
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

pub fn event(name: &str) -> SnsEvent {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("alarms/{name}"))).unwrap()).unwrap()
}

pub fn later() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(45)
}

/// What the function logs while `fut` runs, as its JSON log lines, at the level it logs at when
/// deployed (INFO).
pub async fn logged<T>(fut: impl std::future::Future<Output = T>) -> (T, String) {
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
