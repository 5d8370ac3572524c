//! `voicelake backfill`: history from CloudWatch Logs, or from an export of it, into the lake.
//!
//! The work is cut into units a second run can recognise: an hour of a log group, or an object of
//! an export. A unit's events go through the same pure pipeline as the Lambda, grouped by log
//! stream into batches no larger than a subscription's, and its rows go to the lake as objects named
//! after the source, the unit and a part number. A unit finished is recorded in the checkpoint, so an
//! interrupted run continues at the first unit it had not finished, and a unit done again (a run
//! without the checkpoint) writes the same objects over the old ones instead of adding to them.

pub mod command;
pub mod plan;
pub mod sources;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use voicelake_shared::envelope::{LogBatch, LogEvent};
use voicelake_shared::{BatchOutput, Carrier, Config};

use crate::replay::FLUSH_ROWS;
use plan::{Checkpoint, HourRead};
use sources::{ExportObjects, LakeSink, LogEvents};

/// A batch holds at most what a subscription delivers at once (1 MB of messages, 10,000 events),
/// so that turns are assembled from batches like the ones the Lambda sees.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_EVENTS: usize = 10_000;

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Units (hours of a log group, export objects) worked this run.
    pub units: usize,
    /// Units skipped because the checkpoint records them as finished.
    pub skipped: usize,
    /// Units worked but not recorded as finished: an hour not over yet, or cut by --start/--end.
    pub partial: usize,
    pub events: u64,
    /// Bytes of log messages.
    pub bytes: u64,
    /// Export lines that are not `TIME MESSAGE`.
    pub unreadable_lines: u64,
    pub turns: usize,
    pub sessions: usize,
    pub rejects: usize,
    /// Rows of the `errors` table.
    pub errors: usize,
    pub files: usize,
}

/// One backfill run into one lake.
pub struct Backfill<'a, S: LakeSink> {
    config: &'a Config,
    sink: &'a S,
    checkpoint: Checkpoint,
    checkpoint_path: PathBuf,
    progress: Progress,
    pub totals: Totals,
    /// What the rows depend on besides the logs (see [`options_fingerprint`]): part of every
    /// checkpoint entry, so a run with other options does the work again instead of skipping it.
    options: String,
}

/// A short fingerprint of what makes a backfill's rows besides the logs: the environment, the
/// personal-data mode and key, the prices, the log group an export is labelled with and the filter
/// pattern. The key enters only as the pseudonym of a fixed text, never itself.
pub fn options_fingerprint(config: &Config, label: &str, pattern: &str) -> String {
    use sha2::{Digest, Sha256};
    let key_check = voicelake_shared::pii::scrub_with("+15550000000", config.scrub()).into_owned();
    let prices = serde_json::to_string(&config.prices).expect("a price table serializes");
    let text = format!("{}\n{:?}\n{key_check}\n{prices}\n{label}\n{pattern}", config.environment, config.pii);
    Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

impl<'a, S: LakeSink> Backfill<'a, S> {
    /// A run into `sink`, continuing from the checkpoint at `checkpoint_path` if there is one.
    pub fn new(config: &'a Config, sink: &'a S, checkpoint_path: PathBuf, progress: Progress) -> Result<Self> {
        let checkpoint = Checkpoint::load(&checkpoint_path, &sink.location())?;
        Ok(Backfill { config, sink, checkpoint, checkpoint_path, progress, totals: Totals::default(), options: String::new() })
    }

    /// Records units under `options` ([`options_fingerprint`]): units done with other options are
    /// done again.
    pub fn with_options(mut self, options: String) -> Self {
        self.options = options;
        self
    }

    /// The checkpoint's name of a source under this run's options.
    fn source_id(&self, source: &str) -> String {
        if self.options.is_empty() { source.to_owned() } else { format!("{source}@{}", self.options) }
    }

    /// Every hour of `[start, end)` of each log group, through `FilterLogEvents` with `pattern`
    /// (the stack's subscription filter pattern, so the lake gets what the Lambda would have got).
    pub async fn log_groups(
        &mut self,
        source: &impl LogEvents,
        groups: &[String],
        start: i64,
        end: i64,
        pattern: &str,
        now: i64,
    ) -> Result<()> {
        let windows = plan::windows(start, end, now);
        self.progress.start(groups.len() * windows.len(), "hours");
        for group in groups {
            let id = self.source_id(&format!("logs:{group}"));
            let slug = plan::slug(group);
            for window in &windows {
                let unit = plan::hour_unit(window.hour);
                if window.complete && self.checkpoint.is_done(&id, &unit) {
                    self.totals.skipped += 1;
                    self.progress.advance(&self.totals, || format!("{group} {unit} (done before)"));
                    continue;
                }
                self.window(source, group, &slug, window, pattern).await?;
                self.finished(&id, &unit, window.complete)?;
                self.progress.advance(&self.totals, || format!("{group} {unit}"));
            }
        }
        Ok(())
    }

    async fn window(&mut self, source: &impl LogEvents, group: &str, slug: &str, window: &HourRead, pattern: &str) -> Result<()> {
        let mut writer = UnitWriter::new(slug, &window.label());
        let mut batcher = Batcher::new(group);
        let mut token = None;
        loop {
            let page = source.page(group, window.from, window.until, pattern, token).await?;
            let mut ready = Vec::new();
            for e in page.events {
                self.totals.events += 1;
                self.totals.bytes += e.message.len() as u64;
                ready.extend(batcher.push(&e.stream, LogEvent { id: e.id, timestamp: e.timestamp, message: e.message }));
            }
            // A rejected event without a usable time is filed at the window's end: a rerun files
            // it in the same place.
            self.process(ready, &mut writer, window.until).await?;
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        self.process(batcher.drain(), &mut writer, window.until).await?;
        writer.settle(self.config, window.until);
        writer.flush(self.sink, &mut self.totals).await
    }

    /// Every object of a CloudWatch Logs export, its events labelled with `log_group` (an export
    /// is of one group, which its objects do not name).
    pub async fn export(&mut self, source: &impl ExportObjects, log_group: &str) -> Result<()> {
        let location = source.location();
        let id = self.source_id(&format!("export:{location}"));
        let keys: Vec<String> = source.keys().await?.into_iter().filter(|k| plan::is_export_object(k)).collect();
        anyhow::ensure!(!keys.is_empty(), "{location} holds no objects of an export (KEY.gz) or a Firehose archive");
        self.progress.start(keys.len(), "objects");
        for key in &keys {
            if self.checkpoint.is_done(&id, key) {
                self.totals.skipped += 1;
                self.progress.advance(&self.totals, || format!("{key} (done before)"));
                continue;
            }
            let bytes = source.get(key).await?;
            self.export_object(key, &bytes, log_group).await.with_context(|| format!("{location}: {key}"))?;
            self.finished(&id, key, true)?;
            self.progress.advance(&self.totals, || key.clone());
        }
        Ok(())
    }

    async fn export_object(&mut self, key: &str, bytes: &[u8], log_group: &str) -> Result<()> {
        let stream = plan::export_stream(key);
        let mut writer = UnitWriter::new(&plan::slug(&format!("{log_group}/{key}")), "export");
        let mut batcher = Batcher::new(log_group);
        let mut reader: Box<dyn BufRead> = if bytes.starts_with(&[0x1f, 0x8b]) {
            Box::new(BufReader::new(MultiGzDecoder::new(bytes)))
        } else {
            Box::new(BufReader::new(bytes))
        };
        if crate::input::is_archive(reader.fill_buf().context("reading the object")?) {
            return self.archive_object(reader, writer).await;
        }
        let mut last_time = 0;
        let mut ready = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line.context("reading the export's lines")?;
            if line.trim().is_empty() {
                continue;
            }
            let Some((timestamp, message)) = plan::export_line(&line) else {
                self.totals.unreadable_lines += 1;
                continue;
            };
            self.totals.events += 1;
            self.totals.bytes += message.len() as u64;
            last_time = last_time.max(timestamp);
            let event = LogEvent { id: format!("{key}:{n}"), timestamp, message: message.to_owned() };
            ready.extend(batcher.push(stream, event));
            if ready.len() >= rayon::current_num_threads() {
                self.process(std::mem::take(&mut ready), &mut writer, last_time).await?;
            }
        }
        ready.extend(batcher.drain());
        self.process(ready, &mut writer, last_time).await?;
        writer.settle(self.config, last_time);
        writer.flush(self.sink, &mut self.totals).await
    }

    /// An object of a Firehose archive: decoded subscription payloads back to back, each the batch
    /// of one log stream that names its group (the `--log-group` label is not needed).
    async fn archive_object(&mut self, mut reader: Box<dyn BufRead + '_>, mut writer: UnitWriter) -> Result<()> {
        let mut pieces = Vec::new();
        crate::input::for_each_document(reader.as_mut(), |piece| {
            pieces.push(piece);
            Ok(())
        })?;
        let now = voicelake_shared::timefmt::now_ms();
        let outputs: Vec<BatchOutput> = pieces
            .into_par_iter()
            .map(|piece| match piece {
                crate::input::Piece::Document(json) => {
                    voicelake_shared::process_decoded_holding(json, Carrier::FIRST_PASS, self.config, now)
                }
                crate::input::Piece::Damaged { raw, why } => voicelake_shared::reject_input(
                    None,
                    &raw,
                    voicelake_shared::reasons::RejectReason::BadPayloadJson,
                    why,
                    self.config,
                    now,
                ),
            })
            .collect();
        for out in outputs {
            self.totals.events += out.stats.events_in;
            writer.add(out, self.config, now);
            if writer.pending_rows() >= FLUSH_ROWS {
                writer.flush(self.sink, &mut self.totals).await?;
            }
        }
        writer.settle(self.config, now);
        writer.flush(self.sink, &mut self.totals).await
    }

    /// The batches through the pipeline on every core, their rows added in order.
    async fn process(&mut self, batches: Vec<LogBatch>, writer: &mut UnitWriter, now: i64) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let hold = Carrier::FIRST_PASS;
        let outputs: Vec<BatchOutput> =
            batches.par_iter().map(|b| voicelake_shared::process_batch_carrying(b, &[], hold, self.config, now)).collect();
        for out in outputs {
            writer.add(out, self.config, now);
            if writer.pending_rows() >= FLUSH_ROWS {
                writer.flush(self.sink, &mut self.totals).await?;
            }
        }
        Ok(())
    }

    fn finished(&mut self, source: &str, unit: &str, complete: bool) -> Result<()> {
        self.totals.units += 1;
        if !complete {
            self.totals.partial += 1;
            return Ok(());
        }
        self.checkpoint.mark(source, unit);
        self.checkpoint.save(&self.checkpoint_path)
    }

    pub fn finish(self) -> Totals {
        self.progress.finish(&self.totals);
        self.totals
    }
}

/// Groups a unit's events by log stream into subscription-sized batches.
struct Batcher {
    group: String,
    open: BTreeMap<String, (LogBatch, usize)>,
}

impl Batcher {
    fn new(group: &str) -> Batcher {
        Batcher { group: group.to_owned(), open: BTreeMap::new() }
    }

    /// Adds an event; hands back its stream's batch once that is full.
    fn push(&mut self, stream: &str, event: LogEvent) -> Option<LogBatch> {
        let size = event.message.len();
        let (batch, bytes) = self.open.entry(stream.to_owned()).or_insert_with(|| {
            let batch = LogBatch { owner: "backfill".into(), ..LogBatch::of_stream(&self.group, stream) };
            (batch, 0)
        });
        batch.log_events.push(event);
        *bytes += size;
        if *bytes >= BATCH_BYTES || batch.log_events.len() >= BATCH_EVENTS {
            return self.open.remove(stream).map(|(b, _)| b);
        }
        None
    }

    /// The batches still open, in stream order.
    fn drain(&mut self) -> Vec<LogBatch> {
        std::mem::take(&mut self.open).into_values().map(|(b, _)| b).collect()
    }
}

/// The rows of one unit on their way to the lake, written in parts of at most [`FLUSH_ROWS`] rows.
struct UnitWriter {
    slug: String,
    unit: String,
    part: usize,
    pending: BatchOutput,
    /// Each stream's parts of turns cut across the unit's batches.
    carrier: Carrier,
}

impl UnitWriter {
    fn new(slug: &str, unit: &str) -> UnitWriter {
        UnitWriter { slug: slug.to_owned(), unit: unit.to_owned(), part: 0, pending: BatchOutput::default(), carrier: Carrier::default() }
    }

    /// A batch's output (processed with [`Carrier::FIRST_PASS`]), in order, with what it and the
    /// parts its stream carries complete.
    fn add(&mut self, mut out: BatchOutput, config: &Config, now: i64) {
        let joined = self.carrier.after(&mut out, config, now);
        for out in std::iter::once(out).chain(joined) {
            self.take(out);
        }
    }

    fn take(&mut self, out: BatchOutput) {
        self.pending.turns.extend(out.turns);
        self.pending.sessions.extend(out.sessions);
        self.pending.rejects.extend(out.rejects);
        self.pending.errors.extend(out.errors);
    }

    /// The unit's end: the parts still held are settled, whole or partial. A turn cut across two
    /// units (an hour's window, an export object) stays in parts, for the lake's views to join.
    fn settle(&mut self, config: &Config, now: i64) {
        for out in std::mem::take(&mut self.carrier).finish(config, now) {
            self.take(out);
        }
    }

    fn pending_rows(&self) -> usize {
        self.pending.turns.len() + self.pending.sessions.len() + self.pending.rejects.len() + self.pending.errors.len()
    }

    async fn flush(&mut self, sink: &impl LakeSink, totals: &mut Totals) -> Result<()> {
        if self.pending_rows() == 0 {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let files = crate::replay::lake_files(&pending)?;
        let name = plan::object_name(&self.slug, &self.unit, self.part);
        self.part += 1;
        for file in files {
            sink.put(&file.key(&name), file.bytes).await?;
            totals.files += 1;
        }
        totals.turns += pending.turns.len();
        totals.sessions += pending.sessions.len();
        totals.rejects += pending.rejects.len();
        totals.errors += pending.errors.len();
        Ok(())
    }
}

/// Progress on standard error: a bar on a terminal, otherwise a plain line every few seconds.
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Option<Instant>,
    total: usize,
    done: usize,
    what: &'static str,
    quiet: bool,
}

/// How often a plain progress line is printed.
const LINE_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// A bar when standard error is a terminal, plain lines when it is not.
    pub fn stderr() -> Progress {
        Progress::new(std::io::stderr().is_terminal(), false)
    }

    /// No output at all (tests).
    pub fn quiet() -> Progress {
        Progress::new(false, true)
    }

    fn new(terminal: bool, quiet: bool) -> Progress {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {prefix} · {msg} · ETA {eta}").expect("a valid progress template"),
            );
            bar
        });
        Progress { bar, started: Instant::now(), last_line: None, total: 0, done: 0, what: "units", quiet }
    }

    fn start(&mut self, total: usize, what: &'static str) {
        (self.total, self.done, self.what) = (total, 0, what);
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(0);
            bar.set_prefix(what);
        }
    }

    fn advance(&mut self, totals: &Totals, unit: impl FnOnce() -> String) {
        self.done += 1;
        let rates = self.rates(totals);
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{rates} · {}", unit()));
            bar.set_position(self.done as u64);
            return;
        }
        let due = self.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY) || self.done == self.total;
        if self.quiet || !due {
            return;
        }
        self.last_line = Some(Instant::now());
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if self.done > 0 { elapsed / self.done as f64 * (self.total - self.done) as f64 } else { 0.0 };
        eprintln!("backfill: {}/{} {} · {rates} · ETA {:.0} s · {}", self.done, self.total, self.what, eta, unit());
    }

    fn rates(&self, totals: &Totals) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{} events, {:.1} MB, {:.0} events/s, {:.2} MB/s",
            totals.events,
            totals.bytes as f64 / 1e6,
            totals.events as f64 / seconds,
            totals.bytes as f64 / 1e6 / seconds
        )
    }

    fn finish(&self, totals: &Totals) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if !self.quiet {
            eprintln!("backfill: {} in {:.1} s", self.rates(totals), self.started.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize, size: usize) -> LogEvent {
        LogEvent { id: n.to_string(), timestamp: 1_795_000_000_000 + n as i64, message: "x".repeat(size) }
    }

    #[test]
    fn batches_are_per_stream_and_subscription_sized() {
        let mut b = Batcher::new("/g");
        assert!(b.push("a", event(0, 10)).is_none());
        assert!(b.push("b", event(1, 10)).is_none());
        let full = b.push("a", event(2, BATCH_BYTES)).expect("a megabyte fills a batch");
        assert_eq!((full.log_stream.as_str(), full.log_events.len(), full.log_group.as_str()), ("a", 2, "/g"));
        for n in 0..BATCH_EVENTS - 1 {
            assert!(b.push("c", event(n, 1)).is_none());
        }
        assert_eq!(b.push("c", event(0, 1)).unwrap().log_events.len(), BATCH_EVENTS);
        let rest = b.drain();
        assert_eq!(rest.iter().map(|b| b.log_stream.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(b.drain().is_empty());
    }
}
