//! The parts of the `voicelake` tool that tests and other tools use as a library.

pub mod args;
pub mod aws_setup;
pub mod backfill;
pub mod demo;
pub mod deployed_alarms;
pub mod dlq;
pub mod generate;
pub mod html;
pub mod input;
pub mod insights_lint;
pub mod notify;
pub mod preflight;
pub mod queries;
pub mod replay;
pub mod report;
pub mod samconfig;
pub mod settings;
pub mod spill;
