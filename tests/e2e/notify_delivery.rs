//! How the notify function delivers: a webhook that answers 500 then 200, never answers, fails on
//! the network (its URL appears nowhere), redirects or is plain http; a message that is not an
//! alarm; the built function under the Lambda runtime API; the failure queue and its replay; the
//! lake's pseudonyms for the agents' own call ids.

use std::time::Duration;

use aws_lambda_events::event::sns::SnsEvent;
use serde_json::Value;
use voicelake_e2e::{Emulator, FAKE_ENV, fixture};
use voicelake_notify::aws::{CloudWatch, Logs, Sns, Ssm};
use voicelake_notify::destination::UrlPolicy;
use voicelake_notify::{Notify, NotifyError, Outcome};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

mod notify_bed;
use notify_bed::{Bed, World, event, latency_world, later, logged};

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
