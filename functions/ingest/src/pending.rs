//! The parts of turns cut across invocations. CloudWatch cuts a stream's deliveries by time, so a
//! turn's EOU line may reach one invocation and its TTS line the next; the pure pipeline holds back
//! the log events of what it cannot complete yet ([`voicelake_shared::Hold`]), and this store keeps
//! them between invocations, by log group and stream, until the stream's next delivery (or the
//! scheduled sweep, for a stream gone quiet) completes or settles them.
//!
//! An invocation *takes* the parts it used, each with a conditional delete, before it sends: a
//! part that two concurrent invocations of one stream both loaded is used by the one that took it,
//! and the other processes again without it. A failed send puts the taken parts back, so that
//! Lambda's retry of the batch finds them.

use std::future::Future;

use voicelake_shared::envelope::LogEvent;

use crate::sinks::SendError;

/// A stream whose parts are held.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub log_group: String,
    pub log_stream: String,
}

impl StreamKey {
    /// The store's key of the stream: `group:stream`. Log group names cannot hold `:`, so the
    /// first one separates them.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.log_group, self.log_stream)
    }

    pub fn decode(key: &str) -> Option<StreamKey> {
        let (group, stream) = key.split_once(':')?;
        Some(StreamKey { log_group: group.to_owned(), log_stream: stream.to_owned() })
    }
}

/// Where held parts wait between invocations.
pub trait PendingStore: Send + Sync {
    /// Whether parts are kept at all: without a store every turn is settled in its invocation.
    fn keeps_parts(&self) -> bool {
        true
    }

    /// The events held for a stream, oldest first.
    fn load(&self, key: &StreamKey) -> impl Future<Output = Result<Vec<LogEvent>, SendError>> + Send;

    /// Removes each of `ids` that is still held; returns those it removed (a concurrent invocation
    /// of the stream may have taken the others).
    fn take(&self, key: &StreamKey, ids: &[String]) -> impl Future<Output = Result<Vec<String>, SendError>> + Send;

    /// Holds `events` for the stream, stamped with the time they were held.
    fn put(&self, key: &StreamKey, events: &[LogEvent], now_ms: i64) -> impl Future<Output = Result<(), SendError>> + Send;

    /// The streams with a part held before `before_ms`: what the sweep looks at.
    fn stale(&self, before_ms: i64) -> impl Future<Output = Result<Vec<StreamKey>, SendError>> + Send;
}

/// No store: nothing is held, every turn is settled in the invocation that has its lines (and the
/// lake's `turns_assembled` view joins the parts).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStore;

impl PendingStore for NoStore {
    fn keeps_parts(&self) -> bool {
        false
    }

    async fn load(&self, _key: &StreamKey) -> Result<Vec<LogEvent>, SendError> {
        Ok(Vec::new())
    }

    async fn take(&self, _key: &StreamKey, _ids: &[String]) -> Result<Vec<String>, SendError> {
        Ok(Vec::new())
    }

    async fn put(&self, _key: &StreamKey, _events: &[LogEvent], _now_ms: i64) -> Result<(), SendError> {
        Ok(())
    }

    async fn stale(&self, _before_ms: i64) -> Result<Vec<StreamKey>, SendError> {
        Ok(Vec::new())
    }
}
