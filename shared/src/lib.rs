//! voicelake's event contract and everything pure: decoding CloudWatch Logs subscription payloads,
//! finding and classifying agent events, normalizing them to typed rows, assembling turns,
//! aggregating CloudWatch metric datums, the lake's Arrow schemas and Parquet encoding, prices, the
//! local report and synthetic traffic. No AWS SDK, no async, no I/O.

pub mod alarms;
pub mod config;
pub mod cost;
pub mod envelope;
pub mod event;
pub mod extract;
pub mod lake;
pub mod lenient;
pub mod metrics;
pub mod normalize;
pub mod pii;
pub mod pipeline;
pub mod queries;
pub mod reasons;
pub mod report;
pub mod rows;
pub mod synth;
pub mod timefmt;
pub mod views;

pub use config::Config;
pub use pipeline::{BatchOutput, BatchStats, process_batch, process_event, process_payload};
