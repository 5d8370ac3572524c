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
/// streamed, and so is a file that is one multi-line JSON document (a pretty-printed subscription
/// event, or `aws logs` output of any number of events): its events are handed on as they are
/// parsed. A multi-line document that is neither is read as lines.
pub fn read_each(path: &Path, now_ms: i64, mut each: impl FnMut(Unit) -> Result<()>) -> Result<()> {
    let (mut reader, name) = open(path)?;
    let context = || format!("reading {}", path.display());

    let mut first = String::new();
    reader.read_line(&mut first).with_context(context)?;
    let starts_document = first.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(first.trim()).is_err();
    if !starts_document {
        let lines =
            std::iter::once(Ok(first.trim_end_matches(['\n', '\r']).to_owned())).chain(reader.lines().map(|l| l.with_context(context)));
        return from_lines(&name, lines, now_ms, &mut each);
    }
    let mut document = Document { name: &name, each: &mut each, events: CliBatcher::default(), units: 0, found: false, failed: None };
    let mut json = serde_json::Deserializer::from_reader(BufReader::new(std::io::Cursor::new(first).chain(reader)));
    let parsed = serde::Deserializer::deserialize_map(&mut json, &mut document).and_then(|()| json.end());
    let Document { events, units, found, failed, .. } = document;
    match parsed {
        Ok(()) if found => events.finish(&mut each),
        // What the units were handed to failed (writing the lake): that error, whole.
        Err(_) if let Some(failed) = failed => Err(failed),
        Err(e) if units > 0 => Err(anyhow::Error::new(e)
            .context(format!("{}: the JSON document breaks off after {units} batches of it were replayed", path.display()))),
        // Not a document of events, or not JSON after all: its lines, as raw lines.
        Ok(()) | Err(_) => {
            let (reader, _) = open(path)?;
            from_lines(&name, reader.lines().map(|l| l.with_context(context)), now_ms, each)
        }
    }
}

/// `path` as text, gunzipped when it is gzip, and the name its events take.
fn open(path: &Path) -> Result<(Box<dyn BufRead>, String)> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let gzip = reader.fill_buf().with_context(|| format!("reading {}", path.display()))?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead> =
        if gzip { Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(reader))) } else { Box::new(reader) };
    let name = path.file_name().map_or_else(|| "input".to_owned(), |n| n.to_string_lossy().trim_end_matches(".gz").to_owned());
    Ok((reader, name))
}

/// The top level of a multi-line document, visited as it is parsed: `awslogs` is a subscription
/// event's payload, `events` the events of `aws logs` output; other keys are skipped.
struct Document<'a, F> {
    name: &'a str,
    each: &'a mut F,
    events: CliBatcher,
    /// Units handed on so far.
    units: usize,
    found: bool,
    /// What `each` failed with, kept whole (a parse error can only carry text).
    failed: Option<anyhow::Error>,
}

impl<F: FnMut(Unit) -> Result<()>> Document<'_, F> {
    fn hand_on<E: serde::de::Error>(&mut self, unit: Unit) -> std::result::Result<(), E> {
        self.units += 1;
        (self.each)(unit).map_err(|e| {
            let error = E::custom(format!("{e:#}"));
            self.failed = Some(e);
            error
        })
    }
}

impl<'de, F: FnMut(Unit) -> Result<()>> serde::de::Visitor<'de> for &mut Document<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a subscription event or aws logs output")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "awslogs" => {
                    let awslogs: voicelake_shared::envelope::AwsLogs = map.next_value()?;
                    self.found = true;
                    self.hand_on(Unit::Payload(awslogs.data))?;
                }
                "events" => {
                    self.found = true;
                    map.next_value_seed(Events(&mut *self))?;
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The `events` array of `aws logs` output, an event at a time.
struct Events<'d, 'a, F>(&'d mut Document<'a, F>);

impl<'de, F: FnMut(Unit) -> Result<()>> serde::de::DeserializeSeed<'de> for Events<'_, '_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(Unit) -> Result<()>> serde::de::Visitor<'de> for Events<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of log events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let document = self.0;
        while let Some(event) = seq.next_element::<CliEvent>()? {
            if let Some(full) = document.events.push(document.name, event) {
                document.hand_on(Unit::Batch(full))?;
            }
        }
        Ok(())
    }
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

/// `aws logs` events into batches: consecutive events of one stream, at most [`RAW_BATCH`] each.
#[derive(Default)]
struct CliBatcher {
    /// Events so far, for the ids of events without one.
    seen: usize,
    current: Option<LogBatch>,
}

impl CliBatcher {
    /// Adds `e`; the batch it completed, if any.
    fn push(&mut self, name: &str, e: CliEvent) -> Option<LogBatch> {
        let stream = e.log_stream_name.unwrap_or_else(|| "unknown".into());
        let id = e.event_id.unwrap_or_else(|| format!("{name}:{}", self.seen));
        self.seen += 1;
        let event = LogEvent { id, timestamp: e.timestamp, message: e.message };
        match self.current.as_mut() {
            Some(b) if b.log_stream == stream && b.log_events.len() < RAW_BATCH => {
                b.log_events.push(event);
                None
            }
            _ => self.current.replace(batch(name, stream, vec![event])),
        }
    }

    fn finish(self, each: &mut impl FnMut(Unit) -> Result<()>) -> Result<()> {
        self.current.map_or(Ok(()), |b| each(Unit::Batch(b)))
    }
}

/// The units of one `aws logs` output.
fn from_cli_events(name: &str, events: Vec<CliEvent>, each: &mut impl FnMut(Unit) -> Result<()>) -> Result<()> {
    let mut batcher = CliBatcher::default();
    for e in events {
        if let Some(full) = batcher.push(name, e) {
            each(Unit::Batch(full))?;
        }
    }
    batcher.finish(each)
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
            from_cli_events(name, events.events, &mut each)?;
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

    /// `aws logs filter-log-events` output of many events, as the CLI prints it over many lines.
    fn cli_document(events: usize) -> String {
        let events: Vec<String> = (0..events)
            .map(|i| format!("        {{\n            \"logStreamName\": \"s{}\",\n            \"timestamp\": {i},\n            \"message\": \"m{i}\"\n        }}", i / 700))
            .collect();
        format!("{{\n    \"events\": [\n{}\n    ],\n    \"searchedLogStreams\": []\n}}\n", events.join(",\n"))
    }

    #[test]
    fn a_multi_line_document_is_handed_on_batch_by_batch_as_it_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("day.json");
        std::fs::write(&doc, cli_document(1200)).unwrap();
        let got: Vec<String> = units(&doc).iter().map(|u| u.split(" [").next().unwrap().to_owned()).collect();
        assert_eq!(got, ["s0 500", "s0 200", "s1 500"], "batches of one stream, at most 500 events each");

        // The first batch is handed on before the document has been read to its end.
        let mut handed = 0;
        let broken = dir.path().join("broken.json");
        let text = cli_document(1200);
        std::fs::write(&broken, &text[..text.len() / 2]).unwrap();
        let error = read_each(&broken, 7, |_| {
            handed += 1;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(handed, 1);
        assert!(format!("{error:#}").contains("breaks off after 1 batches") && format!("{error:#}").contains("EOF"), "{error:#}");
        // A unit that cannot be used (the lake cannot be written) fails as itself.
        let error = read_each(&doc, 7, |_| anyhow::bail!("disk full")).unwrap_err();
        assert_eq!(format!("{error:#}"), "disk full");

        // A pretty-printed subscription event is one payload; a document of neither kind is lines.
        let event = dir.path().join("event.json");
        std::fs::write(&event, "{\n  \"awslogs\": {\n    \"data\": \"H4sIAAAA\"\n  }\n}\n").unwrap();
        assert_eq!(units(&event), ["payload 8"]);
        let other = dir.path().join("other.json");
        std::fs::write(&other, "{\n  \"level\": \"info\"\n}\n").unwrap();
        assert_eq!(units(&other), ["replay 3 [\"other.json:1\", \"other.json:2\", \"other.json:3\"]"]);
    }
}
