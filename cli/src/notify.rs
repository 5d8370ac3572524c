//! `voicelake notify test`: a sample alarm through the deployed notify function.

use serde_json::Value;

use crate::dlq::{Invoker, LambdaInvoker};

/// Invokes `function` synchronously with a sample turn-latency ALARM of `stack`, marked as a test;
/// its answer names the channels it delivered to.
pub async fn send_test(aws: &aws_config::SdkConfig, function: &str, stack: &str, now_ms: i64) -> Result<Value, String> {
    let region = aws.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
    let event = voicelake_shared::alarms::sample_alarm_event(stack, &region, "000000000000", now_ms);
    LambdaInvoker::new(aws_sdk_lambda::Client::new(aws), function).invoke(&event).await
}
