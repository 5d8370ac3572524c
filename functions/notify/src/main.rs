//! Lambda entry point: configuration and SDK clients once per cold start, then the runtime loop.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sns::SnsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use voicelake_notify::aws::{CloudWatch, Logs, Sns, Ssm};
use voicelake_notify::config::NotifyConfig;
use voicelake_notify::{Notify, NotifyError, summary};

/// The template's timeout: the budget when the runtime's deadline has already passed (local emulators).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().json().with_current_span(false).with_target(false).without_time().init();
    let mut config = NotifyConfig::from_env()?;
    let aws = aws_config::from_env()
        .timeout_config(aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(Duration::from_secs(5)).build())
        .load()
        .await;
    // The lake's key, so that a worst call's id is the one the lake has.
    config.pseudonym_key = voicelake_shared::pii::deployed_key(&aws).await?;
    let notify = Notify::new(
        config,
        CloudWatch(aws_sdk_cloudwatch::Client::new(&aws)),
        Logs(aws_sdk_cloudwatchlogs::Client::new(&aws)),
        Ssm(aws_sdk_ssm::Client::new(&aws)),
        Sns(aws_sdk_sns::Client::new(&aws)),
    );
    let notify = &notify;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or(FUNCTION_TIMEOUT);
        // Leave time to deliver after enrichment, and to fail cleanly rather than time out.
        let deadline = tokio::time::Instant::now() + left.saturating_sub(Duration::from_secs(15));
        notify
            .handle(&event.payload, deadline)
            .await
            .map(|outcomes| summary(&outcomes))
            .map_err(|e: NotifyError| Error::from(e.to_string()))
    }))
    .await
}
