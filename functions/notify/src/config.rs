//! The function's configuration, from the environment the template sets.

use std::time::Duration;

use voicelake_shared::pii::{PiiMode, PseudonymKey};

use crate::destination::UrlPolicy;

/// Delivery attempts per channel and the waits between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Retry {
    /// Exponential backoff, `base × 2^(attempt-1)`, at most `cap`.
    pub fn wait(&self, attempt: u32) -> Duration {
        self.base.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.cap)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub namespace: String,
    pub environment: String,
    pub agent_log_groups: Vec<String>,
    pub ingest_log_group: Option<String>,
    pub dashboard: Option<String>,
    pub athena_workgroup: Option<String>,
    /// Region of the console links when the alarm's ARN does not say.
    pub region: String,
    /// SSM parameter names (SecureString, or `/aws/reference/secretsmanager/ID`).
    pub slack_parameter: Option<String>,
    pub webhook_parameter: Option<String>,
    /// The topic email and SMS subscribers read.
    pub topic_arn: Option<String>,
    /// Within this span, a third state change makes an alarm flapping.
    pub flapping_cooldown: Duration,
    /// Enrichment gives up after this long and sends what it has.
    pub enrichment_budget: Duration,
    pub http_timeout: Duration,
    pub retry: Retry,
    /// Where the Slack and webhook URLs may point.
    pub url_policy: UrlPolicy,
    /// Personal data in what Logs Insights returns from the agents' logs (worst-call ids, tool
    /// errors, error lines) gets the lake's treatment, so that a notification shows the session id
    /// the lake has.
    pub pii: PiiMode,
    /// Set by `main` from the secret `VOICELAKE_PSEUDONYM_KEY_ARN` names.
    pub pseudonym_key: Option<PseudonymKey>,
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// The variables the template sets for the function.
pub const VARIABLES: [&str; 13] = [
    "VOICELAKE_METRICS_NAMESPACE",
    "VOICELAKE_ENVIRONMENT",
    "VOICELAKE_AGENT_LOG_GROUPS",
    "VOICELAKE_INGEST_LOG_GROUP",
    "VOICELAKE_DASHBOARD",
    "VOICELAKE_ATHENA_WORKGROUP",
    "VOICELAKE_SLACK_WEBHOOK_PARAMETER",
    "VOICELAKE_WEBHOOK_URL_PARAMETER",
    "VOICELAKE_WEBHOOK_ALLOWED_HOSTS",
    "VOICELAKE_NOTIFICATION_TOPIC",
    "VOICELAKE_FLAPPING_COOLDOWN_SECONDS",
    "VOICELAKE_PII_MODE",
    voicelake_shared::pii::KEY_ARN_VARIABLE,
];

pub const DEFAULT_RETRY: Retry = Retry { attempts: 3, base: Duration::from_millis(500), cap: Duration::from_secs(4) };

impl NotifyConfig {
    pub fn from_env() -> Result<NotifyConfig, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<NotifyConfig, ConfigError> {
        let opt = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let list = |k: &str| -> Vec<String> {
            opt(k).map(|v| v.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect()).unwrap_or_default()
        };
        let seconds = |k: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match opt(k) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| ConfigError { variable: k, problem: format!("{v:?} is not a whole number of seconds") }),
            }
        };
        Ok(NotifyConfig {
            namespace: opt("VOICELAKE_METRICS_NAMESPACE").unwrap_or_else(|| "VoiceLake".into()),
            environment: opt("VOICELAKE_ENVIRONMENT").unwrap_or_else(|| "prod".into()),
            agent_log_groups: list("VOICELAKE_AGENT_LOG_GROUPS"),
            ingest_log_group: opt("VOICELAKE_INGEST_LOG_GROUP"),
            dashboard: opt("VOICELAKE_DASHBOARD"),
            athena_workgroup: opt("VOICELAKE_ATHENA_WORKGROUP"),
            region: opt("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
            slack_parameter: opt("VOICELAKE_SLACK_WEBHOOK_PARAMETER"),
            webhook_parameter: opt("VOICELAKE_WEBHOOK_URL_PARAMETER"),
            topic_arn: opt("VOICELAKE_NOTIFICATION_TOPIC"),
            flapping_cooldown: seconds("VOICELAKE_FLAPPING_COOLDOWN_SECONDS", 1800)?,
            enrichment_budget: seconds("VOICELAKE_ENRICHMENT_BUDGET_SECONDS", 20)?,
            http_timeout: seconds("VOICELAKE_HTTP_TIMEOUT_SECONDS", 5)?,
            retry: DEFAULT_RETRY,
            url_policy: UrlPolicy {
                webhook_hosts: list("VOICELAKE_WEBHOOK_ALLOWED_HOSTS"),
                // Only the tests' stand-ins listen on loopback over plain http; the template never sets it.
                loopback: opt("VOICELAKE_ALLOW_LOOPBACK_WEBHOOKS").is_some_and(|v| v == "true"),
            },
            pii: match opt("VOICELAKE_PII_MODE") {
                None => PiiMode::default(),
                Some(v) => v.parse().map_err(|why| ConfigError { variable: "VOICELAKE_PII_MODE", problem: why })?,
            },
            pseudonym_key: None,
        })
    }

    /// Whether any channel is configured: without one the function could only log.
    pub fn has_channel(&self) -> bool {
        self.slack_parameter.is_some() || self.webhook_parameter.is_some() || self.topic_arn.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_bad_number_named() {
        let c = NotifyConfig::from_lookup(|k| (k == "VOICELAKE_AGENT_LOG_GROUPS").then(|| "/a, /b,".into())).unwrap();
        assert_eq!(c.agent_log_groups, ["/a", "/b"]);
        assert_eq!((c.flapping_cooldown, c.enrichment_budget), (Duration::from_secs(1800), Duration::from_secs(20)));
        assert!(!c.has_channel());
        let e = NotifyConfig::from_lookup(|k| (k == "VOICELAKE_FLAPPING_COOLDOWN_SECONDS").then(|| "soon".into())).unwrap_err();
        assert_eq!(e.to_string(), "VOICELAKE_FLAPPING_COOLDOWN_SECONDS: \"soon\" is not a whole number of seconds");
        assert_eq!(DEFAULT_RETRY.wait(1), Duration::from_millis(500));
        assert_eq!(DEFAULT_RETRY.wait(5), Duration::from_secs(4));
    }
}
