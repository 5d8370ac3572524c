//! Why an input did not become a row. Codes are stable: they are written to the `rejects` table,
//! summed in metrics and queried by users, so renaming one is a breaking change.

use serde::Serialize;

/// Input that claims to be ours but cannot be used. Each lands in the `rejects` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// `awslogs.data` is not base64.
    BadBase64,
    /// The base64 does not hold a complete gzip stream.
    BadGzip,
    /// The payload inflates beyond the decoder's limit.
    PayloadTooLarge,
    /// The inflated payload is not a CloudWatch Logs batch.
    BadPayloadJson,
    /// One log event of an otherwise readable batch is not valid JSON at the batch's level (an
    /// escape sequence a strict parser refuses, a raw control character): only that event is lost.
    BadEventJson,
    /// A message names one of our event families but its JSON does not parse.
    MalformedJson,
    /// JSON nested deeper than the parser allows.
    TooDeep,
    /// The same key twice in one object: which value is meant cannot be known.
    DuplicateKey,
    /// A recognized event without a single usable measurement.
    NoMeasurements,
    /// A session event without any session identity.
    MissingSessionId,
    /// Neither the event nor CloudWatch gave a usable time.
    BadTimestamp,
    /// The event's time lies outside what the deployment keeps: the lake's partitions, or too far
    /// from the time CloudWatch recorded the line ([`crate::config::TimeWindow`]).
    EventTimeOutOfRange,
    /// The row would not fit in a Firehose record (1000 KiB) even with every list and text capped:
    /// kept here, its input cut, rather than failing the batch it came in.
    RowTooLarge,
    /// A part of a line its container runtime cut (at 16 KiB or 256 KiB) whose rest did not
    /// complete it in the same batch.
    SplitLine,
    /// A line of a file longer than any log event CloudWatch keeps (256 KiB), or than the replay
    /// reads at once: rejected without being held whole.
    LineTooLong,
    /// A line that names an event family of the contract (a marker field's value) in which no
    /// event object was found: deeper than one level, or in a form voicelake does not read.
    UnrecognizedShape,
}

impl RejectReason {
    pub const ALL: [RejectReason; 16] = [
        RejectReason::BadBase64,
        RejectReason::BadGzip,
        RejectReason::PayloadTooLarge,
        RejectReason::BadPayloadJson,
        RejectReason::BadEventJson,
        RejectReason::MalformedJson,
        RejectReason::TooDeep,
        RejectReason::DuplicateKey,
        RejectReason::NoMeasurements,
        RejectReason::MissingSessionId,
        RejectReason::BadTimestamp,
        RejectReason::EventTimeOutOfRange,
        RejectReason::RowTooLarge,
        RejectReason::SplitLine,
        RejectReason::LineTooLong,
        RejectReason::UnrecognizedShape,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadBase64 => "bad_base64",
            RejectReason::BadGzip => "bad_gzip",
            RejectReason::PayloadTooLarge => "payload_too_large",
            RejectReason::BadPayloadJson => "bad_payload_json",
            RejectReason::BadEventJson => "bad_event_json",
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::TooDeep => "too_deep",
            RejectReason::DuplicateKey => "duplicate_key",
            RejectReason::NoMeasurements => "no_measurements",
            RejectReason::MissingSessionId => "missing_session_id",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::EventTimeOutOfRange => "event_time_out_of_range",
            RejectReason::RowTooLarge => "row_too_large",
            RejectReason::SplitLine => "split_line",
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::UnrecognizedShape => "unrecognized_shape",
        }
    }

    /// What a user can do about it.
    pub fn advice(self) -> &'static str {
        match self {
            RejectReason::BadBase64 | RejectReason::BadGzip | RejectReason::BadPayloadJson => {
                "the invocation payload was not written by a CloudWatch Logs subscription; check what invokes the function"
            }
            RejectReason::PayloadTooLarge => "the payload inflates beyond 16 MiB; CloudWatch batches are at most about 1 MB",
            RejectReason::BadEventJson => {
                "CloudWatch delivered this log event in a form a strict JSON parser refuses (for example a lone UTF-16 surrogate escape); the raw event is kept here, the rest of its batch was used"
            }
            RejectReason::MalformedJson => {
                "the agent wrote a truncated or invalid JSON object; log with json.dumps and keep lines under 256 KB"
            }
            RejectReason::TooDeep => "flatten the logged object; nesting beyond 128 levels is refused",
            RejectReason::DuplicateKey => "the logged object repeats a key; emit each field once",
            RejectReason::NoMeasurements => {
                "the event carries no latency or usage field the contract knows; see the README's event contract"
            }
            RejectReason::MissingSessionId => "log _session_id (or session_id, room name, room_id, job_id) with session_analytics",
            RejectReason::BadTimestamp => "the event time is outside 2000-01-01..2100-01-01; log _timestamp as ISO-8601 or epoch seconds",
            RejectReason::UnrecognizedShape => {
                "log the event object at the top level of the line (or one level down, as extra={\"analytics_data\": {…}}); README \"How your logs get here\" lists the forms voicelake reads"
            }
            RejectReason::LineTooLong => {
                "CloudWatch Logs keeps events of at most 256 KiB: a longer line is not a log event; the first 32 KiB are kept here"
            }
            RejectReason::SplitLine => {
                "Docker's awslogs driver in non-blocking mode (before Docker 20.10.6, and on Fargate) and containerd cut lines at 16 KiB, awslogs at 256 KiB: set the awslogs option mode=blocking, or route through FireLens with a multiline filter in partial_message mode; or log smaller events"
            }
            RejectReason::RowTooLarge => {
                "split what the event carries (log tool calls or signals in several events); each row must fit in 1000 KiB"
            }
            RejectReason::EventTimeOutOfRange => {
                "check the agent's clock and the unit of _timestamp (seconds or milliseconds); history older than the lake's retention belongs in a local lake (voicelake backfill --lake)"
            }
        }
    }
}

/// Input that is not ours, or carries nothing to record. Counted, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No JSON object in the message: plain log text.
    NoJson,
    /// A JSON object of no family the contract knows.
    NotAnEvent,
    /// `_event_type` names an application event we do not consume.
    UnknownEventType,
    /// A LiveKit metrics type that carries nothing per turn (e.g. VAD).
    IgnoredMetricsType,
    /// A LiveKit chat item without metrics (system messages, function calls…).
    NoMetrics,
    /// A session usage update superseded by a later one for the same session in the same batch.
    SupersededUsage,
    /// A part of a cut line, joined with the part before it (that one is counted for the line).
    JoinedPart,
    /// The same event of the same session logged again (two log handlers writing one record):
    /// the first copy is used.
    DuplicateEvent,
}

impl SkipReason {
    pub const ALL: [SkipReason; 8] = [
        SkipReason::NoJson,
        SkipReason::NotAnEvent,
        SkipReason::UnknownEventType,
        SkipReason::IgnoredMetricsType,
        SkipReason::NoMetrics,
        SkipReason::SupersededUsage,
        SkipReason::JoinedPart,
        SkipReason::DuplicateEvent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoJson => "no_json",
            SkipReason::NotAnEvent => "not_an_event",
            SkipReason::UnknownEventType => "unknown_event_type",
            SkipReason::IgnoredMetricsType => "ignored_metrics_type",
            SkipReason::NoMetrics => "no_metrics",
            SkipReason::SupersededUsage => "superseded_usage",
            SkipReason::JoinedPart => "joined_part",
            SkipReason::DuplicateEvent => "duplicate_event",
        }
    }
}
