//! `voicelake queries check`: the saved queries of `queries/` checked before they are deployed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use voicelake_shared::queries::{self, Kind, LogGroups, QueryFile};
use voicelake_synth::{self as synth, SynthOptions};

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
    /// The contract's fixtures: the fields their lines carry are those an Insights query may use.
    #[arg(long, default_value = "tests/fixtures")]
    fixtures: PathBuf,
    /// Calls of generated traffic to replay into the lake the Athena queries run on.
    #[arg(long, default_value_t = 150)]
    calls: usize,
}

#[derive(clap::Args)]
#[command(override_usage = "voicelake query NAME|FILE.sql --lake DIR [--agent NAME] [--from TIME] [--to TIME] [OPTIONS]
       voicelake query call --session SESSION_ID --lake DIR [OPTIONS]")]
pub struct QueryArgs {
    /// A saved Athena query's name (`latency_by_hour_agent`), a view (`calls`), `call` (one call's
    /// turns, with --session), or a .sql file in Athena's SQL.
    query: String,
    /// The lake `voicelake replay`, `demo` or `backfill --lake` wrote.
    #[arg(long)]
    lake: PathBuf,
    /// Only this agent's rows.
    #[arg(long)]
    agent: Option<String>,
    /// Only rows from this time (RFC 3339, or a date: its midnight UTC); the query's first-day parameter.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only rows before this time; the query's last-day parameter is its day.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// The call of `call`.
    #[arg(long, value_name = "SESSION_ID")]
    session: Option<String>,
    /// Rows as an aligned table, or as JSON lines.
    #[arg(long, value_enum, default_value_t = QueryFormat::Text)]
    format: QueryFormat,
    /// Rows shown at most.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// The queries folder (athena/ below it).
    #[arg(long, default_value = "queries")]
    dir: PathBuf,
    /// Python with DuckDB and sqlglot (./infra/bootstrap installs them into .venv).
    #[arg(long, env = "VOICELAKE_PYTHON", default_value = ".venv/bin/python")]
    python: PathBuf,
    /// The script that opens the lake in DuckDB, shared with `queries check`.
    #[arg(long, default_value = "infra/lake_sql.py")]
    script: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum QueryFormat {
    Text,
    Json,
}

/// `voicelake query`: the saved Athena queries on the local lake, through the same Trino-to-DuckDB
/// translation `queries check` holds to the report.
pub fn query(args: QueryArgs) -> Result<()> {
    if !args.python.exists() {
        bail!("{} not found: run ./infra/bootstrap (it installs DuckDB and sqlglot into .venv) or pass --python", args.python.display());
    }
    if !args.lake.is_dir() {
        bail!("--lake {} is not a folder: write one with voicelake replay, demo or backfill --lake", args.lake.display());
    }
    // Every table's columns, as empty Parquet files: a lake that has no file of a table yet (no
    // failures, no rejects) still answers the queries that read it, with no rows.
    let empty = tempfile::tempdir()?;
    for table in voicelake_shared::lake::Table::ALL {
        std::fs::write(empty.path().join(format!("{}.parquet", table.name())), voicelake_shared::lake::empty_parquet(table)?)?;
    }
    let mut command = Command::new(&args.python);
    command.arg(&args.script).arg(args.dir.join("athena")).arg(&args.lake).arg(&args.query).arg("--empty").arg(empty.path());
    for (flag, value) in [("--agent", &args.agent), ("--from", &args.from), ("--to", &args.to), ("--session", &args.session)] {
        if let Some(v) = value {
            command.arg(flag).arg(v);
        }
    }
    let format = match args.format {
        QueryFormat::Text => "text",
        QueryFormat::Json => "json",
    };
    command.args(["--format", format, "--limit", &args.limit.to_string()]);
    let status = command.status().with_context(|| format!("running {} {}", args.python.display(), args.script.display()))?;
    if !status.success() {
        bail!("the query did not run (see above)");
    }
    Ok(())
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
        let known = known_fields(q.log_groups, &args.fixtures)?;
        for p in crate::insights_lint::check_insights(&q.text, &known) {
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
        // A provider outage, so that the errors table has rows for its query to count.
        outage: Some(synth::Outage { kind: "tts".into(), provider: "cartesia".into(), agent: None, start_minute: 20, minutes: 10 }),
    });
    let lake = work.path().join("lake");
    let report = crate::replay::replay_batches(&traffic, &lake, &voicelake_shared::Config::default())?;
    // A retried invocation writes its batch's rows again: a third of the batches land twice, as
    // after Lambda retries, and the queries (through the dedupe views) must still agree with the
    // report, which counts each event once.
    let retried: Vec<_> = traffic.iter().step_by(3).cloned().collect();
    crate::replay::replay_batches(&retried, &lake, &voicelake_shared::Config::default())?;
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

/// Every JSON path of the objects in `messages` (found as the pipeline finds them, behind
/// prefixes), with array indices as `#`.
pub fn json_paths<'m>(messages: impl IntoIterator<Item = &'m str>) -> BTreeSet<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    out.insert(path.clone());
                    walk(&path, v, out);
                }
            }
            serde_json::Value::Array(items) => {
                let path = format!("{prefix}.#");
                for v in items {
                    out.insert(path.clone());
                    walk(&path, v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for m in messages {
        if let Some(at) = m.find('{')
            && let Some(Ok(v)) = serde_json::Deserializer::from_str(&m[at..]).into_iter::<serde_json::Value>().next()
        {
            walk("", &v, &mut out);
        }
    }
    out
}

/// The fixtures of the contract's families, in their producers' exact shapes, below `tests/fixtures/`.
const FIXTURES: [&str; 7] = [
    "app/voice_metrics.log",
    "app/session_analytics.log",
    "livekit-1.8/model_dump.jsonl",
    "livekit-1.8/metrics_collected.jsonl",
    "livekit-1.8/log_metrics.jsonl",
    "livekit-1.8/chat_metrics.jsonl",
    "livekit-1.8/session_usage.jsonl",
];

/// The fields the contract's log lines carry: every JSON path of the fixtures under `fixtures` and
/// of generated traffic.
pub fn contract_fields(fixtures: &Path) -> Result<BTreeSet<String>> {
    let mut texts = Vec::new();
    for name in FIXTURES {
        let path = fixtures.join(name);
        texts.push(std::fs::read_to_string(&path).with_context(|| format!("reading the contract fixture {}", path.display()))?);
    }
    let generated = synth::generate(&SynthOptions { calls: 30, seed: 1, noise: false, ..Default::default() });
    let lines = texts.iter().flat_map(|f| f.lines());
    let messages = generated.iter().flat_map(|b| b.log_events.iter().map(|e| e.message.as_str()));
    Ok(json_paths(lines.chain(messages)))
}

/// The fields an Insights query on `groups` may use.
pub fn known_fields(groups: LogGroups, fixtures: &Path) -> Result<BTreeSet<String>> {
    Ok(match groups {
        LogGroups::Agents => contract_fields(fixtures)?,
        LogGroups::Ingest => queries::INGEST_LOG_FIELDS.iter().map(|s| s.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
    }

    fn known() -> BTreeSet<String> {
        contract_fields(&fixtures()).unwrap()
    }

    #[test]
    fn the_contract_fields_hold_every_family() {
        let k = known();
        for f in [
            "_event_type",
            "total_latency",
            "eou.end_of_utterance_delay",
            "llm.ttft",
            "tts.ttfb",
            "analytics_data._event_type",
            "metrics.ttft",
            "metrics.speech_id",
            "item.metrics.e2e_latency",
            "item.role",
            "usage.model_usage.#.provider",
            "tool_calls.#.tool",
            "discovered_signals.intent",
            "message",
            "room_id",
            "job_id",
            "end_of_utterance_delay",
        ] {
            assert!(k.contains(f), "{f}");
        }
    }

    #[test]
    fn a_valid_pipeline_passes() {
        let q = r#"# comment | with a pipe
fields coalesce(llm.ttft, analytics_data.llm.ttft) * 1000 as ttft_ms, tool_calls.0.tool
| filter _event_type = "voice_metrics" and @message like /a|b/ # trailing
| parse @message /"speech_id": "(?<sid>[^"]+)"/
| parse @message "* [*] *" as first, second, third
| stats pct(ttft_ms, 95) as p95, count(*) as n by bin(5m) as period, sid
| sort period desc
| display period, p95, n, first"#;
        assert_eq!(crate::insights_lint::check_insights(q, &known()), Vec::<String>::new());
    }

    #[test]
    fn unknown_commands_functions_and_fields_are_named() {
        let problems = crate::insights_lint::check_insights("fields foo_latency | filtr x = 1 | stats perc(llm.ttft, 95)", &known());
        assert_eq!(
            problems,
            vec![
                "fields: field foo_latency is neither in the contract's log lines nor defined earlier in the query".to_string(),
                "command 2: unknown command \"filtr\"".to_string(),
                "stats: unknown function perc()".to_string(),
            ]
        );
        assert_eq!(crate::insights_lint::check_insights("sort x desc | fields 1 as x", &known()).len(), 1, "defined after use");
        assert!(
            crate::insights_lint::check_insights("filter llm.ttft > 0 or (llm_ttft > 0 and not (tts_ttfb < 0))", &known()).is_empty(),
            "keywords before parentheses"
        );
        assert_eq!(
            crate::insights_lint::check_insights(r#"filter message = "unterminated"#, &known()),
            vec!["a string is not closed".to_string()]
        );
    }

    #[test]
    fn the_ingest_log_fields_are_their_own_vocabulary() {
        let fields = known_fields(LogGroups::Ingest, &fixtures()).unwrap();
        assert!(
            crate::insights_lint::check_insights(r#"filter fields.message = "rejected" | stats count(*) by fields.reason"#, &fields)
                .is_empty()
        );
        assert_eq!(crate::insights_lint::check_insights("fields llm.ttft", &fields).len(), 1);
    }

    #[test]
    fn every_insights_query_of_the_repo_passes_the_check() {
        let files = read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries")).unwrap();
        let all = queries::parse_all(&files).unwrap();
        let insights: Vec<&QueryFile> = all.iter().filter(|q| q.kind == Kind::Insights).collect();
        assert!(insights.len() >= 8);
        for q in insights {
            let known = known_fields(q.log_groups, &fixtures()).unwrap();
            assert_eq!(crate::insights_lint::check_insights(&q.text, &known), Vec::<String>::new(), "{}", q.path);
        }
    }
}
