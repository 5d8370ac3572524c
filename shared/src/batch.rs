//! What one batch gives: its rows, and counts that account for every log event in it.
//!
//! Every log event contributes to a row, or is counted as skipped (not ours) or rejected (ours but
//! unusable, kept in the `rejects` table), or is held back for the stream's next batch (a part of
//! a turn not yet complete). [`BatchStats::is_balanced`] states it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::envelope::LogEvent;
use crate::reasons::{RejectReason, SkipReason};
use crate::rows::{ErrorRow, RejectRow, SessionRow, TurnRow};

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
    /// Lines a container runtime cut into several log events, joined again.
    pub joined_lines: u64,
    /// Bytes of the input that were not UTF-8 (or were NUL) and were replaced with U+FFFD.
    pub replaced_bytes: u64,
    /// Lines held back for the stream's next batch: parts of turns not yet complete.
    pub held: u64,
    /// Lines an earlier batch held back, read again with this one. Counted in `events_in` by the
    /// batch they came with, and here by lines, as `held` counts them.
    pub carried_in: u64,
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

    /// Every event in, and every line carried in, is used, skipped, rejected or held (a payload
    /// reject stands for its whole batch).
    pub fn is_balanced(&self) -> bool {
        let payload_rejects: u64 = [
            RejectReason::BadBase64,
            RejectReason::BadGzip,
            RejectReason::PayloadTooLarge,
            RejectReason::BadPayloadJson,
            RejectReason::LineTooLong,
        ]
        .iter()
        .filter_map(|r| self.rejected.get(r))
        .sum();
        self.events_in + self.carried_in == self.events_used + self.skipped_total() + self.rejected_total() - payload_rejects + self.held
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
        self.joined_lines += other.joined_lines;
        self.replaced_bytes += other.replaced_bytes;
        self.held += other.held;
        self.carried_in += other.carried_in;
    }
}

/// The rows of one batch, ready for the lake and for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutput {
    pub turns: Vec<TurnRow>,
    pub sessions: Vec<SessionRow>,
    pub rejects: Vec<RejectRow>,
    /// Provider failures, sessions closed by errors, worker health.
    pub errors: Vec<ErrorRow>,
    pub stats: BatchStats,
    /// CloudWatch timestamps of the events, for the ingest-lag metric.
    pub event_timestamps: Vec<i64>,
    /// Log events held back, oldest first: the parts of turns not yet complete, to be carried into
    /// the stream's next batch ([`crate::pipeline::process_batch_carrying`]).
    pub held: Vec<LogEvent>,
    pub log_group: String,
    pub log_stream: String,
}
