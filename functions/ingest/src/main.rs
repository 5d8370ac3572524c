//! Lambda entry point: configuration and SDK clients once per cold start, then the runtime loop.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use voicelake_ingest::aws::{CloudWatchMetrics, FirehoseRecords};
use voicelake_ingest::{Ingest, IngestConfig};

// One thread: the function waits on the network, and a single-threaded runtime starts faster and
// uses less memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = IngestConfig::from_env()?;
    let aws = aws_config::from_env()
        // Throttling and transient faults are retried by the SDK with exponential backoff and jitter,
        // briefly: a batch that still fails fails the invocation, and Lambda's own retries, minutes
        // apart, are the long backoff.
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(config.retry.attempts)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(2)),
        )
        // A hung call must fail well inside the function's timeout, so the batch is retried.
        .timeout_config(
            TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(5)).operation_timeout(Duration::from_secs(25)).build(),
        )
        .load()
        .await;
    let ingest = Ingest::new(
        config,
        CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&aws)),
        FirehoseRecords::new(aws_sdk_firehose::Client::new(&aws)),
    );
    let ingest = &ingest;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now = now_ms();
        ingest.handle(&event.payload, now).await.map_err(Error::from)
    }))
    .await
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
