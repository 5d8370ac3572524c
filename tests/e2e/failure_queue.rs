//! The on-failure queue end to end: batches that could not be delivered wait in it (moto's SQS, with
//! Lambda's asynchronous retries played by [`AsyncInvocation`]), and `voicelake dlq replay`'s
//! redrive delivers them once the cause is fixed.

use std::collections::{BTreeMap, BTreeSet};

use voicelake_cli::dlq::{self, SqsQueue};
use voicelake_e2e::bed::{Bed, InProcess, dedupe, event, event_ids, expected_ids, traffic};
use voicelake_e2e::{AsyncInvocation, AsyncOutcome, create_queue};
use voicelake_shared::BatchOutput;
use voicelake_shared::envelope::LogBatch;
use voicelake_shared::lake::Table;
use voicelake_shared::timefmt::now_ms;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_mid_run_keeps_its_batches_in_the_failure_queue_until_replayed() {
    let bed = Bed::start("deleted").await;
    let (moto, lake) = (&bed.moto, &bed.lake);
    let (sqs, queue_url) = create_queue(&moto.sdk_config().await, "deleted-failures").await;
    let lambda = AsyncInvocation { sqs: sqs.clone(), queue_url: queue_url.clone(), max_retries: 2 };
    let ingest = bed.ingest(&moto.endpoint, 2).await;

    let batches: Vec<(LogBatch, BatchOutput)> = traffic(16, 8).into_iter().filter(|(_, o)| !o.turns.is_empty()).collect();
    assert!(batches.len() >= 6);
    let mut outcomes = Vec::new();
    for (i, (b, _)) in batches.iter().enumerate() {
        if i == 3 {
            lake.firehose.delete_delivery_stream().delivery_stream_name(&lake.streams.turns).send().await.unwrap();
        }
        let payload = event(b);
        outcomes.push(lambda.invoke(&payload, || ingest.handle(&payload, now_ms())).await);
    }
    assert!(outcomes[..3].iter().all(|o| *o == AsyncOutcome::Delivered(1)));
    assert!(outcomes[3..].iter().all(|o| *o == AsyncOutcome::Queued), "{outcomes:?}");
    let queued = batches.len() - 3;

    // The operator restores the stream and replays the queue.
    lake.create_stream(&lake.streams.turns, "turns/").await;
    let queue = SqsQueue::new(sqs.clone(), &queue_url, 30);
    let summary = dlq::redrive(&queue, &InProcess(&ingest), 1000).await.unwrap();
    assert_eq!((summary.received, summary.replayed), (queued, queued), "{summary:?}");
    assert!(summary.is_clean());
    let left = sqs.receive_message().queue_url(&queue_url).wait_time_seconds(0).send().await.unwrap();
    assert!(left.messages().is_empty(), "the queue is empty after a clean replay");

    // Every turn arrived; sessions of the queued batches arrived once per attempt, and only those.
    let all = || batches.iter().map(|(_, o)| o);
    let turns = lake.records("turns/").await;
    assert_eq!(turns.len(), dedupe(&turns).len(), "turns never reached the deleted stream, so none is doubled");
    assert_eq!(event_ids(&turns).into_iter().collect::<BTreeSet<_>>(), expected_ids(all(), Table::Turns));
    let sessions = lake.records("sessions/").await;
    assert_eq!(dedupe(&sessions).keys().cloned().collect::<BTreeSet<_>>(), expected_ids(all(), Table::Sessions));
    let retried_sessions = expected_ids(batches[3..].iter().map(|(_, o)| o), Table::Sessions);
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for id in event_ids(&sessions) {
        *copies.entry(id).or_default() += 1;
    }
    for (id, n) in copies {
        let want = if retried_sessions.contains(&id) { 4 } else { 1 };
        assert_eq!(n, want, "session {id}: three attempts and the replay, or one");
    }
}
