//! Local replay: input files through the same pure pipeline the Lambda runs, into a local lake
//! with the layout and schema of the S3 lake, and into the report.

use std::path::Path;

use anyhow::{Context, Result};
use rayon::prelude::*;
use voicelake_shared::envelope::LogBatch;
use voicelake_shared::lake::{self, LakeFile};
use voicelake_shared::{BatchOutput, Config};

use crate::input;
use crate::report::{Report, ReportBuilder};

/// Batches processed in parallel at a time: enough to keep every core busy.
const PARALLEL_CHUNK: usize = 64;

/// The rows and report of one replay, collected batch by batch and written to the lake in one go,
/// so that each table and hour gets one Parquet file per replay.
#[derive(Default)]
pub struct LocalReplay {
    rows: BatchOutput,
    report: ReportBuilder,
}

impl LocalReplay {
    pub fn add(&mut self, out: BatchOutput) {
        self.report.add(&out);
        self.rows.turns.extend(out.turns);
        self.rows.sessions.extend(out.sessions);
        self.rows.rejects.extend(out.rejects);
    }

    /// Reads a file in any of the replay's input forms and processes what it holds at `now`. The
    /// batches go through the pipeline on every core (it is pure and each batch stands alone) and
    /// are added in input order, so the result is the same as one after the other.
    pub fn add_file(&mut self, path: &Path, config: &Config, now: i64) -> Result<()> {
        let mut units = input::read(path, now)?.into_iter();
        loop {
            // A chunk at a time, so that the outputs waiting to be added stay few.
            let chunk: Vec<input::Unit> = units.by_ref().take(PARALLEL_CHUNK).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            let outputs: Vec<BatchOutput> = chunk
                .into_par_iter()
                .map(|unit| match unit {
                    input::Unit::Payload(data) => voicelake_shared::process_payload(&data, config, now),
                    input::Unit::Batch(batch) => voicelake_shared::process_batch(&batch, config, now),
                })
                .collect();
            for out in outputs {
                self.add(out);
            }
        }
    }

    /// Every row replayed so far.
    pub fn rows(&self) -> &BatchOutput {
        &self.rows
    }

    pub fn report(&self) -> &ReportBuilder {
        &self.report
    }

    /// Writes `replay-<now>-<n>` files and returns how many.
    pub fn write_lake(&self, root: &Path, now: i64) -> Result<usize> {
        let mut files = lake::encode_partitioned(&self.rows.turns)?;
        files.extend(lake::encode_partitioned(&self.rows.sessions)?);
        files.extend(lake::encode_partitioned(&self.rows.rejects)?);
        // Unique per replay: two replays into one lake in the same millisecond must not overwrite each other.
        static REPLAY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = REPLAY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        write_files(root, &files, &format!("replay-{now}-{n}"))
    }
}

/// Replays decoded batches into a lake under `lake` and returns the report.
pub fn replay_batches(batches: &[LogBatch], lake: &Path, config: &Config) -> Result<Report> {
    let now = voicelake_shared::timefmt::now_ms();
    let mut replay = LocalReplay::default();
    for out in batches.par_iter().map(|b| voicelake_shared::process_batch(b, config, now)).collect::<Vec<_>>() {
        replay.add(out);
    }
    replay.write_lake(lake, now)?;
    Ok(replay.report.finish(config))
}

fn write_files(root: &Path, files: &[LakeFile], name: &str) -> Result<usize> {
    for file in files {
        let path = root.join(file.key(name));
        let dir = path.parent().expect("lake keys have folders");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&path, &file.bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files.len())
}
