//! One subscription batch in, rows and counts out. Pure: the caller supplies the clock.
//!
//! Every log event is accounted for: it contributes to a row, or it is counted as skipped (not ours)
//! or rejected (ours but unusable, kept in the `rejects` table). [`BatchStats::is_balanced`] states it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::config::Config;
use crate::envelope::{self, LogBatch, MessageType};
use crate::event::Component;
use crate::extract::{self, Extracted};
use crate::normalize::{self, Observation, Origin};
use crate::reasons::{RejectReason, SkipReason};
use crate::rows::{LatencySource, RAW_LIMIT_BYTES, RejectRow, SessionRow, SourceFormat, TurnRow, truncate_utf8};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchStats {
    /// Log events in the batch.
    pub events_in: u64,
    /// Log events that contributed to a turn or session row.
    pub events_used: u64,
    /// Complete turns (with a latency).
    pub turns: u64,
    /// Turn rows still missing a component: assembled across batches by Athena.
    pub partial_turns: u64,
    pub sessions: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Rejected log events by reason. A payload that cannot be decoded counts once here.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Values nulled as sentinels, negative, non-finite, implausible or of the wrong type.
    pub nulled_values: u64,
    /// Python `NaN`/`Infinity` tokens replaced before parsing.
    pub repaired_non_finite: u64,
    pub control_message: bool,
    pub replaced_invalid_utf8: bool,
}

/// The counts a batch is summed up by: the function's summary line, the local report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub events_in: u64,
    pub turns: u64,
    pub partial_turns: u64,
    pub sessions: u64,
    pub rejected: u64,
    pub skipped: u64,
    pub nulled_values: u64,
}

impl BatchStats {
    pub fn counts(&self) -> Counts {
        Counts {
            events_in: self.events_in,
            turns: self.turns,
            partial_turns: self.partial_turns,
            sessions: self.sessions,
            rejected: self.rejected_total(),
            skipped: self.skipped_total(),
            nulled_values: self.nulled_values,
        }
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Every event in is used, skipped or rejected (a payload reject stands for its whole batch).
    pub fn is_balanced(&self) -> bool {
        let payload_rejects: u64 =
            [RejectReason::BadBase64, RejectReason::BadGzip, RejectReason::PayloadTooLarge, RejectReason::BadPayloadJson]
                .iter()
                .filter_map(|r| self.rejected.get(r))
                .sum();
        self.events_in == self.events_used + self.skipped_total() + self.rejected_total() - payload_rejects
    }

    pub fn merge(&mut self, other: &BatchStats) {
        self.events_in += other.events_in;
        self.events_used += other.events_used;
        self.turns += other.turns;
        self.partial_turns += other.partial_turns;
        self.sessions += other.sessions;
        for (k, v) in &other.skipped {
            *self.skipped.entry(*k).or_default() += v;
        }
        for (k, v) in &other.rejected {
            *self.rejected.entry(*k).or_default() += v;
        }
        self.nulled_values += other.nulled_values;
        self.repaired_non_finite += other.repaired_non_finite;
        self.control_message |= other.control_message;
        self.replaced_invalid_utf8 |= other.replaced_invalid_utf8;
    }
}

/// The rows of one batch, ready for the lake and for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutput {
    pub turns: Vec<TurnRow>,
    pub sessions: Vec<SessionRow>,
    pub rejects: Vec<RejectRow>,
    pub stats: BatchStats,
    /// CloudWatch timestamps of the events, for the ingest-lag metric.
    pub event_timestamps: Vec<i64>,
    pub log_group: String,
    pub log_stream: String,
}

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
            out
        }
        Err(e) => reject_payload(data, e.reason(), e.to_string(), config, now_ms),
    }
}

fn reject_payload(raw: &str, reason: RejectReason, detail: String, config: &Config, now_ms: i64) -> BatchOutput {
    let mut out = BatchOutput::default();
    *out.stats.rejected.entry(reason).or_default() += 1;
    out.rejects.push(reject_row(None, now_ms, reason, detail, "payload", raw, config, None, None));
    scrub_personal_data(&mut out, config.pii);
    out
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
pub fn observe_message(message: &str, origin: &Origin, config: &Config, stats: &mut BatchStats) -> Observation {
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
        Observation::Turn(r) | Observation::Component(r) | Observation::ChatUser(r) | Observation::ChatAssistant(r) => {
            r.value_issues.push(issue)
        }
        Observation::Session(s) | Observation::Usage(s) => s.value_issues.push(issue),
        Observation::Skip(_) | Observation::Reject { .. } => {}
    }
}

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
    for d in crate::metrics::datums_for(out, config, now_ms) {
        if d.values.len() > crate::metrics::MAX_VALUES_PER_DATUM || d.values.len() != d.counts.len() {
            return Err(format!("datum {}: {} values, {} counts", d.metric_name, d.values.len(), d.counts.len()));
        }
        if !d.values.iter().chain(&d.counts).all(|v| v.is_finite() && *v >= 0.0) {
            return Err(format!("datum {}: {:?} {:?}", d.metric_name, d.values, d.counts));
        }
    }
    Ok(())
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
    scrub_personal_data(&mut out, config.pii);
    out
}

/// Applies the personal-data policy to the free-form fields of every row.
fn scrub_personal_data(out: &mut BatchOutput, mode: crate::pii::PiiMode) {
    use crate::pii::scrub;
    if mode == crate::pii::PiiMode::Keep {
        return;
    }
    let fix = |s: &mut String| {
        if let std::borrow::Cow::Owned(clean) = scrub(s, mode) {
            *s = clean;
        }
    };
    for t in &mut out.turns {
        t.session_id.as_mut().map(fix);
    }
    for s in &mut out.sessions {
        fix(&mut s.session_id);
        s.discovered_signals.values_mut().for_each(fix);
        s.tool_calls.iter_mut().filter_map(|c| c.error.as_mut()).for_each(fix);
    }
    for r in &mut out.rejects {
        fix(&mut r.raw_message);
        fix(&mut r.detail);
    }
}

/// Turn assembly within a batch.
#[derive(Default)]
struct Assembly {
    turns: Vec<TurnRow>,
    /// LiveKit component rows by `speech_id`, in order of first appearance.
    by_speech: Vec<Vec<TurnRow>>,
    /// `log_metrics()` rows, which carry no `speech_id`: assembled by order within their session.
    logged: Vec<TurnRow>,
    speech_index: HashMap<String, usize>,
    chat: Vec<(usize, TurnRow, bool)>,
    sessions: Vec<SessionRow>,
    /// The latest usage update per session.
    usage: HashMap<String, SessionRow>,
}

impl Assembly {
    fn add(&mut self, obs: Observation, stats: &mut BatchStats) {
        match obs {
            Observation::Turn(row) => self.turns.push(row),
            Observation::Component(row) if row.speech_id.is_none() && row.source_format == SourceFormat::LivekitLogMetrics => {
                self.logged.push(row)
            }
            Observation::Component(row) => match row.speech_id.clone() {
                Some(speech) => {
                    let next = self.by_speech.len();
                    let at = *self.speech_index.entry(speech).or_insert(next);
                    if at == next {
                        self.by_speech.push(Vec::new());
                    }
                    self.by_speech[at].push(row);
                }
                None => self.turns.push(row),
            },
            Observation::ChatUser(row) => self.chat.push((self.chat.len(), row, false)),
            Observation::ChatAssistant(row) => self.chat.push((self.chat.len(), row, true)),
            Observation::Session(row) => self.sessions.push(row),
            Observation::Usage(row) => {
                let key = row.session_id.clone();
                match self.usage.get_mut(&key) {
                    Some(current) if current.event_time > row.event_time => {
                        *stats.skipped.entry(SkipReason::SupersededUsage).or_default() += 1;
                        stats.events_used -= 1;
                    }
                    Some(current) => {
                        *current = row;
                        *stats.skipped.entry(SkipReason::SupersededUsage).or_default() += 1;
                        stats.events_used -= 1;
                    }
                    None => {
                        self.usage.insert(key, row);
                    }
                }
            }
            Observation::Skip(_) | Observation::Reject { .. } => unreachable!("handled by the caller"),
        }
    }

    fn finish(mut self, config: &Config, out: &mut BatchOutput) {
        for parts in std::mem::take(&mut self.by_speech) {
            self.turns.push(merge_components(parts));
        }
        for parts in sequence_logged(std::mem::take(&mut self.logged)) {
            self.turns.push(merge_components(parts));
        }
        self.join_chat();
        for row in &mut self.turns {
            let reported = row.total_latency_ms.filter(|_| row.latency_source == Some(LatencySource::Reported));
            normalize::finish_turn(row, reported, config);
            let nulled = row.value_issues.len() as u64;
            out.stats.nulled_values += nulled;
            if row.is_complete {
                out.stats.turns += 1;
            } else {
                out.stats.partial_turns += 1;
            }
        }
        let mut usage: Vec<SessionRow> = self.usage.into_values().collect();
        usage.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
        self.sessions.extend(usage);
        for s in &self.sessions {
            out.stats.nulled_values += s.value_issues.len() as u64;
        }
        out.stats.sessions = self.sessions.len() as u64;
        self.turns.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
        out.turns = self.turns;
        out.sessions = self.sessions;
    }

    /// Gives each agent chat message the end-of-turn delay of the user message before it in the
    /// same session. User messages left unanswered in the batch stay as component rows.
    fn join_chat(&mut self) {
        let mut chat = std::mem::take(&mut self.chat);
        chat.sort_by_key(|a| (a.1.event_time, a.0));
        let mut pending_user: HashMap<Option<String>, TurnRow> = HashMap::new();
        for (_, row, is_assistant) in chat {
            if !is_assistant {
                if let Some(unanswered) = pending_user.insert(row.session_id.clone(), row) {
                    self.turns.push(unanswered);
                }
                continue;
            }
            let mut turn = row;
            if let Some(user) = pending_user.remove(&turn.session_id) {
                turn.eou_delay_ms = turn.eou_delay_ms.or(user.eou_delay_ms);
                turn.transcription_delay_ms = turn.transcription_delay_ms.or(user.transcription_delay_ms);
                turn.stt_model = turn.stt_model.or(user.stt_model);
                turn.stt_provider = turn.stt_provider.or(user.stt_provider);
                turn.value_issues.extend(user.value_issues);
                turn.component_events += 1;
            }
            self.turns.push(turn);
        }
        let mut rest: Vec<TurnRow> = pending_user.into_values().collect();
        rest.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
        self.turns.extend(rest);
    }
}

/// Groups `log_metrics()` rows into turns without a `speech_id`: within one session and log stream,
/// in time order, an EOU line opens a turn and the LLM and TTS lines after it join it until the next
/// EOU line. LiveKit writes them in that order (end of turn, then the reply's LLM call, then its
/// speech). Lines before any EOU line of the batch (a greeting, or a turn whose EOU line went in the
/// previous batch), and STT lines, which meter audio rather than turns, stay component rows.
fn sequence_logged(mut rows: Vec<TurnRow>) -> Vec<Vec<TurnRow>> {
    rows.sort_by(|a, b| {
        (&a.session_id, &a.log_stream, a.event_time, &a.event_id).cmp(&(&b.session_id, &b.log_stream, b.event_time, &b.event_id))
    });
    let mut groups: Vec<Vec<TurnRow>> = Vec::new();
    let mut open: Option<usize> = None;
    let mut key: Option<(Option<String>, String)> = None;
    for row in rows {
        let row_key = (row.session_id.clone(), row.log_stream.clone());
        if key.as_ref() != Some(&row_key) {
            open = None;
            key = Some(row_key);
        }
        let is_stt = row.component == Some(Component::Stt);
        if row.component == Some(Component::Eou) && row.session_id.is_some() {
            open = Some(groups.len());
            groups.push(vec![row]);
        } else if let (Some(at), false) = (open, is_stt) {
            groups[at].push(row);
        } else {
            groups.push(vec![row]);
        }
    }
    groups
}

/// Merges the component rows of one `speech_id`: identity from the earliest, the first LLM call's
/// ttft and duration and the first TTS segment's ttfb, usage summed over all of them.
fn merge_components(mut parts: Vec<TurnRow>) -> TurnRow {
    parts.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
    let mut iter = parts.into_iter();
    let mut turn = iter.next().expect("a speech_id group has at least one row");
    fn add<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }
    for part in iter {
        turn.session_id = turn.session_id.or(part.session_id);
        turn.agent_version = turn.agent_version.or(part.agent_version);
        turn.tenant_id = turn.tenant_id.or(part.tenant_id);
        turn.eou_delay_ms = turn.eou_delay_ms.or(part.eou_delay_ms);
        turn.transcription_delay_ms = turn.transcription_delay_ms.or(part.transcription_delay_ms);
        turn.llm_ttft_ms = turn.llm_ttft_ms.or(part.llm_ttft_ms);
        turn.llm_duration_ms = turn.llm_duration_ms.or(part.llm_duration_ms);
        turn.tts_ttfb_ms = turn.tts_ttfb_ms.or(part.tts_ttfb_ms);
        turn.tts_duration_ms = add(turn.tts_duration_ms, part.tts_duration_ms);
        turn.tts_audio_duration_ms = add(turn.tts_audio_duration_ms, part.tts_audio_duration_ms);
        turn.stt_duration_ms = add(turn.stt_duration_ms, part.stt_duration_ms);
        turn.stt_audio_duration_ms = add(turn.stt_audio_duration_ms, part.stt_audio_duration_ms);
        turn.prompt_tokens = add(turn.prompt_tokens, part.prompt_tokens);
        turn.prompt_cached_tokens = add(turn.prompt_cached_tokens, part.prompt_cached_tokens);
        turn.completion_tokens = add(turn.completion_tokens, part.completion_tokens);
        turn.tts_characters = add(turn.tts_characters, part.tts_characters);
        turn.llm_model = turn.llm_model.or(part.llm_model);
        turn.llm_provider = turn.llm_provider.or(part.llm_provider);
        turn.tts_model = turn.tts_model.or(part.tts_model);
        turn.tts_provider = turn.tts_provider.or(part.tts_provider);
        turn.stt_model = turn.stt_model.or(part.stt_model);
        turn.stt_provider = turn.stt_provider.or(part.stt_provider);
        turn.value_issues.extend(part.value_issues);
        turn.component_events += part.component_events;
    }
    turn
}
