//! `voicelake`: run the pipeline locally, on the same code as the Lambda.

mod input;
mod queries;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use voicelake_shared::cost::PriceTable;
use voicelake_shared::lake::{self, LakeFile};
use voicelake_shared::report::ReportBuilder;
use voicelake_shared::synth::{self, SynthOptions};
use voicelake_shared::timefmt::{self, now_ms};
use voicelake_shared::{BatchOutput, Config};

#[derive(Parser)]
#[command(name = "voicelake", version, about = "Voice-agent latency metrics and a Parquet lake from CloudWatch logs, run locally.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay log files through the pipeline into a local lake and print the latency report.
    Replay(ReplayArgs),
    /// Write realistic synthetic traffic as CloudWatch Logs subscription events (JSON lines).
    Generate(GenerateArgs),
    /// Generate traffic and replay it: DIR/traffic.jsonl, the lake under DIR/lake, the report.
    Demo(DemoArgs),
    /// Saved queries as code.
    #[command(subcommand)]
    Queries(QueriesCommand),
    /// The ingest function's on-failure queue: batches it could not deliver after Lambda's retries.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Invoke the function again with each batch the queue keeps; delete a message only once its
    /// replay succeeded. Uses the standard AWS settings (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL…).
    Replay(DlqReplayArgs),
}

#[derive(clap::Args)]
struct DlqReplayArgs {
    /// The queue's URL (the stack output FailureQueueUrl).
    #[arg(long)]
    queue_url: String,
    /// The ingest function's name or ARN (the stack output IngestFunctionArn).
    #[arg(long)]
    function: String,
    /// Replay at most this many messages.
    #[arg(long, default_value_t = 1000)]
    max: usize,
    /// Seconds a message stays hidden while it is replayed; one that failed again reappears after it.
    #[arg(long, default_value_t = 300)]
    visibility_timeout: i32,
}

#[derive(Subcommand)]
enum QueriesCommand {
    /// Check queries/ before deploying: Insights pipelines and fields, Athena SQL as Trino parses
    /// it, and every Athena query run in DuckDB on a replayed lake, its answers compared with the report.
    Check(queries::CheckArgs),
}

#[derive(clap::Args)]
struct DemoArgs {
    #[arg(long, default_value = "demo")]
    dir: PathBuf,
    #[arg(long, default_value_t = 200)]
    calls: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Subscription events (one per file or per line), `aws logs filter-log-events` output, or raw log lines.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where to write the lake: turns/, sessions/ and rejects/ partitioned by dt and hour, as on S3.
    #[arg(long)]
    lake: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The environment name written to rows (the Environment metric dimension on AWS).
    #[arg(long, default_value = voicelake_shared::config::DEFAULT_ENVIRONMENT)]
    environment: String,
    /// Turn latency target in milliseconds.
    #[arg(long, default_value_t = voicelake_shared::config::DEFAULT_LATENCY_TARGET_MS)]
    target_ms: f64,
    /// A price table (JSON, the shape of shared/data/prices.json) instead of the built-in one.
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Emails and phone numbers in signals, session ids, tool errors and rejects: hash (a stable
    /// pseudonym), drop ([redacted]) or keep.
    #[arg(long, default_value = "hash")]
    pii: voicelake_shared::pii::PiiMode,
    /// Also write the report as one self-contained HTML page with the dashboard's charts.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
struct GenerateArgs {
    #[arg(long, default_value_t = 200)]
    calls: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    /// Event time of the first call (RFC 3339). Default: two hours ago, on the hour.
    #[arg(long)]
    start: Option<String>,
    /// Only well-formed agent events: no foreign lines, no malformed input.
    #[arg(long)]
    clean: bool,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Replay(args) => replay(args),
        Command::Generate(args) => generate(args),
        Command::Queries(QueriesCommand::Check(args)) => queries::check(args),
        Command::Dlq(DlqCommand::Replay(args)) => dlq_replay(args),
        Command::Demo(args) => {
            let traffic = args.dir.join("traffic.jsonl");
            generate(GenerateArgs { calls: args.calls, seed: args.seed, out: traffic.clone(), start: None, clean: false })?;
            let lake = args.dir.join("lake");
            if lake.exists() {
                // A demo replays from scratch; a second run must not double its lake.
                std::fs::remove_dir_all(&lake).with_context(|| format!("clearing {}", lake.display()))?;
            }
            replay(ReplayArgs {
                files: vec![traffic],
                html: Some(args.dir.join("report.html")),
                lake,
                format: Format::Text,
                environment: voicelake_shared::config::DEFAULT_ENVIRONMENT.into(),
                target_ms: voicelake_shared::config::DEFAULT_LATENCY_TARGET_MS,
                prices: None,
                pii: voicelake_shared::pii::PiiMode::default(),
            })
        }
    }
}

fn dlq_replay(args: DlqReplayArgs) -> Result<()> {
    use voicelake_cli::dlq::{self, LambdaInvoker, SqsQueue};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &args.queue_url, args.visibility_timeout);
        let invoker = LambdaInvoker::new(aws_sdk_lambda::Client::new(&aws), &args.function);
        dlq::redrive(&queue, &invoker, args.max).await
    })?;
    println!("received {}, replayed and deleted {}", summary.received, summary.replayed);
    for (id, error) in &summary.failed {
        println!("failed again, kept in the queue: {id}: {error}");
    }
    for (id, why) in &summary.unreadable {
        println!("cannot be replayed, kept in the queue: {id}: {why}");
    }
    if !summary.is_clean() {
        bail!("{} of {} messages were not replayed", summary.failed.len() + summary.unreadable.len(), summary.received);
    }
    Ok(())
}

fn generate(args: GenerateArgs) -> Result<()> {
    let start_ms = match &args.start {
        Some(s) => timefmt::parse_event_time(s).with_context(|| format!("--start {s:?} is not an RFC 3339 time within 2000..2100"))?,
        None => (now_ms() / 3_600_000 - 2) * 3_600_000,
    };
    let opts = SynthOptions { calls: args.calls, seed: args.seed, start_ms, noise: !args.clean };
    let batches = synth::generate(&opts);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, synth::subscription_lines(&batches)).with_context(|| format!("writing {}", args.out.display()))?;
    let events: usize = batches.iter().map(|b| b.log_events.len()).sum();
    eprintln!("wrote {} subscription events ({events} log events, {} calls) to {}", batches.len(), args.calls, args.out.display());
    Ok(())
}

fn replay(args: ReplayArgs) -> Result<()> {
    let mut config =
        Config { environment: args.environment.clone(), latency_target_ms: args.target_ms, pii: args.pii, ..Config::default() };
    if let Some(path) = &args.prices {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        config.prices = PriceTable::from_json(&text).with_context(|| format!("{}", path.display()))?;
    }
    if !(config.latency_target_ms.is_finite() && config.latency_target_ms > 0.0) {
        bail!("--target-ms must be a positive number of milliseconds");
    }
    let now = now_ms();
    let mut replay = LocalReplay::default();
    for path in &args.files {
        for unit in input::read(path, now)? {
            replay.add(match unit {
                input::Unit::Payload(data) => voicelake_shared::process_payload(&data, &config, now),
                input::Unit::Batch(batch) => voicelake_shared::process_batch(&batch, &config, now),
            });
        }
    }
    let written = replay.write_lake(&args.lake, now)?;
    let LocalReplay { rows: all, report } = replay;
    let charts = args.html.as_ref().map(|_| report.charts(&config));
    let report = report.finish(&config);
    if let (Some(path), Some(charts)) = (&args.html, &charts) {
        let page = voicelake_cli::html::render(&report, charts, &config.environment)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report page: {}", path.display());
    }
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            writeln!(stdout)?;
            eprintln!("lake: {written} Parquet files under {}", args.lake.display());
        }
        Format::Text => {
            write!(stdout, "{}", report.render())?;
            writeln!(
                stdout,
                "\nlake: {written} Parquet files under {} ({} turn rows, {} session rows, {} rejects)",
                args.lake.display(),
                all.turns.len(),
                all.sessions.len(),
                all.rejects.len()
            )?;
        }
    }
    Ok(())
}

/// Replays decoded batches into a lake under `lake` and returns the report.
pub fn replay_batches(
    batches: &[voicelake_shared::envelope::LogBatch],
    lake: &Path,
    config: &Config,
) -> Result<voicelake_shared::report::Report> {
    let now = now_ms();
    let mut replay = LocalReplay::default();
    for b in batches {
        replay.add(voicelake_shared::process_batch(b, config, now));
    }
    replay.write_lake(lake, now)?;
    Ok(replay.report.finish(config))
}

/// The rows and report of one replay, collected batch by batch and written to the lake in one go,
/// so that each table and hour gets one Parquet file per replay.
#[derive(Default)]
struct LocalReplay {
    rows: BatchOutput,
    report: ReportBuilder,
}

impl LocalReplay {
    fn add(&mut self, out: BatchOutput) {
        self.report.add(&out);
        self.rows.turns.extend(out.turns);
        self.rows.sessions.extend(out.sessions);
        self.rows.rejects.extend(out.rejects);
    }

    /// Writes `replay-<now>-<n>` files and returns how many.
    fn write_lake(&self, root: &Path, now: i64) -> Result<usize> {
        let mut files = lake::encode_partitioned(&self.rows.turns)?;
        files.extend(lake::encode_partitioned(&self.rows.sessions)?);
        files.extend(lake::encode_partitioned(&self.rows.rejects)?);
        // Unique per replay: two replays into one lake in the same millisecond must not overwrite each other.
        static REPLAY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = REPLAY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        write_lake(root, &files, &format!("replay-{now}-{n}"))
    }
}

fn write_lake(root: &Path, files: &[LakeFile], name: &str) -> Result<usize> {
    for file in files {
        let path = root.join(file.key(name));
        let dir = path.parent().expect("lake keys have folders");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&path, &file.bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files.len())
}
