//! The command line: every subcommand and flag of `voicelake`, in one place so that the README
//! test can hold the documentation to it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::queries;

#[derive(Parser)]
#[command(name = "voicelake", version, about = "Voice-agent latency metrics and a Parquet lake from CloudWatch logs, run locally.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// On an error, every cause behind it, one a line (by default the error and its first cause).
    #[arg(long, global = true)]
    pub verbose: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Replay log files through the pipeline into a local lake and print the latency report.
    Replay(ReplayArgs),
    /// Write realistic synthetic traffic as CloudWatch Logs subscription events (JSON lines).
    Generate(GenerateArgs),
    /// Generate traffic and replay it: DIR/traffic.jsonl, the lake under DIR/lake, the report.
    Demo(DemoArgs),
    /// Bring history into the lake: hours of log groups read with FilterLogEvents, or a CloudWatch
    /// Logs export, through the same pipeline, resumable, into a local lake or the stack's bucket.
    Backfill(BackfillArgs),
    /// Saved queries as code.
    #[command(subcommand)]
    Queries(QueriesCommand),
    /// Run a saved Athena query (or a view, a .sql file, or `call`: one call's turns) on a local
    /// lake, in DuckDB, narrowed to an agent and a time range.
    Query(queries::QueryArgs),
    /// The ingest function's on-failure queue: batches it could not deliver after Lambda's retries.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The notify function: alarm notifications to Slack, a webhook and email.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Before `sam deploy`: check what the account must allow (the agent log groups exist and can
    /// take a subscription filter, the stack name fits every name derived from it, Lake Formation
    /// leaves new databases to IAM, the reserved concurrency fits the quota), with read-only calls.
    /// Uses the standard AWS settings (AWS_PROFILE, AWS_REGION…). Exits 1 when a check fails.
    Preflight(PreflightArgs),
}

#[derive(clap::Args)]
pub struct PreflightArgs {
    /// The stack's name (default: the config environment's stack_name).
    #[arg(long)]
    pub stack: Option<String>,
    /// The SAM config file the deploy reads its parameters from.
    #[arg(long, value_name = "FILE", default_value = "samconfig.toml")]
    pub config_file: PathBuf,
    /// Its config environment (`sam deploy --config-env`).
    #[arg(long, value_name = "ENV", default_value = "default")]
    pub config_env: String,
    /// The agents' log groups, comma-separated, instead of the config's AgentLogGroupNames.
    #[arg(long, value_name = "A,B")]
    pub log_groups: Option<String>,
    /// The ingest function's reserved concurrency instead of the config's IngestReservedConcurrency.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub reserved_concurrency: Option<i64>,
    /// The findings as one JSON array.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Send a sample turn-latency notification through the deployed notify function, to every
    /// channel it is configured with. Uses the standard AWS settings (AWS_PROFILE, AWS_REGION…).
    Test(NotifyTestArgs),
}

#[derive(clap::Args)]
pub struct NotifyTestArgs {
    /// The stack's name: the function is STACK-notify.
    #[arg(long, required_unless_present = "function")]
    pub stack: Option<String>,
    /// The notify function's name or ARN instead (the stack output NotifyFunctionArn).
    #[arg(long)]
    pub function: Option<String>,
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Invoke the function again with each batch the queue keeps; delete a message only once its
    /// replay succeeded. Uses the standard AWS settings (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL…).
    Replay(DlqReplayArgs),
}

#[derive(clap::Args)]
pub struct DlqReplayArgs {
    /// The queue's URL (the stack output FailureQueueUrl).
    #[arg(long)]
    pub queue_url: String,
    /// The ingest function's name or ARN (the stack output IngestFunctionArn).
    #[arg(long)]
    pub function: String,
    /// Replay at most this many messages.
    #[arg(long, default_value_t = 1000)]
    pub max: usize,
    /// Seconds a message stays hidden while it is replayed; one that failed again reappears after it.
    #[arg(long, default_value_t = 300)]
    pub visibility_timeout: i32,
}

#[derive(Subcommand)]
pub enum QueriesCommand {
    /// Check queries/ before deploying: Insights pipelines and fields, Athena SQL as Trino parses
    /// it, and every Athena query run in DuckDB on a replayed lake, its answers compared with the report.
    Check(queries::CheckArgs),
}

#[derive(clap::Args)]
#[command(override_usage = "voicelake backfill --log-group NAME… --start WHEN [--end WHEN] (--lake DIR | --to s3://BUCKET/) [OPTIONS]
       voicelake backfill --export s3://BUCKET/PREFIX|DIR --log-group NAME (--lake DIR | --to s3://BUCKET/) [OPTIONS]")]
pub struct BackfillArgs {
    /// A log group to read with FilterLogEvents (repeat for several). With --export, the group the
    /// export is of, written to the rows.
    #[arg(long = "log-group", value_name = "NAME", required_unless_present = "export")]
    pub log_groups: Vec<String>,
    /// Read a CloudWatch Logs export (CreateExportTask's output) instead: s3://BUCKET/PREFIX, or a
    /// local copy of it.
    #[arg(long, value_name = "LOCATION", conflicts_with = "start")]
    pub export: Option<String>,
    /// The start of the history: RFC 3339, or a duration before now (30d, 12h, 90m, 2w).
    #[arg(long, required_unless_present = "export")]
    pub start: Option<String>,
    /// The end: RFC 3339, a duration before now, or now. Set it to when the stack was deployed:
    /// from then on the subscription filter delivers the events, and a backfill past it would
    /// write them to the lake a second time.
    #[arg(long, default_value = "now")]
    pub end: String,
    /// Write to a local lake in this folder.
    #[arg(long, value_name = "DIR", required_unless_present = "to", conflicts_with = "to")]
    pub lake: Option<PathBuf>,
    /// Write to the stack's lake: s3://BUCKET/ (the stack output LakeBucketName), where Firehose writes.
    #[arg(long, value_name = "S3_URL")]
    pub to: Option<String>,
    /// The file recording how far the backfill got; a run continues from it.
    #[arg(long, value_name = "FILE", default_value = "voicelake-backfill.json")]
    pub checkpoint: PathBuf,
    /// Which events FilterLogEvents returns: the stack's default subscription filter pattern.
    #[arg(long, default_value = voicelake_shared::config::DEFAULT_FILTER_PATTERN)]
    pub filter_pattern: String,
    /// Events per FilterLogEvents page (at most 10,000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub page_size: i32,
    /// The environment name written to rows.
    #[arg(long, default_value = voicelake_shared::config::DEFAULT_ENVIRONMENT)]
    pub environment: String,
    /// A price table (JSON, the shape of shared/data/prices.json) instead of the built-in one.
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Emails and phone numbers: hash, drop or keep (as for replay).
    #[arg(long, default_value = "hash")]
    pub pii: voicelake_shared::pii::PiiMode,
    /// The key pseudonyms are made with (a file holding it, as for replay). Required with `--to`
    /// and `--pii hash`: the stack's key (its PseudonymKeyArn secret), so that pseudonyms join.
    #[arg(long, value_name = "FILE")]
    pub pseudonym_key_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where to write traffic.jsonl, the lake and report.html (a second demo replaces its rows).
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
    /// Calls of generated traffic.
    #[arg(long, default_value_t = 200)]
    pub calls: usize,
    /// The generator's seed: the same seed gives the same traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// A provider outage in the traffic, as `voicelake generate --outage` takes it.
    #[arg(long, value_parser = clap::value_parser!(voicelake_synth::Outage))]
    pub outage: Option<voicelake_synth::Outage>,
}

#[derive(clap::Args)]
#[command(override_usage = "voicelake replay FILE… --lake DIR [--format text|json] [--html FILE] [--log-group NAME] [OPTIONS]
       voicelake replay FILE… --lake DIR --params samconfig.toml [--config-env NAME] [OPTIONS]")]
pub struct ReplayArgs {
    /// Subscription events (one per file or per line), `aws logs filter-log-events` output, or raw log lines.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where to write the lake: turns/, sessions/ and rejects/ partitioned by dt and hour, as on S3.
    #[arg(long)]
    pub lake: PathBuf,
    /// The report as text, or as one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The environment name written to rows (the Environment metric dimension on AWS).
    #[arg(long, default_value = voicelake_shared::config::DEFAULT_ENVIRONMENT)]
    pub environment: String,
    /// Turn latency target in milliseconds, and the TurnLatencyP95Alarm threshold (in the stack,
    /// TurnLatencyP95ThresholdMs is both). Default: the --params file's, else 1500.
    #[arg(long)]
    pub target_ms: Option<f64>,
    /// A price table (JSON, the shape of shared/data/prices.json) laid over the built-in one.
    /// Default: the --params file's PriceTableOverride, if it has one.
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// The deploy's samconfig.toml: the alarms are judged at its parameter_overrides' thresholds
    /// (the template's defaults where it sets none), and its PriceTableOverride is laid over the
    /// prices, as the stack does.
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,
    /// The config environment of --params.
    #[arg(long, value_name = "NAME", default_value = "default", requires = "params")]
    pub config_env: String,
    /// Emails and phone numbers in signals, session ids, tool errors and rejects: hash (a stable
    /// pseudonym), drop ([redacted]) or keep.
    #[arg(long, default_value = "hash")]
    pub pii: voicelake_shared::pii::PiiMode,
    /// A file holding the key pseudonyms are made with (HMAC-SHA-256; at least 16 bytes of text).
    /// Without one they are plain SHA-256, which enumeration reverses. The stack's key is the
    /// value of its PseudonymKeyArn secret: the same key gives the lake's pseudonyms.
    #[arg(long, value_name = "FILE")]
    pub pseudonym_key_file: Option<PathBuf>,
    /// The log group of inputs that name none (raw log lines, `aws logs` output): an agent that
    /// does not log its name is named after it, as on AWS. Without it such agents are `unknown`.
    #[arg(long, value_name = "NAME")]
    pub log_group: Option<String>,
    /// Also write the report as one self-contained HTML page with the dashboard's charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Calls to generate.
    #[arg(long, default_value_t = 200)]
    pub calls: usize,
    /// The generator's seed: the same seed gives the same traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The file to write (JSON lines, one subscription event each).
    #[arg(long)]
    pub out: PathBuf,
    /// Event time of the first call (RFC 3339). Default: on the hour, early enough that the traffic
    /// ends before now.
    #[arg(long)]
    pub start: Option<String>,
    /// Only well-formed agent events: no foreign lines, no malformed input.
    #[arg(long)]
    pub clean: bool,
    /// A provider outage, as LiveKit 1.8 logs one: KIND:PROVIDER[:AGENT][@START_MINUTE[+MINUTES]]
    /// (e.g. `tts:cartesia:sales-agent@20+10`; default from minute 20 for 10 minutes, every agent).
    /// Each affected turn retries the provider twice and falls back from it; in one call in four,
    /// with no fallback, turns fail and the fourth failure closes the session.
    #[arg(long, value_parser = clap::value_parser!(voicelake_synth::Outage))]
    pub outage: Option<voicelake_synth::Outage>,
}
