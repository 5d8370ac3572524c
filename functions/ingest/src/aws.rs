//! The sinks over the AWS SDK clients.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use voicelake_shared::envelope::LogEvent;
use voicelake_shared::metrics::Datum;

use crate::pending::{PendingStore, StreamKey};
use crate::sinks::{BatchAnswer, MetricsSink, RecordSink, SendError};

/// One call attempt may take this long: a hung connection fails well inside the function's timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// All attempts of one call together.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(25);

/// Throttling and transient faults are retried by the SDK with exponential backoff and full jitter,
/// briefly: a batch that still fails fails the invocation, and Lambda's own retries, minutes apart,
/// are the long backoff.
pub fn retry_config(attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(2))
}

/// A hung call must fail, so that the batch is retried rather than the function timing out.
pub fn timeout_config(attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder().operation_attempt_timeout(attempt).operation_timeout(operation).build()
}

/// The SDK's form of a datum: values and counts as computed, one-minute storage resolution.
pub fn to_sdk_datum(d: &Datum) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(d.metric_name)
        .set_dimensions(Some(d.dimensions.iter().map(|(name, value)| Dimension::builder().name(*name).value(value).build()).collect()))
        .timestamp(DateTime::from_millis(d.timestamp_ms))
        .set_values(Some(d.values.clone()))
        .set_counts(Some(d.counts.clone()))
        .unit(StandardUnit::from(d.unit.as_str()))
        .storage_resolution(60)
        .build()
}

fn send_error<E, R>(e: aws_sdk_cloudwatch::error::SdkError<E, R>) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let code = match &e {
        aws_sdk_cloudwatch::error::SdkError::ServiceError(s) => s.err().code().unwrap_or("ServiceError").to_owned(),
        aws_sdk_cloudwatch::error::SdkError::TimeoutError(_) => "Timeout".to_owned(),
        aws_sdk_cloudwatch::error::SdkError::DispatchFailure(_) => "DispatchFailure".to_owned(),
        other => other.code().unwrap_or("SdkError").to_owned(),
    };
    SendError { code, message: voicelake_shared::errors::chain(&e) }
}

pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchMetrics {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        CloudWatchMetrics { client }
    }
}

impl MetricsSink for CloudWatchMetrics {
    async fn put_metric_data(&self, namespace: &str, datums: &[Datum]) -> Result<(), SendError> {
        self.client
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(datums.iter().map(to_sdk_datum).collect()))
            .send()
            .await
            .map(|_| ())
            .map_err(send_error)
    }
}

pub struct FirehoseRecords {
    client: aws_sdk_firehose::Client,
}

impl FirehoseRecords {
    pub fn new(client: aws_sdk_firehose::Client) -> Self {
        FirehoseRecords { client }
    }
}

impl RecordSink for FirehoseRecords {
    async fn put_record_batch(&self, stream: &str, records: &[Vec<u8>]) -> Result<BatchAnswer, SendError> {
        let records: Vec<Record> =
            records.iter().map(|r| Record::builder().data(Blob::new(r.clone())).build().expect("a record with data builds")).collect();
        let out =
            self.client.put_record_batch().delivery_stream_name(stream).set_records(Some(records)).send().await.map_err(send_error)?;
        if out.failed_put_count() == 0 {
            return Ok(BatchAnswer::default());
        }
        let mut answer = BatchAnswer::default();
        for (i, entry) in out.request_responses().iter().enumerate() {
            if let Some(code) = entry.error_code() {
                answer.failed.push(i);
                answer.first_error.get_or_insert_with(|| format!("{code}: {}", entry.error_message().unwrap_or("")));
            }
        }
        if answer.failed.is_empty() {
            // A count without per-record errors: which records failed is unknown, so all are.
            answer.failed = (0..out.request_responses().len().max(out.failed_put_count() as usize)).collect();
            answer.first_error = Some(format!("FailedPutCount {} without per-record errors", out.failed_put_count()));
        }
        Ok(answer)
    }
}

/// Held parts in a DynamoDB table: partition key `pk` (the stream, [`StreamKey::encode`]), sort key
/// `sk` (the log event id), the event's `t` (CloudWatch timestamp) and `m` (message), when it was
/// held (`held_at`, epoch milliseconds), and `expires_at` (epoch seconds) for the table's TTL, a
/// safety net far past the sweep.
pub struct DynamoPending {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// How long a part may stay if the sweep never runs: the table's TTL deletes it after this.
pub const PENDING_TTL_SECONDS: i64 = 7 * 24 * 3600;

impl DynamoPending {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoPending { client, table: table.into() }
    }
}

fn s(v: impl Into<String>) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(v.into())
}

fn n(v: i64) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::N(v.to_string())
}

type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

fn event_of(item: &Item) -> Option<LogEvent> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    Some(LogEvent { id: text("sk")?, timestamp: item.get("t")?.as_n().ok()?.parse().ok()?, message: text("m")? })
}

impl PendingStore for DynamoPending {
    async fn load(&self, key: &StreamKey) -> Result<Vec<LogEvent>, SendError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(key.encode()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(send_error)?;
        let mut events: Vec<LogEvent> = items.iter().filter_map(event_of).collect();
        events.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
        Ok(events)
    }

    async fn take(&self, key: &StreamKey, ids: &[String]) -> Result<Vec<String>, SendError> {
        let mut taken = Vec::with_capacity(ids.len());
        for id in ids {
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(key.encode()))
                .key("sk", s(id.clone()))
                .condition_expression("attribute_exists(sk)")
                .send()
                .await;
            match deleted {
                Ok(_) => taken.push(id.clone()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(send_error(e)),
            }
        }
        Ok(taken)
    }

    async fn put(&self, key: &StreamKey, events: &[LogEvent], now_ms: i64) -> Result<(), SendError> {
        for e in events {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(key.encode()))
                .item("sk", s(e.id.clone()))
                .item("t", n(e.timestamp))
                .item("m", s(e.message.clone()))
                .item("held_at", n(now_ms))
                .item("expires_at", n(now_ms / 1000 + PENDING_TTL_SECONDS))
                .send()
                .await
                .map_err(send_error)?;
        }
        Ok(())
    }

    async fn stale(&self, before_ms: i64) -> Result<Vec<StreamKey>, SendError> {
        let items: Vec<Item> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("held_at < :before")
            .expression_attribute_values(":before", n(before_ms))
            .projection_expression("pk")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(send_error)?;
        let keys: std::collections::BTreeSet<StreamKey> =
            items.iter().filter_map(|i| i.get("pk")?.as_s().ok().and_then(|k| StreamKey::decode(k))).collect();
        Ok(keys.into_iter().collect())
    }
}
