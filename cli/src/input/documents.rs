//! Documents in a stream of bytes: the JSON objects of an archive found by their structure, and a
//! multi-line document parsed as it streams, handed on a batch at a time.

use std::cell::Cell;
use std::io::BufRead;
use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result};
use voicelake_shared::reasons::RejectReason;

use super::{CliBatcher, CliEvent, InputUnit, MAX_DOCUMENT_BYTES, from_lines, open};

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
pub(super) fn read_document(
    path: &Path,
    name: &str,
    reader: Box<dyn BufRead>,
    now_ms: i64,
    replaced: &Rc<Cell<u64>>,
    each: &mut dyn FnMut(InputUnit) -> Result<()>,
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
            each(InputUnit::Rejected { source: name.to_owned(), raw: String::new(), reason: RejectReason::BadPayloadJson, detail })
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
    each: &'e mut dyn FnMut(InputUnit) -> Result<()>,
    events: CliBatcher,
    /// Units handed on so far.
    units: usize,
    found: bool,
    /// What `each` failed with, kept whole (a parse error can only carry text).
    failed: Option<anyhow::Error>,
}

impl Document<'_, '_> {
    fn hand_on<E: serde::de::Error>(&mut self, unit: InputUnit) -> std::result::Result<(), E> {
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
                    self.hand_on(InputUnit::Payload { data: awslogs.data, source })?;
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
                document.hand_on(InputUnit::Batch(full))?;
            }
        }
        Ok(())
    }
}
