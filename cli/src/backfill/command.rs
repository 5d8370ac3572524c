//! `voicelake backfill`: where from (log groups or an export) and where to (a local lake or the
//! stack's bucket), from the flags.

use anyhow::{Context, Result, bail};
use voicelake_shared::Config;
use voicelake_shared::timefmt::{self, now_ms};

use crate::args::BackfillArgs;
use crate::settings::pipeline_config;

/// `voicelake backfill`: hours of log groups, or an export, through the pipeline into a local lake or
/// the stack's.
pub fn run(args: BackfillArgs) -> Result<()> {
    use super::sources::{self, LocalLake, S3Lake};
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
            crate::aws_setup::load(&[], Some(sources::retry_config())).await?
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

async fn backfill_into<S: super::sources::LakeSink>(
    sink: &S,
    args: &BackfillArgs,
    config: &Config,
    aws: &aws_config::SdkConfig,
    now: i64,
) -> Result<super::Totals> {
    use super::sources::{CloudWatchLogs, LocalExport, S3Export, s3_location};
    use super::{Backfill, Progress, plan};
    // An export names no log group: without --log-group its agents that log no name are `unknown`.
    let export_group = match args.log_groups.as_slice() {
        [one] => one.as_str(),
        _ => "",
    };
    let options = super::options_fingerprint(config, export_group, &args.filter_pattern);
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
