//! What the report keeps per turn, observation, call, tool failure, reject, provider failure and
//! spend, as [`Spill`](crate::spill::Spill) records: serde types, written in postcard's compact form.

use serde::{Deserialize, Serialize};

/// One complete turn, compact. The session is a 128-bit hash of its id ([`session_key`]); the
/// agent an index into the builder's agents; missing components are NaN.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct TurnPoint {
    pub(super) time: i64,
    /// [`session_key`] of the turn's session, or [`NO_SESSION`].
    pub(super) session: u128,
    /// Into [`ReportBuilder::agents`].
    pub(super) agent: u32,
    pub(super) latency: f64,
    pub(super) eou: f64,
    pub(super) hook: f64,
    pub(super) ttft: f64,
    pub(super) ttfb: f64,
    pub(super) over_target: bool,
}

pub(super) const NO_SESSION: u128 = 0;

impl TurnPoint {
    pub(super) fn eou(&self) -> Option<f64> {
        (!self.eou.is_nan()).then_some(self.eou)
    }
    pub(super) fn hook(&self) -> Option<f64> {
        (!self.hook.is_nan()).then_some(self.hook)
    }
    pub(super) fn ttft(&self) -> Option<f64> {
        (!self.ttft.is_nan()).then_some(self.ttft)
    }
    pub(super) fn ttfb(&self) -> Option<f64> {
        (!self.ttfb.is_nan()).then_some(self.ttfb)
    }
}

/// A session id as the report keys it: two SipHash digests of the id with fixed keys, never
/// [`NO_SESSION`]. Two of a replay's ids share a key with a probability of about n²/2¹²⁹.
pub(super) fn session_key(id: &str) -> u128 {
    use std::hash::Hasher;
    let digest = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        h.write_u8(salt);
        h.write(id.as_bytes());
        h.finish()
    };
    (u128::from(digest(0)) << 64 | u128::from(digest(1))).max(1)
}

/// A session id with its key, once per batch in which it appears.
#[derive(Serialize, Deserialize)]
pub(super) struct SessionName {
    pub(super) key: u128,
    pub(super) id: String,
}

/// One observation of a metric: event time in whole seconds (periods and windows are whole
/// minutes, so seconds place it in the same one as milliseconds would), agent (an index into the
/// builder's agents), value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Observation {
    pub(super) second: u32,
    pub(super) agent: u32,
    pub(super) value: f64,
}

impl Observation {
    pub(super) fn time(&self) -> i64 {
        i64::from(self.second) * 1000
    }
}

/// A call that ended (its `session_analytics` event), for a diagnosis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EndedCall {
    pub(super) time: i64,
    pub(super) session: String,
    pub(super) agent: String,
    pub(super) cost_usd: Option<f64>,
    pub(super) failed_tool_calls: u64,
}

/// A failed tool call: time, tool, error.
#[derive(Serialize, Deserialize)]
pub(super) struct ToolFailure(pub(super) i64, pub(super) String, pub(super) Option<String>);

/// A reject: time, reason, raw line.
#[derive(Serialize, Deserialize)]
pub(super) struct Rejected(pub(super) i64, pub(super) String, pub(super) String);

/// Spend on one model: time, provider/model, USD.
#[derive(Serialize, Deserialize)]
pub(super) struct Spend(pub(super) i64, pub(super) String, pub(super) f64);

pub(super) fn dominant_component(turns: &[TurnPoint]) -> Option<&'static str> {
    let mean = |f: fn(&TurnPoint) -> Option<f64>| {
        let v: Vec<f64> = turns.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    voicelake_shared::diagnosis::dominant_component(
        mean(TurnPoint::eou),
        mean(TurnPoint::hook),
        mean(TurnPoint::ttft),
        mean(TurnPoint::ttfb),
    )
}
