//! Estimated cost of a call from its usage and a price table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rows::{ModelUsageRow, UsageKind};

/// The price table shipped with voicelake (`shared/data/prices.json`).
pub const DEFAULT_PRICE_TABLE: &str = include_str!("../data/prices.json");

/// Prices in US dollars. Every field is optional so that a model entry overrides only what it sets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub llm_input_per_million_tokens: Option<f64>,
    pub llm_cached_input_per_million_tokens: Option<f64>,
    pub llm_output_per_million_tokens: Option<f64>,
    pub stt_per_minute: Option<f64>,
    pub tts_per_million_characters: Option<f64>,
    /// Media transport and telephony by the minute of call (LiveKit, SIP trunk).
    pub transport_per_minute: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PriceTable {
    #[serde(default = "usd")]
    pub currency: String,
    #[serde(default, skip_serializing)]
    pub note: Option<String>,
    pub default: Prices,
    /// Keyed by `provider/model` or by `model`.
    #[serde(default)]
    pub models: BTreeMap<String, Prices>,
}

fn usd() -> String {
    "USD".into()
}

#[derive(Debug, thiserror::Error)]
pub enum PriceTableError {
    #[error("the price table is not valid JSON of the documented shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the price table has a negative or non-finite price for {0}")]
    BadPrice(String),
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::from_json(DEFAULT_PRICE_TABLE).expect("the embedded price table is valid")
    }
}

impl PriceTable {
    pub fn from_json(text: &str) -> Result<PriceTable, PriceTableError> {
        let table: PriceTable = serde_json::from_str(text)?;
        for (name, prices) in std::iter::once(("default", &table.default)).chain(table.models.iter().map(|(k, v)| (k.as_str(), v))) {
            let all = [
                prices.llm_input_per_million_tokens,
                prices.llm_cached_input_per_million_tokens,
                prices.llm_output_per_million_tokens,
                prices.stt_per_minute,
                prices.tts_per_million_characters,
                prices.transport_per_minute,
            ];
            if all.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(PriceTableError::BadPrice(name.to_string()));
            }
        }
        Ok(table)
    }

    /// This table with the prices of `json` laid over it: `{"default": {…}, "models": {"p/m": {…}}}`,
    /// every part optional, each price set replacing one price. Small enough for an environment
    /// variable, where a whole table would not fit.
    pub fn with_overrides(mut self, json: &str) -> Result<PriceTable, PriceTableError> {
        // A whole table (a copy of prices.json, currency and note included) is an overlay too.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Overrides {
            #[serde(default)]
            currency: Option<String>,
            #[serde(default)]
            #[allow(dead_code)]
            note: Option<String>,
            #[serde(default)]
            default: Prices,
            #[serde(default)]
            models: BTreeMap<String, Prices>,
        }
        fn lay(base: &mut Prices, over: Prices) {
            let fields: [(&mut Option<f64>, Option<f64>); 6] = [
                (&mut base.llm_input_per_million_tokens, over.llm_input_per_million_tokens),
                (&mut base.llm_cached_input_per_million_tokens, over.llm_cached_input_per_million_tokens),
                (&mut base.llm_output_per_million_tokens, over.llm_output_per_million_tokens),
                (&mut base.stt_per_minute, over.stt_per_minute),
                (&mut base.tts_per_million_characters, over.tts_per_million_characters),
                (&mut base.transport_per_minute, over.transport_per_minute),
            ];
            for (slot, value) in fields {
                if value.is_some() {
                    *slot = value;
                }
            }
        }
        let over: Overrides = serde_json::from_str(json)?;
        if let Some(currency) = over.currency {
            self.currency = currency;
        }
        lay(&mut self.default, over.default);
        for (model, prices) in over.models {
            lay(self.models.entry(model).or_default(), prices);
        }
        PriceTable::from_json(&serde_json::to_string(&self).expect("a price table serializes"))
    }

    /// The price of `field` for a provider and model, falling back to the default.
    fn price(&self, provider: &str, model: &str, field: fn(&Prices) -> Option<f64>) -> f64 {
        let keyed = format!("{provider}/{model}");
        [self.models.get(&keyed), self.models.get(model)]
            .into_iter()
            .flatten()
            .find_map(field)
            .or_else(|| field(&self.default))
            .unwrap_or(0.0)
    }

    /// Prices one usage row in place and returns its cost.
    pub fn price_usage(&self, usage: &mut ModelUsageRow) -> f64 {
        let (p, m) = (usage.provider.as_str(), usage.model.as_str());
        let cost = match usage.kind {
            UsageKind::Llm => {
                let input = usage.input_tokens.unwrap_or(0).max(0) as f64;
                let cached = (usage.cached_input_tokens.unwrap_or(0).max(0) as f64).min(input);
                let output = usage.output_tokens.unwrap_or(0).max(0) as f64;
                ((input - cached) * self.price(p, m, |x| x.llm_input_per_million_tokens)
                    + cached * self.price(p, m, |x| x.llm_cached_input_per_million_tokens.or(x.llm_input_per_million_tokens))
                    + output * self.price(p, m, |x| x.llm_output_per_million_tokens))
                    / 1e6
            }
            UsageKind::Tts => usage.characters.unwrap_or(0).max(0) as f64 * self.price(p, m, |x| x.tts_per_million_characters) / 1e6,
            UsageKind::Stt => usage.audio_seconds.unwrap_or(0.0).max(0.0) / 60.0 * self.price(p, m, |x| x.stt_per_minute),
        };
        usage.cost_usd = Some(round_cost(cost));
        cost
    }

    /// The estimated cost of a call: its priced usage plus transport for its duration. `None` when
    /// there is neither usage nor duration to price.
    pub fn call_cost(&self, usage: &mut [ModelUsageRow], duration_seconds: Option<f64>) -> Option<f64> {
        if usage.is_empty() && duration_seconds.is_none() {
            return None;
        }
        let usage_cost: f64 = usage.iter_mut().map(|u| self.price_usage(u)).sum();
        let transport = duration_seconds.map_or(0.0, |s| s.max(0.0) / 60.0 * self.default.transport_per_minute.unwrap_or(0.0));
        Some(round_cost(usage_cost + transport))
    }
}

/// Costs are kept to a hundredth of a cent: finer digits are noise, and round values keep the
/// CloudWatch `Values` of a batch few and distinct.
pub fn round_cost(usd: f64) -> f64 {
    // `+ 0.0` turns -0.0 (the sum of nothing, or a tiny negative rounded) into 0.0: never `$-0.0000`.
    (usd * 10_000.0).round() / 10_000.0 + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(kind: UsageKind, provider: &str, model: &str) -> ModelUsageRow {
        ModelUsageRow::unmeasured(kind, provider.into(), model.into())
    }

    #[test]
    fn the_embedded_table_loads() {
        let t = PriceTable::default();
        assert_eq!(t.currency, "USD");
        assert!(t.models.contains_key("openai/gpt-4o-mini"));
    }

    #[test]
    fn llm_cost_separates_cached_input() {
        let t = PriceTable::default();
        let mut u = usage(UsageKind::Llm, "openai", "gpt-4o");
        u.input_tokens = Some(1_000_000);
        u.cached_input_tokens = Some(400_000);
        u.output_tokens = Some(100_000);
        // 600k × 2.50 + 400k × 1.25 + 100k × 10.00, per million.
        assert!((t.price_usage(&mut u) - (1.5 + 0.5 + 1.0)).abs() < 1e-9);
        assert_eq!(u.cost_usd, Some(3.0));
    }

    #[test]
    fn lookup_falls_back_from_provider_model_to_model_to_default() {
        let t = PriceTable::from_json(
            r#"{"default": {"stt_per_minute": 0.01, "tts_per_million_characters": 10},
                "models": {"nova-3": {"stt_per_minute": 0.02}}}"#,
        )
        .unwrap();
        let mut by_model = usage(UsageKind::Stt, "deepgram", "nova-3");
        by_model.audio_seconds = Some(120.0);
        assert!((t.price_usage(&mut by_model) - 0.04).abs() < 1e-12);
        let mut unknown = usage(UsageKind::Stt, "x", "y");
        unknown.audio_seconds = Some(120.0);
        assert!((t.price_usage(&mut unknown) - 0.02).abs() < 1e-12);
    }

    #[test]
    fn call_cost_adds_transport_and_is_none_without_inputs() {
        let t = PriceTable::from_json(r#"{"default": {"transport_per_minute": 0.01, "tts_per_million_characters": 100}}"#).unwrap();
        let mut u = vec![usage(UsageKind::Tts, "a", "b")];
        u[0].characters = Some(10_000);
        assert_eq!(t.call_cost(&mut u, Some(300.0)), Some(1.05));
        assert_eq!(t.call_cost(&mut [], None), None);
        assert_eq!(t.call_cost(&mut [], Some(60.0)), Some(0.01));
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let t = PriceTable::default()
            .with_overrides(r#"{"default": {"transport_per_minute": 0.05}, "models": {"openai/gpt-4o": {"llm_output_per_million_tokens": 8}, "acme/x": {"stt_per_minute": 0.001}}}"#)
            .unwrap();
        let base = PriceTable::default();
        assert_eq!(t.default.transport_per_minute, Some(0.05));
        assert_eq!(t.default.stt_per_minute, base.default.stt_per_minute);
        assert_eq!(t.models["openai/gpt-4o"].llm_output_per_million_tokens, Some(8.0));
        assert_eq!(t.models["openai/gpt-4o"].llm_input_per_million_tokens, base.models["openai/gpt-4o"].llm_input_per_million_tokens);
        assert_eq!(t.models["acme/x"].stt_per_minute, Some(0.001));
        assert!(PriceTable::default().with_overrides(r#"{"defaults": {}}"#).is_err(), "typos are refused");
        let whole = PriceTable::default().with_overrides(DEFAULT_PRICE_TABLE).unwrap();
        assert_eq!(
            (&whole.currency, &whole.default, &whole.models),
            (&base.currency, &base.default, &base.models),
            "the whole table laid over itself"
        );
        assert!(PriceTable::default().with_overrides(r#"{"default": {"stt_per_minute": -1}}"#).is_err());
    }

    #[test]
    fn bad_tables_are_refused_with_a_reason() {
        assert!(PriceTable::from_json("{").is_err());
        assert!(PriceTable::from_json(r#"{"default": {"stt_per_minit": 1}}"#).is_err());
        assert!(matches!(
            PriceTable::from_json(r#"{"default": {}, "models": {"m": {"stt_per_minute": -1}}}"#),
            Err(PriceTableError::BadPrice(m)) if m == "m"
        ));
    }
}
