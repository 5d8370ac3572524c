//! `voicelake`: run the pipeline locally, on the same code as the Lambda.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::Parser;
use voicelake_cli::args::{
    Cli, Command, DemoArgs, DlqCommand, DlqReplayArgs, Format, GenerateArgs, NotifyCommand, NotifyTestArgs, QueriesCommand, ReplayArgs,
};
use voicelake_cli::queries;
use voicelake_cli::replay::LocalReplay;
use voicelake_shared::Config;
use voicelake_shared::cost::PriceTable;
use voicelake_shared::timefmt::{self, now_ms};
use voicelake_synth::{self as synth, SynthOptions};

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Replay(args) => replay(args),
        Command::Generate(args) => generate(args),
        Command::Queries(QueriesCommand::Check(args)) => queries::check(args),
        Command::Dlq(DlqCommand::Replay(args)) => dlq_replay(args),
        Command::Notify(NotifyCommand::Test(args)) => notify_test(args),
        Command::Demo(DemoArgs { dir, calls, seed }) => {
            let traffic = dir.join("traffic.jsonl");
            generate(GenerateArgs { calls, seed, out: traffic.clone(), start: None, clean: false })?;
            let lake = dir.join("lake");
            if lake.exists() {
                // A demo replays from scratch; a second run must not double its lake.
                std::fs::remove_dir_all(&lake).with_context(|| format!("clearing {}", lake.display()))?;
            }
            replay(ReplayArgs {
                files: vec![traffic],
                html: Some(dir.join("report.html")),
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

fn notify_test(args: NotifyTestArgs) -> Result<()> {
    let function = match (&args.function, &args.stack) {
        (Some(f), _) => f.clone(),
        (None, Some(stack)) => format!("{stack}-notify"),
        (None, None) => bail!("give --stack or --function"),
    };
    let stack = args.stack.clone().unwrap_or_else(|| "voicelake".into());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let answer = runtime
        .block_on(async {
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            voicelake_cli::notify::send_test(&aws, &function, &stack, now_ms()).await
        })
        .map_err(|e| anyhow::anyhow!("{function} could not deliver the test notification: {e}"))?;
    println!("{function} delivered the test notification: {answer}");
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
    let started = std::time::Instant::now();
    let mut replay = LocalReplay::new(&args.lake, now);
    let mut input_bytes = 0;
    for path in &args.files {
        input_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        replay.add_file(path, &config, now)?;
    }
    let (builder, written) = replay.finish()?;
    let charts = args.html.as_ref().map(|_| builder.charts(&config));
    let report = builder.finish(&config);
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
                "\nlake: {} Parquet files under {} ({} turn rows, {} session rows, {} rejects)",
                written.files,
                args.lake.display(),
                written.turns,
                written.sessions,
                written.rejects
            )?;
        }
    }
    Ok(())
}
