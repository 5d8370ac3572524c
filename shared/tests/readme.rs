//! The README documents what the code does: every lake column, metric and reason code.

use voicelake_shared::lake::Table;
use voicelake_shared::metrics::metric;
use voicelake_shared::reasons::{RejectReason, SkipReason};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md")
}

fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"));
    let rest = &text[start + heading.len()..];
    let end = rest.find("\n### ").into_iter().chain(rest.find("\n## ")).min().unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn every_lake_column_is_documented_in_its_table_section() {
    let text = readme();
    for table in Table::ALL {
        let doc = section(&text, &format!("### `{}`", table.name()));
        for field in table.schema().fields() {
            assert!(doc.contains(&format!("`{}`", field.name())), "README's {} table lacks `{}`", table.name(), field.name());
        }
    }
}

#[test]
fn every_metric_and_reason_is_documented() {
    let text = readme();
    let metrics = section(&text, "## Metrics");
    for spec in metric::ALL {
        assert!(metrics.contains(&format!("`{}`", spec.name)), "README's metrics lack {}", spec.name);
    }
    let reasons = section(&text, "## Rejects and skips");
    for code in RejectReason::ALL.iter().map(|r| r.as_str()).chain(SkipReason::ALL.iter().map(|s| s.as_str())) {
        assert!(reasons.contains(&format!("`{code}`")), "README lacks reason {code}");
    }
}
