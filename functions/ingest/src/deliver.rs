//! Sending a batch's records and datums: split to the API limits, retry what failed, and say
//! exactly what could not be sent.
//!
//! Whole calls that fail on throttling or a transient fault are retried by the SDK (standard retry
//! mode: exponential backoff with jitter), and an error that comes back is final: retrying it here
//! too would multiply the attempts. A `PutRecordBatch` answered with `FailedPutCount > 0` is a
//! success to the SDK, so the records it names are retried here, with full-jitter backoff.

use std::borrow::Cow;

use serde::Serialize;
use tokio::time::{Instant, timeout_at};
use voicelake_shared::metrics::Datum;

use crate::config::RetryPolicy;
use crate::sinks::{MetricsSink, RecordSink};

/// `PutRecordBatch` limits.
pub const MAX_RECORDS_PER_BATCH: usize = 500;
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
pub use voicelake_shared::lake::MAX_RECORD_BYTES;

/// Splits records into `PutRecordBatch` calls of at most 500 records and 4 MiB.
pub fn split_batches(records: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, r) in records.iter().enumerate() {
        if i > start && (i - start == MAX_RECORDS_PER_BATCH || bytes + r.len() > MAX_BATCH_BYTES) {
            out.push(&records[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += r.len();
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// The outcome of sending one stream's records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamOutcome {
    pub sent: u64,
    /// Records sent again after Firehose reported them failed.
    pub retried: u64,
    pub calls: u64,
    /// Records that could not be delivered, with the reason.
    pub failed: u64,
    pub error: Option<String>,
}

/// What a call or a retry that would outlast the invocation's budget reports instead.
pub const DEADLINE: &str = "DeadlineExceeded: no answer within the invocation's time budget";

/// Sends records to a stream; what still fails after the policy's attempts, or is not answered by
/// `deadline`, is reported, not hidden.
pub async fn send_records<R: RecordSink>(
    sink: &R,
    stream: &str,
    records: &[Vec<u8>],
    policy: RetryPolicy,
    deadline: Instant,
) -> StreamOutcome {
    let mut outcome = StreamOutcome::default();
    // Rows are bounded by construction and oversized ones become rejects in the pipeline; a record
    // over the limit here is a bug, and Firehose would refuse the whole call over it: it alone fails.
    let (fitting, oversized): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = records.iter().partition(|r| r.len() <= MAX_RECORD_BYTES);
    if let Some(big) = oversized.first() {
        outcome.failed = oversized.len() as u64;
        outcome.error = Some(format!("a record of {} bytes exceeds Firehose's 1000 KiB limit", big.len()));
    }
    let fitting: Vec<Vec<u8>> = if oversized.is_empty() { Vec::new() } else { fitting.into_iter().cloned().collect() };
    let records: &[Vec<u8>] = if oversized.is_empty() { records } else { &fitting };
    let batches = split_batches(records);
    for (n, batch) in batches.iter().enumerate() {
        let mut pending: Cow<[Vec<u8>]> = Cow::Borrowed(batch);
        let mut attempt = 1;
        loop {
            outcome.calls += 1;
            let Ok(answer) = timeout_at(deadline, sink.put_record_batch(stream, &pending)).await else {
                // Out of time: this batch and the ones after it are not delivered.
                outcome.failed += (pending.len() + batches[n + 1..].iter().map(|b| b.len()).sum::<usize>()) as u64;
                outcome.error.get_or_insert(DEADLINE.into());
                return outcome;
            };
            let (failed, error): (Vec<Vec<u8>>, String) = match answer {
                Ok(a) if a.failed.is_empty() => {
                    outcome.sent += pending.len() as u64;
                    break;
                }
                Ok(a) => {
                    outcome.sent += (pending.len() - a.failed.len()) as u64;
                    let failed = a.failed.iter().filter_map(|&i| pending.get(i).cloned()).collect();
                    (failed, a.first_error.unwrap_or_else(|| "FailedPutCount without an error code".into()))
                }
                Err(e) => {
                    outcome.failed += pending.len() as u64;
                    outcome.error.get_or_insert(e.to_string());
                    break;
                }
            };
            if attempt >= policy.attempts {
                outcome.failed += failed.len() as u64;
                outcome.error.get_or_insert(format!("{error} (after {attempt} attempts)"));
                break;
            }
            // A fresh generator each time: a thread-local one must not be held across an await.
            let wait = policy.backoff(attempt, &mut rand::rng());
            if Instant::now() + wait >= deadline {
                outcome.failed += failed.len() as u64;
                outcome.error.get_or_insert(format!("{error} (after {attempt} attempts; no time left to retry)"));
                break;
            }
            tokio::time::sleep(wait).await;
            outcome.retried += failed.len() as u64;
            pending = Cow::Owned(failed);
            attempt += 1;
        }
    }
    outcome
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsOutcome {
    pub datums: u64,
    pub requests: u64,
    pub failed_requests: u64,
    pub error: Option<String>,
    /// Datums CloudWatch refused as invalid, each found by splitting its request: sending them
    /// again cannot succeed, so they do not fail the invocation; the rest of their request is sent.
    pub refused_datums: u64,
    pub refusal: Option<String>,
}

/// The error codes with which CloudWatch refuses a request for what it holds, not for the moment.
const REFUSALS: [&str; 4] = ["InvalidParameterValue", "InvalidParameterCombination", "MissingParameter", "InvalidParameterValueException"];

/// Sends `PutMetricData` requests one after another (a batch makes few); those not answered by
/// `deadline` count as failed. A request CloudWatch refuses for its content is split in halves and
/// sent again, down to single datums, so that one bad datum costs only itself.
pub async fn send_metrics<M: MetricsSink>(sink: &M, namespace: &str, requests: &[Vec<Datum>], deadline: Instant) -> MetricsOutcome {
    let mut outcome = MetricsOutcome::default();
    for request in requests {
        let mut pending: Vec<&[Datum]> = vec![request];
        while let Some(part) = pending.pop() {
            outcome.requests += 1;
            match timeout_at(deadline, sink.put_metric_data(namespace, part)).await {
                Ok(Ok(())) => outcome.datums += part.len() as u64,
                Ok(Err(e)) if REFUSALS.contains(&e.code.as_str()) => {
                    if part.len() > 1 {
                        let (a, b) = part.split_at(part.len() / 2);
                        pending.push(b);
                        pending.push(a);
                    } else {
                        outcome.refused_datums += 1;
                        outcome.refusal.get_or_insert_with(|| format!("{} refused: {e}", part[0].metric_name));
                    }
                }
                Ok(Err(e)) => {
                    outcome.failed_requests += 1;
                    outcome.error.get_or_insert(e.to_string());
                }
                Err(_) => {
                    outcome.failed_requests += 1;
                    outcome.error.get_or_insert(DEADLINE.into());
                }
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::SendError;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn batches_respect_count_and_size() {
        let small: Vec<Vec<u8>> = (0..1201).map(|_| vec![b'x'; 10]).collect();
        assert_eq!(split_batches(&small).iter().map(|b| b.len()).collect::<Vec<_>>(), vec![500, 500, 201]);
        let big: Vec<Vec<u8>> = (0..10).map(|_| vec![b'x'; 900 * 1024]).collect();
        let batches = split_batches(&big);
        assert!(batches.iter().all(|b| b.iter().map(Vec::len).sum::<usize>() <= MAX_BATCH_BYTES));
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 10);
        assert_eq!(batches.len(), 3);
        assert!(split_batches(&[]).is_empty());
    }

    /// Fails the records whose first byte is in `flaky` for the first `times` calls that hold them.
    struct Flaky {
        flaky: Vec<u8>,
        times: Mutex<u32>,
        calls: Mutex<Vec<Vec<Vec<u8>>>>,
    }

    impl RecordSink for Flaky {
        async fn put_record_batch(&self, _stream: &str, records: &[Vec<u8>]) -> Result<crate::sinks::BatchAnswer, SendError> {
            self.calls.lock().unwrap().push(records.to_vec());
            let mut times = self.times.lock().unwrap();
            if *times == 0 {
                return Ok(Default::default());
            }
            *times -= 1;
            let failed: Vec<usize> = records.iter().enumerate().filter(|(_, r)| self.flaky.contains(&r[0])).map(|(i, _)| i).collect();
            Ok(crate::sinks::BatchAnswer { failed, first_error: Some("ServiceUnavailableException: slow down".into()) })
        }
    }

    const FAST: RetryPolicy = RetryPolicy { attempts: 4, base: Duration::from_millis(1), cap: Duration::from_millis(2) };

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Never answers, as a connection that hangs.
    struct Hangs;
    impl RecordSink for Hangs {
        async fn put_record_batch(&self, _: &str, _: &[Vec<u8>]) -> Result<crate::sinks::BatchAnswer, SendError> {
            std::future::pending().await
        }
    }
    impl crate::sinks::MetricsSink for Hangs {
        async fn put_metric_data(&self, _: &str, _: &[Datum]) -> Result<(), SendError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_hangs_fails_at_the_deadline_with_every_record_counted() {
        let records: Vec<Vec<u8>> = (0..1200).map(|_| b"x".to_vec()).collect();
        let start = Instant::now();
        let outcome = send_records(&Hangs, "turns", &records, FAST, start + Duration::from_secs(3)).await;
        assert_eq!((outcome.sent, outcome.failed, outcome.calls), (0, 1200, 1));
        assert_eq!(outcome.error.as_deref(), Some(DEADLINE));
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
        let metrics = send_metrics(&Hangs, "ns", &[vec![], vec![]], start + Duration::from_secs(5)).await;
        assert_eq!((metrics.requests, metrics.failed_requests), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_waits_past_the_deadline() {
        let slow = RetryPolicy { attempts: 10, base: Duration::from_secs(5), cap: Duration::from_secs(5) };
        let sink = Flaky { flaky: vec![b'a'], times: Mutex::new(100), calls: Mutex::new(vec![]) };
        let start = Instant::now();
        let outcome = send_records(&sink, "turns", &[b"a".to_vec()], slow, start + Duration::from_millis(10)).await;
        assert_eq!((outcome.failed, outcome.calls), (1, 1), "the backoff would end after the deadline");
        assert!(Instant::now() - start < Duration::from_millis(10));
    }

    #[tokio::test]
    async fn only_the_failed_records_are_sent_again() {
        let sink = Flaky { flaky: vec![b'b', b'd'], times: Mutex::new(2), calls: Mutex::new(vec![]) };
        let records: Vec<Vec<u8>> = ["a", "b", "c", "d"].iter().map(|s| s.as_bytes().to_vec()).collect();
        let outcome = send_records(&sink, "turns", &records, FAST, later()).await;
        assert_eq!(outcome, StreamOutcome { sent: 4, retried: 4, calls: 3, failed: 0, error: None });
        let calls = sink.calls.lock().unwrap();
        assert_eq!(calls[1], vec![b"b".to_vec(), b"d".to_vec()]);
        assert_eq!(calls[2], vec![b"b".to_vec(), b"d".to_vec()]);
    }

    #[tokio::test]
    async fn records_that_keep_failing_are_reported_with_the_reason() {
        let sink = Flaky { flaky: vec![b'b'], times: Mutex::new(100), calls: Mutex::new(vec![]) };
        let records: Vec<Vec<u8>> = ["a", "b"].iter().map(|s| s.as_bytes().to_vec()).collect();
        let outcome = send_records(&sink, "turns", &records, FAST, later()).await;
        assert_eq!((outcome.sent, outcome.failed, outcome.calls), (1, 1, 4));
        assert_eq!(outcome.error.as_deref(), Some("ServiceUnavailableException: slow down (after 4 attempts)"));
    }

    struct Missing;
    impl RecordSink for Missing {
        async fn put_record_batch(&self, stream: &str, _: &[Vec<u8>]) -> Result<crate::sinks::BatchAnswer, SendError> {
            Err(SendError { code: "ResourceNotFoundException".into(), message: format!("stream {stream} not found") })
        }
    }

    #[tokio::test]
    async fn a_call_that_fails_is_not_retried_again() {
        let outcome = send_records(&Missing, "nope", &[b"x".to_vec()], FAST, later()).await;
        assert_eq!((outcome.calls, outcome.failed), (1, 1));
        assert_eq!(outcome.error.as_deref(), Some("ResourceNotFoundException: stream nope not found"));
    }

    /// Refuses, as CloudWatch does, a request holding a datum whose dimension value is not
    /// printable ASCII.
    struct Strict {
        calls: Mutex<u32>,
    }
    impl crate::sinks::MetricsSink for Strict {
        async fn put_metric_data(&self, _: &str, datums: &[Datum]) -> Result<(), SendError> {
            *self.calls.lock().unwrap() += 1;
            let bad = datums.iter().any(|d| d.dimensions.iter().any(|(_, v)| !v.bytes().all(|b| (0x20..0x7f).contains(&b))));
            if bad {
                return Err(SendError {
                    code: "InvalidParameterValue".into(),
                    message: "The value ü for dimension Agent is invalid".into(),
                });
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refused_datum_costs_only_itself() {
        let datum = |agent: &str| Datum {
            metric_name: "TurnLatency",
            unit: voicelake_shared::metrics::Unit::Milliseconds,
            dimensions: vec![("Agent", agent.to_owned())],
            timestamp_ms: 0,
            values: vec![1.0],
            counts: vec![1.0],
        };
        let mut request: Vec<Datum> = (0..7).map(|i| datum(&format!("agent-{i}"))).collect();
        request.insert(3, datum("agent-ü"));
        let sink = Strict { calls: Mutex::new(0) };
        let outcome = send_metrics(&sink, "ns", &[request, vec![datum("fine")]], later()).await;
        assert_eq!((outcome.datums, outcome.refused_datums, outcome.failed_requests), (8, 1, 0));
        assert!(outcome.refusal.as_deref().unwrap().contains("TurnLatency refused"), "{outcome:?}");
        assert!(*sink.calls.lock().unwrap() <= 2 * 3 + 2, "a bisection, not one call per datum");
    }

    #[tokio::test]
    async fn an_oversized_record_fails_alone_and_the_others_are_sent() {
        let sink = Flaky { flaky: vec![], times: Mutex::new(0), calls: Mutex::new(vec![]) };
        let records = vec![b"a".to_vec(), vec![b'b'; MAX_RECORD_BYTES + 1], b"c".to_vec()];
        let outcome = send_records(&sink, "t", &records, FAST, later()).await;
        assert_eq!((outcome.calls, outcome.sent, outcome.failed), (1, 2, 1));
        assert_eq!(sink.calls.lock().unwrap()[0], vec![b"a".to_vec(), b"c".to_vec()]);
    }
}
