//! Lambda entry point of the query-sync custom resource.

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use voicelake_query_sync::QuerySync;
use voicelake_query_sync::aws::{AthenaNamedQueries, CloudWatchLogsInsights};
use voicelake_query_sync::cfn::{self, HttpResponder};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let aws = aws_config::from_env().load().await;
    let sync = QuerySync {
        insights: CloudWatchLogsInsights { client: aws_sdk_cloudwatchlogs::Client::new(&aws) },
        athena: AthenaNamedQueries { client: aws_sdk_athena::Client::new(&aws), statement_timeout: Duration::from_secs(60) },
    };
    let responder = HttpResponder::default();
    let (sync, responder) = (&sync, &responder);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Keep 20 s to answer CloudFormation however the sync ends.
        let left = event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
        let budget = left.saturating_sub(Duration::from_secs(20)).max(Duration::from_secs(5));
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
