//! The CloudWatch Logs subscription payload: `{"awslogs":{"data": base64(gzip(json))}}`.

use std::io::Read;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};

/// CloudWatch caps a subscription batch at about 1 MB of log data; anything that inflates far beyond
/// that is not a CloudWatch payload, and stopping early keeps a gzip bomb from exhausting memory.
pub const MAX_DECOMPRESSED_BYTES: u64 = 16 * 1024 * 1024;

/// Padding is optional and whitespace is ignored: hand-made test events and wrapped base64 use both.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent).with_decode_allow_trailing_bits(true),
);

/// The Lambda event a subscription filter delivers.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct SubscriptionEvent {
    pub awslogs: AwsLogs,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct AwsLogs {
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    DataMessage,
    /// Sent once when a subscription is created to check that the destination is reachable.
    ControlMessage,
}

/// One decoded subscription batch: every event comes from one log stream.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogBatch {
    pub message_type: MessageType,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub log_group: String,
    #[serde(default)]
    pub log_stream: String,
    #[serde(default)]
    pub subscription_filters: Vec<String>,
    #[serde(default)]
    pub log_events: Vec<LogEvent>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct LogEvent {
    pub id: String,
    /// Milliseconds since the epoch, as CloudWatch recorded the event.
    pub timestamp: i64,
    pub message: String,
}

impl LogBatch {
    /// A data batch of one log stream with no events yet: what a reader fills, or what carried
    /// parts are processed with when their stream has nothing new.
    pub fn of_stream(log_group: &str, log_stream: &str) -> LogBatch {
        LogBatch {
            message_type: MessageType::DataMessage,
            owner: String::new(),
            log_group: log_group.to_owned(),
            log_stream: log_stream.to_owned(),
            subscription_filters: Vec::new(),
            log_events: Vec::new(),
        }
    }

    /// A data batch of `messages` from one log stream: event ids 0, 1, … and timestamps a
    /// millisecond apart from `first_timestamp`. How tests, fuzz targets and tools make batches
    /// out of bare log lines.
    pub fn of_messages<S: Into<String>>(
        log_group: &str,
        log_stream: &str,
        first_timestamp: i64,
        messages: impl IntoIterator<Item = S>,
    ) -> LogBatch {
        LogBatch {
            message_type: MessageType::DataMessage,
            owner: "123456789012".into(),
            log_group: log_group.into(),
            log_stream: log_stream.into(),
            subscription_filters: vec!["voicelake".into()],
            log_events: messages
                .into_iter()
                .enumerate()
                .map(|(i, m)| LogEvent { id: i.to_string(), timestamp: first_timestamp.saturating_add(i as i64), message: m.into() })
                .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("awslogs.data is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("awslogs.data is not a complete gzip stream: {0}")]
    Gzip(std::io::Error),
    #[error("awslogs.data inflates to more than {MAX_DECOMPRESSED_BYTES} bytes")]
    TooLarge,
    #[error("the decompressed payload is not a CloudWatch Logs batch: {0}")]
    Json(#[from] serde_json::Error),
}

impl EnvelopeError {
    /// The reject reason code this error is counted under.
    pub fn reason(&self) -> crate::reasons::RejectReason {
        use crate::reasons::RejectReason;
        match self {
            EnvelopeError::Base64(_) => RejectReason::BadBase64,
            EnvelopeError::Gzip(_) => RejectReason::BadGzip,
            EnvelopeError::TooLarge => RejectReason::PayloadTooLarge,
            EnvelopeError::Json(_) => RejectReason::BadPayloadJson,
        }
    }
}

/// What came out of the envelope, with the repairs it needed.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub batch: LogBatch,
    /// Bytes that were not UTF-8 and were replaced with U+FFFD so the rest of the batch survives.
    pub replaced_invalid_utf8: bool,
    /// Log events that could not be read, taken out so that the rest of the batch survives.
    pub damaged: Vec<DamagedEvent>,
}

/// A log event of the batch that is not valid JSON at the batch's level.
#[derive(Debug, Clone, PartialEq)]
pub struct DamagedEvent {
    /// The event's id and timestamp, when they could still be read.
    pub id: Option<String>,
    pub timestamp: Option<i64>,
    /// The event's JSON text as it came.
    pub raw: String,
    pub error: String,
}

/// Inflates `awslogs.data` to the JSON text it carries.
pub fn inflate(data: &str) -> Result<Vec<u8>, EnvelopeError> {
    let compressed = decode_base64(data)?;
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(8).min(4 << 20));
    // MultiGzDecoder: concatenated gzip members are still one valid gzip file.
    let read =
        MultiGzDecoder::new(compressed.as_slice()).take(MAX_DECOMPRESSED_BYTES + 1).read_to_end(&mut out).map_err(EnvelopeError::Gzip)?;
    if read as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(EnvelopeError::TooLarge);
    }
    if out.is_empty() {
        return Err(EnvelopeError::Gzip(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "empty gzip stream")));
    }
    Ok(out)
}

fn decode_base64(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let trimmed = data.trim();
    if trimmed.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: String = trimmed.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        LENIENT_BASE64.decode(compact)
    } else {
        LENIENT_BASE64.decode(trimmed)
    }
}

/// Decodes `awslogs.data` into a batch. A `CONTROL_MESSAGE` decodes like any other batch; callers
/// acknowledge it by sending nothing.
pub fn decode(data: &str) -> Result<Decoded, EnvelopeError> {
    let inflated = inflate(data)?;
    parse_batch(inflated)
}

/// Parses the inflated JSON text. Invalid UTF-8 is replaced rather than fatal: CloudWatch stores
/// UTF-8, so bad bytes mean one damaged message, and the batch's other events are still good.
pub fn parse_batch(inflated: Vec<u8>) -> Result<Decoded, EnvelopeError> {
    match String::from_utf8(inflated) {
        Ok(text) => parse_text(&text, false),
        Err(e) => parse_text(&String::from_utf8_lossy(e.as_bytes()), true),
    }
}

fn parse_text(text: &str, replaced_invalid_utf8: bool) -> Result<Decoded, EnvelopeError> {
    match serde_json::from_str(text) {
        Ok(batch) => Ok(Decoded { batch, replaced_invalid_utf8, damaged: Vec::new() }),
        Err(strict) => match salvage(text) {
            Some((batch, damaged)) if !damaged.is_empty() => Ok(Decoded { batch, replaced_invalid_utf8, damaged }),
            _ => Err(strict.into()),
        },
    }
}

/// Reads a batch whose JSON fails only inside some of its log events: the envelope without its
/// events, then each event on its own. `None` when the damage is elsewhere (the envelope itself,
/// or no `logEvents` array to be found).
fn salvage(text: &str) -> Option<(LogBatch, Vec<DamagedEvent>)> {
    let split = split_log_events(text)?;
    let shell = format!("{}{}", &text[..split.open + 1], &text[split.close..]);
    let mut batch: LogBatch = serde_json::from_str(&shell).ok()?;
    let mut damaged = Vec::new();
    for raw in split.events {
        match serde_json::from_str::<LogEvent>(raw) {
            Ok(event) => batch.log_events.push(event),
            Err(e) => damaged.push(DamagedEvent {
                id: field_text(raw, "id"),
                timestamp: field_text(raw, "timestamp").and_then(|t| t.parse().ok()),
                raw: raw.to_owned(),
                error: e.to_string(),
            }),
        }
    }
    Some((batch, damaged))
}

/// Where the top-level `logEvents` array is (`open` at its `[`, `close` at its `]`) and the text of
/// each of its elements.
struct LogEventsSplit<'t> {
    open: usize,
    close: usize,
    events: Vec<&'t str>,
}

/// Scans the batch as JSON's structure, not its values: strings are skipped whatever their escapes
/// say (a backslash takes the next character along), so a message a strict parser refuses cannot
/// hide where its event ends.
fn split_log_events(text: &str) -> Option<LogEventsSplit<'_>> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    let mut last_key: Option<(usize, usize)> = None;
    let mut array: Option<usize> = None;
    let mut element_start = 0;
    let mut events = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 && array.is_none() {
                    last_key = Some((start + 1, i.min(bytes.len())));
                }
            }
            b'{' | b'[' => {
                depth += 1;
                let is_events = depth == 2 && bytes[i] == b'[' && last_key.is_some_and(|(a, b)| &text[a..b] == "logEvents");
                if is_events && array.is_none() {
                    array = Some(i);
                    element_start = i + 1;
                }
            }
            b'}' | b']' => {
                if let (Some(open), 2, b']') = (array, depth, bytes[i]) {
                    let last = text[element_start..i].trim();
                    if !last.is_empty() {
                        events.push(last);
                    }
                    return Some(LogEventsSplit { open, close: i, events });
                }
                depth = depth.checked_sub(1)?;
            }
            b',' if depth == 2 && array.is_some() => {
                events.push(text[element_start..i].trim());
                element_start = i + 1;
            }
            b':' if depth == 1 => {}
            b if depth == 1 && !b.is_ascii_whitespace() && b != b',' => last_key = None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The text of a top-level field of a damaged event, by a plain search: `"id": "…"` or
/// `"timestamp": 123`.
fn field_text(raw: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\"");
    let after = raw[raw.find(&key)? + key.len()..].trim_start().strip_prefix(':')?.trim_start();
    match after.strip_prefix('"') {
        Some(quoted) => quoted.find(['"', '\\']).map(|end| quoted[..end].to_owned()),
        None => {
            let end = after.find(|c: char| !c.is_ascii_digit() && c != '-').unwrap_or(after.len());
            (end > 0).then(|| after[..end].to_owned())
        }
    }
}

/// Builds `awslogs.data` from a batch, as CloudWatch does. Used by the generator and tests.
pub fn encode(batch: &LogBatch) -> String {
    use std::io::Write;
    let json = serde_json::to_vec(batch).expect("a LogBatch always serializes");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&json).expect("writing to a Vec cannot fail");
    let compressed = gz.finish().expect("writing to a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(compressed)
}

/// The whole Lambda event for a batch.
pub fn subscription_event(batch: &LogBatch) -> SubscriptionEvent {
    SubscriptionEvent { awslogs: AwsLogs { data: encode(batch) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(messages: &[&str]) -> LogBatch {
        LogBatch {
            message_type: MessageType::DataMessage,
            owner: "123456789012".into(),
            log_group: "/ecs/voice-agent".into(),
            log_stream: "agent/abc".into(),
            subscription_filters: vec!["voicelake".into()],
            log_events: messages
                .iter()
                .enumerate()
                .map(|(i, m)| LogEvent { id: format!("{i:056}"), timestamp: 1_764_000_000_000 + i as i64, message: m.to_string() })
                .collect(),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// The batch's JSON text with the message `PLACEHOLDER` replaced by `raw` (JSON string content,
    /// as CloudWatch would have written it).
    fn damaged_text(raw: &str) -> String {
        let text = serde_json::to_string(&batch(&["first", "PLACEHOLDER", "third"])).unwrap();
        text.replace("PLACEHOLDER", raw)
    }

    #[test]
    fn damage_inside_one_event_costs_that_event_only() {
        for raw in [r"lone \ud800 surrogate", r"bad \x41 escape", "raw \u{1} control", r#"quote \" and \\ then \q"#] {
            let text = damaged_text(raw);
            assert!(serde_json::from_str::<LogBatch>(&text).is_err(), "{raw} must be refused by the strict parser");
            let decoded = parse_batch(text.into_bytes()).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let messages: Vec<&str> = decoded.batch.log_events.iter().map(|e| e.message.as_str()).collect();
            assert_eq!(messages, ["first", "third"], "{raw}");
            assert_eq!((decoded.batch.log_group.as_str(), decoded.batch.log_stream.as_str()), ("/ecs/voice-agent", "agent/abc"));
            let [d] = decoded.damaged.as_slice() else { panic!("{raw}: {:?}", decoded.damaged) };
            assert_eq!(d.id.as_deref(), Some(format!("{:056}", 1).as_str()));
            assert_eq!(d.timestamp, Some(1_764_000_000_001));
            assert!(d.raw.starts_with('{') && d.raw.ends_with('}') && d.raw.contains(raw), "{}", d.raw);
        }
    }

    #[test]
    fn damage_outside_the_events_still_refuses_the_batch() {
        let text = serde_json::to_string(&batch(&["first"])).unwrap().replace("agent/abc", r"agent\x41");
        assert!(matches!(parse_batch(text.into_bytes()), Err(EnvelopeError::Json(_))));
        let text = damaged_text(r"lone \ud800");
        assert!(matches!(parse_batch(text.as_bytes()[..text.len() - 20].to_vec()), Err(EnvelopeError::Json(_))), "truncated");
        // A message that talks about logEvents does not move the split.
        let text = damaged_text(r#"{\"logEvents\": [1, 2]} \ud800"#);
        let decoded = parse_batch(text.into_bytes()).unwrap();
        assert_eq!((decoded.batch.log_events.len(), decoded.damaged.len()), (2, 1));
    }

    #[test]
    fn round_trips_a_batch() {
        let b = batch(&[r#"{"a":1}"#, "plain text"]);
        let decoded = decode(&encode(&b)).unwrap();
        assert_eq!(decoded.batch, b);
        assert!(!decoded.replaced_invalid_utf8);
    }

    #[test]
    fn decodes_the_cloudwatch_documentation_example() {
        // The sample event from the AWS Lambda developer guide for CloudWatch Logs.
        let data = "H4sIAAAAAAAAAHWPwQqCQBCGX0Xm7EFtK+smZBEUgXoLCdMhFtKV3akI8d0bLYmibvPPN3wz00CJxmQnTO41whwWQRIctmEcB6sQbFC3CjW3XW8kxpOpP+OC22d1Wml1qZkQGtoMsScxaczKN3plG8zlaHIta5KqWsozoTYw3/djzwhpLwivWFGHGpAFe7DL68JlBUk+l7KSN7tCOEJ4M3/qOI49vMHj+zCKdlFqLaU2ZHV2a4Ct/an0/ivdX8oYc1UVX860fQDQiMdxRQEAAA==";
        let decoded = decode(data).unwrap();
        assert_eq!(decoded.batch.message_type, MessageType::DataMessage);
        assert_eq!(decoded.batch.log_group, "testLogGroup");
        assert_eq!(decoded.batch.log_events.len(), 2);
        assert_eq!(decoded.batch.log_events[0].message, "[ERROR] First test message");
    }

    #[test]
    fn accepts_whitespace_and_missing_padding() {
        let data = encode(&batch(&["x"]));
        let wrapped: String = data.as_bytes().chunks(60).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\n");
        assert!(decode(&wrapped).is_ok());
        assert!(decode(data.trim_end_matches('=')).is_ok());
    }

    #[test]
    fn concatenated_gzip_members_are_one_stream() {
        let json = serde_json::to_vec(&batch(&["a", "b"])).unwrap();
        let (head, tail) = json.split_at(json.len() / 2);
        let mut two = gzip(head);
        two.extend(gzip(tail));
        assert_eq!(decode(&b64(&two)).unwrap().batch.log_events.len(), 2);
    }

    #[test]
    fn each_kind_of_damage_is_a_distinct_error() {
        use crate::reasons::RejectReason as R;
        let good = encode(&batch(&["x"]));
        let compressed = base64::engine::general_purpose::STANDARD.decode(&good).unwrap();
        let cases: Vec<(String, R)> = vec![
            ("!!!not base64!!!".into(), R::BadBase64),
            (b64(b"plain bytes, not gzip"), R::BadGzip),
            (b64(&compressed[..compressed.len() / 2]), R::BadGzip),
            (b64(&[]), R::BadGzip),
            (b64(&gzip(b"{\"messageType\": \"DATA_MESS")), R::BadPayloadJson),
            (b64(&gzip(b"[1, 2, 3]")), R::BadPayloadJson),
        ];
        for (data, reason) in cases {
            let err = decode(&data).expect_err(&data);
            assert_eq!(err.reason(), reason, "{err}");
        }
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let zeros = vec![b' '; (MAX_DECOMPRESSED_BYTES + 10) as usize];
        let err = decode(&b64(&gzip(&zeros))).unwrap_err();
        assert!(matches!(err, EnvelopeError::TooLarge));
    }

    #[test]
    fn invalid_utf8_costs_only_the_damaged_message() {
        let json = serde_json::to_string(&batch(&["GOOD", "BAD"])).unwrap();
        let mut bytes = json.into_bytes();
        let at = bytes.windows(3).position(|w| w == b"BAD").unwrap();
        bytes[at] = 0xff;
        let decoded = decode(&b64(&gzip(&bytes))).unwrap();
        assert!(decoded.replaced_invalid_utf8);
        assert_eq!(decoded.batch.log_events[0].message, "GOOD");
        assert_eq!(decoded.batch.log_events[1].message, "\u{fffd}AD");
    }

    #[test]
    fn control_messages_decode() {
        let mut b = batch(&["CWL CONTROL MESSAGE: Checking health of destination Firehose."]);
        b.message_type = MessageType::ControlMessage;
        assert_eq!(decode(&encode(&b)).unwrap().batch.message_type, MessageType::ControlMessage);
    }
}
