//! Lambda entry point: configuration and SDK clients once per cold start, then the runtime loop.

use std::time::SystemTime;

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::Value;
use voicelake_ingest::aws::{self, CloudWatchMetrics, DynamoPending, FirehoseRecords};
use voicelake_ingest::config::PENDING_TABLE;
use voicelake_ingest::handler::FUNCTION_TIMEOUT;
use voicelake_ingest::pending::PendingStore;
use voicelake_ingest::{Ingest, IngestConfig};
use voicelake_runtime::{Budget, logging};

// One thread: the function waits on the network, and a single-threaded runtime starts faster and
// uses less memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init()?;
    let mut config = IngestConfig::from_env()?;
    let aws = aws_config::from_env()
        .retry_config(aws::retry_config(config.retry.attempts))
        .timeout_config(aws::timeout_config(aws::ATTEMPT_TIMEOUT, aws::OPERATION_TIMEOUT))
        .load()
        .await;
    config.pipeline.pseudonym_key = voicelake_runtime::key::deployed_key(&aws).await?;
    let ingest = Ingest::new(
        config,
        CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&aws)),
        FirehoseRecords::new(aws_sdk_firehose::Client::new(&aws)),
    );
    match std::env::var(PENDING_TABLE).ok().filter(|t| !t.trim().is_empty()) {
        Some(table) => run(&ingest.with_pending(DynamoPending::new(aws_sdk_dynamodb::Client::new(&aws), table))).await,
        None => run(&ingest).await,
    }
}

async fn run<P: PendingStore>(ingest: &Ingest<CloudWatchMetrics, FirehoseRecords, P>) -> Result<(), Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now = SystemTime::now();
        // Every wait of the invocation is budgeted from the deadline Lambda gives it.
        let deadline = Budget::whole(FUNCTION_TIMEOUT).deadline(&event.context, now);
        ingest.handle_until(&event.payload, voicelake_shared::timefmt::epoch_ms(now), deadline).await.map_err(Diagnostic::from)
    }))
    .await
}
