//! voicelake's event contract and everything pure: decoding CloudWatch Logs subscription payloads,
//! finding and classifying agent events, normalizing them to typed rows, assembling turns,
//! aggregating CloudWatch metric datums, the lake's Arrow schemas and Parquet encoding, prices, the
//! alarm specs, the dashboard's views and the saved-query files. No AWS SDK, no async, no I/O.
//!
//! `docs/how-a-payload-flows.md` walks a payload through the modules.

pub mod alarms;
mod assembly;
pub mod aws_names;
pub mod batch;
pub mod carry;
pub mod config;
pub mod cost;
pub mod delivery;
pub mod diagnosis;
pub mod envelope;
pub mod errors;
pub mod event;
mod extract;
pub mod failure;
pub mod invariants;
pub mod lake;
mod lenient;
pub mod metrics;
mod normalize;
pub mod pii;
pub mod pipeline;
pub mod queries;
pub mod reasons;
pub mod rows;
pub mod shown;
pub mod timefmt;
pub mod views;

pub use batch::{BatchOutput, BatchStats, Counts};
pub use carry::Carrier;
pub use config::Config;
pub use normalize::agent_from_log_group;
pub use pipeline::{
    Delivered, Hold, PENDING_TIMEOUT_MS, SETTLE_MS, decode_event, message_time, process_batch, process_batch_carrying, process_decoded,
    process_decoded_holding, process_delivered, process_event, process_payload, process_payload_holding, reject_input,
};
