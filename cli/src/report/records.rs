//! What the report keeps per turn, observation, call, tool failure, reject, provider failure and
//! spend, as [`Spill`] records.

use voicelake_shared::diagnosis::FailureFact;

use crate::spill::{Record, codec};

/// One complete turn, compact. The session is a 128-bit hash of its id ([`session_key`]); the
/// agent an index into the builder's agents; missing components are NaN.
#[derive(Debug, Clone, Copy)]
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

impl Record for TurnPoint {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.time);
        codec::put_u128(out, self.session);
        codec::put_u32(out, self.agent);
        for v in [self.latency, self.eou, self.hook, self.ttft, self.ttfb] {
            codec::put_f64(out, v);
        }
        codec::put_u8(out, u8::from(self.over_target));
    }
    fn decode(input: &mut &[u8]) -> TurnPoint {
        TurnPoint {
            time: codec::i64(input),
            session: codec::u128(input),
            agent: codec::u32(input),
            latency: codec::f64(input),
            eou: codec::f64(input),
            hook: codec::f64(input),
            ttft: codec::f64(input),
            ttfb: codec::f64(input),
            over_target: codec::u8(input) == 1,
        }
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
pub(super) struct SessionName {
    pub(super) key: u128,
    pub(super) id: String,
}

impl Record for SessionName {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u128(out, self.key);
        codec::put_str(out, &self.id);
    }
    fn decode(input: &mut &[u8]) -> SessionName {
        SessionName { key: codec::u128(input), id: codec::string(input) }
    }
}

/// One observation of a metric: event time in whole seconds (periods and windows are whole
/// minutes, so seconds place it in the same one as milliseconds would), agent (an index into the
/// builder's agents), value.
#[derive(Debug, Clone, Copy)]
pub(super) struct MetricSample {
    pub(super) second: u32,
    pub(super) agent: u32,
    pub(super) value: f64,
}

impl MetricSample {
    pub(super) fn time(&self) -> i64 {
        i64::from(self.second) * 1000
    }
}

impl Record for MetricSample {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u32(out, self.second);
        codec::put_u32(out, self.agent);
        codec::put_f64(out, self.value);
    }
    fn decode(input: &mut &[u8]) -> MetricSample {
        MetricSample { second: codec::u32(input), agent: codec::u32(input), value: codec::f64(input) }
    }
}

/// A call that ended (its `session_analytics` event), for a diagnosis.
#[derive(Debug, Clone)]
pub(super) struct EndedCall {
    pub(super) time: i64,
    pub(super) session: String,
    pub(super) agent: String,
    pub(super) cost_usd: Option<f64>,
    pub(super) failed_tool_calls: u64,
}

impl Record for EndedCall {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.time);
        codec::put_str(out, &self.session);
        codec::put_str(out, &self.agent);
        codec::put_opt_f64(out, self.cost_usd);
        codec::put_u64(out, self.failed_tool_calls);
    }
    fn decode(input: &mut &[u8]) -> EndedCall {
        EndedCall {
            time: codec::i64(input),
            session: codec::string(input),
            agent: codec::string(input),
            cost_usd: codec::opt_f64(input),
            failed_tool_calls: codec::u64(input),
        }
    }
}

/// A failed tool call: time, tool, error.
pub(super) struct ToolFailure(pub(super) i64, pub(super) String, pub(super) Option<String>);

impl Record for ToolFailure {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.0);
        codec::put_str(out, &self.1);
        codec::put_opt_str(out, self.2.as_deref());
    }
    fn decode(input: &mut &[u8]) -> ToolFailure {
        ToolFailure(codec::i64(input), codec::string(input), codec::opt_string(input))
    }
}

/// A reject: time, reason, raw line.
pub(super) struct Rejected(pub(super) i64, pub(super) String, pub(super) String);

impl Record for Rejected {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.0);
        codec::put_str(out, &self.1);
        codec::put_str(out, &self.2);
    }
    fn decode(input: &mut &[u8]) -> Rejected {
        Rejected(codec::i64(input), codec::string(input), codec::string(input))
    }
}

impl Record for FailureFact {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.time);
        codec::put_str(out, &self.agent);
        codec::put_opt_str(out, self.session.as_deref());
        codec::put_str(out, &self.kind);
        codec::put_str(out, &self.provider);
        codec::put_str(out, &self.action);
        codec::put_opt_str(out, self.class.as_deref());
        codec::put_u8(out, u8::from(self.counted));
    }
    fn decode(input: &mut &[u8]) -> FailureFact {
        FailureFact {
            time: codec::i64(input),
            agent: codec::string(input),
            session: codec::opt_string(input),
            kind: codec::string(input),
            provider: codec::string(input),
            action: codec::string(input),
            class: codec::opt_string(input),
            counted: codec::u8(input) == 1,
        }
    }
}

/// Spend on one model: time, provider/model, USD.
pub(super) struct Spend(pub(super) i64, pub(super) String, pub(super) f64);

impl Record for Spend {
    fn encode(&self, out: &mut Vec<u8>) {
        codec::put_i64(out, self.0);
        codec::put_str(out, &self.1);
        codec::put_f64(out, self.2);
    }
    fn decode(input: &mut &[u8]) -> Spend {
        Spend(codec::i64(input), codec::string(input), codec::f64(input))
    }
}

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
