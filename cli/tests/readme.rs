//! The README documents every subcommand and flag of `voicelake`.

use clap::CommandFactory;
use voicelake_cli::args::Cli;

/// Every command path (`replay`, `queries check`, …) with the long flags of the command itself.
fn commands(cmd: &clap::Command, path: &str, out: &mut Vec<(String, Vec<String>)>) {
    let flags = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|long| !["help", "version"].contains(long))
        .map(|long| format!("--{long}"))
        .collect();
    out.push((path.trim().to_owned(), flags));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        commands(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

/// `--out` is mentioned by `--out FILE` or `` `--out` `` but not by `--output`.
fn mentions(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(at, _)| {
        let next = text[at + flag.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn every_subcommand_and_flag_is_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let mut all = Vec::new();
    commands(&Cli::command(), "", &mut all);
    assert!(all.len() >= 7, "the walk found the subcommands: {all:?}");
    let mut missing = Vec::new();
    for (path, flags) in all.iter().filter(|(path, _)| !path.is_empty()) {
        let invocation = format!("voicelake {path}");
        let Some(at) = readme.find(&invocation) else {
            missing.push(invocation);
            continue;
        };
        // The flags are documented where the command is, not merely somewhere.
        let section_start = readme[..at].rfind("\n## ").unwrap_or(0);
        let section_end = readme[at..].find("\n## ").map_or(readme.len(), |e| at + e);
        let section = &readme[section_start..section_end];
        for flag in flags {
            if !mentions(section, flag) {
                missing.push(format!("{invocation} {flag}"));
            }
        }
    }
    assert!(missing.is_empty(), "README does not document: {missing:?}");
}
