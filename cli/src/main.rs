//! `voicelake`: run the pipeline locally, on the same code as the Lambda.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::Parser;
use voicelake_cli::args::{
    BackfillArgs, Cli, Command, DemoArgs, DlqCommand, DlqReplayArgs, Format, GenerateArgs, NotifyCommand, NotifyTestArgs, PreflightArgs,
    QueriesCommand, ReplayArgs,
};
use voicelake_cli::queries;
use voicelake_cli::replay::LocalReplay;
use voicelake_shared::Config;
use voicelake_shared::cost::PriceTable;
use voicelake_shared::timefmt::{self, now_ms};
use voicelake_synth::{self as synth, SynthOptions};

/// One line an operator can act on: the error and its first cause (`--verbose`: every cause, one a
/// line). An SDK's debug dump of a request is never the message.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut causes = e.chain();
            let mut line = format!("error: {}", causes.next().map(ToString::to_string).unwrap_or_default());
            if verbose {
                for cause in causes {
                    line.push_str(&format!("\n  caused by: {cause}"));
                }
            } else if let Some(cause) = causes.next() {
                line.push_str(&format!(": {cause}"));
                if e.chain().count() > 2 {
                    line.push_str(" (--verbose for every cause)");
                }
            }
            eprintln!("{line}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replay(args) => replay(args),
        Command::Generate(args) => generate(args),
        Command::Backfill(args) => backfill(args),
        Command::Queries(QueriesCommand::Check(args)) => queries::check(args),
        Command::Query(args) => queries::query(args),
        Command::Dlq(DlqCommand::Replay(args)) => dlq_replay(args),
        Command::Notify(NotifyCommand::Test(args)) => notify_test(args),
        Command::Preflight(args) => preflight(args),
        Command::Demo(DemoArgs { dir, calls, seed, outage }) => {
            let traffic = dir.join("traffic.jsonl");
            generate(GenerateArgs { calls, seed, out: traffic.clone(), start: None, clean: false, outage })?;
            // A second demo replaces what the first wrote (a replay of the same file does), and
            // leaves anything else under the lake alone.
            let lake = dir.join("lake");
            replay(ReplayArgs {
                files: vec![traffic],
                html: Some(dir.join("report.html")),
                lake,
                format: Format::Text,
                environment: voicelake_shared::config::DEFAULT_ENVIRONMENT.into(),
                target_ms: None,
                prices: None,
                params: None,
                config_env: "default".into(),
                pii: voicelake_shared::pii::PiiMode::default(),
                pseudonym_key_file: None,
                log_group: None,
            })
        }
    }
}

fn dlq_replay(args: DlqReplayArgs) -> Result<()> {
    use voicelake_cli::dlq::{self, LambdaInvoker, SqsQueue};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        let aws = voicelake_cli::aws_setup::load(&[&args.queue_url, &args.function], None).await?;
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

fn preflight(args: PreflightArgs) -> Result<()> {
    use voicelake_cli::preflight::{self, Account, Plan, Verdict};
    let settings = if args.config_file.exists() {
        voicelake_cli::samconfig::read(&args.config_file, &args.config_env)?
    } else if args.stack.is_some() && args.log_groups.is_some() {
        voicelake_cli::samconfig::DeploySettings::default()
    } else {
        bail!("{} does not exist: give --config-file, or --stack and --log-groups", args.config_file.display());
    };
    let stack = args.stack.or(settings.stack_name.clone()).context("give --stack (the config names no stack_name)")?;
    let groups = args.log_groups.or_else(|| settings.parameter("AgentLogGroupNames")).unwrap_or_default();
    let reserved = match args.reserved_concurrency {
        Some(n) => n,
        None => {
            let text = settings.parameter("IngestReservedConcurrency").unwrap_or_else(|| "-1".into());
            text.trim().parse().with_context(|| format!("IngestReservedConcurrency {text:?} is not a number"))?
        }
    };
    let plan = Plan {
        stack,
        log_groups: groups.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect(),
        reserved_concurrency: (reserved >= 0).then_some(reserved),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let findings = runtime.block_on(async {
        let aws = voicelake_cli::aws_setup::load(&[], None).await?;
        let account = Account {
            logs: aws_sdk_cloudwatchlogs::Client::new(&aws),
            lakeformation: aws_sdk_lakeformation::Client::new(&aws),
            lambda: aws_sdk_lambda::Client::new(&aws),
        };
        anyhow::Ok(preflight::check(&plan, &account).await)
    })?;
    match args.format {
        Format::Text => print!("{}", preflight::render(&findings)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&findings)?),
    }
    let failed = findings.iter().filter(|f| f.verdict == Verdict::Fails).count();
    if failed > 0 {
        bail!("{failed} check(s) would fail the deploy of {}; fix them first", plan.stack);
    }
    Ok(())
}

fn notify_test(args: NotifyTestArgs) -> Result<()> {
    let function = match (&args.function, &args.stack) {
        (Some(f), _) => f.clone(),
        (None, Some(stack)) => format!("{stack}-notify"),
        (None, None) => bail!("give --stack or --function"),
    };
    let stack = args.stack.clone().unwrap_or_else(|| "voicelake".into());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let aws = runtime.block_on(voicelake_cli::aws_setup::load(&[&function], None))?;
    let answer = runtime
        .block_on(voicelake_cli::notify::send_test(&aws, &function, &stack, now_ms()))
        .map_err(|e| anyhow::anyhow!("{function} could not deliver the test notification: {e}"))?;
    println!("{function} delivered the test notification: {answer}");
    Ok(())
}

fn generate(args: GenerateArgs) -> Result<()> {
    let start_ms = match &args.start {
        Some(s) => timefmt::parse_event_time(s).with_context(|| format!("--start {s:?} is not an RFC 3339 time within 2000..2100"))?,
        // The traffic ends before now (an hour's margin for the last calls' length), however many
        // calls: never in the future, where the report and the alarms would see a clock error.
        None => ((now_ms() - synth::window_ms(args.calls)) / 3_600_000 - 1) * 3_600_000,
    };
    let opts = SynthOptions { calls: args.calls, seed: args.seed, start_ms, noise: !args.clean, outage: args.outage.clone() };
    let batches = synth::generate(&opts);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::File::create(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    synth::write_subscription_lines(&batches, &mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
        .with_context(|| format!("writing {}", args.out.display()))?;
    let events: usize = batches.iter().map(|b| b.log_events.len()).sum();
    eprintln!("wrote {} subscription events ({events} log events, {} calls) to {}", batches.len(), args.calls, args.out.display());
    Ok(())
}

/// The pipeline's settings from the flags replay and backfill share.
fn pipeline_config(
    environment: &str,
    target_ms: f64,
    pii: voicelake_shared::pii::PiiMode,
    pseudonym_key_file: Option<&std::path::Path>,
    prices: Option<&std::path::Path>,
) -> Result<Config> {
    let mut config = Config { environment: environment.to_owned(), latency_target_ms: target_ms, pii, ..Config::default() };
    if let Some(path) = pseudonym_key_file {
        config.pseudonym_key = Some(voicelake_shared::pii::PseudonymKey::from_file(path)?);
    }
    if let Some(path) = prices {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // Laid over the built-in table, as the function lays PriceTableOverride: one logic, and a
        // file of two prices changes two prices.
        config.prices = PriceTable::default().with_overrides(&text).with_context(|| format!("{}", path.display()))?;
    }
    if !(config.latency_target_ms.is_finite() && config.latency_target_ms > 0.0) {
        bail!("--target-ms must be a positive number of milliseconds");
    }
    Ok(config)
}

fn backfill(args: BackfillArgs) -> Result<()> {
    use voicelake_cli::backfill::sources::{self, LocalLake, S3Lake};
    let config = pipeline_config(
        &args.environment,
        voicelake_shared::config::DEFAULT_LATENCY_TARGET_MS,
        args.pii,
        args.pseudonym_key_file.as_deref(),
        args.prices.as_deref(),
    )?;
    let now = now_ms();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let totals = runtime.block_on(async {
        // A local export into a local lake needs no AWS at all; anything else is checked first.
        let local = args.lake.is_some() && args.export.as_deref().is_some_and(|e| !e.starts_with("s3://"));
        let aws = if local {
            aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
        } else {
            voicelake_cli::aws_setup::load(&[], Some(sources::retry_config())).await?
        };
        match (&args.lake, &args.to) {
            (Some(root), _) => backfill_into(&LocalLake { root: root.clone() }, &args, &config, &aws, now).await,
            (None, Some(url)) => {
                // The stack's lake holds keyed pseudonyms: unkeyed ones written beside them would join nothing.
                if config.pii == voicelake_shared::pii::PiiMode::Hash && config.pseudonym_key.is_none() {
                    bail!(
                        "--to a stack's lake with --pii hash needs the stack's key: save it with `aws secretsmanager get-secret-value --secret-id <PseudonymKeyArn> --query SecretString --output text > key` and give --pseudonym-key-file key (or use --pii drop)"
                    );
                }
                let (bucket, prefix) = sources::s3_location(url)?;
                backfill_into(&S3Lake { client: s3_client(&aws), bucket, prefix }, &args, &config, &aws, now).await
            }
            (None, None) => bail!("give --lake DIR or --to s3://BUCKET/"),
        }
    })?;
    println!(
        "backfill: {} units worked ({} skipped as done before, {} partial and not recorded as done), {} log events, {} turn rows, {} session rows, {} rejects, {} failure rows in {} Parquet objects{}",
        totals.units,
        totals.skipped,
        totals.partial,
        totals.events,
        totals.turns,
        totals.sessions,
        totals.rejects,
        totals.errors,
        totals.files,
        if totals.unreadable_lines > 0 {
            format!("; {} export lines were not TIME MESSAGE and were skipped", totals.unreadable_lines)
        } else {
            String::new()
        },
    );
    Ok(())
}

async fn backfill_into<S: voicelake_cli::backfill::sources::LakeSink>(
    sink: &S,
    args: &BackfillArgs,
    config: &Config,
    aws: &aws_config::SdkConfig,
    now: i64,
) -> Result<voicelake_cli::backfill::Totals> {
    use voicelake_cli::backfill::sources::{CloudWatchLogs, LocalExport, S3Export, s3_location};
    use voicelake_cli::backfill::{Backfill, Progress, plan};
    // An export names no log group: without --log-group its agents that log no name are `unknown`.
    let export_group = match args.log_groups.as_slice() {
        [one] => one.as_str(),
        _ => "",
    };
    let options = voicelake_cli::backfill::options_fingerprint(config, export_group, &args.filter_pattern);
    let mut run = Backfill::new(config, sink, args.checkpoint.clone(), Progress::stderr())?.with_options(options);
    if let Some(export) = &args.export {
        let group = match args.log_groups.as_slice() {
            [] => "",
            [one] => one.as_str(),
            _ => bail!("an export is of one log group: give --log-group once, or not at all"),
        };
        if export.starts_with("s3://") {
            let (bucket, prefix) = s3_location(export)?;
            run.export(&S3Export { client: s3_client(aws), bucket, prefix }, group).await?;
        } else {
            run.export(&LocalExport { root: export.into() }, group).await?;
        }
    } else {
        let start = args.start.as_deref().context("--start is needed to read log groups")?;
        let start = plan::parse_when(start, now).context("--start")?;
        let end = plan::parse_when(&args.end, now).context("--end")?;
        if start >= end {
            bail!("--start {} is not before --end {}", timefmt::iso(start), timefmt::iso(end));
        }
        let logs = CloudWatchLogs { client: aws_sdk_cloudwatchlogs::Client::new(aws), page_size: args.page_size };
        run.log_groups(&logs, &args.log_groups, start, end, &args.filter_pattern, now).await?;
    }
    Ok(run.finish())
}

/// S3 through the standard settings; path-style addressing when an endpoint is set (moto,
/// LocalStack, MinIO), which seldom resolve bucket host names.
fn s3_client(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(aws).force_path_style(custom_endpoint).build())
}

fn replay(args: ReplayArgs) -> Result<()> {
    let deploy = match &args.params {
        Some(path) => Some(voicelake_cli::samconfig::read(path, &args.config_env).context("--params")?),
        None => None,
    };
    let thresholds = match &deploy {
        Some(d) => voicelake_cli::alarms::thresholds_of(&d.parameters)
            .with_context(|| format!("--params {}", args.params.as_ref().unwrap().display()))?,
        None => Vec::new(),
    };
    let deployed_target = thresholds.iter().find(|(p, _)| *p == voicelake_cli::alarms::LATENCY_PARAMETER).map(|(_, v)| *v);
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
        voicelake_cli::replay::ensure_writable_dir(dir).context("the report page's folder (--html)")?;
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
        let page = voicelake_cli::html::render(&report, charts, &config.environment)?;
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
        voicelake_cli::replay::peak_memory_mib().map_or(String::new(), |m| format!(", peak memory {m} MiB")),
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
