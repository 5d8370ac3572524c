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

mod documents;

use documents::read_document;
pub use documents::{Piece, for_each_document};

/// What one unit of input is.
pub enum InputUnit {
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

impl InputUnit {
    /// Bytes of input the unit stands for, for callers that bound what they hold.
    pub fn weight(&self) -> usize {
        match self {
            InputUnit::Payload { data, .. } => data.len(),
            InputUnit::Decoded { json, .. } => json.len(),
            InputUnit::Batch(batch) => batch.log_events.iter().map(|e| e.message.len() + 64).sum(),
            InputUnit::Rejected { raw, .. } => raw.len(),
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
pub fn read_each(path: &Path, now_ms: i64, mut each: impl FnMut(InputUnit) -> Result<()>) -> Result<u64> {
    let Opened { mut reader, name, replaced, broke } = open(path)?;
    let head = reader.fill_buf().with_context(|| format!("reading {}", path.display()))?.to_vec();
    match shape(&head) {
        Shape::Archive => {
            let mut n = 0;
            for_each_document(&mut reader, |piece| {
                n += 1;
                let source = format!("{name} document {n}");
                each(match piece {
                    Piece::Document(json) => InputUnit::Decoded { json, source },
                    Piece::Damaged { raw, why } => InputUnit::Rejected { source, raw, reason: RejectReason::BadPayloadJson, detail: why },
                })
            })
            .with_context(|| format!("reading {}", path.display()))?;
        }
        Shape::Document => read_document(path, &name, reader, now_ms, &replaced, &mut each)?,
        Shape::Lines => from_lines(&name, reader, now_ms, &replaced, &mut each).with_context(|| format!("reading {}", path.display()))?,
    }
    if let Some(why) = broke.take() {
        let detail = format!("the compressed input breaks off: {why}; what came before was read");
        each(InputUnit::Rejected { source: name, raw: String::new(), reason: RejectReason::BadGzip, detail })?;
    }
    Ok(replaced.get())
}

/// Every unit of a file, in order (tests and small inputs).
pub fn read(path: &Path, now_ms: i64) -> Result<Vec<InputUnit>> {
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

    fn finish(self, each: &mut dyn FnMut(InputUnit) -> Result<()>) -> Result<()> {
        self.pending.into_values().try_for_each(|b| each(InputUnit::Batch(b)))
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
    each: &mut dyn FnMut(InputUnit) -> Result<()>,
) -> Result<()> {
    let mut raw = RawLines { now_ms, ..RawLines::default() };
    let mut buf = Vec::new();
    let mut number = 0;
    while let Some(line) = read_line(reader.as_mut(), &mut buf)? {
        number += 1;
        let source = format!("{name}:{number}");
        let line = match line {
            Line::Text(text) => text,
            Line::TooLong { kept, bytes } => {
                let kept = voicelake_shared::rows::truncate_utf8(&kept, voicelake_shared::rows::RAW_LIMIT_BYTES).to_owned();
                let detail = format!("the line is {bytes} bytes");
                each(InputUnit::Rejected { source, raw: kept, reason: RejectReason::LineTooLong, detail })?;
                continue;
            }
        };
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('{') && structured_line(name, &line, &source, each)? {
            continue;
        }
        if line.len() > MAX_EVENT_BYTES {
            let kept = voicelake_shared::rows::truncate_utf8(&line, voicelake_shared::rows::RAW_LIMIT_BYTES).to_owned();
            let detail = format!("the line is {} bytes", line.len());
            each(InputUnit::Rejected { source, raw: kept, reason: RejectReason::LineTooLong, detail })?;
            continue;
        }
        // A NUL is no part of a log line (and breaks any JSON it is in): replaced and counted.
        let message = if line.contains('\0') {
            replaced.set(replaced.get() + line.matches('\0').count() as u64);
            line.replace('\0', "\u{fffd}")
        } else {
            line
        };
        raw.push(source, message, each)?;
    }
    raw.finish(each)
}

/// A line that is a subscription event, a decoded payload or `aws logs` output, handed on as its
/// units; `false` when it is none of them (a raw line).
fn structured_line(name: &str, line: &str, source: &str, each: &mut dyn FnMut(InputUnit) -> Result<()>) -> Result<bool> {
    if line.contains("\"awslogs\"")
        && let Ok(event) = serde_json::from_str::<SubscriptionEvent>(line)
    {
        each(InputUnit::Payload { data: event.awslogs.data, source: source.to_owned() })?;
        return Ok(true);
    }
    if line.contains("\"logEvents\"") && shape(line.trim_start().as_bytes()) == Shape::Archive {
        let mut n = 0;
        for_each_document(&mut line.as_bytes(), |piece| {
            n += 1;
            let source = format!("{source} document {n}");
            each(match piece {
                Piece::Document(json) => InputUnit::Decoded { json, source },
                Piece::Damaged { raw, why } => InputUnit::Rejected { source, raw, reason: RejectReason::BadPayloadJson, detail: why },
            })
        })?;
        return Ok(true);
    }
    if line.contains("\"events\"")
        && let Ok(events) = serde_json::from_str::<CliEvents>(line)
    {
        let mut batcher = CliBatcher::default();
        for e in events.events {
            if let Some(full) = batcher.push(name, e) {
                each(InputUnit::Batch(full))?;
            }
        }
        batcher.finish(each)?;
        return Ok(true);
    }
    Ok(false)
}

/// Raw lines in batches of [`RAW_BATCH`], each at the time it gives itself, else at the nearest
/// timed line's.
#[derive(Default)]
struct RawLines {
    raw: Vec<LogEvent>,
    /// Lines before the first that gives a time, waiting for it.
    untimed: Vec<LogEvent>,
    last_time: Option<i64>,
    now_ms: i64,
}

impl RawLines {
    fn push(&mut self, source: String, message: String, each: &mut dyn FnMut(InputUnit) -> Result<()>) -> Result<()> {
        let own = voicelake_shared::message_time(&message);
        let event = LogEvent { id: source, timestamp: own.or(self.last_time).unwrap_or(self.now_ms), message };
        if own.is_none() && self.last_time.is_none() {
            self.untimed.push(event);
            if self.untimed.len() < RAW_BATCH {
                return Ok(());
            }
            // No time in sight: these keep the replay's start.
            self.raw.append(&mut self.untimed);
        } else {
            if let Some(t) = own {
                for mut early in self.untimed.drain(..) {
                    early.timestamp = t;
                    self.raw.push(early);
                }
                self.last_time = Some(t);
            }
            self.raw.push(event);
        }
        if self.raw.len() >= RAW_BATCH {
            self.flush(each)?;
        }
        Ok(())
    }

    fn flush(&mut self, each: &mut dyn FnMut(InputUnit) -> Result<()>) -> Result<()> {
        if self.raw.is_empty() {
            return Ok(());
        }
        each(InputUnit::Batch(batch("replay".into(), std::mem::take(&mut self.raw))))
    }

    fn finish(mut self, each: &mut dyn FnMut(InputUnit) -> Result<()>) -> Result<()> {
        self.raw.append(&mut self.untimed);
        self.flush(each)
    }
}

#[cfg(test)]
mod tests;
