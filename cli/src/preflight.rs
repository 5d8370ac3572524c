//! `voicelake preflight`: what a first `sam deploy` would meet in the account rather than in the
//! template, found with read-only calls before deploying, each with how to fix it.
//!
//! The facts come through [`AccountFacts`] (the SDK adapter is [`Account`]); [`check`] is pure.

use std::future::Future;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::args::{Format, PreflightArgs};

/// CloudWatch Logs allows two subscription filters per log group.
pub const MAX_FILTERS_PER_GROUP: usize = 2;
/// Lambda keeps at least this much of the account's concurrency unreserved.
pub const MIN_UNRESERVED_CONCURRENCY: i64 = 100;
/// The longest stack name CloudFormation takes.
pub const MAX_STACK_NAME: usize = 128;

/// The names the template derives from the stack's name, with the limit of the service that
/// takes each (`{}` is the stack name).
pub const DERIVED_NAMES: [(&str, &str, usize); 6] = [
    ("Firehose delivery stream", "{}-sessions", 64),
    ("Firehose delivery stream", "{}-rejects", 64),
    ("Lambda function", "{}-notify", 64),
    ("Athena workgroup", "{}", 128),
    ("CloudWatch dashboard", "{}", 255),
    ("subscription filter", "{}-ingest", 512),
];

/// The deploy's settings that the account must be able to take.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub stack: String,
    pub log_groups: Vec<String>,
    /// The ingest function's reserved concurrency; `None` leaves it unreserved.
    pub reserved_concurrency: Option<i64>,
}

/// Why a fact could not be read: the check says so instead of passing.
pub type Unknown = String;

/// What the checks read from the account.
pub trait AccountFacts {
    fn log_group_exists(&self, name: &str) -> impl Future<Output = Result<bool, Unknown>>;
    /// The names of the subscription filters of a log group.
    fn subscription_filters(&self, log_group: &str) -> impl Future<Output = Result<Vec<String>, Unknown>>;
    /// Whether databases created in the catalog keep IAM-only access (`IAM_ALLOWED_PRINCIPALS` in
    /// Lake Formation's default permissions for new databases).
    fn iam_governs_new_databases(&self) -> impl Future<Output = Result<bool, Unknown>>;
    /// The account's concurrency that no function reserves.
    fn unreserved_concurrency(&self) -> impl Future<Output = Result<i64, Unknown>>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// The deploy would fail, or the stack would not work.
    Fails,
    /// The fact could not be read: checked by nobody.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub check: String,
    pub verdict: Verdict,
    /// What was found, and for a failure, how to fix it.
    pub detail: String,
}

impl Finding {
    fn new(check: impl Into<String>, verdict: Verdict, detail: impl Into<String>) -> Finding {
        Finding { check: check.into(), verdict, detail: detail.into() }
    }
}

/// Every check of `plan` against the account.
pub async fn check<A: AccountFacts>(plan: &Plan, account: &A) -> Vec<Finding> {
    let mut findings = stack_name(&plan.stack);
    let own_filter = format!("{}-ingest", plan.stack);
    if plan.log_groups.is_empty() {
        findings.push(Finding::new("agent log groups", Verdict::Fails, "no AgentLogGroupNames: give the agents' log groups"));
    }
    for group in &plan.log_groups {
        let what = format!("log group {group}");
        match account.log_group_exists(group).await {
            Ok(true) => {}
            Ok(false) => {
                findings.push(Finding::new(
                    &what,
                    Verdict::Fails,
                    format!("does not exist: the subscription filter cannot be created. Create it (aws logs create-log-group --log-group-name {group}) or correct AgentLogGroupNames"),
                ));
                continue;
            }
            Err(e) => {
                findings.push(Finding::new(&what, Verdict::Unknown, format!("could not be read: {e}")));
                continue;
            }
        }
        match account.subscription_filters(group).await {
            Ok(filters) => {
                let others: Vec<&String> = filters.iter().filter(|f| **f != own_filter).collect();
                if others.len() >= MAX_FILTERS_PER_GROUP {
                    let names = others.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ");
                    findings.push(Finding::new(
                        &what,
                        Verdict::Fails,
                        format!(
                            "already has {} subscription filters ({names}); CloudWatch Logs allows {MAX_FILTERS_PER_GROUP} per log group. Remove one (aws logs delete-subscription-filter --log-group-name {group} --filter-name NAME), or send that group's events to voicelake through one of them",
                            others.len()
                        ),
                    ));
                } else {
                    findings.push(Finding::new(&what, Verdict::Ok, format!("exists, {} other subscription filter(s)", others.len())));
                }
            }
            Err(e) => findings.push(Finding::new(&what, Verdict::Unknown, format!("its subscription filters could not be read: {e}"))),
        }
    }
    findings.push(match account.iam_governs_new_databases().await {
        Ok(true) => Finding::new("Glue catalog", Verdict::Ok, "new databases keep IAM access control"),
        Ok(false) => Finding::new(
            "Glue catalog",
            Verdict::Fails,
            "Lake Formation governs new databases in this account, so the stack's IAM grants are not enough: Firehose could not read the tables' schema and Athena could not create the views. Either grant the stack's Firehose and query-sync roles Lake Formation permissions on the lake database after the deploy, or add IAMAllowedPrincipals to the default permissions for new databases (Lake Formation console: Data catalog settings)",
        ),
        Err(e) => Finding::new("Glue catalog", Verdict::Unknown, format!("Lake Formation's settings could not be read: {e}")),
    });
    if let Some(reserved) = plan.reserved_concurrency {
        findings.push(match account.unreserved_concurrency().await {
            Ok(unreserved) if unreserved - reserved >= MIN_UNRESERVED_CONCURRENCY => {
                Finding::new("reserved concurrency", Verdict::Ok, format!("{reserved} of the account's {unreserved} unreserved"))
            }
            Ok(unreserved) => Finding::new(
                "reserved concurrency",
                Verdict::Fails,
                format!(
                    "IngestReservedConcurrency {reserved} would leave {} of the account's {unreserved} unreserved; Lambda keeps at least {MIN_UNRESERVED_CONCURRENCY}. Lower it (at most {}), leave it at -1, or ask for a higher concurrency quota (Service Quotas, Lambda, Concurrent executions)",
                    unreserved - reserved,
                    (unreserved - MIN_UNRESERVED_CONCURRENCY).max(0)
                ),
            ),
            Err(e) => Finding::new("reserved concurrency", Verdict::Unknown, format!("the account's concurrency could not be read: {e}")),
        });
    }
    findings
}

fn stack_name(stack: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let valid = stack.len() <= MAX_STACK_NAME
        && stack.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && stack.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        findings.push(Finding::new(
            "stack name",
            Verdict::Fails,
            format!("{stack:?} is not a CloudFormation stack name: a letter, then letters, digits and hyphens, at most {MAX_STACK_NAME}"),
        ));
        return findings;
    }
    let too_long: Vec<String> = DERIVED_NAMES
        .iter()
        .filter_map(|(what, pattern, max)| {
            let name = pattern.replace("{}", stack);
            (name.len() > *max).then(|| format!("the {what} {name} ({} characters, at most {max})", name.len()))
        })
        .collect();
    let longest = DERIVED_NAMES.iter().map(|(_, p, max)| max + 2 - p.len()).min().expect("names are derived");
    findings.push(if too_long.is_empty() {
        Finding::new("stack name", Verdict::Ok, format!("{stack}: every name derived from it fits"))
    } else {
        Finding::new(
            "stack name",
            Verdict::Fails,
            format!("too long for the names derived from it: {}. Use a stack name of at most {longest} characters", too_long.join("; ")),
        )
    });
    findings
}

/// The facts over the AWS SDK clients.
pub struct Account {
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub lakeformation: aws_sdk_lakeformation::Client,
    pub lambda: aws_sdk_lambda::Client,
}

fn why<E: std::error::Error + 'static>(e: E) -> Unknown {
    voicelake_shared::errors::chain(&e)
}

impl AccountFacts for Account {
    async fn log_group_exists(&self, name: &str) -> Result<bool, Unknown> {
        let mut pages = self.logs.describe_log_groups().log_group_name_prefix(name).into_paginator().send();
        while let Some(page) = pages.next().await {
            if page.map_err(why)?.log_groups().iter().any(|g| g.log_group_name() == Some(name)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn subscription_filters(&self, log_group: &str) -> Result<Vec<String>, Unknown> {
        let out = self.logs.describe_subscription_filters().log_group_name(log_group).send().await.map_err(why)?;
        Ok(out.subscription_filters().iter().filter_map(|f| f.filter_name().map(str::to_owned)).collect())
    }

    async fn iam_governs_new_databases(&self) -> Result<bool, Unknown> {
        let out = self.lakeformation.get_data_lake_settings().send().await.map_err(why)?;
        let Some(settings) = out.data_lake_settings() else { return Ok(true) };
        Ok(settings.create_database_default_permissions().iter().any(|p| {
            p.principal().and_then(|p| p.data_lake_principal_identifier()) == Some("IAM_ALLOWED_PRINCIPALS")
                && p.permissions().iter().any(|perm| perm.as_str() == "ALL")
        }))
    }

    async fn unreserved_concurrency(&self) -> Result<i64, Unknown> {
        let out = self.lambda.get_account_settings().send().await.map_err(why)?;
        out.account_limit()
            .and_then(|l| l.unreserved_concurrent_executions())
            .map(i64::from)
            .ok_or_else(|| "GetAccountSettings gave no unreserved concurrency".to_owned())
    }
}

/// The findings as lines for a person: each check, its verdict, and what to do.
pub fn render(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            let mark = match f.verdict {
                Verdict::Ok => "ok     ",
                Verdict::Fails => "FAILS  ",
                Verdict::Unknown => "UNKNOWN",
            };
            format!("{mark} {}: {}\n", f.check, f.detail)
        })
        .collect()
}

/// `voicelake preflight`: the plan from the deploy's settings and flags, checked against the account.
pub fn run(args: PreflightArgs) -> anyhow::Result<()> {
    let settings = if args.config_file.exists() {
        crate::samconfig::read(&args.config_file, &args.config_env)?
    } else if args.stack.is_some() && args.log_groups.is_some() {
        crate::samconfig::DeploySettings::default()
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
        let aws = crate::aws_setup::load(&[], None).await?;
        let account = Account {
            logs: aws_sdk_cloudwatchlogs::Client::new(&aws),
            lakeformation: aws_sdk_lakeformation::Client::new(&aws),
            lambda: aws_sdk_lambda::Client::new(&aws),
        };
        anyhow::Ok(check(&plan, &account).await)
    })?;
    match args.format {
        Format::Text => print!("{}", render(&findings)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&findings)?),
    }
    let failed = findings.iter().filter(|f| f.verdict == Verdict::Fails).count();
    if failed > 0 {
        bail!("{failed} check(s) would fail the deploy of {}; fix them first", plan.stack);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_held_to_the_names_derived_from_them() {
        assert_eq!(stack_name("voicelake-prod")[0].verdict, Verdict::Ok);
        let at_limit = "a".repeat(55);
        assert_eq!(stack_name(&at_limit)[0].verdict, Verdict::Ok, "{:?}", stack_name(&at_limit));
        let long = stack_name(&"a".repeat(56));
        assert_eq!(long[0].verdict, Verdict::Fails);
        assert!(long[0].detail.contains("-sessions") && long[0].detail.contains("at most 55 characters"), "{}", long[0].detail);
        assert_eq!(stack_name("9lives")[0].verdict, Verdict::Fails);
        assert_eq!(stack_name("voice_lake")[0].verdict, Verdict::Fails);
    }
}
