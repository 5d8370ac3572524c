//! The files of `queries/`: every one parses, the required ones exist, and the numbers a query
//! copies from the code are the code's. (The Insights check of every file: `voicelake queries
//! check`, `cli/src/queries.rs`; their deployed size: `functions/query-sync/src/plan.rs`.)

use voicelake_shared::cost::PriceTable;
use voicelake_shared::queries::{self, QueryFile};

fn files() -> Vec<QueryFile> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries");
    let mut out = Vec::new();
    for sub in ["insights", "athena"] {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            out.push((format!("{sub}/{}", path.file_name().unwrap().to_string_lossy()), std::fs::read_to_string(&path).unwrap()));
        }
    }
    queries::parse_all(&out).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn the_required_queries_exist() {
    let names: Vec<String> = files().into_iter().map(|q| q.name).collect();
    for n in [
        "latency-percentiles",
        "slowest-turns",
        "session-turns",
        "component-regressions",
        "tool-failures",
        "cost-per-day",
        "qualified-leads",
        "rejects-by-reason",
        "provider-failures",
        "turns_dedup",
        "turns_assembled",
        "latency_by_hour_agent",
        "slowest_sessions",
        "cost_by_model",
        "tool_success_rate",
        "rejects_by_reason",
        "failures_by_provider",
    ] {
        assert!(names.iter().any(|x| x == n), "{n}");
    }
}

#[test]
fn the_cost_query_prices_with_the_built_in_defaults() {
    let q = files().into_iter().find(|q| q.name == "cost-per-day").unwrap();
    let d = PriceTable::default().default;
    let expected = [
        ("(prompt_tokens - cached_tokens) * ", d.llm_input_per_million_tokens),
        ("cached_tokens * ", d.llm_cached_input_per_million_tokens),
        ("completion_tokens * ", d.llm_output_per_million_tokens),
        ("stt_seconds / 60 * ", d.stt_per_minute),
        ("characters * ", d.tts_per_million_characters),
        ("+ seconds / 60 * ", d.transport_per_minute),
    ];
    let query: String = q.text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    for (term, price) in expected {
        let price = price.unwrap();
        let at = query.find(term).unwrap_or_else(|| panic!("{term} in the query"));
        let number: String = query[at + term.len()..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        assert_eq!(number.parse::<f64>().unwrap(), price, "{term}");
    }
}
