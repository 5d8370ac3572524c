//! `voicelake queries check`: the saved queries of `queries/` checked before they are deployed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use voicelake_shared::queries::{self, Kind, QueryFile};
use voicelake_shared::synth::{self, SynthOptions};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The queries folder (insights/ and athena/ below it).
    #[arg(long, default_value = "queries")]
    dir: PathBuf,
    /// Python with DuckDB, sqlglot and trino-sql-validator (./infra/bootstrap installs them into .venv).
    #[arg(long, env = "VOICELAKE_PYTHON", default_value = ".venv/bin/python")]
    python: PathBuf,
    /// The Athena checker script.
    #[arg(long, default_value = "infra/check_queries.py")]
    checker: PathBuf,
    /// Calls of generated traffic to replay into the lake the Athena queries run on.
    #[arg(long, default_value_t = 150)]
    calls: usize,
}

/// Every query file below `dir`, as (path relative to `dir`, text).
pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for sub in ["insights", "athena"] {
        let folder = dir.join(sub);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&folder)
            .with_context(|| format!("reading {}", folder.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries.into_iter().filter(|p| p.is_file()) {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            files.push((format!("{sub}/{}", path.file_name().unwrap().to_string_lossy()), text));
        }
    }
    Ok(files)
}

pub fn check(args: CheckArgs) -> Result<()> {
    let files = read_dir(&args.dir)?;
    let parsed: Vec<QueryFile> = match queries::parse_all(&files) {
        Ok(q) => q,
        Err(errors) => bail!("{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")),
    };

    let mut problems = Vec::new();
    let insights: Vec<&QueryFile> = parsed.iter().filter(|q| q.kind == Kind::Insights).collect();
    for q in &insights {
        let known = queries::known_fields(q.log_groups);
        for p in queries::check_insights(&q.text, &known) {
            problems.push(format!("{}: {p}", q.path));
        }
    }
    if !problems.is_empty() {
        bail!("Insights queries:\n{}", problems.join("\n"));
    }
    println!("{} Insights queries: pipelines of known commands and functions over fields the contract's log lines carry", insights.len());

    // The Athena queries run on a lake of generated traffic, and their answers are compared with
    // the report of the same replay.
    if !args.python.exists() {
        bail!(
            "{} not found: run ./infra/bootstrap (it installs DuckDB, sqlglot and the Trino validator into .venv) or pass --python",
            args.python.display()
        );
    }
    let work = tempfile::tempdir()?;
    let traffic = synth::generate(&SynthOptions {
        calls: args.calls,
        seed: 3,
        start_ms: (voicelake_shared::timefmt::now_ms() / 3_600_000 - 3) * 3_600_000,
        noise: true,
    });
    let lake = work.path().join("lake");
    let report = crate::replay_batches(&traffic, &lake, &voicelake_shared::Config::default())?;
    // A retried invocation writes its batch's rows again: a third of the batches land twice, as
    // after Lambda retries, and the queries (through the dedupe views) must still agree with the
    // report, which counts each event once.
    let retried: Vec<_> = traffic.iter().step_by(3).cloned().collect();
    crate::replay_batches(&retried, &lake, &voicelake_shared::Config::default())?;
    let report_path = work.path().join("report.json");
    std::fs::write(&report_path, serde_json::to_vec(&report)?)?;
    let status = Command::new(&args.python)
        .arg(&args.checker)
        .arg(args.dir.join("athena"))
        .arg(&lake)
        .arg(&report_path)
        .status()
        .with_context(|| format!("running {} {}", args.python.display(), args.checker.display()))?;
    if !status.success() {
        bail!("the Athena queries failed their check (see above)");
    }
    Ok(())
}
