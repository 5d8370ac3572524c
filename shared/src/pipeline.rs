//! The entry points: one subscription payload or batch in, rows and counts out. Pure: the caller
//! supplies the clock. Each log event is extracted and normalized here, its rejection kept as a
//! row; [`crate::assembly`] makes turns of the rest, [`crate::pii`] scrubs the rows.

use std::borrow::Cow;

use crate::assembly::{Assembly, Holding};
use crate::batch::{BatchOutput, BatchStats};
use crate::config::Config;
use crate::delivery;
use crate::envelope::{self, LogBatch, LogEvent, MessageType};
use crate::extract::{self, Extracted};
use crate::normalize::{self, Observation, Origin};
use crate::pii::{scrub_batch, scrub_reject};
use crate::reasons::{RejectReason, SkipReason};
use crate::rows::{RAW_LIMIT_BYTES, RejectRow, truncate_utf8};

/// Processes a Lambda invocation payload: a subscription event `{"awslogs": {"data": …}}`, or
/// anything else, which is rejected whole (and kept).
pub fn process_event(payload: &serde_json::Value, config: &Config, now_ms: i64) -> BatchOutput {
    decode_event(payload, config, now_ms).process(Hold::Nothing, config, now_ms)
}

/// An invocation payload decoded: its batch, or the output that rejects it whole.
#[derive(Debug)]
pub enum Delivered {
    Batch(envelope::Decoded),
    Rejected(BatchOutput),
}

impl Delivered {
    /// The batch processed on its own ([`process_delivered`] with nothing carried), or the reject.
    fn process(self, hold: Hold, config: &Config, now_ms: i64) -> BatchOutput {
        match self {
            Delivered::Batch(decoded) => process_delivered(&decoded, &[], hold, config, now_ms),
            Delivered::Rejected(out) => out,
        }
    }
}

/// Decodes a Lambda invocation payload, so that the caller can find what its stream carries
/// before processing it ([`process_delivered`]).
pub fn decode_event(payload: &serde_json::Value, config: &Config, now_ms: i64) -> Delivered {
    let Some(data) = payload.pointer("/awslogs/data").and_then(serde_json::Value::as_str) else {
        return Delivered::Rejected(reject_payload(
            &payload.to_string(),
            RejectReason::BadPayloadJson,
            "the invocation payload is not a CloudWatch Logs subscription event {\"awslogs\": {\"data\": …}}".into(),
            config,
            now_ms,
        ));
    };
    decode_data(data, config, now_ms)
}

/// `awslogs.data` decoded; what cannot be is one reject holding what could be read of it.
fn decode_data(data: &str, config: &Config, now_ms: i64) -> Delivered {
    match envelope::inflate(data) {
        Ok(inflated) => decode_inflated(inflated, config, now_ms),
        Err(e) => Delivered::Rejected(reject_payload(data, e.reason(), e.to_string(), config, now_ms)),
    }
}

/// A decompressed payload read as a batch, or rejected whole.
fn decode_inflated(inflated: Vec<u8>, config: &Config, now_ms: i64) -> Delivered {
    match envelope::parse_batch(inflated) {
        Ok(decoded) => Delivered::Batch(decoded),
        Err(e) => {
            let raw = e.to_string();
            Delivered::Rejected(reject_payload(&raw, e.reason(), raw.clone(), config, now_ms))
        }
    }
}

/// Processes a decoded payload with what its stream carries ([`process_batch_carrying`]); the
/// events the envelope could not read are rejects.
pub fn process_delivered(decoded: &envelope::Decoded, carried: &[LogEvent], hold: Hold, config: &Config, now_ms: i64) -> BatchOutput {
    let mut out = process_batch_carrying(&decoded.batch, carried, hold, config, now_ms);
    out.stats.replaced_invalid_utf8 = decoded.replaced_invalid_utf8;
    reject_damaged(&mut out, &decoded.batch, &decoded.damaged, config, now_ms);
    out
}

/// Decodes `awslogs.data` and processes the batch. A payload that cannot be decoded becomes one
/// reject row holding what could be read of it.
pub fn process_payload(data: &str, config: &Config, now_ms: i64) -> BatchOutput {
    process_payload_holding(data, Hold::Nothing, config, now_ms)
}

/// [`process_payload`], holding back the parts of incomplete turns as `hold` says.
pub fn process_payload_holding(data: &str, hold: Hold, config: &Config, now_ms: i64) -> BatchOutput {
    decode_data(data, config, now_ms).process(hold, config, now_ms)
}

/// Processes a decoded subscription payload: what `base64 -d | gunzip` of `awslogs.data` gives,
/// and what a subscription filter to Firehose archives in S3. A `CONTROL_MESSAGE` produces nothing.
pub fn process_decoded(inflated: Vec<u8>, config: &Config, now_ms: i64) -> BatchOutput {
    process_decoded_holding(inflated, Hold::Nothing, config, now_ms)
}

/// [`process_decoded`], holding back the parts of incomplete turns as `hold` says.
pub fn process_decoded_holding(inflated: Vec<u8>, hold: Hold, config: &Config, now_ms: i64) -> BatchOutput {
    decode_inflated(inflated, config, now_ms).process(hold, config, now_ms)
}

fn reject_payload(raw: &str, reason: RejectReason, detail: String, config: &Config, now_ms: i64) -> BatchOutput {
    reject_input(None, raw, reason, detail, config, now_ms)
}

/// One input that cannot be read as log events at all (a payload that is not a subscription
/// event, a line of a file longer than any log event): one reject row holding what could be read
/// of it, named by `source` where the caller knows where it came from (a file and line).
pub fn reject_input(source: Option<&str>, raw: &str, reason: RejectReason, detail: String, config: &Config, now_ms: i64) -> BatchOutput {
    let mut out = BatchOutput::default();
    *out.stats.rejected.entry(reason).or_default() += 1;
    let detail = match source {
        Some(s) => format!("{s}: {detail}"),
        None => detail,
    };
    out.rejects.push(reject_row(source, now_ms, reason, detail, "payload", raw, config, None, None));
    scrub_batch(&mut out, config.scrub());
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
        let time = reject_time(event.timestamp, config, now_ms);
        if let Some(t) = event.timestamp {
            out.event_timestamps.push(t);
        }
        let detail = format!("the log event is not valid JSON: {}", event.error);
        let (group, stream) = (Some(batch.log_group.as_str()), Some(batch.log_stream.as_str()));
        let mut row =
            reject_row(event.id.as_deref(), time, RejectReason::BadEventJson, detail, "message", &event.raw, config, group, stream);
        // The batch's own rows are scrubbed already; this one joins them after.
        scrub_reject(&mut row, config.scrub());
        out.rejects.push(row);
    }
}

/// A reject row's time: its log event's, where the lake shows that time, else the processing time.
fn reject_time(log_time: Option<i64>, config: &Config, now_ms: i64) -> i64 {
    log_time.filter(|&t| crate::timefmt::in_range(t) && config.time_window.refuses(t, t, now_ms).is_none()).unwrap_or(now_ms)
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

/// The time a log message gives itself: its event's own time, else the time its log router or
/// container runtime wrote beside it. `None` for a line that names none (plain text, an event
/// without a time): for inputs that carry no CloudWatch time (raw lines), the nearest line that
/// does stands in.
pub fn message_time(message: &str) -> Option<i64> {
    let unwrapped = delivery::unwrap(message);
    let own = match extract::extract(&unwrapped.line) {
        Extracted::Event(raw) => normalize::logged_time(&raw),
        _ => None,
    };
    own.or(unwrapped.delivery.time_ms)
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
        Observation::Failure(e) => e.value_issues.push(issue),
        Observation::Skip(_) | Observation::Reject { .. } => {}
    }
}

/// Processes a decoded batch on its own: every turn is settled, whole or partial. `CONTROL_MESSAGE`
/// batches produce nothing.
pub fn process_batch(batch: &LogBatch, config: &Config, now_ms: i64) -> BatchOutput {
    process_batch_carrying(batch, &[], Hold::Nothing, config, now_ms)
}

/// How long the parts of an incomplete turn wait for the rest, in log time: far longer than a
/// turn's lines span (seconds, a minute with a slow tool), short enough that a turn that never
/// completes (a greeting without a user turn, a call cut off) reaches the lake within minutes.
pub const PENDING_TIMEOUT_MS: i64 = 5 * 60_000;

/// How long a turn that looks complete waits for lines that may still join it, in log time: a
/// tool round's reply call is logged when it ends, which can be after the first audio of the
/// reply's speech, whose metrics may already be in.
pub const SETTLE_MS: i64 = 10_000;

/// Whether a batch holds back the parts of turns it cannot complete yet, for its stream's next
/// batch. CloudWatch cuts deliveries by time, so a turn's EOU line may come in one and its TTS line
/// in the next: a turn settled from one delivery alone would be partial, and missing from every
/// percentile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hold {
    /// Every turn is settled now, partial if it must be (no store to keep parts in, or the end of
    /// the input).
    Nothing,
    /// The parts of a turn not yet complete are held back ([`BatchOutput::held`]), until its newest
    /// part is `timeout_ms` older than the newest log event of the batch or `clock_ms` (a sweep of
    /// parts whose stream went quiet): then it is settled, partial. A turn that looks complete is
    /// held for [`SETTLE_MS`] the same way, for lines that may still join it.
    Incomplete { timeout_ms: i64, clock_ms: Option<i64> },
    /// The batch is processed before the parts its stream carries are known (a replay processes
    /// batches in parallel and carries parts after, [`crate::Carrier`]): everything carried parts
    /// could still change is held, for the pass with them to decide: every incomplete turn,
    /// whatever its age, and every agent reply without its user message.
    BeforeCarry,
}

/// Processes a decoded batch of one stream with the log events its earlier batches held back
/// (`carried`, oldest first): their lines are read again with the batch's, so that a turn cut
/// across deliveries is assembled whole, and counted once. What is still incomplete is held, as
/// `hold` says. A carried event the batch holds again (a retried delivery) is read once.
pub fn process_batch_carrying(batch: &LogBatch, carried: &[LogEvent], hold: Hold, config: &Config, now_ms: i64) -> BatchOutput {
    let mut out = BatchOutput { log_group: batch.log_group.clone(), log_stream: batch.log_stream.clone(), ..BatchOutput::default() };
    if batch.message_type == MessageType::ControlMessage {
        out.stats.control_message = true;
        out.held = carried.to_vec();
        return out;
    }
    let events = with_carried(batch, carried);
    let carried_count = events.len() - batch.log_events.len();
    let holding = hold.holding(&events);
    let mut assembly = Assembly::default();
    out.event_timestamps.reserve(batch.log_events.len());
    let lines = lines(&events);
    let mut unfinished: Option<std::ops::Range<usize>> = None;
    for line in &lines {
        let event = &events[line.first];
        let span = line.first..line.first + line.parts;
        // Events carried in were counted by the batch that held them: only their line is, again.
        let carried_parts = span.end.min(carried_count).saturating_sub(span.start);
        let fresh_parts = line.parts - carried_parts;
        out.stats.events_in += fresh_parts as u64;
        out.stats.carried_in += u64::from(carried_parts > 0);
        out.event_timestamps.extend(events[span.start + carried_parts..span.end].iter().map(|e| e.timestamp));
        if line.parts > carried_parts.max(1) {
            // The parts after the first were joined into it.
            *out.stats.skipped.entry(SkipReason::JoinedPart).or_default() += (line.parts - carried_parts.max(1)) as u64;
            out.stats.joined_lines += u64::from(carried_parts == 0);
        }
        if line.unfinished && holding.is_some_and(|h| events[span.end - 1].timestamp >= h.horizon_ms) {
            // The rest of the line is in the stream's next delivery.
            unfinished = Some(span);
            out.stats.held += 1;
            continue;
        }
        if let Some(obs) = observe_line(line, event, batch, config, now_ms, &mut out) {
            out.stats.events_used += 1;
            assembly.add(obs, &mut out.stats);
        }
    }
    let held_ids = assembly.finish(config, &mut out, holding);
    hold_back(&held_ids, unfinished, &lines, &events, &mut out);
    scrub_batch(&mut out, config.scrub());
    reject_oversized(&mut out, batch, config, now_ms);
    out
}

/// The batch's log events after those its stream carried in; a carried event the batch holds
/// again (a retried delivery) is read once.
fn with_carried<'b>(batch: &'b LogBatch, carried: &[LogEvent]) -> Cow<'b, [LogEvent]> {
    if carried.is_empty() {
        return Cow::Borrowed(&batch.log_events);
    }
    let fresh: std::collections::HashSet<&str> = batch.log_events.iter().map(|e| e.id.as_str()).collect();
    let mut all: Vec<LogEvent> = carried.iter().filter(|e| !fresh.contains(e.id.as_str())).cloned().collect();
    all.extend(batch.log_events.iter().cloned());
    Cow::Owned(all)
}

impl Hold {
    /// What assembly may hold back of `events`.
    fn holding(self, events: &[LogEvent]) -> Option<Holding> {
        match self {
            Hold::Nothing => None,
            Hold::Incomplete { timeout_ms, clock_ms } => {
                let newest = events.iter().map(|e| e.timestamp).chain(clock_ms).max().unwrap_or(i64::MIN);
                Some(Holding {
                    horizon_ms: newest.saturating_sub(timeout_ms),
                    settle_from_ms: newest.saturating_sub(SETTLE_MS),
                    before_carry: false,
                })
            }
            Hold::BeforeCarry => {
                let newest = events.iter().map(|e| e.timestamp).max().unwrap_or(i64::MIN);
                Some(Holding { horizon_ms: i64::MIN, settle_from_ms: newest.saturating_sub(SETTLE_MS), before_carry: true })
            }
        }
    }
}

/// One line read: what assembly gets of it, or `None` when it was skipped or rejected (counted,
/// and its reject row in `out`).
fn observe_line(
    line: &Line,
    event: &LogEvent,
    batch: &LogBatch,
    config: &Config,
    now_ms: i64,
    out: &mut BatchOutput,
) -> Option<Observation> {
    let origin = Origin {
        event_id: &event.id,
        timestamp: event.timestamp,
        log_group: &batch.log_group,
        log_stream: &batch.log_stream,
        workload: line.delivery.workload.as_deref(),
        delivered_time: line.delivery.time_ms,
    };
    let mut observation = observe_message(&line.text, &origin, config, &mut out.stats);
    if let Some(why) = observation.event_time().and_then(|t| config.time_window.refuses(t, event.timestamp, now_ms)) {
        observation = Observation::Reject { reason: RejectReason::EventTimeOutOfRange, detail: why };
    }
    if let Observation::Reject { reason: reason @ RejectReason::MalformedJson, detail } = &mut observation
        && let Some(cut) = line.cut
    {
        *reason = RejectReason::SplitLine;
        *detail = format!("{detail}; the line was cut at {cut} bytes by its container runtime and the next part could not complete it");
    }
    match observation {
        Observation::Skip(reason) => *out.stats.skipped.entry(reason).or_default() += 1,
        Observation::Reject { reason, detail } => {
            *out.stats.rejected.entry(reason).or_default() += 1;
            let time = reject_time(Some(event.timestamp), config, now_ms);
            let raw = if line.parts > 1 { line.text.as_ref() } else { event.message.as_str() };
            out.rejects.push(reject_row(
                Some(&event.id),
                time,
                reason,
                detail,
                "message",
                raw,
                config,
                Some(&batch.log_group),
                Some(&batch.log_stream),
            ));
        }
        obs => return Some(obs),
    }
    None
}

/// The events of the lines assembly held back (by their first event's id) and of the line whose
/// rest is in the next delivery, for the stream's next batch.
fn hold_back(held_ids: &[String], unfinished: Option<std::ops::Range<usize>>, lines: &[Line], events: &[LogEvent], out: &mut BatchOutput) {
    if held_ids.is_empty() && unfinished.is_none() {
        return;
    }
    out.stats.held += held_ids.len() as u64;
    let held_ids: std::collections::HashSet<&str> = held_ids.iter().map(String::as_str).collect();
    for line in lines {
        let span = line.first..line.first + line.parts;
        if held_ids.contains(events[line.first].id.as_str()) || unfinished.as_ref() == Some(&span) {
            out.held.extend_from_slice(&events[span]);
        }
    }
}

/// One line of the agent's: a log event with its wrapper taken off, or the parts of a line that a
/// container runtime cut into consecutive log events, joined.
struct Line<'b> {
    /// Index of its (first) log event in the batch.
    first: usize,
    /// How many log events it is.
    parts: usize,
    text: Cow<'b, str>,
    delivery: delivery::Delivery,
    /// The size its first part was cut at, when it is the first part of a cut line that could not
    /// be joined.
    cut: Option<usize>,
    /// Its last part says a part follows, and the batch ends: the rest is in the next delivery.
    unfinished: bool,
}

/// The batch's lines: wrappers taken off, and a line a runtime cut joined again. A router's or
/// runtime's parts say so (a `P` CRI line, a `json-file` part without its newline, FireLens's
/// `partial_*` keys); Docker's `awslogs` driver says nothing, so consecutive bare events are joined
/// where the first is exactly a size runtimes cut at, the next has the same timestamp, and the join
/// is a whole object. A part whose rest went to the next batch stays as it is.
fn lines(events: &[LogEvent]) -> Vec<Line<'_>> {
    let mut out = Vec::with_capacity(events.len());
    let mut i = 0;
    while i < events.len() {
        let first = delivery::unwrap(&events[i].message);
        let mut parts = 1;
        let mut text = first.line;
        let mut cut = None;
        let mut unfinished = false;
        if first.delivery.part == delivery::Part::Continues {
            let mut joined = text.into_owned();
            unfinished = true;
            while i + parts < events.len() {
                let next = delivery::unwrap(&events[i + parts].message);
                if next.delivery.form != first.delivery.form {
                    unfinished = false;
                    break;
                }
                joined.push_str(&next.line);
                parts += 1;
                if next.delivery.part != delivery::Part::Continues {
                    unfinished = false;
                    break;
                }
            }
            text = Cow::Owned(joined);
        } else if first.delivery.form == delivery::Form::Bare && delivery::SPLIT_SIZES.contains(&events[i].message.len()) {
            cut = Some(events[i].message.len());
            if let Some(next) = events.get(i + 1).filter(|n| n.timestamp == events[i].timestamp) {
                let joined = format!("{}{}", events[i].message, next.message);
                if matches!(extract::extract(&joined), Extracted::Event(_) | Extracted::NeedsRepair) {
                    text = Cow::Owned(joined);
                    parts = 2;
                    cut = None;
                }
            }
        }
        out.push(Line { first: i, parts, text, delivery: first.delivery, cut, unfinished });
        i += parts;
    }
    out
}

/// A backstop behind the caps of [`crate::rows::caps`]: a row whose Firehose record would still
/// exceed the limit becomes a reject (its input cut), so that it cannot fail its batch. Sessions
/// are the only rows whose size follows their input; turns and rejects are bounded outright.
fn reject_oversized(out: &mut BatchOutput, batch: &LogBatch, config: &Config, now_ms: i64) {
    let too_large = |s: &crate::rows::SessionRow| crate::lake::firehose_record(s).len() > crate::lake::MAX_RECORD_BYTES;
    if !out.sessions.iter().any(too_large) {
        return;
    }
    let (oversized, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut out.sessions).into_iter().partition(too_large);
    out.sessions = kept;
    for s in oversized {
        out.stats.sessions -= 1;
        out.stats.events_used -= 1;
        *out.stats.rejected.entry(RejectReason::RowTooLarge).or_default() += 1;
        let message = batch.log_events.iter().find(|e| e.id == s.event_id).map_or("", |e| e.message.as_str());
        let detail = format!("the row of session {} would make a Firehose record over 1000 KiB", s.session_id);
        let time = reject_time(Some(s.event_time), config, now_ms);
        let (group, stream) = (Some(batch.log_group.as_str()), Some(batch.log_stream.as_str()));
        let mut row = reject_row(Some(&s.event_id), time, RejectReason::RowTooLarge, detail, "message", message, config, group, stream);
        scrub_reject(&mut row, config.scrub());
        out.rejects.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_446_000_000;

    #[test]
    fn a_row_that_would_not_fit_a_record_becomes_a_counted_reject_and_the_rest_stay() {
        let line = r#"{"_event_type": "session_analytics", "_session_id": "big", "duration_seconds": 30}"#;
        let small = r#"{"_event_type": "session_analytics", "_session_id": "small", "duration_seconds": 30}"#;
        let batch = LogBatch::of_messages("/ecs/a", "s", NOW - 1000, [line, small]);
        let config = Config::default();
        let mut out = process_batch(&batch, &config, NOW);
        assert_eq!(out.sessions.len(), 2);
        // No input gets past the caps this far (a property test holds it): build the row by hand.
        let big = out.sessions.iter_mut().find(|s| s.session_id == "big").unwrap();
        big.discovered_signals.insert("transcript".into(), "x".repeat(crate::lake::MAX_RECORD_BYTES));
        reject_oversized(&mut out, &batch, &config, NOW);
        assert_eq!(out.sessions.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>(), ["small"]);
        let [reject] = out.rejects.as_slice() else { panic!("{:?}", out.rejects) };
        assert_eq!((reject.reason.as_str(), reject.raw_message.as_str()), ("row_too_large", line));
        assert_eq!(out.stats.rejected.get(&RejectReason::RowTooLarge), Some(&1));
        assert_eq!(out.stats.sessions, 1);
        assert!(out.stats.is_balanced(), "{:?}", out.stats);
    }
}
