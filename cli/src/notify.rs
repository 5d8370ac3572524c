//! `voicelake notify test`: a sample alarm through the deployed notify function.

use anyhow::bail;
use serde_json::Value;
use voicelake_shared::timefmt::now_ms;

use crate::args::NotifyTestArgs;
use crate::dlq::{Invoker, LambdaInvoker};

/// Invokes `function` synchronously with a sample turn-latency ALARM of `stack`, marked as a test;
/// its answer names the channels it delivered to.
pub async fn send_test(aws: &aws_config::SdkConfig, function: &str, stack: &str, now_ms: i64) -> Result<Value, String> {
    let region = aws.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
    let event = voicelake_shared::alarms::sample_alarm_event(stack, &region, "000000000000", now_ms);
    LambdaInvoker::new(aws_sdk_lambda::Client::new(aws), function).invoke(&event).await
}

/// `voicelake notify test`: a test notification through the deployed notify function.
pub fn run_test(args: NotifyTestArgs) -> anyhow::Result<()> {
    let function = match (&args.function, &args.stack) {
        (Some(f), _) => f.clone(),
        (None, Some(stack)) => format!("{stack}-notify"),
        (None, None) => bail!("give --stack or --function"),
    };
    let stack = args.stack.clone().unwrap_or_else(|| "voicelake".into());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let aws = runtime.block_on(crate::aws_setup::load(&[&function], None))?;
    let answer = runtime
        .block_on(send_test(&aws, &function, &stack, now_ms()))
        .map_err(|e| anyhow::anyhow!("{function} could not deliver the test notification: {e}"))?;
    println!("{function} delivered the test notification: {answer}");
    Ok(())
}
