//! The deploy's settings as `sam deploy` reads them from `samconfig.toml`: the stack name and the
//! parameter overrides of a config environment, so that local checks see the values the deploy uses.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Template defaults the CLI relies on where samconfig.toml gives no value (a template test holds
/// them equal to template.yaml's).
pub const TEMPLATE_DEFAULTS: [(&str, &str); 2] = [("AgentLogGroupNames", "/ecs/voice-agent"), ("IngestReservedConcurrency", "-1")];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploySettings {
    pub stack_name: Option<String>,
    pub parameters: BTreeMap<String, String>,
}

impl DeploySettings {
    /// A parameter as the deploy passes it: the override, else the template's default.
    pub fn parameter(&self, name: &str) -> Option<String> {
        self.parameters.get(name).cloned().or_else(|| TEMPLATE_DEFAULTS.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
    }
}

/// The `deploy` settings of `env` in the samconfig file at `path` (the environment's `global`
/// section first, `deploy` over it, as the SAM CLI merges them).
pub fn read(path: &Path, env: &str) -> Result<DeploySettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = text.parse().with_context(|| format!("{} is not TOML", path.display()))?;
    let Some(environment) = doc.get(env).and_then(toml::Value::as_table) else {
        bail!("{} has no config environment [{env}]", path.display());
    };
    let mut settings = DeploySettings::default();
    for section in ["global", "deploy"] {
        let Some(params) = environment.get(section).and_then(|s| s.get("parameters")).and_then(toml::Value::as_table) else { continue };
        if let Some(name) = params.get("stack_name").and_then(toml::Value::as_str) {
            settings.stack_name = Some(name.to_owned());
        }
        match params.get("parameter_overrides") {
            Some(toml::Value::String(s)) => settings.parameters.extend(parse_overrides(s)?),
            Some(toml::Value::Array(items)) => {
                for item in items {
                    let s =
                        item.as_str().with_context(|| format!("[{env}.{section}.parameters] parameter_overrides: {item} is not text"))?;
                    settings.parameters.extend(parse_overrides(s)?);
                }
            }
            Some(other) => bail!("[{env}.{section}.parameters] parameter_overrides is {other}, not text or a list"),
            None => {}
        }
    }
    Ok(settings)
}

/// `Key=Value Key2="a value"` pairs, as the SAM CLI takes them: whitespace separates pairs outside
/// double quotes, and the quotes around a value are not part of it.
pub fn parse_overrides(text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if chars.next() != Some('=') {
            bail!("parameter_overrides: {key:?} has no =VALUE");
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => bail!("parameter_overrides: the value of {key} is not closed"),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_read_as_the_sam_cli_reads_them() {
        let pairs = parse_overrides(r#"EnvironmentName="prod" AgentLogGroupNames="/ecs/a,/ecs/b"  Plain=7 Spaced="a b""#).unwrap();
        assert_eq!(
            pairs,
            [("EnvironmentName", "prod"), ("AgentLogGroupNames", "/ecs/a,/ecs/b"), ("Plain", "7"), ("Spaced", "a b")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(parse_overrides("Broken").is_err());
        assert!(parse_overrides(r#"Open="x"#).is_err());
    }

    #[test]
    fn the_repos_samconfig_gives_each_environments_stack_and_parameters() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samconfig.toml");
        let prod = read(&path, "prod").unwrap();
        assert_eq!(prod.stack_name.as_deref(), Some("voicelake-prod"));
        assert_eq!(prod.parameter("AgentLogGroupNames").as_deref(), Some("/ecs/support-agent,/ecs/sales-agent"));
        assert_eq!(prod.parameter("IngestReservedConcurrency").as_deref(), Some("50"));
        let default = read(&path, "default").unwrap();
        assert_eq!(default.parameter("IngestReservedConcurrency").as_deref(), Some("-1"), "the template's default");
        assert!(read(&path, "staging").is_err());
    }
}
