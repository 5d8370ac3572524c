//! `voicelake backfill` against moto: log groups of many streams read a page at a time, an export
//! in S3, a run interrupted and resumed, a second run, and the Parquet it writes read back against
//! the Glue tables of template.yaml. Throttling, which moto cannot produce, through aws-smithy-mocks.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Float64Type;
use aws_config::SdkConfig;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use flate2::Compression;
use flate2::write::GzEncoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use voicelake_cli::backfill::sources::{CloudWatchLogs, LakeSink, LocalLake, LogEvents, LogPage, S3Export, S3Lake, retry_config};
use voicelake_cli::backfill::{Backfill, Progress, Totals, plan};
use voicelake_cli::replay::LocalReplay;
use voicelake_e2e::{Moto, repo_root};
use voicelake_shared::config::DEFAULT_FILTER_PATTERN;
use voicelake_shared::envelope::{LogBatch, MessageType};
use voicelake_shared::lake::{self, Table};
use voicelake_shared::{Carrier, Config};
use voicelake_synth::{SynthOptions, generate};

const HOUR: i64 = 3_600_000;

/// Generated traffic in each of the last `hours` hours but the current one (moto keeps no event
/// older than 14 days), `calls` calls an hour: its data batches.
/// The `now` these tests run at: half past the hour before the clock's. Traffic generated for the
/// hours before it has ended by then, whatever the minute the test runs at, and moto takes it as past.
fn half_past_an_hour_ago() -> i64 {
    (voicelake_shared::timefmt::now_ms() / HOUR - 1) * HOUR + HOUR / 2
}

/// `calls` calls in each of the `hours` whole hours before `now`'s hour, each of them ended before `now`.
fn traffic(calls: usize, hours: i64, now: i64) -> Vec<LogBatch> {
    let batches: Vec<LogBatch> = (1..=hours)
        .flat_map(|ago| {
            let start = (now / HOUR - ago) * HOUR + 5 * 60_000;
            generate(&SynthOptions { calls, seed: 17 + ago as u64, start_ms: start, noise: true, outage: None })
        })
        .filter(|b| b.message_type == MessageType::DataMessage)
        .collect();
    let last = batches.iter().flat_map(|b| &b.log_events).map(|e| e.timestamp).max().unwrap_or(now);
    assert!(last < now, "the traffic ends {} s after now", (last - now) / 1000);
    batches
}

fn logs_client(aws: &SdkConfig) -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(aws)
}

fn s3_client(aws: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(aws).force_path_style(true).build())
}

/// Writes the batches' events to their log groups and streams on moto, each stream in time order.
async fn put_events(logs: &aws_sdk_cloudwatchlogs::Client, batches: &[LogBatch]) -> usize {
    let mut streams: BTreeMap<(String, String), Vec<(i64, String)>> = BTreeMap::new();
    for b in batches {
        let events = streams.entry((b.log_group.clone(), b.log_stream.clone())).or_default();
        events.extend(b.log_events.iter().map(|e| (e.timestamp, e.message.clone())));
    }
    let mut groups: Vec<&String> = streams.keys().map(|(g, _)| g).collect();
    groups.dedup();
    for group in groups {
        logs.create_log_group().log_group_name(group).send().await.expect("log group");
    }
    let mut count = 0;
    for ((group, stream), mut events) in streams {
        logs.create_log_stream().log_group_name(&group).log_stream_name(&stream).send().await.expect("log stream");
        events.sort_by_key(|(t, _)| *t);
        for chunk in events.chunks(1_000) {
            let input: Vec<InputLogEvent> =
                chunk.iter().map(|(t, m)| InputLogEvent::builder().timestamp(*t).message(m).build().unwrap()).collect();
            count += input.len();
            let answer = logs
                .put_log_events()
                .log_group_name(&group)
                .log_stream_name(&stream)
                .set_log_events(Some(input))
                .send()
                .await
                .expect("put");
            assert!(answer.rejected_log_events_info().is_none(), "moto refused events of {stream}");
        }
    }
    count
}

fn groups_of(batches: &[LogBatch]) -> Vec<String> {
    let mut groups: Vec<String> = batches.iter().map(|b| b.log_group.clone()).collect();
    groups.sort();
    groups.dedup();
    groups
}

/// Every object below `prefix` of `bucket`: key and bytes.
async fn objects(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        for o in page.expect("list").contents() {
            let key = o.key().unwrap().to_owned();
            let body = s3.get_object().bucket(bucket).key(&key).send().await.expect("get").body.collect().await.unwrap();
            out.insert(key.strip_prefix(prefix).unwrap().to_owned(), body.into_bytes().to_vec());
        }
    }
    out
}

/// Every Parquet file below `root` on disk: path relative to it and bytes.
fn local_objects(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

fn batches_of(bytes: &[u8]) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes)).unwrap().build().unwrap().map(|b| b.unwrap()).collect()
}

/// What a lake holds, compared on what does not depend on how events were batched or named: each
/// turn's call, time and latency; each session row's call; the number of rejects.
#[derive(Debug, PartialEq)]
struct Content {
    turns: Vec<(String, i64, Option<u64>, String)>,
    sessions: Vec<String>,
    rejects: usize,
}

/// Asserts two lakes hold the same, showing what differs rather than both whole.
fn assert_same(actual: &Content, expected: &Content, what: &str) {
    fn missing<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
        let mut rest = b.to_vec();
        a.iter().filter(|x| rest.iter().position(|y| y == *x).map(|i| rest.swap_remove(i)).is_none()).cloned().collect()
    }
    let (extra_turns, lost_turns) = (missing(&actual.turns, &expected.turns), missing(&expected.turns, &actual.turns));
    let (extra_sessions, lost_sessions) = (missing(&actual.sessions, &expected.sessions), missing(&expected.sessions, &actual.sessions));
    assert!(
        extra_turns.is_empty()
            && lost_turns.is_empty()
            && extra_sessions.is_empty()
            && lost_sessions.is_empty()
            && actual.rejects == expected.rejects,
        "{what}: {} turns, {} expected; extra {:?}; missing {:?}; sessions extra {:?}, missing {:?}; rejects {} vs {}",
        actual.turns.len(),
        expected.turns.len(),
        &extra_turns[..extra_turns.len().min(5)],
        &lost_turns[..lost_turns.len().min(5)],
        &extra_sessions[..extra_sessions.len().min(5)],
        &lost_sessions[..lost_sessions.len().min(5)],
        actual.rejects,
        expected.rejects
    );
}

fn content(objects: &BTreeMap<String, Vec<u8>>) -> Content {
    let mut c = Content { turns: vec![], sessions: vec![], rejects: 0 };
    for (key, bytes) in objects {
        for batch in batches_of(bytes) {
            let text = |name: &str, i: usize| {
                let column = batch.column_by_name(name).unwrap().as_string::<i32>();
                if column.is_null(i) { String::new() } else { column.value(i).to_owned() }
            };
            for i in 0..batch.num_rows() {
                if key.starts_with("turns/") {
                    let latency = batch.column_by_name("total_latency_ms").unwrap().as_primitive::<Float64Type>();
                    let time = batch.column_by_name("event_time").unwrap().as_primitive::<arrow::datatypes::TimestampMillisecondType>();
                    c.turns.push((
                        text("session_id", i),
                        time.value(i),
                        (!latency.is_null(i)).then(|| latency.value(i).to_bits()),
                        text("agent_name", i),
                    ));
                } else if key.starts_with("sessions/") {
                    c.sessions.push(text("session_id", i));
                } else if key.starts_with("rejects/") {
                    c.rejects += 1;
                }
            }
        }
    }
    c.turns.sort();
    c.sessions.sort();
    c
}

/// The lake `voicelake replay` makes of batches: the reference, reached without backfill's code.
/// Each stream's held parts are carried into its next batch within a unit backfill reads (`unit`
/// of the `n`th batch: its log group's hour, or the export or archive object it was read from).
fn replayed(batches: &[LogBatch], config: &Config, now: i64, unit: impl Fn(usize, &LogBatch) -> i64) -> Content {
    let dir = tempfile::tempdir().unwrap();
    let mut replay = LocalReplay::new(dir.path(), now);
    let mut carrier = Carrier::default();
    let mut current = None;
    for (n, b) in batches.iter().enumerate() {
        if current.is_some_and(|u| u != unit(n, b)) {
            for out in std::mem::take(&mut carrier).finish(config, now) {
                replay.add(out).unwrap();
            }
        }
        current = Some(unit(n, b));
        let mut out = voicelake_shared::process_batch_carrying(b, &[], Carrier::FIRST_PASS, config, now);
        let joined = carrier.after(&mut out, config, now);
        replay.add(out).unwrap();
        if let Some(joined) = joined {
            replay.add(joined).unwrap();
        }
    }
    for out in carrier.finish(config, now) {
        replay.add(out).unwrap();
    }
    replay.finish(config, now).unwrap();
    content(&local_objects(dir.path()))
}

/// The traffic regrouped as backfill documents it reads a log group: per hour and log stream,
/// each stream's events in time order (all are far below a batch's 1 MB).
fn by_hour_and_stream(batches: &[LogBatch]) -> Vec<LogBatch> {
    let mut groups: BTreeMap<(String, i64, String), LogBatch> = BTreeMap::new();
    for b in batches {
        for e in &b.log_events {
            let key = (b.log_group.clone(), e.timestamp.div_euclid(HOUR), b.log_stream.clone());
            groups.entry(key).or_insert_with(|| LogBatch { log_events: vec![], ..b.clone() }).log_events.push(e.clone());
        }
    }
    let mut out: Vec<LogBatch> = groups.into_values().collect();
    for b in &mut out {
        b.log_events.sort_by_key(|e| e.timestamp);
    }
    out
}

/// The Glue columns of a table in template.yaml, as the deployed stack declares them.
fn glue_columns(table: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let template: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    let (_, resource) = resources
        .iter()
        .find(|(_, r)| r["Type"].as_str() == Some("AWS::Glue::Table") && r["Properties"]["TableInput"]["Name"].as_str() == Some(table))
        .unwrap_or_else(|| panic!("no Glue table {table}"));
    resource["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| (c["Name"].as_str().unwrap().to_owned(), c["Type"].as_str().unwrap().to_owned()))
        .collect()
}

async fn run_logs(
    sink: &impl LakeSink,
    source: &impl LogEvents,
    groups: &[String],
    checkpoint: &Path,
    (start, end, now): (i64, i64, i64),
) -> Result<Totals> {
    let config = Config::default();
    let mut run = Backfill::new(&config, sink, checkpoint.to_owned(), Progress::quiet())?;
    run.log_groups(source, groups, start, end, DEFAULT_FILTER_PATTERN, now).await?;
    Ok(run.finish())
}

/// Fails the `fail_at`-th page it is asked for, as a network or credentials failure would.
struct Interrupted<'a, L> {
    inner: &'a L,
    calls: AtomicUsize,
    fail_at: usize,
}

impl<L: LogEvents> LogEvents for Interrupted<'_, L> {
    async fn page(&self, group: &str, from: i64, until: i64, pattern: &str, token: Option<String>) -> Result<LogPage> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            anyhow::bail!("connection reset (a test's interruption)");
        }
        self.inner.page(group, from, until, pattern, token).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_groups_of_many_streams_and_pages_reach_the_s3_lake_once_in_the_glue_schema() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let (logs, s3) = (logs_client(&aws), s3_client(&aws));
    let now = half_past_an_hour_ago();
    let batches = traffic(40, 4, now);
    let groups = groups_of(&batches);
    assert!(groups.len() >= 2, "{groups:?}");
    let streams: std::collections::BTreeSet<_> = batches.iter().map(|b| (&b.log_group, &b.log_stream)).collect();
    assert!(streams.len() >= 6, "several streams per group: {streams:?}");
    let put = put_events(&logs, &batches).await;
    s3.create_bucket().bucket("lake").send().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint.json");
    let sink = S3Lake { client: s3.clone(), bucket: "lake".into(), prefix: String::new() };
    // Pages of 40 events: hundreds of FilterLogEvents pages.
    let source = CloudWatchLogs { client: logs.clone(), page_size: 40 };
    let range = (now - 6 * HOUR, now, now);
    let totals = run_logs(&sink, &source, &groups, &checkpoint, range).await.unwrap();

    assert_eq!(totals.events as usize, put, "every event is read once");
    let windows = plan::windows(range.0, range.1, now);
    assert_eq!(totals.units, groups.len() * windows.len());
    assert_eq!(totals.partial, groups.len() * windows.iter().filter(|w| !w.complete).count());
    let written = objects(&s3, "lake", "").await;
    assert_eq!(written.len(), totals.files);
    assert!(written.keys().all(|k| k.contains("/backfill-") && k.ends_with("-0.parquet")), "{:?}", written.keys());
    let lake = content(&written);
    assert_eq!(lake.turns.len(), totals.turns);
    assert!(lake.turns.len() > 500, "{}", lake.turns.len());
    assert_same(
        &lake,
        &replayed(&by_hour_and_stream(&batches), &Config::default(), now, |_, b| b.log_events[0].timestamp.div_euclid(HOUR)),
        "the lake equals a replay of the same events",
    );

    // The objects are where Firehose writes and read as the Glue tables declare.
    for (key, bytes) in &written {
        let table = key.split('/').next().unwrap();
        let rest: Vec<&str> = key.split('/').collect();
        assert!(rest[1].starts_with("dt=") && rest[2].starts_with("hour="), "{key}");
        let schema = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes)).unwrap().schema().clone();
        let columns: Vec<(String, String)> = schema.fields().iter().map(|f| (f.name().clone(), lake::glue_type(f.data_type()))).collect();
        assert_eq!(columns, glue_columns(table), "{key}");
        assert!([Table::Turns, Table::Sessions, Table::Rejects].iter().any(|t| t.name() == table));
    }

    // A second run with the checkpoint redoes only the hour not finished, and writes the same bytes.
    let again = run_logs(&sink, &source, &groups, &checkpoint, range).await.unwrap();
    assert_eq!(again.skipped, totals.units - totals.partial);
    assert_eq!(again.units, totals.partial);
    assert_eq!(objects(&s3, "lake", "").await, written, "a second run changes nothing");
    // Without the checkpoint, every hour is done again: the same objects, replaced, none added.
    let fresh = run_logs(&sink, &source, &groups, &dir.path().join("other.json"), range).await.unwrap();
    assert_eq!((fresh.units, fresh.skipped, fresh.events), (totals.units, 0, totals.events));
    assert_eq!(objects(&s3, "lake", "").await, written, "a run without the checkpoint replaces, never duplicates");
}

/// Fails the `fail_at`-th object it is asked to write.
struct FailingSink<'a, S> {
    inner: &'a S,
    puts: AtomicUsize,
    fail_at: usize,
}

impl<S: LakeSink> LakeSink for FailingSink<'_, S> {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        if self.puts.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            anyhow::bail!("access denied (a test's interruption)");
        }
        self.inner.put(key, bytes).await
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_resumes_where_it_stopped_with_no_event_missing_or_twice() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let logs = logs_client(&aws);
    let now = half_past_an_hour_ago();
    let batches = traffic(40, 4, now);
    let groups = groups_of(&batches);
    put_events(&logs, &batches).await;
    let range = (now - 5 * HOUR, now, now);
    let source = CloudWatchLogs { client: logs.clone(), page_size: 25 };

    // One whole run, counting its pages and objects.
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = LocalLake { root: whole_dir.path().join("lake") };
    let counted = Interrupted { inner: &source, calls: AtomicUsize::new(0), fail_at: usize::MAX };
    let all = run_logs(&whole, &counted, &groups, &whole_dir.path().join("c.json"), range).await.unwrap();
    let pages = counted.calls.load(Ordering::SeqCst);
    assert!(pages > 20 && all.files > 6, "{pages} pages, {} objects", all.files);

    let dir = tempfile::tempdir().unwrap();
    let lake = LocalLake { root: dir.path().join("lake") };
    let checkpoint = dir.path().join("c.json");
    // Stopped in the middle of reading an hour.
    let interrupted = Interrupted { inner: &source, calls: AtomicUsize::new(0), fail_at: pages / 2 };
    let err = run_logs(&lake, &interrupted, &groups, &checkpoint, range).await.unwrap_err();
    assert!(format!("{err:#}").contains("connection reset"), "{err:#}");
    let recorded: plan::Checkpoint = serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let done_first: usize = recorded.done.values().map(|hours| hours.len()).sum();
    assert!(done_first > 0, "the hours finished before the interruption are recorded");
    // Stopped again while an hour's objects were being written: some are, the hour is not recorded.
    let failing = FailingSink { inner: &lake, puts: AtomicUsize::new(0), fail_at: 2 };
    let err = run_logs(&failing, &source, &groups, &checkpoint, range).await.unwrap_err();
    assert!(format!("{err:#}").contains("access denied"), "{err:#}");
    // The third run finishes the rest.
    let last = run_logs(&lake, &source, &groups, &checkpoint, range).await.unwrap();
    assert!(last.skipped >= done_first, "the resumed run skips the hours already done");
    assert!(last.events < all.events, "the resumed run does not read everything again");
    assert_eq!(local_objects(&lake.root), local_objects(&whole.root), "interrupted twice and resumed equals one whole run");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_in_s3_gives_the_lake_of_the_same_events() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let s3 = s3_client(&aws);
    let now = half_past_an_hour_ago();
    // One log group, as an export is of one group.
    let batches: Vec<LogBatch> = traffic(40, 3, now).into_iter().filter(|b| b.log_group.ends_with("support-agent")).collect();
    assert!(!batches.is_empty(), "{:?}", traffic(5, 1, now).iter().map(|b| &b.log_group).collect::<std::collections::BTreeSet<_>>());
    let group = batches[0].log_group.clone();
    s3.create_bucket().bucket("exports").send().await.unwrap();
    s3.create_bucket().bucket("lake").send().await.unwrap();
    // CreateExportTask's layout: PREFIX/TASK-ID/STREAM/000000.gz of `TIME MESSAGE` lines, and a
    // write test object. A stream's lines are split over two objects, as large exports are.
    let task = "6b1c2f0e-3d4a-4b5c-8d9e-0f1a2b3c4d5e";
    let mut streams: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for b in &batches {
        let lines = streams.entry(b.log_stream.as_str()).or_default();
        lines.extend(b.log_events.iter().map(|e| format!("{} {}", voicelake_shared::timefmt::iso(e.timestamp), e.message)));
    }
    let put = |key: String, body: Vec<u8>| {
        let s3 = s3.clone();
        async move { s3.put_object().bucket("exports").key(key).body(body.into()).send().await.unwrap() }
    };
    put("history/aws-logs-write-test".into(), b"Permission Check Successful".to_vec()).await;
    let mut events = 0;
    // The reference: one batch per object, as backfill documents it reads an export.
    let mut expected = Vec::new();
    for (stream, mut lines) in streams {
        lines.sort_by_key(|l| l.split_once(' ').unwrap().0.to_owned());
        events += lines.len();
        let half = lines.len() / 2;
        for (n, part) in [&lines[..half], &lines[half..]].into_iter().enumerate() {
            let events = part.iter().map(|l| {
                let (time, message) = l.split_once(' ').unwrap();
                voicelake_shared::envelope::LogEvent {
                    id: String::new(),
                    timestamp: voicelake_shared::timefmt::parse_event_time(time).unwrap(),
                    message: message.to_owned(),
                }
            });
            expected.push(LogBatch { log_stream: stream.to_owned(), log_events: events.collect(), ..batches[0].clone() });
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            for line in part {
                writeln!(gz, "{line}").unwrap();
            }
            put(format!("history/{task}/{stream}/00000{n}.gz"), gz.finish().unwrap()).await;
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let sink = S3Lake { client: s3.clone(), bucket: "lake".into(), prefix: "imported/".into() };
    let source = S3Export { client: s3.clone(), bucket: "exports".into(), prefix: "history/".into() };
    let config = Config::default();
    let checkpoint = dir.path().join("c.json");
    let mut run = Backfill::new(&config, &sink, checkpoint.clone(), Progress::quiet()).unwrap();
    run.export(&source, &group).await.unwrap();
    let totals = run.finish();
    assert_eq!(totals.events as usize, events);
    assert_eq!(totals.unreadable_lines, 0);
    let written = objects(&s3, "lake", "imported/").await;
    assert_same(&content(&written), &replayed(&expected, &config, now, |_, _| 0), "the export's lake equals a replay of the same events");

    let fingerprint = |config: &Config| voicelake_cli::backfill::options_fingerprint(config, &group, "");
    let mut again = Backfill::new(&config, &sink, checkpoint.clone(), Progress::quiet()).unwrap();
    again.export(&source, &group).await.unwrap();
    let again = again.finish();
    assert_eq!((again.units, again.skipped), (0, totals.units));
    assert_eq!(objects(&s3, "lake", "imported/").await, written);

    // A run with other options (here the environment) does the work again, and a second run with
    // those skips it: the checkpoint is kept per set of options.
    let prod = Config { environment: "prod".into(), ..Config::default() };
    assert_ne!(fingerprint(&prod), fingerprint(&config));
    for (pass, expect_skipped) in [(0, 0), (1, totals.units)] {
        let mut run = Backfill::new(&prod, &sink, checkpoint.clone(), Progress::quiet()).unwrap().with_options(fingerprint(&prod));
        run.export(&source, &group).await.unwrap();
        let t = run.finish();
        assert_eq!(t.skipped, expect_skipped, "pass {pass}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firehose_archive_in_s3_gives_the_lake_of_the_same_events() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let s3 = s3_client(&aws);
    let now = half_past_an_hour_ago();
    let batches = traffic(30, 5, now);
    s3.create_bucket().bucket("archive").send().await.unwrap();
    s3.create_bucket().bucket("lake").send().await.unwrap();
    // What a subscription filter to Firehose leaves in S3: objects without an extension, each the
    // gzip'd decoded payloads of several deliveries back to back.
    for (n, chunk) in batches.chunks(7).enumerate() {
        let mut body = Vec::new();
        for b in chunk {
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(serde_json::to_string(b).unwrap().as_bytes()).unwrap();
            body.extend(gz.finish().unwrap());
        }
        let key = format!("cwl/2026/11/30/10/voicelake-archive-1-2026-11-30-10-{n:02}-00-0f1e2d3c");
        s3.put_object().bucket("archive").key(key).body(body.into()).send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = S3Lake { client: s3.clone(), bucket: "lake".into(), prefix: "imported/".into() };
    let source = S3Export { client: s3.clone(), bucket: "archive".into(), prefix: "cwl/".into() };
    let config = Config::default();
    let mut run = Backfill::new(&config, &sink, dir.path().join("c.json"), Progress::quiet()).unwrap();
    // The label is not used: each payload names its group.
    run.export(&source, "unused").await.unwrap();
    let totals = run.finish();
    assert_eq!(totals.events as usize, batches.iter().map(|b| b.log_events.len()).sum::<usize>());
    let written = objects(&s3, "lake", "imported/").await;
    assert_same(
        &content(&written),
        &replayed(&batches, &config, now, |n, _| n as i64 / 7),
        "the archive's lake equals a replay of the same payloads",
    );
}

mod throttling {
    use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput;
    use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

    fn page(first: i64, n: i64, next: Option<&str>) -> FilterLogEventsOutput {
        let events = (first..first + n)
            .map(|i| {
                FilteredLogEvent::builder()
                    .log_stream_name("support/support/task-0")
                    .event_id(format!("e{i}"))
                    .timestamp(1_795_000_000_000 + i)
                    .message(format!("not a contract line {i}"))
                    .build()
            })
            .collect();
        FilterLogEventsOutput::builder().set_events(Some(events)).set_next_token(next.map(str::to_owned)).build()
    }

    fn client(rule: &aws_smithy_mocks::Rule, max_attempts: u32) -> aws_sdk_cloudwatchlogs::Client {
        mock_client!(aws_sdk_cloudwatchlogs, RuleMode::Sequential, [rule], |c| c
            .retry_config(retry_config().with_max_attempts(max_attempts).with_initial_backoff(std::time::Duration::from_millis(1))))
    }

    #[tokio::test]
    async fn throttled_pages_are_retried_with_backoff_and_nothing_is_lost() {
        let rule = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
            .sequence()
            .http_status(400, Some(THROTTLED.into()))
            .times(3)
            .output(|| page(0, 5, Some("t1")))
            .http_status(400, Some(THROTTLED.into()))
            .times(2)
            .output(|| page(5, 4, None))
            .build();
        let source = CloudWatchLogs { client: client(&rule, retry_config().max_attempts()), page_size: 5 };
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake { root: dir.path().join("lake") };
        let hour = 1_795_000_000_000 / HOUR * HOUR;
        let totals = run_logs(&lake, &source, &["/ecs/support".into()], &dir.path().join("c.json"), (hour, hour + HOUR, hour + 2 * HOUR))
            .await
            .unwrap();
        assert_eq!(totals.events, 9, "both pages, each once");
        assert_eq!(rule.num_calls(), 7, "five throttled attempts and two answers");
    }

    #[tokio::test]
    async fn throttling_that_outlasts_the_retries_stops_the_run_with_its_cause_and_keeps_the_checkpoint() {
        let rule = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
            .sequence()
            .output(|| page(0, 3, None))
            .http_status(400, Some(THROTTLED.into()))
            .times(4)
            .build();
        let source = CloudWatchLogs { client: client(&rule, 4), page_size: 5 };
        let dir = tempfile::tempdir().unwrap();
        let lake = LocalLake { root: dir.path().join("lake") };
        let checkpoint = dir.path().join("c.json");
        let hour = 1_795_000_000_000 / HOUR * HOUR;
        let err =
            run_logs(&lake, &source, &["/ecs/support".into()], &checkpoint, (hour, hour + 2 * HOUR, hour + 3 * HOUR)).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("FilterLogEvents on /ecs/support") && text.contains("ThrottlingException"), "{text}");
        let recorded: plan::Checkpoint = serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
        assert_eq!(recorded.done["logs:/ecs/support"].len(), 1, "the first hour was finished and recorded");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_backfills_into_a_local_lake_and_the_stacks_bucket_with_progress_lines() {
    let moto = Moto::start();
    let aws = moto.sdk_config().await;
    let (logs, s3) = (logs_client(&aws), s3_client(&aws));
    let now = half_past_an_hour_ago();
    let batches: Vec<LogBatch> = traffic(15, 3, now).into_iter().filter(|b| b.log_group.ends_with("sales-agent")).collect();
    put_events(&logs, &batches).await;
    // Two whole hours that ended an hour ago or more: both are finished and recorded by the first run.
    let (start, end) = ((now / HOUR - 3) * HOUR, (now / HOUR - 1) * HOUR);
    let in_range = batches.iter().flat_map(|b| &b.log_events).filter(|e| (start..end).contains(&e.timestamp)).count();
    let (start, end) = (voicelake_shared::timefmt::iso(start), voicelake_shared::timefmt::iso(end));
    s3.create_bucket().bucket("stack-lake").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let voicelake = |args: &[&str]| {
        voicelake_e2e::voicelake()
            .arg("backfill")
            .args(["--log-group", "/ecs/sales-agent", "--start", &start, "--end", &end, "--page-size", "20"])
            .args(args)
            .envs(voicelake_e2e::FAKE_ENV)
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .current_dir(dir.path())
            .output()
            .expect("voicelake runs")
    };
    let lake = dir.path().join("lake");
    let key = dir.path().join("pseudonym.key");
    std::fs::write(&key, "k3yOfTheStackGeneratedBySecretsManager0123456789\n").unwrap();
    for run in 0..2 {
        let out =
            voicelake(&["--lake", lake.to_str().unwrap(), "--checkpoint", "local.json", "--pseudonym-key-file", key.to_str().unwrap()]);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stderr.contains("backfill: ") && stderr.contains("events/s") && stderr.contains("ETA"), "plain progress lines: {stderr}");
        if run == 0 {
            assert!(stdout.contains(&format!("{in_range} log events")), "{stdout}");
            assert!(stdout.contains("(0 skipped as done before"), "{stdout}");
        } else {
            assert!(stdout.contains("2 skipped as done before"), "the complete hours are not read again: {stdout}");
        }
    }
    assert!(!local_objects(&lake).is_empty());
    // Into the stack's lake, pseudonyms must be keyed with the stack's key.
    let out = voicelake(&["--to", "s3://stack-lake/", "--checkpoint", "s3.json"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("needs the stack's key"));
    let out = voicelake(&["--to", "s3://stack-lake/", "--checkpoint", "s3.json", "--pseudonym-key-file", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let local: BTreeMap<String, Vec<u8>> = local_objects(&lake);
    assert_eq!(objects(&s3, "stack-lake", "").await, local, "the bucket gets the objects the local lake got");
    // One checkpoint, one destination.
    let out = voicelake(&["--to", "s3://stack-lake/", "--checkpoint", "local.json", "--pseudonym-key-file", key.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("records a backfill into"), "{}", String::from_utf8_lossy(&out.stderr));
}
