//! Reading replay inputs, whatever their form: Lambda subscription events (one per file, or one per
//! line), decoded subscription payloads (what `base64 -d | gunzip` of an event gives, and what a
//! subscription filter to Firehose archives in S3: payloads back to back, each gzip'd), the JSON that
//! `aws logs filter-log-events` / `get-log-events` print, or raw log lines. Any of them gzip'd, as
//! one gzip stream or many back to back.
//!
//! Damaged bytes cost at most the line they are in: invalid UTF-8 is replaced with U+FFFD and
//! counted, a byte-order mark and a carriage return before a newline are taken off, a NUL in a raw
//! line is replaced. A line longer than any log event is rejected without being held whole.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use voicelake_shared::envelope::{LogBatch, LogEvent, SubscriptionEvent};
use voicelake_shared::reasons::RejectReason;

/// What one unit of input is.
pub enum Unit {
    /// A subscription event's `awslogs.data`.
    Payload { data: String, source: String },
    /// A decoded subscription payload (the batch's JSON text).
    Decoded { json: Vec<u8>, source: String },
    /// Log events already known: raw lines, or `aws logs` output.
    Batch(LogBatch),
    /// Input that is no log event at all, with why.
    Rejected { source: String, raw: String, reason: voicelake_shared::reasons::RejectReason, detail: String },
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
/// CloudWatch Logs keeps events of at most 256 KiB: a longer raw line is not a log event.
const MAX_EVENT_BYTES: usize = 256 * 1024;
/// The longest line read: a subscription event is its batch (at most about 1 MB) gzip'd and in
/// base64; longer lines are rejected while they are read, never held whole.
const MAX_LINE_BYTES: usize = 16 << 20;
/// The longest document of an archive (a decoded payload is at most about 1 MB).
const MAX_DOCUMENT_BYTES: usize = 64 << 20;

impl Unit {
    /// Bytes of input the unit stands for, for callers that bound what they hold.
    pub fn weight(&self) -> usize {
        match self {
            Unit::Payload { data, .. } => data.len(),
            Unit::Decoded { json, .. } => json.len(),
            Unit::Batch(batch) => batch.log_events.iter().map(|e| e.message.len() + 64).sum(),
            Unit::Rejected { raw, .. } => raw.len(),
        }
    }
}

/// Invalid UTF-8 replaced with U+FFFD as the bytes are read, the replaced bytes counted: serde's
/// and the lines' readers refuse invalid UTF-8, and one bad byte must not cost a whole file.
struct Utf8Lossy<R> {
    inner: R,
    /// Bytes read but not yet handed on: a valid prefix, or an incomplete sequence at the end.
    pending: Vec<u8>,
    out: Vec<u8>,
    at: usize,
    replaced: Rc<Cell<u64>>,
    /// Why the input ended early (a gzip stream that breaks off): read as its end, and said.
    broke: Rc<Cell<Option<String>>>,
}

impl<R: Read> Read for Utf8Lossy<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            let mut chunk = [0u8; 64 * 1024];
            let n = match self.inner.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A damaged compressed stream ends the input where it breaks.
                Err(e) => {
                    self.broke.set(Some(e.to_string()));
                    0
                }
            };
            self.out.clear();
            self.at = 0;
            if n == 0 {
                if self.pending.is_empty() {
                    return Ok(0);
                }
                // An incomplete sequence at the end of the input.
                self.replaced.set(self.replaced.get() + self.pending.len() as u64);
                self.pending.clear();
                self.out.extend_from_slice("\u{fffd}".as_bytes());
                break;
            }
            self.pending.extend_from_slice(&chunk[..n]);
            let mut rest: &[u8] = &self.pending;
            loop {
                match std::str::from_utf8(rest) {
                    Ok(_) => {
                        self.out.extend_from_slice(rest);
                        rest = &[];
                        break;
                    }
                    Err(e) => {
                        let (valid, after) = rest.split_at(e.valid_up_to());
                        self.out.extend_from_slice(valid);
                        match e.error_len() {
                            Some(bad) => {
                                self.out.extend_from_slice("\u{fffd}".as_bytes());
                                self.replaced.set(self.replaced.get() + bad as u64);
                                rest = &after[bad..];
                            }
                            // The rest may complete with the next chunk.
                            None => {
                                rest = after;
                                break;
                            }
                        }
                    }
                }
            }
            self.pending = rest.to_vec();
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// An opened input: its text, valid UTF-8, and the count of bytes that were not.
struct Opened {
    reader: Box<dyn BufRead>,
    name: String,
    replaced: Rc<Cell<u64>>,
    broke: Rc<Cell<Option<String>>>,
}

/// `path` as text, gunzipped when it is gzip (members back to back are one stream), invalid UTF-8
/// replaced, a leading byte-order mark taken off.
fn open(path: &Path) -> Result<Opened> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let gzip = reader.fill_buf().with_context(|| format!("reading {}", path.display()))?.starts_with(&[0x1f, 0x8b]);
    let raw: Box<dyn Read> = if gzip { Box::new(MultiGzDecoder::new(reader)) } else { Box::new(reader) };
    let replaced = Rc::new(Cell::new(0));
    let broke = Rc::new(Cell::new(None));
    let lossy = Utf8Lossy { inner: raw, pending: Vec::new(), out: Vec::new(), at: 0, replaced: replaced.clone(), broke: broke.clone() };
    let mut reader = BufReader::with_capacity(1 << 20, lossy);
    let bom = reader.fill_buf().with_context(|| format!("reading {}", path.display()))?.starts_with("\u{feff}".as_bytes());
    if bom {
        reader.consume(3);
    }
    let name = path.file_name().map_or_else(|| "input".to_owned(), |n| n.to_string_lossy().trim_end_matches(".gz").to_owned());
    Ok(Opened { reader: Box::new(reader), name, replaced, broke })
}

/// How a file holds its input, from its first bytes.
#[derive(Debug, PartialEq)]
enum Shape {
    /// Decoded subscription payloads, back to back or one per line, pretty-printed or not.
    Archive,
    /// One JSON document over several lines: a pretty-printed subscription event or `aws logs` output.
    Document,
    /// One input a line.
    Lines,
}

/// The keys of a decoded subscription payload (`LogBatch`).
const BATCH_KEYS: [&str; 6] = ["messageType", "owner", "logGroup", "logStream", "subscriptionFilters", "logEvents"];

/// Whether text starting with `head` holds decoded subscription payloads (what a subscription
/// filter to Firehose archives in S3).
pub fn is_archive(head: &[u8]) -> bool {
    shape(head) == Shape::Archive
}

fn shape(head: &[u8]) -> Shape {
    let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
    let trimmed = text.trim_start();
    let Some(object) = trimmed.strip_prefix('{') else { return Shape::Lines };
    let first_key = object.trim_start().strip_prefix('"').and_then(|k| k.split('"').next());
    if first_key.is_some_and(|k| BATCH_KEYS.contains(&k)) {
        return Shape::Archive;
    }
    let first_line = trimmed.lines().next().unwrap_or("");
    if serde_json::from_str::<serde::de::IgnoredAny>(first_line.trim()).is_err() && !first_line.contains('}') {
        // `{` on a line of its own, or an object that goes on: a document over several lines.
        return Shape::Document;
    }
    Shape::Lines
}

/// Reads `path` incrementally and hands each unit to `each` in input order; returns how many bytes
/// of it were not UTF-8 (or were NUL) and were replaced. Nothing is held whole: files of lines are
/// read a line at a time, archives a document at a time, and an `aws logs` document is parsed as a
/// stream, its events handed on as they are read.
pub fn read_each(path: &Path, now_ms: i64, mut each: impl FnMut(Unit) -> Result<()>) -> Result<u64> {
    let Opened { mut reader, name, replaced, broke } = open(path)?;
    let head = reader.fill_buf().with_context(|| format!("reading {}", path.display()))?.to_vec();
    match shape(&head) {
        Shape::Archive => {
            let mut n = 0;
            for_each_document(&mut reader, |piece| {
                n += 1;
                let source = format!("{name} document {n}");
                each(match piece {
                    Piece::Document(json) => Unit::Decoded { json, source },
                    Piece::Damaged { raw, why } => Unit::Rejected { source, raw, reason: RejectReason::BadPayloadJson, detail: why },
                })
            })
            .with_context(|| format!("reading {}", path.display()))?;
        }
        Shape::Document => read_document(path, &name, reader, now_ms, &replaced, &mut each)?,
        Shape::Lines => from_lines(&name, reader, now_ms, &replaced, &mut each).with_context(|| format!("reading {}", path.display()))?,
    }
    if let Some(why) = broke.take() {
        let detail = format!("the compressed input breaks off: {why}; what came before was read");
        each(Unit::Rejected { source: name, raw: String::new(), reason: RejectReason::BadGzip, detail })?;
    }
    Ok(replaced.get())
}

/// What an archive holds, piece by piece.
pub enum Piece {
    /// One top-level JSON object.
    Document(Vec<u8>),
    /// Bytes that are no document: between documents, or a last one that breaks off (kept cut).
    Damaged { raw: String, why: String },
}

/// Every top-level JSON object of `reader`, one after the other, found by its structure (strings
/// and their escapes skipped, braces counted) rather than parsed: a document damaged inside one of
/// its events is still handed on whole, for the envelope to take that event out. Bytes that belong
/// to no document are handed on as damaged, and reading goes on at the next `{`.
pub fn for_each_document(reader: &mut dyn BufRead, mut each: impl FnMut(Piece) -> Result<()>) -> Result<()> {
    let keep = |bytes: &[u8]| {
        voicelake_shared::rows::truncate_utf8(&String::from_utf8_lossy(bytes), voicelake_shared::rows::RAW_LIMIT_BYTES).to_owned()
    };
    let mut doc: Vec<u8> = Vec::new();
    let mut garbage: Vec<u8> = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let len = buf.len();
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            if depth == 0 {
                if b.is_ascii_whitespace() || b == b',' {
                    start = i + 1;
                    continue;
                }
                if b != b'{' {
                    if garbage.len() < voicelake_shared::rows::RAW_LIMIT_BYTES {
                        garbage.push(b);
                    }
                    start = i + 1;
                    continue;
                }
                if !garbage.is_empty() {
                    let raw = keep(&garbage);
                    garbage.clear();
                    each(Piece::Damaged {
                        raw,
                        why: "bytes between documents, where a decoded subscription payload ({\"messageType\": …}) should start".into(),
                    })?;
                }
            }
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        doc.extend_from_slice(&buf[start..=i]);
                        start = i + 1;
                        each(Piece::Document(std::mem::take(&mut doc)))?;
                    }
                }
                _ => {}
            }
        }
        if depth > 0 {
            doc.extend_from_slice(&buf[start..]);
            if doc.len() > MAX_DOCUMENT_BYTES {
                let raw = keep(&doc);
                each(Piece::Damaged {
                    raw,
                    why: format!("a document longer than {} MiB: not a decoded subscription payload", MAX_DOCUMENT_BYTES >> 20),
                })?;
                // What is left of it is no document either: read on at depth 0.
                doc.clear();
                (depth, in_string, escaped) = (0, false, false);
            }
        }
        reader.consume(len);
    }
    if !garbage.is_empty() {
        each(Piece::Damaged { raw: keep(&garbage), why: "bytes after the last document".into() })?;
    }
    if depth > 0 {
        let why = format!("the last document breaks off after {} bytes", doc.len());
        each(Piece::Damaged { raw: keep(&doc), why })?;
    }
    Ok(())
}

/// One JSON document over several lines, parsed as a stream. A document of neither known kind is
/// read again as lines.
fn read_document(
    path: &Path,
    name: &str,
    reader: Box<dyn BufRead>,
    now_ms: i64,
    replaced: &Rc<Cell<u64>>,
    each: &mut dyn FnMut(Unit) -> Result<()>,
) -> Result<()> {
    let mut document = Document { name, each, events: CliBatcher::default(), units: 0, found: false, failed: None };
    let mut json = serde_json::Deserializer::from_reader(reader);
    let parsed = serde::Deserializer::deserialize_map(&mut json, &mut document).and_then(|()| json.end());
    let Document { events, units, found, failed, .. } = document;
    match parsed {
        Ok(()) if found => events.finish(each),
        // What the units were handed to failed (writing the lake): that error, whole.
        Err(_) if let Some(failed) = failed => Err(failed),
        // A document that breaks off costs what is left of it: the events read are replayed, the
        // rest is a reject that says where it broke.
        Err(e) if units > 0 || found => {
            events.finish(each)?;
            let detail = format!("the JSON document breaks off after {units} batches of it were replayed: {e}");
            each(Unit::Rejected { source: name.to_owned(), raw: String::new(), reason: RejectReason::BadPayloadJson, detail })
        }
        // Not a document of events, or not JSON after all: its lines, as raw lines.
        Ok(()) | Err(_) => {
            let again = open(path)?;
            replaced.set(0);
            drop(again.broke);
            from_lines(name, again.reader, now_ms, replaced, each).with_context(|| format!("reading {}", path.display()))
        }
    }
}

/// The top level of a multi-line document, visited as it is parsed: `awslogs` is a subscription
/// event's payload, `events` the events of `aws logs` output; other keys are skipped.
struct Document<'a, 'e> {
    name: &'a str,
    each: &'e mut dyn FnMut(Unit) -> Result<()>,
    events: CliBatcher,
    /// Units handed on so far.
    units: usize,
    found: bool,
    /// What `each` failed with, kept whole (a parse error can only carry text).
    failed: Option<anyhow::Error>,
}

impl Document<'_, '_> {
    fn hand_on<E: serde::de::Error>(&mut self, unit: Unit) -> std::result::Result<(), E> {
        self.units += 1;
        (self.each)(unit).map_err(|e| {
            let error = E::custom(format!("{e:#}"));
            self.failed = Some(e);
            error
        })
    }
}

impl<'de> serde::de::Visitor<'de> for &mut Document<'_, '_> {
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
                    let source = self.name.to_owned();
                    self.hand_on(Unit::Payload { data: awslogs.data, source })?;
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
struct Events<'d, 'a, 'e>(&'d mut Document<'a, 'e>);

impl<'de> serde::de::DeserializeSeed<'de> for Events<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Events<'_, '_, '_> {
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

/// `aws logs` events into batches per log stream: `filter-log-events` returns the streams of a
/// group interleaved by time, and a stream's lines belong together however they are interleaved.
#[derive(Default)]
struct CliBatcher {
    /// Events so far, for the ids of events without one.
    seen: usize,
    /// Per stream, the batch being filled, in order of first appearance.
    pending: BTreeMap<String, LogBatch>,
}

impl CliBatcher {
    /// Adds `e`; the batch it completed, if any.
    fn push(&mut self, name: &str, e: CliEvent) -> Option<LogBatch> {
        let stream = e.log_stream_name.unwrap_or_else(|| "unknown".into());
        let id = e.event_id.unwrap_or_else(|| format!("{name}:{}", self.seen));
        self.seen += 1;
        let event = LogEvent { id, timestamp: e.timestamp, message: e.message };
        let batch = self.pending.entry(stream.clone()).or_insert_with(|| batch(stream.clone(), Vec::new()));
        batch.log_events.push(event);
        (batch.log_events.len() == RAW_BATCH).then(|| self.pending.remove(&stream).expect("the batch just filled"))
    }

    fn finish(self, each: &mut dyn FnMut(Unit) -> Result<()>) -> Result<()> {
        self.pending.into_values().try_for_each(|b| each(Unit::Batch(b)))
    }
}

/// A batch of an input that names no log group (raw lines, `aws logs` output): its log group is
/// empty, for the replay to give (`--log-group`), never the file's name, which would name agents
/// after files.
fn batch(stream: String, events: Vec<LogEvent>) -> LogBatch {
    LogBatch { owner: "local".into(), log_events: events, ..LogBatch::of_stream("", &stream) }
}

/// One line of a file, read as bytes up to [`MAX_LINE_BYTES`]: a longer one is skipped to its end
/// and reported with its length, never held whole.
enum Line {
    Text(String),
    TooLong { kept: String, bytes: usize },
}

fn read_line(reader: &mut dyn BufRead, out: &mut Vec<u8>) -> std::io::Result<Option<Line>> {
    out.clear();
    let mut total = 0;
    let mut any = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        any = true;
        let (len, consumed, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i, i + 1, true),
            None => (buf.len(), buf.len(), false),
        };
        total += len;
        let room = MAX_LINE_BYTES.saturating_sub(out.len());
        out.extend_from_slice(&buf[..len.min(room)]);
        reader.consume(consumed);
        if done {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if out.last() == Some(&b'\r') {
        out.pop();
        total -= 1;
    }
    // The reader has made the text valid UTF-8; only a cut at the length limit can split a character.
    let text = String::from_utf8(std::mem::take(out)).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Ok(Some(if total > MAX_LINE_BYTES { Line::TooLong { kept: text, bytes: total } } else { Line::Text(text) }))
}

/// Lines that are subscription events become payloads, lines that are decoded payloads their
/// batches, lines that are `aws logs` output their events; every other non-empty line is a raw log
/// message, named `<file>:<line>`. A raw line has no CloudWatch time: it takes the time it gives
/// itself (its event's, or its router's or runtime's), else that of the nearest line before it
/// that gives one (after it, for the lines before the first), so that a line without a time, a
/// malformed event, a foreign line, lands in its own hour and not at the replay's clock. Only a
/// run of [`RAW_BATCH`] lines with no time at all, from the start, takes the replay's start.
fn from_lines(
    name: &str,
    mut reader: Box<dyn BufRead>,
    now_ms: i64,
    replaced: &Rc<Cell<u64>>,
    each: &mut dyn FnMut(Unit) -> Result<()>,
) -> Result<()> {
    let mut raw: Vec<LogEvent> = Vec::new();
    // Lines before the first that gives a time, waiting for it.
    let mut untimed: Vec<LogEvent> = Vec::new();
    let mut last_time: Option<i64> = None;
    let mut buf = Vec::new();
    let mut number = 0;
    let flush = |raw: &mut Vec<LogEvent>, each: &mut dyn FnMut(Unit) -> Result<()>| -> Result<()> {
        if raw.is_empty() {
            return Ok(());
        }
        each(Unit::Batch(batch("replay".into(), std::mem::take(raw))))
    };
    while let Some(line) = read_line(reader.as_mut(), &mut buf)? {
        number += 1;
        let source = format!("{name}:{number}");
        let line = match line {
            Line::Text(text) => text,
            Line::TooLong { kept, bytes } => {
                let kept = voicelake_shared::rows::truncate_utf8(&kept, voicelake_shared::rows::RAW_LIMIT_BYTES).to_owned();
                let detail = format!("the line is {bytes} bytes");
                each(Unit::Rejected { source, raw: kept, reason: RejectReason::LineTooLong, detail })?;
                continue;
            }
        };
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('{') {
            if line.contains("\"awslogs\"")
                && let Ok(event) = serde_json::from_str::<SubscriptionEvent>(&line)
            {
                each(Unit::Payload { data: event.awslogs.data, source })?;
                continue;
            }
            if line.contains("\"logEvents\"") && shape(trimmed.as_bytes()) == Shape::Archive {
                let mut n = 0;
                for_each_document(&mut line.as_bytes(), |piece| {
                    n += 1;
                    let source = format!("{source} document {n}");
                    each(match piece {
                        Piece::Document(json) => Unit::Decoded { json, source },
                        Piece::Damaged { raw, why } => Unit::Rejected { source, raw, reason: RejectReason::BadPayloadJson, detail: why },
                    })
                })?;
                continue;
            }
            if line.contains("\"events\"")
                && let Ok(events) = serde_json::from_str::<CliEvents>(&line)
            {
                let mut batcher = CliBatcher::default();
                for e in events.events {
                    if let Some(full) = batcher.push(name, e) {
                        each(Unit::Batch(full))?;
                    }
                }
                batcher.finish(each)?;
                continue;
            }
        }
        if line.len() > MAX_EVENT_BYTES {
            let kept = voicelake_shared::rows::truncate_utf8(&line, voicelake_shared::rows::RAW_LIMIT_BYTES).to_owned();
            let detail = format!("the line is {} bytes", line.len());
            each(Unit::Rejected { source, raw: kept, reason: RejectReason::LineTooLong, detail })?;
            continue;
        }
        // A NUL is no part of a log line (and breaks any JSON it is in): replaced and counted.
        let message = if line.contains('\0') {
            replaced.set(replaced.get() + line.matches('\0').count() as u64);
            line.replace('\0', "\u{fffd}")
        } else {
            line
        };
        let own = voicelake_shared::message_time(&message);
        let event = LogEvent { id: source, timestamp: own.or(last_time).unwrap_or(now_ms), message };
        if own.is_none() && last_time.is_none() {
            untimed.push(event);
            if untimed.len() < RAW_BATCH {
                continue;
            }
            // No time in sight: these keep the replay's start.
            raw.append(&mut untimed);
        } else {
            if let Some(t) = own {
                for mut early in untimed.drain(..) {
                    early.timestamp = t;
                    raw.push(early);
                }
                last_time = Some(t);
            }
            raw.push(event);
        }
        if raw.len() >= RAW_BATCH {
            flush(&mut raw, each)?;
        }
    }
    raw.append(&mut untimed);
    flush(&mut raw, each)
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
                Unit::Payload { data, .. } => format!("payload {}", data.len()),
                Unit::Decoded { json, source } => format!("decoded {} {source}", json.len()),
                Unit::Batch(b) => {
                    format!("{} {} {:?}", b.log_stream, b.log_events.len(), b.log_events.iter().map(|e| &e.id).collect::<Vec<_>>())
                }
                Unit::Rejected { source, reason, .. } => format!("rejected {source} {}", reason.as_str()),
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
        assert_eq!(got, ["s0 500", "s1 500", "s0 200"], "batches per stream, at most 500 events each, the rest at the end");

        // The first batch is handed on before the document has been read to its end; a document
        // that breaks off costs only what is left of it, a reject that says where it broke.
        let broken = dir.path().join("broken.json");
        let text = cli_document(1200);
        std::fs::write(&broken, &text[..text.len() / 2]).unwrap();
        let got = units(&broken);
        assert_eq!(got.len(), 3, "{got:?}");
        let shape: Vec<&str> = got.iter().map(|u| u.split(" [").next().unwrap()).collect();
        assert_eq!(shape, ["s0 500", "s0 102", "rejected broken.json bad_payload_json"]);
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

    #[test]
    fn archives_of_decoded_payloads_are_read_a_document_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let doc = |n: usize| {
            format!(
                r#"{{"messageType": "DATA_MESSAGE", "logGroup": "/g", "logStream": "s", "logEvents": [{{"id": "{n}", "timestamp": 1, "message": "x {{\"a\": \"}}\"}}"}}]}}"#
            )
        };
        // What Firehose leaves in S3: gzip members back to back, each a payload without a newline.
        let path = dir.path().join("archive");
        let mut file = std::fs::File::create(&path).unwrap();
        for n in 0..3 {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(doc(n).as_bytes()).unwrap();
            file.write_all(&enc.finish().unwrap()).unwrap();
        }
        drop(file);
        let len = doc(0).len();
        assert_eq!(units(&path), (1..=3).map(|n| format!("decoded {len} archive document {n}")).collect::<Vec<_>>());
        // One per line, and pretty-printed, the same.
        let lines = dir.path().join("payloads.jsonl");
        std::fs::write(&lines, format!("{}\n{}\n", doc(0), doc(1))).unwrap();
        assert_eq!(units(&lines).len(), 2);
        let pretty = dir.path().join("payload.json");
        let value: serde_json::Value = serde_json::from_str(&doc(0)).unwrap();
        std::fs::write(&pretty, serde_json::to_string_pretty(&value).unwrap()).unwrap();
        assert_eq!(units(&pretty).len(), 1);
    }

    #[test]
    fn damaged_bytes_cost_at_most_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes.log");
        let mut bytes = "\u{feff}first line\r\n".as_bytes().to_vec();
        bytes.extend_from_slice(b"r\xe9server \x00 here\n");
        bytes.extend_from_slice(b"third\n");
        std::fs::write(&path, &bytes).unwrap();
        let mut units = Vec::new();
        let repaired = read_each(&path, 7, |u| {
            units.push(u);
            Ok(())
        })
        .unwrap();
        let [Unit::Batch(batch)] = units.as_slice() else { panic!("one batch") };
        let messages: Vec<&str> = batch.log_events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["first line", "r\u{fffd}server \u{fffd} here", "third"]);
        assert_eq!(repaired, 2, "the Latin-1 byte and the NUL");
    }

    #[test]
    fn a_line_longer_than_any_log_event_is_rejected_without_being_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.log");
        let mut text = format!("{{\"_event_type\": \"voice_metrics\", \"x\": \"{}\"}}\n", "a".repeat(300 * 1024));
        text.push_str("next line\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(units(&path), ["rejected long.log:1 line_too_long", "replay 1 [\"long.log:2\"]"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Whatever a file holds, reading it ends: every byte becomes a unit, a reject or a skipped
        /// blank, and nothing but the callback can fail the read. Inputs start like each form.
        #[test]
        fn arbitrary_bytes_never_abort_a_replay(
            start in proptest::sample::select(vec!["", "{\"messageType\": \"DATA_MESSAGE\", ", "{\n  \"events\": [", "{\"awslogs\": {\"data\": \"", "\u{feff}", "2025-10-16T09:12:02Z stdout P "]),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            gzip in proptest::prelude::any::<bool>(),
            cut in 0usize..100,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("input");
            let mut bytes = start.as_bytes().to_vec();
            bytes.extend(body);
            if gzip {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&bytes).unwrap();
                bytes = enc.finish().unwrap();
                // Now and then a compressed file that breaks off.
                if cut < 30 {
                    bytes.truncate(bytes.len() * cut / 30);
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let config = voicelake_shared::Config::default();
            let read = read_each(&path, 7, |unit| {
                // And every unit goes through the pipeline without a panic, its counts balanced.
                let out = match unit {
                    Unit::Payload { data, .. } => voicelake_shared::process_payload(&data, &config, 7),
                    Unit::Decoded { json, .. } => voicelake_shared::process_decoded(json, &config, 7),
                    Unit::Batch(b) => voicelake_shared::process_batch(&b, &config, 7),
                    Unit::Rejected { source, raw, reason, detail } => voicelake_shared::reject_input(Some(&source), &raw, reason, detail, &config, 7),
                };
                assert!(out.stats.is_balanced(), "{:?}", out.stats);
                Ok(())
            });
            proptest::prop_assert!(read.is_ok(), "{:?}", read.err());
        }
    }
}
