//! `voicelake`: run the pipeline locally, on the same code as the Lambda. Parses the command line
//! and hands it to the subcommand's own `run`.

use anyhow::Result;
use clap::Parser;
use voicelake_cli::args::{Cli, Command, DlqCommand, NotifyCommand, QueriesCommand};
use voicelake_cli::{backfill, demo, dlq, generate, notify, preflight, queries, replay};

/// One line an operator can act on: the error and its first cause (`--verbose`: every cause, one a
/// line). An SDK's debug dump of a request is never the message.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut causes = e.chain();
            let mut line = format!("error: {}", causes.next().map(ToString::to_string).unwrap_or_default());
            if verbose {
                for cause in causes {
                    line.push_str(&format!("\n  caused by: {cause}"));
                }
            } else if let Some(cause) = causes.next() {
                line.push_str(&format!(": {cause}"));
                if e.chain().count() > 2 {
                    line.push_str(" (--verbose for every cause)");
                }
            }
            eprintln!("{line}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Backfill(args) => backfill::command::run(args),
        Command::Queries(QueriesCommand::Check(args)) => queries::check(args),
        Command::Query(args) => queries::query(args),
        Command::Dlq(DlqCommand::Replay(args)) => dlq::run_replay(args),
        Command::Notify(NotifyCommand::Test(args)) => notify::run_test(args),
        Command::Preflight(args) => preflight::run(args),
    }
}
