//! Reading replay inputs, whatever their form: Lambda subscription events (one per file, or one per
//! line), the JSON that `aws logs filter-log-events` / `get-log-events` print, or JSON Lines of raw
//! log messages.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use voicelake_shared::envelope::{LogBatch, LogEvent, MessageType, SubscriptionEvent};

/// What one unit of input is: a subscription payload to decode, or log events already known.
pub enum Unit {
    Payload(String),
    Batch(LogBatch),
}

/// `aws logs filter-log-events` and `get-log-events` output.
#[derive(Deserialize)]
struct CliEvents {
    events: Vec<CliEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CliEvent {
    #[serde(default)]
    log_stream_name: Option<String>,
    timestamp: i64,
    message: String,
    #[serde(default)]
    event_id: Option<String>,
}

/// Raw log lines are grouped into batches of this many events, like a busy subscription.
const RAW_BATCH: usize = 500;

/// Bytes of input a [`Unit`] stands for, for callers that bound what they hold.
impl Unit {
    pub fn weight(&self) -> usize {
        match self {
            Unit::Payload(data) => data.len(),
            Unit::Batch(b) => b.log_events.iter().map(|e| e.message.len() + 64).sum(),
        }
    }
}

/// Reads `path` incrementally, gzip-compressed or not, and hands each unit to `each` in input
/// order. Files of lines (subscription events, raw log lines, one `aws logs` output per line) are
/// streamed; a file that is one multi-line JSON document (a pretty-printed subscription event or
/// `aws logs` output) is read whole, as such documents are a page of events at most.
pub fn read_each(path: &Path, now_ms: i64, mut each: impl FnMut(Unit) -> Result<()>) -> Result<()> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let gzip = reader.fill_buf().with_context(|| format!("reading {}", path.display()))?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead> =
        if gzip { Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(reader))) } else { Box::new(reader) };
    let name = path.file_name().map_or_else(|| "input".to_owned(), |n| n.to_string_lossy().trim_end_matches(".gz").to_owned());
    let context = || format!("reading {}", path.display());

    let mut first = String::new();
    reader.read_line(&mut first).with_context(context)?;
    let starts_document = first.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(first.trim()).is_err();
    if starts_document {
        let mut text = first;
        reader.read_to_string(&mut text).with_context(context)?;
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text.trim())
            && let Some(units) = document(&name, value)?
        {
            return units.into_iter().try_for_each(each);
        }
        return from_lines(&name, text.lines().map(|l| Ok(l.to_owned())), now_ms, each);
    }
    let lines = std::iter::once(Ok(first.trim_end_matches(['\n', '\r']).to_owned())).chain(reader.lines().map(|l| l.with_context(context)));
    from_lines(&name, lines, now_ms, &mut each)
}

/// A whole JSON document: a subscription event or `aws logs` output; `None` for anything else.
fn document(name: &str, value: serde_json::Value) -> Result<Option<Vec<Unit>>> {
    if value.get("awslogs").is_some() {
        let event: SubscriptionEvent = serde_json::from_value(value).with_context(|| format!("{name}: not a subscription event"))?;
        return Ok(Some(vec![Unit::Payload(event.awslogs.data)]));
    }
    if value.get("events").is_some_and(|e| e.is_array()) {
        let events: CliEvents = serde_json::from_value(value).with_context(|| format!("{name}: not aws logs output"))?;
        return Ok(Some(from_cli_events(name, events.events)));
    }
    Ok(None)
}

/// Every unit of a file, in order (tests and small inputs).
pub fn read(path: &Path, now_ms: i64) -> Result<Vec<Unit>> {
    let mut units = Vec::new();
    read_each(path, now_ms, |u| {
        units.push(u);
        Ok(())
    })?;
    Ok(units)
}

fn from_cli_events(name: &str, events: Vec<CliEvent>) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    let mut current: Option<LogBatch> = None;
    for (i, e) in events.into_iter().enumerate() {
        let stream = e.log_stream_name.unwrap_or_else(|| "unknown".into());
        let event = LogEvent { id: e.event_id.unwrap_or_else(|| format!("{name}:{i}")), timestamp: e.timestamp, message: e.message };
        match current.as_mut() {
            Some(b) if b.log_stream == stream && b.log_events.len() < RAW_BATCH => b.log_events.push(event),
            _ => {
                if let Some(b) = current.take() {
                    units.push(Unit::Batch(b));
                }
                current = Some(batch(name, stream, vec![event]));
            }
        }
    }
    units.extend(current.map(Unit::Batch));
    units
}

fn batch(name: &str, stream: String, events: Vec<LogEvent>) -> LogBatch {
    LogBatch {
        message_type: MessageType::DataMessage,
        owner: "local".into(),
        log_group: format!("local/{name}"),
        log_stream: stream,
        subscription_filters: vec![],
        log_events: events,
    }
}

/// Lines that are subscription events become payloads, lines that are `aws logs` output their
/// events; every other non-empty line is a raw log message. A raw line's time is its event's own,
/// else the replay's start.
fn from_lines(
    name: &str,
    lines: impl Iterator<Item = Result<String>>,
    now_ms: i64,
    mut each: impl FnMut(Unit) -> Result<()>,
) -> Result<()> {
    let mut raw: Vec<LogEvent> = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line?;
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('{')
            && line.contains("\"awslogs\"")
            && let Ok(event) = serde_json::from_str::<SubscriptionEvent>(&line)
        {
            each(Unit::Payload(event.awslogs.data))?;
            continue;
        }
        if trimmed.starts_with('{')
            && line.contains("\"events\"")
            && let Ok(events) = serde_json::from_str::<CliEvents>(&line)
        {
            from_cli_events(name, events.events).into_iter().try_for_each(&mut each)?;
            continue;
        }
        raw.push(LogEvent { id: format!("{name}:{}", i + 1), timestamp: now_ms, message: line });
        if raw.len() == RAW_BATCH {
            each(Unit::Batch(batch(name, "replay".into(), std::mem::take(&mut raw))))?;
        }
    }
    if !raw.is_empty() {
        each(Unit::Batch(batch(name, "replay".into(), raw)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn units(path: &Path) -> Vec<String> {
        read(path, 7)
            .unwrap()
            .into_iter()
            .map(|u| match u {
                Unit::Payload(p) => format!("payload {}", p.len()),
                Unit::Batch(b) => {
                    format!("{} {} {:?}", b.log_stream, b.log_events.len(), b.log_events.iter().map(|e| &e.id).collect::<Vec<_>>())
                }
            })
            .collect()
    }

    #[test]
    fn every_form_is_read_and_gzip_is_the_same_as_plain() {
        let dir = tempfile::tempdir().unwrap();
        let lines = "{\"awslogs\": {\"data\": \"H4sIAAAA\"}}\nplain log line\n\n{\"events\": [{\"logStreamName\": \"s\", \"timestamp\": 5, \"message\": \"m\", \"eventId\": \"e1\"}]}\nlast line\n";
        let plain = dir.path().join("in.jsonl");
        std::fs::write(&plain, lines).unwrap();
        let gz = dir.path().join("in.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(lines.as_bytes()).unwrap();
        enc.finish().unwrap();
        let want = ["payload 8", "s 1 [\"e1\"]", "replay 2 [\"in.jsonl:2\", \"in.jsonl:5\"]"];
        assert_eq!(units(&plain), want);
        assert_eq!(units(&gz), want, "a .gz input names its events as the plain one does");

        // One JSON document over several lines: `aws logs` output as the CLI prints it.
        let doc = dir.path().join("events.json");
        std::fs::write(&doc, "{\n  \"events\": [\n    {\"logStreamName\": \"a\", \"timestamp\": 1, \"message\": \"x\"}\n  ]\n}\n").unwrap();
        assert_eq!(units(&doc), ["a 1 [\"events.json:0\"]"]);
    }
}
