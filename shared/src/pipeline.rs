//! The entry points: one subscription payload or batch in, rows and counts out. Pure: the caller
//! supplies the clock. Each log event is extracted and normalized here, its rejection kept as a
//! row; [`crate::assembly`] makes turns of the rest, [`crate::pii`] scrubs the rows.

use crate::assembly::Assembly;
use crate::batch::{BatchOutput, BatchStats};
use crate::config::Config;
use crate::envelope::{self, LogBatch, MessageType};
use crate::extract::{self, Extracted};
use crate::normalize::{self, Observation, Origin};
use crate::pii::{scrub_batch, scrub_reject};
use crate::reasons::RejectReason;
use crate::rows::{RAW_LIMIT_BYTES, RejectRow, truncate_utf8};

/// Processes a Lambda invocation payload: a subscription event `{"awslogs": {"data": …}}`, or
/// anything else, which is rejected whole (and kept).
pub fn process_event(payload: &serde_json::Value, config: &Config, now_ms: i64) -> BatchOutput {
    match payload.pointer("/awslogs/data").and_then(serde_json::Value::as_str) {
        Some(data) => process_payload(data, config, now_ms),
        None => reject_payload(
            &payload.to_string(),
            RejectReason::BadPayloadJson,
            "the invocation payload is not a CloudWatch Logs subscription event {\"awslogs\": {\"data\": …}}".into(),
            config,
            now_ms,
        ),
    }
}

/// Decodes `awslogs.data` and processes the batch. A payload that cannot be decoded becomes one
/// reject row holding what could be read of it.
pub fn process_payload(data: &str, config: &Config, now_ms: i64) -> BatchOutput {
    match envelope::decode(data) {
        Ok(decoded) => {
            let mut out = process_batch(&decoded.batch, config, now_ms);
            out.stats.replaced_invalid_utf8 = decoded.replaced_invalid_utf8;
            reject_damaged(&mut out, &decoded.batch, &decoded.damaged, config, now_ms);
            out
        }
        Err(e) => reject_payload(data, e.reason(), e.to_string(), config, now_ms),
    }
}

fn reject_payload(raw: &str, reason: RejectReason, detail: String, config: &Config, now_ms: i64) -> BatchOutput {
    let mut out = BatchOutput::default();
    *out.stats.rejected.entry(reason).or_default() += 1;
    out.rejects.push(reject_row(None, now_ms, reason, detail, "payload", raw, config, None, None));
    scrub_batch(&mut out, config.pii);
    out
}

/// The events the envelope could not read: each one an event in, and a reject row holding it.
fn reject_damaged(out: &mut BatchOutput, batch: &LogBatch, damaged: &[envelope::DamagedEvent], config: &Config, now_ms: i64) {
    if damaged.is_empty() {
        return;
    }
    for event in damaged {
        out.stats.events_in += 1;
        *out.stats.rejected.entry(RejectReason::BadEventJson).or_default() += 1;
        let time = event.timestamp.filter(|t| crate::timefmt::in_range(*t)).unwrap_or(now_ms);
        if let Some(t) = event.timestamp {
            out.event_timestamps.push(t);
        }
        let detail = format!("the log event is not valid JSON: {}", event.error);
        let (group, stream) = (Some(batch.log_group.as_str()), Some(batch.log_stream.as_str()));
        let mut row =
            reject_row(event.id.as_deref(), time, RejectReason::BadEventJson, detail, "message", &event.raw, config, group, stream);
        // The batch's own rows are scrubbed already; this one joins them after.
        scrub_reject(&mut row, config.pii);
        out.rejects.push(row);
    }
}

#[allow(clippy::too_many_arguments)]
fn reject_row(
    event_id: Option<&str>,
    event_time: i64,
    reason: RejectReason,
    detail: String,
    stage: &str,
    raw: &str,
    config: &Config,
    log_group: Option<&str>,
    log_stream: Option<&str>,
) -> RejectRow {
    let kept = truncate_utf8(raw, RAW_LIMIT_BYTES);
    RejectRow {
        event_id: event_id.map(str::to_owned),
        event_time,
        reason: reason.as_str().to_owned(),
        detail: format!("{detail}. {}", reason.advice()),
        stage: stage.to_owned(),
        raw_message: kept.to_owned(),
        raw_bytes: raw.len() as i64,
        raw_truncated: kept.len() < raw.len(),
        environment: config.environment.clone(),
        log_group: log_group.map(str::to_owned),
        log_stream: log_stream.map(str::to_owned),
    }
}

/// Extracts and normalizes one message, repairing Python's non-finite tokens once.
fn observe_message(message: &str, origin: &Origin, config: &Config, stats: &mut BatchStats) -> Observation {
    match extract::extract(message) {
        Extracted::Event(raw) => normalize::observe(*raw, origin, config),
        Extracted::Skip(reason) => Observation::Skip(reason),
        Extracted::Reject { reason, detail } => Observation::Reject { reason, detail },
        Extracted::NeedsRepair => {
            let (repaired, count) = extract::repair_non_finite(message);
            match extract::extract(&repaired) {
                Extracted::Event(raw) => {
                    stats.repaired_non_finite += u64::from(count);
                    let mut obs = normalize::observe(*raw, origin, config);
                    note_repair(&mut obs, count);
                    obs
                }
                Extracted::Skip(reason) => Observation::Skip(reason),
                Extracted::Reject { reason, detail } => Observation::Reject { reason, detail },
                Extracted::NeedsRepair => Observation::Reject {
                    reason: RejectReason::MalformedJson,
                    detail: "invalid JSON even after replacing NaN and Infinity".into(),
                },
            }
        }
    }
}

fn note_repair(obs: &mut Observation, count: u32) {
    let issue = format!("{count} NaN/Infinity value(s) replaced by null");
    match obs {
        Observation::Turn { row, .. }
        | Observation::ChatAssistant { row, .. }
        | Observation::Component(row)
        | Observation::ChatUser(row) => row.value_issues.push(issue),
        Observation::Session(s) | Observation::Usage(s) => s.value_issues.push(issue),
        Observation::Skip(_) | Observation::Reject { .. } => {}
    }
}

/// Processes a decoded batch. `CONTROL_MESSAGE` batches produce nothing.
pub fn process_batch(batch: &LogBatch, config: &Config, now_ms: i64) -> BatchOutput {
    let mut out = BatchOutput { log_group: batch.log_group.clone(), log_stream: batch.log_stream.clone(), ..BatchOutput::default() };
    if batch.message_type == MessageType::ControlMessage {
        out.stats.control_message = true;
        return out;
    }
    let mut assembly = Assembly::default();
    out.event_timestamps.reserve(batch.log_events.len());
    for event in &batch.log_events {
        out.stats.events_in += 1;
        out.event_timestamps.push(event.timestamp);
        let origin = Origin { event_id: &event.id, timestamp: event.timestamp, log_group: &batch.log_group, log_stream: &batch.log_stream };
        match observe_message(&event.message, &origin, config, &mut out.stats) {
            Observation::Skip(reason) => *out.stats.skipped.entry(reason).or_default() += 1,
            Observation::Reject { reason, detail } => {
                *out.stats.rejected.entry(reason).or_default() += 1;
                let time = if crate::timefmt::in_range(event.timestamp) { event.timestamp } else { now_ms };
                out.rejects.push(reject_row(
                    Some(&event.id),
                    time,
                    reason,
                    detail,
                    "message",
                    &event.message,
                    config,
                    Some(&batch.log_group),
                    Some(&batch.log_stream),
                ));
            }
            obs => {
                out.stats.events_used += 1;
                assembly.add(obs, &mut out.stats);
            }
        }
    }
    assembly.finish(config, &mut out);
    scrub_batch(&mut out, config.pii);
    out
}
