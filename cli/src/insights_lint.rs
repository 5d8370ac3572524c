//! The check of a Logs Insights query that `voicelake queries check` runs: a pipeline of known
//! commands and functions, using only fields the log lines carry or the query defines first.

use std::collections::BTreeSet;

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
