//! The ingest function: what CloudWatch Logs subscription filters invoke. The pipeline itself is
//! `voicelake-shared`; this crate adds the edges: configuration, the sinks over the AWS SDK, and
//! delivery with retries.

pub mod aws;
pub mod config;
pub mod deliver;
pub mod handler;
pub mod pending;
pub mod sinks;

pub use config::IngestConfig;
pub use handler::{DeliveryError, Ingest, Summary};
