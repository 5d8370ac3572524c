//! The subscriber the functions log through: for their `main` and the tests that check their lines.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

/// JSON lines with the event's fields at `fields.*`, which the saved Insights queries read (the
/// template sets the function's log format to JSON, and this does not depend on it). No timestamp:
/// Lambda stamps each line. The level is `AWS_LAMBDA_LOG_LEVEL` (the template's
/// `ApplicationLogLevel`), else `RUST_LOG`, else INFO.
pub fn subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| LevelFilter::from_str(&l).ok())
        .unwrap_or(LevelFilter::INFO);
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .with_env_filter(EnvFilter::builder().with_default_directive(level.into()).from_env_lossy())
        .with_writer(writer)
        .finish()
}

/// The functions' subscriber on standard output, as the global default.
pub fn init() -> Result<(), tracing::subscriber::SetGlobalDefaultError> {
    tracing::subscriber::set_global_default(subscriber(std::io::stdout))
}
