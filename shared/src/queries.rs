//! Saved queries as code: the files under `queries/`, and the fields the ingest function's log
//! lines carry. The plan that makes an account's saved queries equal to them is
//! `functions/query-sync`'s; the check of an Insights query is the CLI's (`voicelake queries check`).
//!
//! - `queries/insights/NAME.logsinsights`: a CloudWatch Logs Insights query. Header lines
//!   `# name:`, `# description:`, `# log-groups: agents|ingest` (which log groups it runs on).
//! - `queries/athena/NAME.sql`: Trino SQL for Athena. Header lines `-- name:`, `-- description:`,
//!   and `-- kind: view` for a `CREATE OR REPLACE VIEW` (otherwise a named query).

use std::collections::{BTreeMap, BTreeSet};

/// CloudWatch's limits on a query definition.
pub const MAX_QUERY_CHARS: usize = 10_000;
pub const MAX_NAME_CHARS: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Insights,
    AthenaQuery,
    AthenaView,
}

/// Which log groups an Insights query runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogGroups {
    /// The agents' log groups: their fields are the contract's.
    Agents,
    /// The ingest function's own log group.
    Ingest,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryFile {
    /// Relative to `queries/`, e.g. `insights/slowest-turns.logsinsights`.
    pub path: String,
    pub kind: Kind,
    pub name: String,
    pub description: String,
    pub log_groups: LogGroups,
    /// The whole file, header included (Insights and SQL both read it as comments).
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {problem}")]
pub struct QueryError {
    pub path: String,
    pub problem: String,
}

impl QueryFile {
    pub fn parse(path: &str, text: &str) -> Result<QueryFile, QueryError> {
        let err = |problem: String| QueryError { path: path.to_owned(), problem };
        let (kind, prefix) = if path.ends_with(".logsinsights") {
            (Kind::Insights, "#")
        } else if path.ends_with(".sql") {
            (Kind::AthenaQuery, "--")
        } else {
            return Err(err("not a .logsinsights or .sql file".into()));
        };
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix(prefix) else { break };
            let Some((key, value)) = rest.split_once(':') else { break };
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                break;
            }
            fields.insert(key.to_owned(), value.trim().to_owned());
        }
        let get = |key: &str| {
            fields.get(key).filter(|v| !v.is_empty()).cloned().ok_or_else(|| err(format!("the header has no '{prefix} {key}:' line")))
        };
        let name = get("name")?;
        let stem = path.rsplit('/').next().unwrap_or(path).split('.').next().unwrap_or("");
        if name != stem {
            return Err(err(format!("the header names it {name:?} but the file is {stem:?}")));
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') || name.len() > 100 {
            return Err(err(format!("name {name:?}: lower-case letters, digits, '-' and '_', at most 100")));
        }
        let kind = match (kind, fields.get("kind").map(String::as_str)) {
            (Kind::AthenaQuery, Some("view")) => Kind::AthenaView,
            (Kind::AthenaQuery, None | Some("query")) => Kind::AthenaQuery,
            (Kind::Insights | Kind::AthenaView, None) => kind,
            (_, Some(other)) => return Err(err(format!("unknown kind {other:?}"))),
        };
        let log_groups = match fields.get("log-groups").map(String::as_str) {
            None | Some("agents") => LogGroups::Agents,
            Some("ingest") => LogGroups::Ingest,
            Some(other) => return Err(err(format!("log-groups {other:?}: expected agents or ingest"))),
        };
        if kind == Kind::AthenaView && !text.contains(&format!("CREATE OR REPLACE VIEW {name} AS")) {
            return Err(err(format!("a view's text must be CREATE OR REPLACE VIEW {name} AS …")));
        }
        if text.len() > MAX_QUERY_CHARS - 200 {
            return Err(err(format!("{} characters; a saved query holds at most {MAX_QUERY_CHARS}", text.len())));
        }
        Ok(QueryFile { path: path.to_owned(), kind, name, description: get("description")?, log_groups, text: text.to_owned() })
    }
}

/// Parses every query file of a `queries/` tree given as (relative path, text) pairs.
pub fn parse_all(files: &[(String, String)]) -> Result<Vec<QueryFile>, Vec<QueryError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (path, text) in files {
        match QueryFile::parse(path, text) {
            Ok(q) => out.push(q),
            Err(e) => errors.push(e),
        }
    }
    let mut seen = BTreeSet::new();
    for q in &out {
        if !seen.insert((q.kind == Kind::Insights, q.name.clone())) {
            errors.push(QueryError { path: q.path.clone(), problem: format!("a second query named {}", q.name) });
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

// ------------------------------------------------------------------------- Insights check

/// Fields of the ingest function's own log lines (JSON log format, `tracing` fields under `fields.`).
pub const INGEST_LOG_FIELDS: &[&str] = &[
    "level",
    "target",
    "timestamp",
    "span.requestId",
    "fields.message",
    "fields.log_group",
    "fields.log_stream",
    "fields.control_message",
    "fields.events_in",
    "fields.turns",
    "fields.partial_turns",
    "fields.sessions",
    "fields.rejected",
    "fields.skipped",
    "fields.nulled_values",
    "fields.records_sent",
    "fields.records_retried",
    "fields.records_failed",
    "fields.datums_sent",
    "fields.metric_requests",
    "fields.metric_requests_failed",
    "fields.metric_datums_refused",
    "fields.sweep",
    "fields.pending_carried",
    "fields.pending_taken",
    "fields.pending_held",
    "fields.stream",
    "fields.parts",
    "fields.error",
    "fields.event_ids",
    "fields.duration_ms",
    "fields.failures",
    "fields.reason",
    "fields.event_id",
    "fields.detail",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_and_checked() {
        let q =
            QueryFile::parse("insights/slowest.logsinsights", "# name: slowest\n# description: d\n# log-groups: ingest\nfields @message")
                .unwrap();
        assert_eq!((q.kind, q.log_groups, q.description.as_str()), (Kind::Insights, LogGroups::Ingest, "d"));
        let v =
            QueryFile::parse("athena/v.sql", "-- name: v\n-- kind: view\n-- description: d\nCREATE OR REPLACE VIEW v AS SELECT 1").unwrap();
        assert_eq!(v.kind, Kind::AthenaView);
        for (path, text) in [
            ("athena/a.sql", "-- name: b\n-- description: d\nSELECT 1"),
            ("athena/a.sql", "-- name: a\nSELECT 1"),
            ("athena/a.sql", "-- name: a\n-- kind: table\n-- description: d\nSELECT 1"),
            ("athena/a.sql", "-- name: a\n-- kind: view\n-- description: d\nSELECT 1"),
            ("insights/a.txt", "# name: a"),
        ] {
            assert!(QueryFile::parse(path, text).is_err(), "{path}: {text}");
        }
    }
}
