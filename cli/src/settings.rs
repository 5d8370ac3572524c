//! The pipeline's settings from the flags replay and backfill share.

use anyhow::{Context, Result, bail};
use voicelake_shared::Config;
use voicelake_shared::cost::PriceTable;

/// The pipeline's settings from the flags replay and backfill share.
pub fn pipeline_config(
    environment: &str,
    target_ms: f64,
    pii: voicelake_shared::pii::PiiMode,
    pseudonym_key_file: Option<&std::path::Path>,
    prices: Option<&std::path::Path>,
) -> Result<Config> {
    let mut config = Config { environment: environment.to_owned(), latency_target_ms: target_ms, pii, ..Config::default() };
    if let Some(path) = pseudonym_key_file {
        config.pseudonym_key = Some(voicelake_shared::pii::PseudonymKey::from_file(path)?);
    }
    if let Some(path) = prices {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // Laid over the built-in table, as the function lays PriceTableOverride: one logic, and a
        // file of two prices changes two prices.
        config.prices = PriceTable::default().with_overrides(&text).with_context(|| format!("{}", path.display()))?;
    }
    if !(config.latency_target_ms.is_finite() && config.latency_target_ms > 0.0) {
        bail!("--target-ms must be a positive number of milliseconds");
    }
    Ok(config)
}
