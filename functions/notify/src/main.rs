//! Lambda entry point: configuration and SDK clients once per cold start, then the runtime loop.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sns::SnsEvent;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use voicelake_notify::aws::{CloudWatch, Logs, Sns, Ssm};
use voicelake_notify::config::NotifyConfig;
use voicelake_notify::{Notify, summary};
use voicelake_runtime::{Budget, logging};

/// The template's timeout, of which 15 s are kept to deliver after enrichment, and to fail cleanly
/// rather than time out.
const BUDGET: Budget = Budget { if_past: Duration::from_secs(60), reserve: Duration::from_secs(15), floor: Duration::ZERO };

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    logging::init()?;
    let mut config = NotifyConfig::from_env()?;
    let aws = aws_config::from_env()
        .timeout_config(aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(5)).build())
        .load()
        .await;
    // The lake's key, so that a worst call's id is the one the lake has.
    config.pseudonym_key = voicelake_runtime::key::deployed_key(&aws).await?;
    let notify = Notify::new(
        config,
        CloudWatch(aws_sdk_cloudwatch::Client::new(&aws)),
        Logs(aws_sdk_cloudwatchlogs::Client::new(&aws)),
        Ssm(aws_sdk_ssm::Client::new(&aws)),
        Sns(aws_sdk_sns::Client::new(&aws)),
    );
    let notify = &notify;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        let deadline = BUDGET.deadline(&event.context, SystemTime::now());
        notify.handle(&event.payload, deadline).await.map(|outcomes| summary(&outcomes)).map_err(Diagnostic::from)
    }))
    .await
}
