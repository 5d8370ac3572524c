//! Lambda entry point: configuration and SDK clients once per cold start, then the runtime loop.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use voicelake_ingest::aws::{self, CloudWatchMetrics, FirehoseRecords};
use voicelake_ingest::{Ingest, IngestConfig};

// One thread: the function waits on the network, and a single-threaded runtime starts faster and
// uses less memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = IngestConfig::from_env()?;
    let aws = aws_config::from_env()
        .retry_config(aws::retry_config(config.retry.attempts))
        .timeout_config(aws::timeout_config(aws::ATTEMPT_TIMEOUT, aws::OPERATION_TIMEOUT))
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
