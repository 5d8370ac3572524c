//! What the pipeline needs to know besides its input.

use crate::cost::PriceTable;
use crate::pii::PiiMode;

/// Default turn latency target, in milliseconds: the p95 alarm threshold and the over-target flag.
pub const DEFAULT_LATENCY_TARGET_MS: f64 = 1500.0;
pub const DEFAULT_ENVIRONMENT: &str = "dev";
/// The stack's default subscription filter pattern (`SubscriptionFilterPattern` in template.yaml,
/// which a test holds equal): a term for each family marker, so only the contract's events pass.
pub const DEFAULT_FILTER_PATTERN: &str = r#"?voice_metrics ?session_analytics ?_metrics ?metrics_collected ?conversation_item_added ?session_usage_updated ?"LLM metrics" ?"TTS metrics" ?"STT metrics" ?"EOU metrics" ?"RealtimeModel metrics""#;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `Environment` dimension and the `environment` column.
    pub environment: String,
    pub latency_target_ms: f64,
    pub prices: PriceTable,
    /// Adds `{Environment, Model}` to the LLM and TTS latency metrics. Off by default: every model
    /// multiplies the custom metrics billed.
    pub model_dimension: bool,
    /// Adds `{Environment, Tenant}` to turn latency. Off by default, for the same reason.
    pub tenant_dimension: bool,
    /// Emails and phone numbers in signals, session ids and rejected input: hashed by default.
    pub pii: PiiMode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            environment: DEFAULT_ENVIRONMENT.into(),
            latency_target_ms: DEFAULT_LATENCY_TARGET_MS,
            prices: PriceTable::default(),
            model_dimension: false,
            tenant_dimension: false,
            pii: PiiMode::default(),
        }
    }
}
