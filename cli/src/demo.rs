//! `voicelake demo`: generated traffic, replayed, in one folder.

use anyhow::Result;

use crate::args::{DemoArgs, Format, GenerateArgs, ReplayArgs};

/// DIR/traffic.jsonl, the lake under DIR/lake and the page DIR/report.html; the report on stdout.
pub fn run(DemoArgs { dir, calls, seed, outage }: DemoArgs) -> Result<()> {
    let traffic = dir.join("traffic.jsonl");
    crate::generate::run(GenerateArgs { calls, seed, out: traffic.clone(), start: None, clean: false, outage })?;
    // A second demo replaces what the first wrote (a replay of the same file does), and leaves
    // anything else under the lake alone.
    crate::replay::run(ReplayArgs {
        files: vec![traffic],
        html: Some(dir.join("report.html")),
        lake: dir.join("lake"),
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
