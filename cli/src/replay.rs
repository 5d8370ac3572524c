//! Local replay: input files through the same pure pipeline the Lambda runs, into a local lake
//! with the layout and schema of the S3 lake, and into the report.
//!
//! Memory stays bounded whatever the input: files are read incrementally, a bounded chunk of
//! input is processed at a time, rows go to the lake once enough are pending, and the report keeps
//! only compact per-turn and per-metric observations.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use voicelake_shared::envelope::LogBatch;
use voicelake_shared::lake::{self, LakeFile};
use voicelake_shared::timefmt::now_ms;
use voicelake_shared::{BatchOutput, Carrier, Config};

use crate::args::{Format, ReplayArgs};
use crate::input;
use crate::report::{Report, ReportBuilder};
use crate::settings::pipeline_config;

/// Input processed in parallel at a time: enough to keep every core busy, little enough that the
/// chunk and its rows stay a small part of the memory bound.
const CHUNK_BYTES: usize = 8 << 20;
const CHUNK_UNITS: usize = 256;
/// Rows pending before they are written: each flush writes one file per table and hour that has
/// rows, so a replay smaller than this writes exactly one file per table and hour.
pub const FLUSH_ROWS: usize = 25_000;

/// What a replay wrote to the lake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub files: usize,
    pub turns: usize,
    pub sessions: usize,
    pub rejects: usize,
    pub errors: usize,
}

/// One replay: rows flow to the lake under `root` as they come, the report accumulates.
pub struct LocalReplay {
    root: PathBuf,
    name: String,
    flushes: usize,
    pending: BatchOutput,
    report: ReportBuilder,
    written: Written,
    /// Each stream's parts of turns not yet complete, carried to its next batch.
    carrier: Carrier,
    /// The log group of inputs that name none (raw lines, `aws logs` output): `--log-group`, else
    /// empty, and agents that do not log their name are `unknown`.
    log_group: String,
    /// What this replay wrote, under hidden names until [`LocalReplay::finish`] makes them the
    /// lake's: (where it is, where it goes).
    staged: Vec<(PathBuf, PathBuf)>,
    /// What an earlier replay of the same input wrote: replaced when this one is whole.
    previous: Vec<PathBuf>,
}

impl LocalReplay {
    /// A replay into the lake at `root`, its files named `replay-<now>-<n>[-<flush>]`: unique per
    /// replay, so that two replays into one lake in the same millisecond do not overwrite each other.
    pub fn new(root: &Path, now: i64) -> LocalReplay {
        static REPLAY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = REPLAY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LocalReplay {
            root: root.to_owned(),
            name: format!("replay-{now}-{n}"),
            flushes: 0,
            pending: BatchOutput::default(),
            report: ReportBuilder::default(),
            written: Written::default(),
            carrier: Carrier::default(),
            log_group: String::new(),
            staged: Vec::new(),
            previous: Vec::new(),
        }
    }

    /// A replay of `files` into the lake at `root`, its objects named after the files
    /// (`replay-<16 hex digits>`): replaying the same files again replaces what the last replay of
    /// them wrote instead of adding to it. The lake is checked before any work: a directory that can
    /// be written. What a replay of these files left half-done is cleared.
    pub fn of_files(root: &Path, files: &[PathBuf], now: i64) -> Result<LocalReplay> {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for file in files {
            let file = std::fs::canonicalize(file).with_context(|| format!("reading {}", file.display()))?;
            hash.update(file.to_string_lossy().as_bytes());
            hash.update(b"\n");
        }
        let hex: String = hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        ensure_writable_dir(root).context("the lake (--lake)")?;
        let mut replay = LocalReplay::new(root, now);
        replay.name = format!("replay-{hex}");
        // One walk of the lake: what a half-done replay of these files left goes now, what the last
        // whole one wrote when this one is whole.
        for path in lake_files_named(root, &replay.name)? {
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            } else {
                replay.previous.push(path);
            }
        }
        Ok(replay)
    }

    /// Names the log group of inputs that name none.
    pub fn with_log_group(mut self, log_group: Option<&str>) -> LocalReplay {
        self.log_group = log_group.unwrap_or_default().to_owned();
        self
    }

    /// Adds a batch's output, processed with [`Carrier::FIRST_PASS`], in input order: what it and
    /// the parts its stream carries complete is added with it.
    fn add_carried(&mut self, mut out: BatchOutput, config: &Config, now: i64) -> Result<()> {
        let joined = self.carrier.after(&mut out, config, now);
        self.add(out)?;
        match joined {
            Some(joined) => self.add(joined),
            None => Ok(()),
        }
    }

    pub fn add(&mut self, out: BatchOutput) -> Result<()> {
        self.report.add(&out).context("the report's temporary files")?;
        self.pending.turns.extend(out.turns);
        self.pending.sessions.extend(out.sessions);
        self.pending.rejects.extend(out.rejects);
        self.pending.errors.extend(out.errors);
        let pending = &self.pending;
        if pending.turns.len() + pending.sessions.len() + pending.rejects.len() + pending.errors.len() >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Reads a file in any of the replay's input forms and processes what it holds at `now`. The
    /// batches of a chunk go through the pipeline on every core (it is pure, and what a batch cannot
    /// complete it holds back) and are added in input order, each stream's held parts carried to
    /// its next batch, so the result is the same as one after the other.
    pub fn add_file(&mut self, path: &Path, config: &Config, now: i64) -> Result<()> {
        let mut chunk: Vec<input::InputUnit> = Vec::new();
        let mut bytes = 0;
        let replaced = input::read_each(path, now, |unit| {
            bytes += unit.weight();
            chunk.push(unit);
            if bytes >= CHUNK_BYTES || chunk.len() >= CHUNK_UNITS {
                bytes = 0;
                self.process(std::mem::take(&mut chunk), config, now)?;
            }
            Ok(())
        })?;
        self.process(chunk, config, now)?;
        if replaced > 0 {
            let mut repairs = BatchOutput::default();
            repairs.stats.replaced_bytes = replaced;
            self.add(repairs)?;
        }
        Ok(())
    }

    fn process(&mut self, chunk: Vec<input::InputUnit>, config: &Config, now: i64) -> Result<()> {
        let hold = Carrier::FIRST_PASS;
        let log_group = self.log_group.as_str();
        let outputs: Vec<BatchOutput> = chunk
            .into_par_iter()
            .map(|unit| match unit {
                input::InputUnit::Payload { data, source } => {
                    named(voicelake_shared::process_payload_holding(&data, hold, config, now), &source)
                }
                input::InputUnit::Decoded { json, source } => {
                    named(voicelake_shared::process_decoded_holding(json, hold, config, now), &source)
                }
                input::InputUnit::Batch(mut batch) => {
                    if batch.log_group.is_empty() {
                        batch.log_group = log_group.to_owned();
                    }
                    voicelake_shared::process_batch_carrying(&batch, &[], hold, config, now)
                }
                input::InputUnit::Rejected { source, raw, reason, detail } => {
                    voicelake_shared::reject_input(Some(&source), &raw, reason, detail, config, now)
                }
            })
            .collect();
        // Each stream's held parts are carried into its next batch in order, the streams in
        // parallel; the outputs are added in input order.
        let mut chains: std::collections::BTreeMap<(String, String), Vec<(usize, BatchOutput)>> = Default::default();
        for (i, out) in outputs.into_iter().enumerate() {
            chains.entry((out.log_group.clone(), out.log_stream.clone())).or_default().push((i, out));
        }
        let work: Vec<_> = chains.into_iter().map(|((group, stream), outs)| (self.carrier.take_stream(&group, &stream), outs)).collect();
        let done: Vec<_> = work
            .into_par_iter()
            .map(|(mut carry, outs)| {
                let carried: Vec<_> = outs
                    .into_iter()
                    .map(|(i, mut out)| {
                        let joined = carry.after(&mut out, config, now);
                        (i, out, joined)
                    })
                    .collect();
                (carry, carried)
            })
            .collect();
        let mut ordered = Vec::new();
        for (carry, carried) in done {
            self.carrier.put_stream(carry);
            ordered.extend(carried);
        }
        ordered.sort_by_key(|(i, ..)| *i);
        for (_, out, joined) in ordered {
            self.add(out)?;
            if let Some(joined) = joined {
                self.add(joined)?;
            }
        }
        Ok(())
    }

    pub fn report(&self) -> &ReportBuilder {
        &self.report
    }

    /// Writes what is pending: one file per table and hour.
    fn flush(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if pending.turns.is_empty() && pending.sessions.is_empty() && pending.rejects.is_empty() && pending.errors.is_empty() {
            return Ok(());
        }
        let files = lake_files(&pending)?;
        let name = if self.flushes == 0 { self.name.clone() } else { format!("{}-{}", self.name, self.flushes) };
        self.flushes += 1;
        // Hidden (a leading dot: Athena, Spark and DuckDB's globs skip it) until the replay is whole.
        for file in &files {
            let key = file.key(&name);
            let (dir, base) = key.rsplit_once('/').expect("lake keys have folders");
            let staged = format!("{dir}/.{base}");
            write_object(&self.root, &staged, &file.bytes)?;
            self.staged.push((self.root.join(staged), self.root.join(key)));
        }
        self.written.files += files.len();
        self.written.turns += pending.turns.len();
        self.written.sessions += pending.sessions.len();
        self.written.rejects += pending.rejects.len();
        self.written.errors += pending.errors.len();
        Ok(())
    }

    /// Settles the parts still held (the input's end: the rest of their turns is not coming),
    /// writes the rest, and hands back the report's accumulator and what was written.
    pub fn finish(mut self, config: &Config, now: i64) -> Result<(ReportBuilder, Written)> {
        for out in std::mem::take(&mut self.carrier).finish(config, now) {
            self.add(out)?;
        }
        self.flush()?;
        // The replay is whole: what an earlier replay of the same input wrote goes, this one's
        // objects take their names.
        let ours: std::collections::HashSet<&PathBuf> = self.staged.iter().map(|(_, to)| to).collect();
        for old in &self.previous {
            if !ours.contains(old) {
                std::fs::remove_file(old).with_context(|| format!("removing {}", old.display()))?;
            }
        }
        for (from, to) in &self.staged {
            std::fs::rename(from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
        }
        Ok((self.report, self.written))
    }
}

/// `dir` exists (created if need be) as a directory this process can write in, checked by writing.
pub fn ensure_writable_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("{} is a file, not a directory", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let probe = dir.join(format!(".voicelake-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("{} cannot be written", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("removing {}", probe.display()))
}

/// The Parquet objects under the lake at `root` named `name.parquet` or `name-<more>.parquet`, and
/// their hidden forms (`.name…`) that a replay writes before it is whole.
fn lake_files_named(root: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(rest) = name.strip_prefix('.').unwrap_or(&name).strip_prefix(prefix)
                && (rest == ".parquet" || (rest.starts_with('-') && rest.ends_with(".parquet")))
            {
                found.push(path);
            }
        }
    }
    Ok(found)
}

/// A reject of a whole input (a subscription event that is not one, a decoded payload that is not a
/// batch) has no log event to name it: it is named after where it was read.
fn named(mut out: BatchOutput, source: &str) -> BatchOutput {
    for r in out.rejects.iter_mut().filter(|r| r.event_id.is_none()) {
        r.event_id = Some(source.to_owned());
        r.detail = format!("{source}: {}", r.detail);
    }
    out
}

/// Replays decoded batches into a lake under `lake` and returns the report.
pub fn replay_batches(batches: &[LogBatch], lake: &Path, config: &Config) -> Result<Report> {
    let now = voicelake_shared::timefmt::now_ms();
    let mut replay = LocalReplay::new(lake, now);
    let hold = Carrier::FIRST_PASS;
    for out in batches.par_iter().map(|b| voicelake_shared::process_batch_carrying(b, &[], hold, config, now)).collect::<Vec<_>>() {
        replay.add_carried(out, config, now)?;
    }
    let (report, _) = replay.finish(config, now)?;
    report.finish(config).context("reading the report's temporary files")
}

/// The process's peak resident memory so far (Linux: `VmHWM` of /proc/self/status).
pub fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024)
}

/// The Parquet files of rows: one per table and hour that has rows.
pub(crate) fn lake_files(rows: &BatchOutput) -> Result<Vec<LakeFile>> {
    let mut files = lake::encode_partitioned(&rows.turns)?;
    files.extend(lake::encode_partitioned(&rows.sessions)?);
    files.extend(lake::encode_partitioned(&rows.rejects)?);
    files.extend(lake::encode_partitioned(&rows.errors)?);
    Ok(files)
}

/// Writes (or replaces) the object `key` of the lake on disk at `root`.
pub(crate) fn write_object(root: &Path, key: &str, bytes: &[u8]) -> Result<()> {
    let path = root.join(key);
    let dir = path.parent().expect("lake keys have folders");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// `voicelake replay`: the files through the pipeline into the lake, and the report (and its page).
pub fn run(args: ReplayArgs) -> Result<()> {
    let deploy = match &args.params {
        Some(path) => Some(crate::samconfig::read(path, &args.config_env).context("--params")?),
        None => None,
    };
    let thresholds = match &deploy {
        Some(d) => crate::deployed_alarms::thresholds_of(&d.parameters)
            .with_context(|| format!("--params {}", args.params.as_ref().unwrap().display()))?,
        None => Vec::new(),
    };
    let deployed_target = thresholds.iter().find(|(p, _)| *p == crate::deployed_alarms::LATENCY_PARAMETER).map(|(_, v)| *v);
    let target_ms = args.target_ms.or(deployed_target).unwrap_or(voicelake_shared::config::DEFAULT_LATENCY_TARGET_MS);
    let mut config = pipeline_config(&args.environment, target_ms, args.pii, args.pseudonym_key_file.as_deref(), args.prices.as_deref())?;
    config.alarm_thresholds = thresholds.into_iter().map(|(p, v)| (p.to_owned(), v)).collect();
    // The stack lays PriceTableOverride over the built-in table; a --prices file stands in for it.
    if let (None, Some(text)) =
        (&args.prices, deploy.as_ref().and_then(|d| d.parameters.get("PriceTableOverride")).filter(|t| !t.trim().is_empty()))
    {
        config.prices = voicelake_shared::cost::PriceTable::default().with_overrides(text).context("--params: PriceTableOverride")?;
    }
    let now = now_ms();
    let started = std::time::Instant::now();
    // Every output is checked before the work: a replay that cannot write its page fails now, not
    // after the lake was written.
    if let Some(page) = &args.html {
        if page.is_dir() {
            bail!("--html {} is a directory, not a file", page.display());
        }
        let dir = page.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        ensure_writable_dir(dir).context("the report page's folder (--html)")?;
    }
    let mut replay = LocalReplay::of_files(&args.lake, &args.files, now)?.with_log_group(args.log_group.as_deref());
    let mut input_bytes = 0;
    for path in &args.files {
        input_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        replay.add_file(path, &config, now)?;
    }
    let (builder, written) = replay.finish(&config, now)?;
    let charts = args.html.as_ref().map(|_| builder.charts(&config)).transpose().context("reading the report's temporary files")?;
    let report = builder.finish(&config).context("reading the report's temporary files")?;
    if let (Some(path), Some(charts)) = (&args.html, &charts) {
        let page = crate::html::render(&report, charts, &config.environment)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report page: {}", path.display());
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "replayed {:.1} MB of input, {} log events, in {seconds:.2} s: {:.1} MB/s, {:.0} events/s{}",
        input_bytes as f64 / 1e6,
        report.counts.events_in,
        input_bytes as f64 / 1e6 / seconds,
        report.counts.events_in as f64 / seconds,
        peak_memory_mib().map_or(String::new(), |m| format!(", peak memory {m} MiB")),
    );
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            writeln!(stdout)?;
            eprintln!("lake: {} Parquet files under {}", written.files, args.lake.display());
        }
        Format::Text => {
            write!(stdout, "{}", report.render())?;
            writeln!(
                stdout,
                "\nlake: {} Parquet files under {} ({} turn rows, {} session rows, {} rejects, {} failure rows)",
                written.files,
                args.lake.display(),
                written.turns,
                written.sessions,
                written.rejects,
                written.errors
            )?;
        }
    }
    Ok(())
}
