//! Faults, each ending in delivered data, a retried invocation, or a batch kept in the on-failure
//! queue: Firehose on moto (behind a fault-injecting proxy where moto cannot fault), CloudWatch on the
//! recorder, the on-failure queue on moto's SQS, and Lambda's asynchronous retries played by
//! [`AsyncInvocation`] with the template's `MaximumRetryAttempts`. Throttling and partial
//! `FailedPutCount` answers, which moto never gives, are in `functions/ingest/tests/sdk_mocks.rs`; the
//! failure queue's replay is in `failure_queue.rs`.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use voicelake_e2e::bed::{Bed, cloudwatch, config, dedupe, event, event_ids, expected_ids, firehose, traffic};
use voicelake_e2e::{AsyncInvocation, AsyncOutcome, Fault, FaultProxy, create_queue};
use voicelake_ingest::aws::{CloudWatchMetrics, FirehoseRecords};
use voicelake_ingest::sinks::{BatchAnswer, RecordSink, SendError};
use voicelake_ingest::{DeliveryError, Ingest, Summary};
use voicelake_shared::envelope::LogBatch;
use voicelake_shared::lake::Table;
use voicelake_shared::timefmt::now_ms;
use voicelake_shared::{BatchOutput, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_firehose_times_out_and_the_retried_invocation_delivers() {
    let bed = Bed::start("hang").await;
    let (moto, lake) = (&bed.moto, &bed.lake);
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (sqs, queue_url) = create_queue(&moto.sdk_config().await, "hang-failures").await;
    let lambda = AsyncInvocation { sqs, queue_url: queue_url.clone(), max_retries: 2 };
    let ingest = bed.ingest(&proxy.endpoint, 2).await;

    let batches = traffic(8, 21);
    let (batch, expected) = batches.iter().find(|(_, o)| !o.turns.is_empty() && !o.sessions.is_empty()).unwrap();
    proxy.set(Fault::Hang);
    let errors = Mutex::new(Vec::new());
    let attempts = AtomicUsize::new(0);
    let outcome = lambda
        .invoke(&event(batch), || async {
            if attempts.fetch_add(1, Ordering::SeqCst) == 1 {
                proxy.set(Fault::None); // the network recovers before Lambda's first retry
            }
            let result = ingest.handle(&event(batch), now_ms()).await;
            if let Err(e) = &result {
                errors.lock().unwrap().push(e.to_string());
            }
            result
        })
        .await;
    assert_eq!(outcome, AsyncOutcome::Delivered(2));
    let first = errors.lock().unwrap()[0].clone();
    assert!(first.contains("Firehose stream") && first.contains("Timeout"), "the error names the stream and the timeout: {first}");

    let turns = lake.records("turns/").await;
    assert_eq!(event_ids(&turns).into_iter().collect::<BTreeSet<_>>(), expected_ids([expected].into_iter(), Table::Turns));
    assert_eq!(turns.len(), expected.turns.len(), "the hung attempt delivered nothing, so nothing is doubled");
    assert_eq!(lake.records("sessions/").await.len(), expected.sessions.len());
}

/// The function's sink, frozen after `limit` calls: what a process killed mid-batch (an out-of-memory
/// kill, the function's timeout) leaves behind is some streams sent and others not.
struct FreezesAfter<R> {
    inner: R,
    calls: AtomicUsize,
    limit: usize,
}

impl<R: RecordSink> RecordSink for FreezesAfter<R> {
    async fn put_record_batch(&self, stream: &str, records: &[Vec<u8>]) -> Result<BatchAnswer, SendError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.limit {
            std::future::pending::<()>().await;
        }
        self.inner.put_record_batch(stream, records).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_killed_mid_batch_is_retried_and_its_duplicates_share_event_ids() {
    let bed = Bed::start("killed").await;
    let (moto, recorder, lake) = (&bed.moto, &bed.recorder, &bed.lake);
    let batches = traffic(80, 5);
    // One event with many turns: several PutRecordBatch calls per stream.
    let mut big = batches[0].0.clone();
    for (b, _) in &batches[1..] {
        big.log_events.extend(b.log_events.iter().cloned());
    }
    let expected = voicelake_shared::process_batch(&big, &Config { environment: "faults".into(), ..Config::default() }, now_ms());
    assert!(expected.turns.len() > 500, "more turns than one PutRecordBatch takes: {}", expected.turns.len());

    let frozen = Ingest::new(
        config(lake),
        CloudWatchMetrics::new(cloudwatch(recorder).await),
        FreezesAfter { inner: FirehoseRecords::new(firehose(&moto.endpoint, 3).await), calls: AtomicUsize::new(0), limit: 1 },
    );
    // Killed once its first call got through: the future is dropped, as the process dies.
    let first_call_landed = async {
        while lake.records("").await.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let payload = event(&big);
    tokio::select! {
        _ = frozen.handle(&payload, now_ms()) => panic!("the frozen invocation never answers"),
        landed = tokio::time::timeout(Duration::from_secs(60), first_call_landed) => landed.expect("the first call reaches moto"),
    }
    let after_kill = lake.records("").await;
    assert!(!after_kill.is_empty(), "some records were sent before the kill");
    assert!(after_kill.len() < expected.turns.len() + expected.sessions.len() + expected.rejects.len());

    // Lambda retries the event on a fresh instance.
    let fresh = bed.ingest(&moto.endpoint, 3).await;
    fresh.handle(&event(&big), now_ms()).await.expect("the retry delivers");

    let turns = lake.records("turns/").await;
    let sessions = lake.records("sessions/").await;
    assert!(turns.len() + sessions.len() > expected.turns.len() + expected.sessions.len(), "the retry wrote duplicates");
    let unique_turns = dedupe(&turns);
    assert_eq!(unique_turns.keys().cloned().collect::<BTreeSet<_>>(), expected_ids([&expected].into_iter(), Table::Turns));
    assert_eq!(dedupe(&sessions).keys().cloned().collect::<BTreeSet<_>>(), expected_ids([&expected].into_iter(), Table::Sessions));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_retried_by_the_sdk_then_fail_the_invocation() {
    let bed = Bed::start("reset").await;
    let (moto, recorder, lake) = (&bed.moto, &bed.recorder, &bed.lake);
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let ingest = bed.ingest(&proxy.endpoint, 3).await;
    let batches = traffic(6, 2);
    let (batch, expected) = batches.iter().find(|(_, o)| !o.turns.is_empty()).unwrap();

    proxy.set(Fault::Reset);
    let err: DeliveryError = ingest.handle(&event(batch), now_ms()).await.expect_err("nothing gets through");
    assert!(err.to_string().contains("DispatchFailure"), "{err}");
    assert!(lake.records("").await.is_empty());
    let failures = recorder.sample_counts().await;
    assert!(failures.keys().any(|(name, _)| name == "SendFailures"), "the failure is published for the alarm");

    proxy.set(Fault::None);
    let summary: Summary = ingest.handle(&event(batch), now_ms()).await.expect("delivered once the network is back");
    assert_eq!(summary.turn_records.sent as usize, expected.turns.len());
    assert_eq!(lake.records("turns/").await.len(), expected.turns.len());
}

/// Every malformed fixture, a 1 MB line, 10,000-deep nesting and replaced bytes in one batch with the
/// good lines: on moto, every good row arrives and every bad line is a reject row with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_bad_input_still_delivers_its_good_lines() {
    let bed = Bed::start("malformed").await;
    let (moto, lake) = (&bed.moto, &bed.lake);
    let ingest = bed.ingest(&moto.endpoint, 3).await;

    let mut messages = Vec::new();
    for dir in ["app", "livekit-1.8", "malformed"] {
        let mut files: Vec<_> = std::fs::read_dir(voicelake_e2e::fixture(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            messages.extend(std::fs::read_to_string(&f).unwrap().lines().filter(|l| !l.trim().is_empty()).map(str::to_owned));
        }
    }
    messages.push(format!(
        r#"{{"_event_type": "voice_metrics", "_session_id": "big", "llm_ttft": 0.3, "padding": "{}"}}"#,
        "x".repeat(1 << 20)
    ));
    messages.push(format!(r#"{{"_event_type": "voice_metrics", "x": {}{}, "tts_ttfb": 0.2}}"#, "[".repeat(10_000), "]".repeat(10_000)));
    messages.push("\u{fffd}{\"_event_type\": \"voice_metrics\", \"tts_ttfb\": 0.25}".into());
    let now = now_ms();
    let batch = LogBatch::of_messages("/ecs/voice-agent", "task/abc", now - 60_000, messages);
    let expected = voicelake_shared::process_batch(&batch, &ingest.config().pipeline, now);
    assert!(expected.stats.is_balanced());
    assert!(expected.rejects.len() >= 5 && !expected.turns.is_empty() && !expected.sessions.is_empty());

    let summary = ingest.handle(&event(&batch), now).await.expect("bad lines do not fail the batch");
    assert_eq!(summary.records_failed(), 0);
    let turns = lake.records("turns/").await;
    assert_eq!(event_ids(&turns).into_iter().collect::<BTreeSet<_>>(), expected_ids([&expected].into_iter(), Table::Turns));
    assert_eq!(lake.records("sessions/").await.len(), expected.sessions.len());
    let rejects = lake.records("rejects/").await;
    assert_eq!(rejects.len(), expected.rejects.len());
    for r in &rejects {
        let reason = r["reason"].as_str().unwrap();
        assert!(!reason.is_empty() && r["detail"].as_str().is_some_and(|d| d.len() > 10), "{r}");
    }
    assert!(rejects.iter().any(|r| r["reason"] == "duplicate_key"));
    assert!(rejects.iter().any(|r| r["reason"] == "malformed_json"));
}

/// A short load run: many log streams, every turn counted in and out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_load_run_delivers_every_turn_once() {
    let bed = Bed::start("load").await;
    let (moto, recorder, lake) = (&bed.moto, &bed.recorder, &bed.lake);
    let ingest = bed.ingest(&moto.endpoint, 3).await;
    // Every task of the agents' services writes its own log stream.
    let now = now_ms();
    let batches: Vec<(LogBatch, BatchOutput)> = traffic(250, 77)
        .into_iter()
        .enumerate()
        .map(|(i, (mut b, _))| {
            b.log_stream = format!("voice-agent/task-{:02}", i % 40);
            let out = voicelake_shared::process_batch(&b, &ingest.config().pipeline, now);
            (b, out)
        })
        .collect();

    let mut turns_in = 0usize;
    for (b, o) in &batches {
        ingest.handle(&event(b), now_ms()).await.expect("delivered");
        turns_in += o.turns.len();
    }
    let turns = lake.records("turns/").await;
    assert!(turns_in >= 1500, "{turns_in} turns");
    assert_eq!(turns.len(), turns_in, "no loss and no duplicates without a fault");
    assert_eq!(event_ids(&turns).into_iter().collect::<BTreeSet<_>>(), expected_ids(batches.iter().map(|(_, o)| o), Table::Turns));
    let complete: usize = batches.iter().map(|(_, o)| o.turns.iter().filter(|t| t.is_complete).count()).sum();
    let counts = recorder.sample_counts().await;
    let env = vec![("Environment".to_owned(), "faults".to_owned())];
    assert_eq!(counts[&("TurnLatency".to_owned(), env)], complete as f64, "every complete turn is one latency sample");
}
