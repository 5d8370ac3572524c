//! Turns cut across deliveries, for a reader that sees each stream's batches in order (the local
//! replay, a backfill): each batch is processed on its own first, holding back what it cannot
//! complete, and in parallel with the others; then, in order, its held parts and those its stream
//! carries are processed together. What they complete is added then; what is still incomplete
//! waits for the stream's next batch, or for [`crate::PENDING_TIMEOUT_MS`] of log time, or for the
//! end of the input. The rows are those of one pass over each stream with every earlier part
//! carried, as the ingest function makes them with its store.

use std::collections::BTreeMap;

use crate::batch::BatchOutput;
use crate::config::Config;
use crate::envelope::{LogBatch, LogEvent};
use crate::pipeline::{Hold, PENDING_TIMEOUT_MS, process_batch_carrying};

/// The parts each stream holds back, between its batches.
#[derive(Debug, Default)]
pub struct Carrier {
    /// By log group and stream.
    pending: BTreeMap<(String, String), Vec<LogEvent>>,
}

impl Carrier {
    /// How a batch is processed on its own, before [`Carrier::after`]: what the parts its stream
    /// carries could change is held for that pass to decide.
    pub const FIRST_PASS: Hold = Hold::BeforeCarry;

    /// Takes `out`'s held parts, the first pass of its stream's next batch: with those its stream
    /// carries, they are processed together, and what that gives (turns completed, or settled
    /// partial by the timeout) is returned; the rest is carried on.
    pub fn after(&mut self, out: &mut BatchOutput, config: &Config, now_ms: i64) -> Option<BatchOutput> {
        let mut stream = self.take_stream(&out.log_group, &out.log_stream);
        let joined = stream.after(out, config, now_ms);
        self.put_stream(stream);
        joined
    }

    /// One stream's carried parts, taken out so that streams can be carried on in parallel (each
    /// stream's batches still in order); [`Carrier::put_stream`] gives them back.
    pub fn take_stream(&mut self, log_group: &str, log_stream: &str) -> StreamCarry {
        let key = (log_group.to_owned(), log_stream.to_owned());
        let pending = self.pending.remove(&key).unwrap_or_default();
        StreamCarry { key, pending }
    }

    pub fn put_stream(&mut self, stream: StreamCarry) {
        if !stream.pending.is_empty() {
            self.pending.insert(stream.key, stream.pending);
        }
    }

    /// The end of the input: every part still held, settled, whole or partial.
    pub fn finish(self, config: &Config, now_ms: i64) -> Vec<BatchOutput> {
        self.pending
            .into_iter()
            .map(|((group, stream), carried)| {
                process_batch_carrying(&LogBatch::of_stream(&group, &stream), &carried, Hold::Nothing, config, now_ms)
            })
            .collect()
    }

    /// Log events held, over every stream.
    pub fn held(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}

/// The parts one stream carries: [`Carrier::take_stream`].
#[derive(Debug)]
pub struct StreamCarry {
    key: (String, String),
    pending: Vec<LogEvent>,
}

impl StreamCarry {
    /// [`Carrier::after`] for this stream's next batch.
    pub fn after(&mut self, out: &mut BatchOutput, config: &Config, now_ms: i64) -> Option<BatchOutput> {
        let held = std::mem::take(&mut out.held);
        if held.is_empty() && self.pending.is_empty() {
            return None;
        }
        let mut carried = std::mem::take(&mut self.pending);
        carried.extend(held);
        let clock_ms = out.event_timestamps.iter().copied().max();
        let hold = Hold::Incomplete { timeout_ms: PENDING_TIMEOUT_MS, clock_ms };
        let mut joined = process_batch_carrying(&LogBatch::of_stream(&self.key.0, &self.key.1), &carried, hold, config, now_ms);
        self.pending = std::mem::take(&mut joined.held);
        Some(joined)
    }
}
