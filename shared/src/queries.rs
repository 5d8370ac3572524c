//! Saved queries as code: the files under `queries/` and the check of an Insights query. The plan
//! that makes an account's saved queries equal to them is `functions/query-sync`'s.
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

/// Logs Insights commands.
const COMMANDS: &[&str] = &[
    "fields",
    "display",
    "filter",
    "filterIndex",
    "stats",
    "sort",
    "limit",
    "parse",
    "dedup",
    "unmask",
    "pattern",
    "diff",
    "anomaly",
    "unnest",
    "addtotals",
];

/// Logs Insights functions the queries may call.
const FUNCTIONS: &[&str] = &[
    "abs",
    "avg",
    "bin",
    "ceil",
    "coalesce",
    "concat",
    "count",
    "count_distinct",
    "datefloor",
    "dateceil",
    "earliest",
    "floor",
    "fromMillis",
    "greatest",
    "isblank",
    "isempty",
    "isPresent",
    "isValidIp",
    "latest",
    "least",
    "log",
    "ltrim",
    "max",
    "median",
    "min",
    "pct",
    "replace",
    "rtrim",
    "sortsFirst",
    "sortsLast",
    "sqrt",
    "stddev",
    "strcontains",
    "strlen",
    "substr",
    "sum",
    "toMillis",
    "tolower",
    "toupper",
    "trim",
];

const KEYWORDS: &[&str] = &["as", "by", "and", "or", "not", "like", "in", "asc", "desc", "true", "false"];

/// Fields every log event has in Logs Insights.
const SYSTEM_FIELDS: &[&str] = &["@timestamp", "@message", "@logStream", "@log", "@ingestionTime", "@ptr", "@requestId", "@type"];

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

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Literal,
    Regex(String),
    Punct(char),
    Op(String),
}

fn tokenize(query: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = query.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    let regex_allowed = |tokens: &[Token]| match tokens.last() {
        Some(Token::Ident(w)) if w == "like" => true,
        Some(Token::Op(op)) if op == "=~" => true,
        // `parse FIELD /regex/`
        Some(Token::Ident(_)) => matches!(tokens.iter().rev().nth(1), Some(Token::Ident(c)) if c == "parse"),
        _ => false,
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            c if c.is_whitespace() => i += 1,
            '"' | '\'' => {
                let quote = c;
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                if i >= chars.len() {
                    return Err("a string is not closed".into());
                }
                i += 1;
                tokens.push(Token::Literal);
            }
            '/' if regex_allowed(&tokens) => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i] != '/' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                if i >= chars.len() {
                    return Err("a regular expression is not closed".into());
                }
                tokens.push(Token::Regex(chars[start..i].iter().collect()));
                i += 1;
                while i < chars.len() && chars[i].is_ascii_alphabetic() {
                    i += 1; // flags
                }
            }
            '`' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("a backquoted name is not closed".into());
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
                i += 1;
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                tokens.push(Token::Literal);
            }
            c if c.is_alphabetic() || c == '_' || c == '@' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '@' | '.')) {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            '=' | '!' | '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if matches!(two.as_str(), "==" | "!=" | "<=" | ">=" | "=~") {
                    tokens.push(Token::Op(two));
                    i += 2;
                } else {
                    tokens.push(Token::Op(c.to_string()));
                    i += 1;
                }
            }
            '|' | '(' | ')' | ',' | '*' | '+' | '-' | '/' | '%' | '^' | '[' | ']' => {
                tokens.push(Token::Punct(c));
                i += 1;
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(tokens)
}

/// The named groups `(?<name>…)` of a regular expression.
fn named_groups(regex: &str) -> Vec<String> {
    regex.split("(?<").skip(1).filter_map(|s| s.split('>').next()).map(str::to_owned).collect()
}

/// Whether `field` is carried by the log lines of `known`: array indices match any index, and an
/// event may sit one level down under `analytics_data`.
fn is_known(field: &str, known: &BTreeSet<String>) -> bool {
    let normalized = normalize_path(field);
    known.contains(&normalized)
        || normalized.strip_prefix("analytics_data.").is_some_and(|rest| known.contains(rest))
        || normalized.starts_with("discovered_signals.")
        || normalized.starts_with("analytics_data.discovered_signals.")
}

fn normalize_path(path: &str) -> String {
    path.split('.')
        .map(|seg| if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) { "#" } else { seg })
        .collect::<Vec<_>>()
        .join(".")
}

/// Checks an Insights query: a pipeline of known commands and functions, using only fields of
/// `known` or fields the query defines before using them. Returns the problems found.
pub fn check_insights(query: &str, known: &BTreeSet<String>) -> Vec<String> {
    let tokens = match tokenize(query) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let mut defined: BTreeSet<String> = BTreeSet::new();
    let commands: Vec<&[Token]> = tokens.split(|t| *t == Token::Punct('|')).collect();
    for (n, command) in commands.iter().enumerate() {
        let Some(Token::Ident(name)) = command.first() else {
            problems.push(format!("command {}: empty, or not starting with a command name", n + 1));
            continue;
        };
        if !COMMANDS.contains(&name.as_str()) {
            problems.push(format!("command {}: unknown command {name:?}", n + 1));
            continue;
        }
        let mut after_as = false;
        for (i, t) in command.iter().enumerate().skip(1) {
            match t {
                Token::Regex(r) => defined.extend(named_groups(r)),
                Token::Ident(word) => {
                    let next_is_paren = matches!(command.get(i + 1), Some(Token::Punct('(')));
                    if word == "as" {
                        after_as = true;
                    } else if KEYWORDS.contains(&word.as_str()) {
                        after_as = false;
                    } else if next_is_paren {
                        if !FUNCTIONS.contains(&word.as_str()) {
                            problems.push(format!("{name}: unknown function {word}()"));
                        }
                    } else if after_as {
                        defined.insert(word.clone());
                        // `parse … as a, b, c` names several; elsewhere `as` names one.
                        after_as = name == "parse" && matches!(command.get(i + 1), Some(Token::Punct(',')));
                    } else if !(SYSTEM_FIELDS.contains(&word.as_str()) || defined.contains(word) || is_known(word, known)) {
                        problems
                            .push(format!("{name}: field {word} is neither in the contract's log lines nor defined earlier in the query"));
                    }
                }
                Token::Punct(',') if after_as && name == "parse" => {}
                _ => after_as = false,
            }
        }
    }
    problems
}

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
