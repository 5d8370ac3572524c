//! Lambda entry point of the query-sync custom resource.

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use voicelake_query_sync::QuerySync;
use voicelake_query_sync::aws::{AthenaNamedQueries, CloudWatchLogsInsights};
use voicelake_query_sync::cfn::{self, HttpResponder};
use voicelake_runtime::{Budget, logging};

/// 20 s are kept to answer CloudFormation however the sync ends; a deadline already past leaves
/// the sync only the floor, so that CloudFormation is answered before the function is stopped.
const BUDGET: Budget = Budget { if_past: Duration::ZERO, reserve: Duration::from_secs(20), floor: Duration::from_secs(5) };

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init()?;
    let aws = aws_config::from_env().load().await;
    let sync = QuerySync {
        insights: CloudWatchLogsInsights { client: aws_sdk_cloudwatchlogs::Client::new(&aws) },
        athena: AthenaNamedQueries { client: aws_sdk_athena::Client::new(&aws), statement_timeout: Duration::from_secs(60) },
    };
    let responder = HttpResponder::default();
    let (sync, responder) = (&sync, &responder);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let budget = BUDGET.left(event.context.deadline(), std::time::SystemTime::now());
        match cfn::handle(sync, responder, &event.payload, budget).await {
            Ok(done) => {
                tracing::info!(result = %done, "synced");
                Ok::<_, Error>(done)
            }
            Err(e) => {
                tracing::error!(error = %e, "not synced; CloudFormation was told why");
                Ok(e)
            }
        }
    }))
    .await
}
