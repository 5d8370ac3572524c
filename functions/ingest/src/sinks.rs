//! Where rows and datums go, as small traits: the AWS adapters implement them over the SDK clients
//! (see [`crate::aws`]), tests implement them over recorders and faults.

use std::future::Future;

use voicelake_shared::metrics::Datum;

/// Why one call to a sink failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SendError {
    /// The service's error code (`ThrottlingException`, `ResourceNotFoundException`…), or the kind
    /// of transport failure.
    pub code: String,
    pub message: String,
}

/// CloudWatch `PutMetricData`: one call per request, within the API's limits already.
pub trait MetricsSink: Send + Sync {
    fn put_metric_data(&self, namespace: &str, datums: &[Datum]) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// What Firehose answered to one `PutRecordBatch`: the records it did not take, with its reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchAnswer {
    /// Indexes into the records sent.
    pub failed: Vec<usize>,
    /// The first failed record's error code and message.
    pub first_error: Option<String>,
}

/// Firehose `PutRecordBatch`: one call per batch, within the API's limits already.
pub trait RecordSink: Send + Sync {
    fn put_record_batch(&self, stream: &str, records: &[Vec<u8>]) -> impl Future<Output = Result<BatchAnswer, SendError>> + Send;
}
