//! The SDK configuration of the CLI's AWS commands, and what is missing said in one line.
//!
//! Without this, a missing credential surfaced as the SDK's debug dump of the first failed call
//! (after its retries), a missing region as an instance-metadata error, and an endpoint that does
//! not answer as a long silence.

use std::time::Duration;

use anyhow::{Result, bail};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::ProvideCredentials;
pub use voicelake_shared::aws_names::region_in;

/// Connecting to an endpoint fails after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt of a call fails after this long (a Lambda invocation waits for the function).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(90);

/// The configuration for a command whose arguments may name a region (`hints`: ARNs, queue URLs):
/// the region of the first hint that has one, else the environment's. Region and credentials are
/// checked before any call.
pub async fn load(hints: &[&str], retry: Option<aws_config::retry::RetryConfig>) -> Result<SdkConfig> {
    let timeouts = TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_attempt_timeout(ATTEMPT_TIMEOUT).build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(region) = hints.iter().find_map(|h| region_in(h)) {
        loader = loader.region(Region::new(region));
    }
    if let Some(retry) = retry {
        loader = loader.retry_config(retry);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        bail!(
            "no AWS region: set AWS_REGION (or a region in your AWS profile), or give the function or queue as an ARN or URL that names one"
        );
    }
    let Some(credentials) = config.credentials_provider() else {
        bail!("no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    };
    // The provider chain's own error says which source failed last, rarely what to do.
    if credentials.provide_credentials().await.is_err() {
        bail!("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`");
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_read_from_arns_and_endpoint_urls() {
        assert_eq!(region_in("arn:aws:lambda:eu-west-1:123456789012:function:voicelake-notify").as_deref(), Some("eu-west-1"));
        assert_eq!(region_in("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f").as_deref(), Some("us-gov-west-1"));
        assert_eq!(
            region_in("https://sqs.ap-southeast-2.amazonaws.com/123456789012/voicelake-failures").as_deref(),
            Some("ap-southeast-2")
        );
        for none in ["voicelake-notify", "http://127.0.0.1:5000/123/q", "arn:aws:iam::123456789012:role/r", "https://example.com/x"] {
            assert_eq!(region_in(none), None, "{none}");
        }
    }
}
