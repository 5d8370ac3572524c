//! The sinks over the SDK's own test rules (`aws-smithy-mocks`), for what a local server cannot do:
//! CloudWatch's CBOR protocol, throttling, and Firehose's partial failures.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use voicelake_shared::timefmt::now_ms;

use aws_sdk_cloudwatch::config::retry::RetryConfig;
use aws_sdk_cloudwatch::operation::put_metric_data::{PutMetricDataInput, PutMetricDataOutput};
use aws_sdk_firehose::operation::put_record_batch::{PutRecordBatchInput, PutRecordBatchOutput};
use aws_sdk_firehose::types::PutRecordBatchResponseEntry;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use serde_json::Value;
use voicelake_ingest::aws::{CloudWatchMetrics, FirehoseRecords, to_sdk_datum};
use voicelake_ingest::config::{IngestConfig, RetryPolicy, Streams};
use voicelake_ingest::sinks::{BatchAnswer, RecordSink, SendError};
use voicelake_ingest::{Ingest, deliver};
use voicelake_shared::envelope;
use voicelake_shared::metrics::{self, Datum, Unit};
use voicelake_shared::{Config, process_event};
use voicelake_synth as synth;

const FAST: RetryPolicy = RetryPolicy { attempts: 4, base: Duration::from_millis(1), cap: Duration::from_millis(5) };

fn later() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(60)
}

fn config() -> IngestConfig {
    IngestConfig {
        pipeline: Config { environment: "test".into(), ..Config::default() },
        namespace: "VoiceLakeTest".into(),
        streams: Streams { turns: "t".into(), sessions: "s".into(), rejects: "r".into(), errors: "e".into() },
        retry: FAST,
    }
}

/// A payload of about 1 MB of events from the last hour.
fn big_payload(now: i64) -> Value {
    let mut batch = synth::batch_of_size(1 << 20, 5);
    let shift = now - 1_800_000 - batch.log_events[0].timestamp;
    for e in &mut batch.log_events {
        e.timestamp += shift;
    }
    serde_json::to_value(envelope::subscription_event(&batch)).unwrap()
}

/// (stream, record) pairs as sent.
type Sent = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Takes every record, keeping them.
#[derive(Default, Clone)]
struct Accept(Sent);
impl RecordSink for Accept {
    async fn put_record_batch(&self, stream: &str, records: &[Vec<u8>]) -> Result<BatchAnswer, SendError> {
        self.0.lock().unwrap().extend(records.iter().map(|r| (stream.to_owned(), r.clone())));
        Ok(BatchAnswer::default())
    }
}

#[test]
fn the_sdk_datum_is_exactly_the_computed_one() {
    let d = Datum {
        metric_name: "TurnLatency",
        unit: Unit::Milliseconds,
        dimensions: vec![("Environment", "prod".into()), ("Agent", "a".into())],
        timestamp_ms: 1_795_442_400_000,
        values: vec![900.0, 901.0],
        counts: vec![2.0, 1.0],
    };
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
    let expected = MetricDatum::builder()
        .metric_name("TurnLatency")
        .dimensions(Dimension::builder().name("Environment").value("prod").build())
        .dimensions(Dimension::builder().name("Agent").value("a").build())
        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_millis(1_795_442_400_000))
        .values(900.0)
        .values(901.0)
        .counts(2.0)
        .counts(1.0)
        .unit(StandardUnit::Milliseconds)
        .storage_resolution(60)
        .build();
    assert_eq!(to_sdk_datum(&d), expected);
}

#[tokio::test]
async fn put_metric_data_requests_hold_every_datum_within_the_limits() {
    let seen: Arc<Mutex<Vec<PutMetricDataInput>>> = Default::default();
    let keep = seen.clone();
    let rule = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
        .match_requests(move |input| {
            keep.lock().unwrap().push(input.clone());
            true
        })
        .then_output(|| PutMetricDataOutput::builder().build());
    let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
    let records = Accept::default();
    let ingest = Ingest::new(config(), CloudWatchMetrics::new(cloudwatch), records.clone());
    let now = now_ms();
    let payload = big_payload(now);
    let summary = ingest.handle(&payload, now).await.unwrap();

    let out = process_event(&payload, &config().pipeline, now);
    let expected: Vec<Datum> = metrics::datums_for(&out, &config().pipeline, now);
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len() as u64, summary.metrics.requests);
    assert_eq!(requests.len(), metrics::split_requests(expected.clone()).len());
    let sent: Vec<_> = requests.iter().flat_map(|r| r.metric_data().to_vec()).collect();
    assert_eq!(sent, expected.iter().map(to_sdk_datum).collect::<Vec<_>>(), "every datum, in order, nothing else");
    for r in &requests {
        assert_eq!(r.namespace(), Some("VoiceLakeTest"));
        assert!(r.metric_data().len() <= metrics::MAX_DATUMS_PER_REQUEST);
        assert!(r.metric_data().iter().all(|d| d.values().len() <= metrics::MAX_VALUES_PER_DATUM));
    }
    let latency_samples: f64 =
        sent.iter().filter(|d| d.metric_name() == Some("TurnLatency") && d.dimensions().len() == 1).flat_map(|d| d.counts().to_vec()).sum();
    assert_eq!(latency_samples, out.stats.turns as f64, "one sample per complete turn");
    assert_eq!(records.0.lock().unwrap().len(), out.turns.len() + out.sessions.len() + out.rejects.len() + out.errors.len());
}

#[tokio::test]
async fn throttled_put_metric_data_is_retried_by_the_sdk() {
    let rule = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
        .sequence()
        .http_status(503, None)
        .times(2)
        .output(|| PutMetricDataOutput::builder().build())
        .repeatedly()
        .build();
    let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, [&rule], |c| c
        .retry_config(RetryConfig::standard().with_max_attempts(4).with_initial_backoff(Duration::from_millis(1))));
    let ingest = Ingest::new(config(), CloudWatchMetrics::new(cloudwatch), Accept::default());
    let now = now_ms();
    let summary = ingest.handle(&big_payload(now), now).await.expect("retried until accepted");
    assert_eq!(rule.num_calls() as u64, summary.metrics.requests + 2);
    assert_eq!(summary.metrics.failed_requests, 0);
}

#[tokio::test]
async fn put_metric_data_that_stays_throttled_fails_the_invocation() {
    let rule = mock!(aws_sdk_cloudwatch::Client::put_metric_data).sequence().http_status(503, None).repeatedly().build();
    let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, [&rule], |c| c
        .retry_config(RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1))));
    let records = Accept::default();
    let ingest = Ingest::new(config(), CloudWatchMetrics::new(cloudwatch), records.clone());
    let now = now_ms();
    let err = ingest.handle(&big_payload(now), now).await.expect_err("metrics could not be sent");
    assert!(err.to_string().contains("PutMetricData requests to namespace VoiceLakeTest"), "{err}");
    assert!(!records.0.lock().unwrap().is_empty(), "records were still delivered; the retry will resend them (deduplicated by event id)");
}

fn entries(failed_at: &[usize], n: usize) -> Vec<PutRecordBatchResponseEntry> {
    (0..n)
        .map(|i| {
            if failed_at.contains(&i) {
                PutRecordBatchResponseEntry::builder().error_code("ServiceUnavailableException").error_message("Slow down.").build()
            } else {
                PutRecordBatchResponseEntry::builder().record_id(format!("id-{i}")).build()
            }
        })
        .collect()
}

#[tokio::test]
async fn records_a_200_answer_reports_failed_are_retried_and_only_they() {
    let seen: Arc<Mutex<Vec<PutRecordBatchInput>>> = Default::default();
    let keep = seen.clone();
    let rule = mock!(aws_sdk_firehose::Client::put_record_batch)
        .match_requests(move |input| {
            keep.lock().unwrap().push(input.clone());
            true
        })
        .sequence()
        .output(|| PutRecordBatchOutput::builder().failed_put_count(2).set_request_responses(Some(entries(&[1, 3], 5))).build().unwrap())
        .output(|| PutRecordBatchOutput::builder().failed_put_count(0).set_request_responses(Some(entries(&[], 2))).build().unwrap())
        .build();
    let firehose = FirehoseRecords::new(mock_client!(aws_sdk_firehose, RuleMode::Sequential, [&rule]));
    let records: Vec<Vec<u8>> = (0..5).map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
    let outcome = deliver::send_records(&firehose, "turns", &records, FAST, later()).await;
    assert_eq!((outcome.sent, outcome.retried, outcome.failed, outcome.calls), (5, 2, 0, 2));
    let calls = seen.lock().unwrap();
    let second: Vec<&[u8]> = calls[1].records().iter().map(|r| r.data().as_ref()).collect();
    assert_eq!(second, vec![records[1].as_slice(), records[3].as_slice()]);
}

#[tokio::test]
async fn records_that_stay_failed_are_named_in_the_error() {
    let rule = mock!(aws_sdk_firehose::Client::put_record_batch).then_compute_output(|input| {
        let n = input.records().len();
        PutRecordBatchOutput::builder().failed_put_count(1).set_request_responses(Some(entries(&[0], n))).build().unwrap()
    });
    let firehose = FirehoseRecords::new(mock_client!(aws_sdk_firehose, RuleMode::MatchAny, [&rule]));
    let outcome = deliver::send_records(&firehose, "turns", &[b"a\n".to_vec(), b"b\n".to_vec()], FAST, later()).await;
    assert_eq!((outcome.sent, outcome.failed, outcome.calls), (1, 1, FAST.attempts as u64));
    assert_eq!(outcome.error.as_deref(), Some("ServiceUnavailableException: Slow down. (after 4 attempts)"));
}

#[tokio::test]
async fn throttled_put_record_batch_is_retried_by_the_sdk() {
    let body = r#"{"__type":"ServiceUnavailableException","message":"Slow down."}"#;
    let rule = mock!(aws_sdk_firehose::Client::put_record_batch)
        .sequence()
        .http_status(503, Some(body.to_owned()))
        .times(2)
        .output(|| PutRecordBatchOutput::builder().failed_put_count(0).set_request_responses(Some(entries(&[], 1))).build().unwrap())
        .build();
    let client = mock_client!(aws_sdk_firehose, RuleMode::Sequential, [&rule], |c| c.retry_config(
        aws_sdk_firehose::config::retry::RetryConfig::standard().with_max_attempts(4).with_initial_backoff(Duration::from_millis(1))
    ));
    let outcome = deliver::send_records(&FirehoseRecords::new(client), "turns", &[b"x\n".to_vec()], FAST, later()).await;
    assert_eq!((outcome.sent, outcome.failed, outcome.calls), (1, 0, 1), "one call of ours, three attempts of the SDK's");
    assert_eq!(rule.num_calls(), 3);
}
