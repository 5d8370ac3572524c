//! The function's configuration, from environment variables (README "Configuration").

use std::time::Duration;

use voicelake_shared::Config;
use voicelake_shared::config::TimeWindow;
use voicelake_shared::cost::PriceTable;
use voicelake_shared::lake::Table;
use voicelake_shared::metrics::LabelSet;

pub const TURNS_STREAM: &str = "VOICELAKE_TURNS_STREAM";
pub const SESSIONS_STREAM: &str = "VOICELAKE_SESSIONS_STREAM";
pub const REJECTS_STREAM: &str = "VOICELAKE_REJECTS_STREAM";
pub const ERRORS_STREAM: &str = "VOICELAKE_ERRORS_STREAM";
pub const METRICS_NAMESPACE: &str = "VOICELAKE_METRICS_NAMESPACE";
pub const ENVIRONMENT: &str = "VOICELAKE_ENVIRONMENT";
pub const LATENCY_TARGET_MS: &str = "VOICELAKE_LATENCY_TARGET_MS";
pub const PRICE_TABLE: &str = "VOICELAKE_PRICE_TABLE";
pub const MODEL_DIMENSION: &str = "VOICELAKE_MODEL_DIMENSION";
pub const TENANT_DIMENSION: &str = "VOICELAKE_TENANT_DIMENSION";
pub const SEND_ATTEMPTS: &str = "VOICELAKE_SEND_ATTEMPTS";
pub const PII_MODE: &str = "VOICELAKE_PII_MODE";
pub const LAKE_RETENTION_DAYS: &str = "VOICELAKE_LAKE_RETENTION_DAYS";
pub const METRIC_AGENTS: &str = "VOICELAKE_METRIC_AGENTS";
pub const METRIC_TENANTS: &str = "VOICELAKE_METRIC_TENANTS";
pub const METRIC_MODELS: &str = "VOICELAKE_METRIC_MODELS";
pub const METRIC_PROVIDERS: &str = "VOICELAKE_METRIC_PROVIDERS";
/// The DynamoDB table that holds the parts of turns cut across invocations; unset, every turn is
/// settled in the invocation that has its lines (read by `main`, which builds the store).
pub const PENDING_TABLE: &str = "VOICELAKE_PENDING_TABLE";
/// The ARN of the Secrets Manager secret whose value keys the pseudonyms (never the value itself); unset, they are plain
/// hashes (read by `main` at cold start).
pub const PSEUDONYM_KEY_ARN: &str = voicelake_shared::pii::KEY_ARN_VARIABLE;

/// Every variable the function reads, for the README and the template test.
pub const ALL: [&str; 19] = [
    TURNS_STREAM,
    SESSIONS_STREAM,
    REJECTS_STREAM,
    ERRORS_STREAM,
    METRICS_NAMESPACE,
    ENVIRONMENT,
    LATENCY_TARGET_MS,
    PRICE_TABLE,
    MODEL_DIMENSION,
    TENANT_DIMENSION,
    SEND_ATTEMPTS,
    PII_MODE,
    LAKE_RETENTION_DAYS,
    METRIC_AGENTS,
    METRIC_TENANTS,
    METRIC_MODELS,
    METRIC_PROVIDERS,
    PENDING_TABLE,
    PSEUDONYM_KEY_ARN,
];

/// The Firehose delivery streams of the four lake tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Streams {
    pub turns: String,
    pub sessions: String,
    pub rejects: String,
    pub errors: String,
}

impl Streams {
    /// The stream of a table.
    pub fn of(&self, table: Table) -> &str {
        match table {
            Table::Turns => &self.turns,
            Table::Sessions => &self.sessions,
            Table::Rejects => &self.rejects,
            Table::Errors => &self.errors,
        }
    }
}

/// How records that Firehose reports as failed are retried: full-jitter exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, base: Duration::from_millis(100), cap: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// The wait before attempt `n` (n ≥ 1, the first retry): uniform in [0, min(cap, base × 2ⁿ⁻¹)].
    pub fn backoff(&self, n: u32, rng: &mut impl rand::Rng) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << (n.saturating_sub(1)).min(16)).min(self.cap);
        ceiling.mul_f64(rng.random::<f64>())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    pub pipeline: Config,
    pub namespace: String,
    pub streams: Streams,
    pub retry: RetryPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set: the function needs the name of the Firehose stream")]
    Missing(&'static str),
    #[error("{name} = {value:?}: {why}")]
    Invalid { name: &'static str, value: String, why: String },
}

impl IngestConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `var`, so tests need not touch the process environment.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let invalid =
            |name: &'static str, value: &str, why: &str| ConfigError::Invalid { name, value: value.to_owned(), why: why.to_owned() };
        let flag = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("false" | "0" | "no") => Ok(false),
                Some("true" | "1" | "yes") => Ok(true),
                Some(other) => Err(invalid(name, other, "expected true or false")),
            }
        };
        let mut pipeline = Config::default();
        if let Some(env) = get(ENVIRONMENT) {
            pipeline.environment = env;
        }
        if let Some(v) = get(LATENCY_TARGET_MS) {
            pipeline.latency_target_ms = v
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t > 0.0)
                .ok_or_else(|| invalid(LATENCY_TARGET_MS, &v, "expected a positive number of milliseconds"))?;
        }
        if let Some(v) = get(PRICE_TABLE) {
            pipeline.prices = PriceTable::default().with_overrides(&v).map_err(|e| invalid(PRICE_TABLE, &v, &e.to_string()))?;
        }
        pipeline.model_dimension = flag(MODEL_DIMENSION)?;
        pipeline.tenant_dimension = flag(TENANT_DIMENSION)?;
        if let Some(v) = get(PII_MODE) {
            pipeline.pii = v.parse().map_err(|why: String| invalid(PII_MODE, &v, &why))?;
        }
        if let Some(v) = get(LAKE_RETENTION_DAYS) {
            let days = v
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=36_500).contains(d))
                .ok_or_else(|| invalid(LAKE_RETENTION_DAYS, &v, "expected a number of days from 1 to 36500"))?;
            pipeline.time_window = TimeWindow::deployed(days);
        }
        // Unset, a label set is every value (as the local replay); the template sets all three.
        let raw = |name: &str| var(name).map(|v| v.trim().to_owned());
        if let Some(v) = raw(METRIC_AGENTS) {
            // The template passes the agent log groups when no names are declared: an agent that
            // logs no name is named after its group.
            let names: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| if s.starts_with('/') { voicelake_shared::agent_from_log_group(s) } else { s.to_owned() })
                .collect();
            pipeline.metric_labels.agents = if v == "*" { LabelSet::Any } else { LabelSet::Only(names.into_iter().collect()) };
        }
        if let Some(v) = raw(METRIC_TENANTS) {
            pipeline.metric_labels.tenants = LabelSet::parse(&v);
        }
        if let Some(v) = raw(METRIC_MODELS) {
            pipeline.metric_labels.models = if v.is_empty() {
                // The models the price table knows, as `provider/model`.
                LabelSet::Only(pipeline.prices.models.keys().cloned().collect())
            } else {
                LabelSet::parse(&v)
            };
        }
        if let Some(v) = raw(METRIC_PROVIDERS) {
            pipeline.metric_labels.providers = if v.is_empty() {
                LabelSet::Only(voicelake_shared::metrics::KNOWN_PROVIDERS.iter().map(|p| (*p).to_owned()).collect())
            } else {
                LabelSet::parse(&v)
            };
        }
        let mut retry = RetryPolicy::default();
        if let Some(v) = get(SEND_ATTEMPTS) {
            retry.attempts =
                v.parse::<u32>().ok().filter(|n| (1..=20).contains(n)).ok_or_else(|| invalid(SEND_ATTEMPTS, &v, "expected 1 to 20"))?;
        }
        Ok(IngestConfig {
            pipeline,
            namespace: get(METRICS_NAMESPACE).unwrap_or_else(|| voicelake_shared::metrics::DEFAULT_NAMESPACE.to_owned()),
            streams: Streams {
                turns: required(TURNS_STREAM)?,
                sessions: required(SESSIONS_STREAM)?,
                rejects: required(REJECTS_STREAM)?,
                errors: required(ERRORS_STREAM)?,
            },
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const STREAMS: [(&str, &str); 4] = [(TURNS_STREAM, "t"), (SESSIONS_STREAM, "s"), (REJECTS_STREAM, "r"), (ERRORS_STREAM, "e")];

    #[test]
    fn defaults_need_only_the_streams() {
        let c = IngestConfig::from_vars(vars(&STREAMS)).unwrap();
        assert_eq!(c.streams, Streams { turns: "t".into(), sessions: "s".into(), rejects: "r".into(), errors: "e".into() });
        assert_eq!(c.namespace, "VoiceLake");
        assert_eq!(c.pipeline, Config::default());
        assert_eq!(c.retry, RetryPolicy::default());
    }

    #[test]
    fn every_setting_is_read() {
        let mut all = STREAMS.to_vec();
        all.extend([
            (METRICS_NAMESPACE, "Acme/Voice"),
            (ENVIRONMENT, "prod"),
            (LATENCY_TARGET_MS, "1200"),
            (PRICE_TABLE, r#"{"default": {"transport_per_minute": 0.02}}"#),
            (MODEL_DIMENSION, "true"),
            (TENANT_DIMENSION, "1"),
            (SEND_ATTEMPTS, "3"),
            (PII_MODE, "drop"),
            (LAKE_RETENTION_DAYS, "400"),
            (METRIC_AGENTS, "/ecs/support-agent, sales-agent"),
            (METRIC_TENANTS, "acme"),
            (METRIC_MODELS, ""),
        ]);
        let c = IngestConfig::from_vars(vars(&all)).unwrap();
        assert_eq!(c.namespace, "Acme/Voice");
        assert_eq!(c.pipeline.environment, "prod");
        assert_eq!(c.pipeline.latency_target_ms, 1200.0);
        assert_eq!(c.pipeline.prices.default.transport_per_minute, Some(0.02));
        assert_eq!(c.pipeline.prices.default.stt_per_minute, PriceTable::default().default.stt_per_minute, "an override keeps the rest");
        assert!(c.pipeline.model_dimension && c.pipeline.tenant_dimension);
        assert_eq!(c.retry.attempts, 3);
        assert_eq!(c.pipeline.pii, voicelake_shared::pii::PiiMode::Drop);
        assert_eq!(c.pipeline.time_window, TimeWindow::deployed(400));
        let labels = &c.pipeline.metric_labels;
        assert_eq!(labels.agents, LabelSet::Only(["support-agent".to_owned(), "sales-agent".to_owned()].into()));
        assert_eq!(labels.tenants, LabelSet::Only(["acme".to_owned()].into()));
        assert!(labels.models.admit("openai/gpt-4o") == "openai/gpt-4o" && labels.models.admit("acme/custom") == "other");
    }

    #[test]
    fn mistakes_name_the_variable() {
        assert!(matches!(IngestConfig::from_vars(vars(&STREAMS[..2])), Err(ConfigError::Missing(REJECTS_STREAM))));
        for (name, value) in [
            (LATENCY_TARGET_MS, "-5"),
            (MODEL_DIMENSION, "maybe"),
            (SEND_ATTEMPTS, "0"),
            (PRICE_TABLE, "{"),
            (PII_MODE, "mask"),
            (LAKE_RETENTION_DAYS, "0"),
        ] {
            let mut v = STREAMS.to_vec();
            v.push((name, value));
            let err = IngestConfig::from_vars(vars(&v)).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let p = RetryPolicy { attempts: 5, base: Duration::from_millis(100), cap: Duration::from_millis(500) };
        let mut rng = rand::rng();
        for n in 1..10 {
            let ceiling = Duration::from_millis(100 * (1 << (n - 1))).min(Duration::from_millis(500));
            for _ in 0..50 {
                assert!(p.backoff(n, &mut rng) <= ceiling);
            }
        }
    }
}
