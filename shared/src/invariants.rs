//! The pipeline's promises, as a check the fuzz targets and their regression tests run on every
//! output.

use crate::batch::BatchOutput;
use crate::config::Config;
use crate::metrics;

/// What every input, however broken, must give: every event accounted for as a row, a skip or a
/// reject, no negative or non-finite latency, and metric datums CloudWatch accepts. The fuzz targets
/// (`shared/fuzz`) and their regression tests check it.
pub fn check_invariants(out: &BatchOutput, config: &Config, now_ms: i64) -> Result<(), String> {
    if !out.stats.is_balanced() {
        return Err(format!("unbalanced counts: {:?}", out.stats));
    }
    for t in &out.turns {
        for v in [t.total_latency_ms, t.eou_delay_ms, t.llm_ttft_ms, t.tts_ttfb_ms, t.transcription_delay_ms].into_iter().flatten() {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("turn {}: latency {v}", t.event_id));
            }
        }
    }
    for (table, size) in record_sizes(out) {
        if size > crate::lake::MAX_RECORD_BYTES {
            return Err(format!("a {table} record of {size} bytes exceeds Firehose's 1000 KiB"));
        }
    }
    for d in metrics::datums_for(out, config, now_ms) {
        if let Some((name, value)) = d.dimensions.iter().find(|(_, v)| !is_dimension_value(v)) {
            return Err(format!("datum {}: dimension {name} = {value:?} is not 1 to 1024 printable ASCII characters", d.metric_name));
        }
        if d.values.len() > metrics::MAX_VALUES_PER_DATUM || d.values.len() != d.counts.len() {
            return Err(format!("datum {}: {} values, {} counts", d.metric_name, d.values.len(), d.counts.len()));
        }
        if !d.values.iter().chain(&d.counts).all(|v| v.is_finite() && *v >= 0.0) {
            return Err(format!("datum {}: {:?} {:?}", d.metric_name, d.values, d.counts));
        }
    }
    Ok(())
}

/// What CloudWatch takes as a dimension value: 1 to 1024 printable ASCII characters.
pub fn is_dimension_value(v: &str) -> bool {
    (1..=1024).contains(&v.len()) && v.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The size of every Firehose record the batch's rows make, with the table's name.
pub fn record_sizes(out: &BatchOutput) -> impl Iterator<Item = (&'static str, usize)> + '_ {
    use crate::lake::firehose_record;
    let turns = out.turns.iter().map(|r| ("turns", firehose_record(r).len()));
    let sessions = out.sessions.iter().map(|r| ("sessions", firehose_record(r).len()));
    let rejects = out.rejects.iter().map(|r| ("rejects", firehose_record(r).len()));
    let errors = out.errors.iter().map(|r| ("errors", firehose_record(r).len()));
    turns.chain(sessions).chain(rejects).chain(errors)
}
