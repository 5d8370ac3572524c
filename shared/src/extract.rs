//! Finding the event object in a log message.
//!
//! A message is bare JSON, text followed by JSON (Python logging prefixes, the Lambda
//! `time\trequest-id\tLEVEL\t{…}` prefix), or anything else. The event is the object itself or one
//! level down (`extra={"analytics_data": {…}}` under a JSON formatter).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use memchr::memmem;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{Family, RawEvent, markers};
use crate::reasons::{RejectReason, SkipReason};

/// How many `{` positions are tried before a message counts as having no JSON: prefixes such as
/// `[{pid}]` put a brace before the object, but nobody logs five of them.
const MAX_CANDIDATES: usize = 4;

#[derive(Debug)]
pub enum Extracted<'a> {
    Event(Box<RawEvent<'a>>),
    Skip(SkipReason),
    Reject {
        reason: RejectReason,
        detail: String,
    },
    /// The object holds Python's `NaN`/`Infinity` tokens, which are not JSON: repair with
    /// [`repair_non_finite`] and extract again.
    NeedsRepair,
}

/// Finds and parses the event object of `message`.
pub fn extract(message: &str) -> Extracted<'_> {
    let bytes = message.as_bytes();
    let mut first_error: Option<serde_json::Error> = None;
    let mut from = 0;
    for _ in 0..MAX_CANDIDATES {
        let Some(offset) = memchr::memchr(b'{', &bytes[from..]) else { break };
        let start = from + offset;
        let text = &message[start..];
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<RawEvent<'_>>();
        match stream.next().expect("text starts with '{', so there is a value to read") {
            Ok(mut event) => {
                if start > 0 {
                    take_text_prefix(&mut event, &message[..start]);
                }
                if event.family() != Family::Unknown {
                    return Extracted::Event(Box::new(event));
                }
                if let Some(nested) = nested_event(text, &event) {
                    return Extracted::Event(Box::new(nested));
                }
                // Another object may follow this one on the same line.
                from = start + stream.byte_offset().max(1);
            }
            Err(e) => {
                first_error.get_or_insert(e);
                from = start + 1;
            }
        }
    }
    match first_error {
        None if from == 0 => skip_unless_named(message, SkipReason::NoJson),
        None => skip_unless_named(message, SkipReason::NotAnEvent),
        Some(e) => classify_failure(message, e),
    }
}

/// A skip means foreign: a line that names one of the contract's families where the family is
/// named (a marker field's value) but holds no event voicelake could find is rejected with the
/// reason instead.
fn skip_unless_named(message: &str, reason: SkipReason) -> Extracted<'_> {
    if names_a_family(message) {
        return Extracted::Reject {
            reason: RejectReason::UnrecognizedShape,
            detail: "the line names an event family of the contract, but no event object was found where voicelake looks: at the top level of a JSON object, one level down, or under a log router's `log`".into(),
        };
    }
    Extracted::Skip(reason)
}

/// Whether a marker stands as the value of the field that carries it: `"_event_type": "…"`, a
/// LiveKit `"type"` of a metrics or session event, or a log message (`message`, `msg`, `event`)
/// that is a family's. A marker merely mentioned in text (a deprecation warning that names
/// `metrics_collected`) is not.
pub fn names_a_family(message: &str) -> bool {
    static NAMED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        let logged: Vec<String> = markers::LOGGED
            .iter()
            .map(|(m, _)| *m)
            .chain(markers::LOGGED_IGNORED)
            .chain(markers::APP_MESSAGES)
            .map(regex::escape)
            .collect();
        let types: Vec<String> = markers::WRAPPERS.iter().map(|m| regex::escape(m)).collect();
        regex::Regex::new(&format!(
            r#"\\?"(?:_?event_type)\\?"\s*:\s*\\?"|\\?"type\\?"\s*:\s*\\?"(?:[a-z_]+_metrics|{})\\?"|\\?"(?:message|msg|event)\\?"\s*:\s*\\?"(?:{})\\?""#,
            types.join("|"),
            logged.join("|")
        ))
        .expect("the family pattern compiles")
    });
    mentions_our_events(message) && NAMED.is_match(message)
}

fn classify_failure(message: &str, error: serde_json::Error) -> Extracted<'_> {
    if !mentions_our_events(message) {
        return Extracted::Skip(SkipReason::NoJson);
    }
    let text = error.to_string();
    if text.starts_with("recursion limit exceeded") {
        return Extracted::Reject { reason: RejectReason::TooDeep, detail: text };
    }
    if text.starts_with("duplicate field") {
        return Extracted::Reject { reason: RejectReason::DuplicateKey, detail: text };
    }
    if has_non_finite_token(message) {
        return Extracted::NeedsRepair;
    }
    Extracted::Reject { reason: RejectReason::MalformedJson, detail: text }
}

/// A line of text with the object after it (LiveKit's dev and console formats, Python's logging
/// formats: `2025-11-12 15:33:00,101 - INFO livekit.agents - LLM metrics {…}`): the text before the
/// object is the record's message when the object has none, and its leading time the record's.
fn take_text_prefix<'a>(event: &mut RawEvent<'a>, prefix: &'a str) {
    if event.log_message().is_none()
        && let Some(m) = prefix_message(prefix)
    {
        event.message = crate::lenient::Text::Value(Cow::Owned(m));
    }
    if matches!(event.asctime, crate::lenient::Stamp::Missing)
        && let Some(time) = prefix.get(..23).filter(|t| has_asctime_shape(t))
    {
        event.asctime = crate::lenient::Stamp::Text(Cow::Borrowed(time));
    }
}

/// `YYYY-MM-DD hh:mm:ss,mmm` (or with `T` and `.`): the stamp is kept as text and parsed only if
/// the event has no better time, which most do, so the check on every line stays a byte test.
fn has_asctime_shape(t: &str) -> bool {
    const SHAPE: &[u8; 23] = b"0000-00-00 00:00:00,000";
    t.len() == SHAPE.len()
        && t.bytes().zip(SHAPE).all(|(b, s)| match s {
            b'0' => b.is_ascii_digit(),
            b' ' => b == b' ' || b == b'T',
            b',' => b == b',' || b == b'.',
            _ => b == *s,
        })
}

/// The message a text prefix ends with: a family's message where it ends with one, else the text
/// after its last ` - ` (the separator of Python's and LiveKit's formats). Terminal colour codes are
/// dropped.
fn prefix_message(prefix: &str) -> Option<String> {
    let plain: String = strip_ansi(prefix);
    let plain = plain.trim();
    let known = markers::LOGGED.iter().map(|(m, _)| *m).chain(markers::LOGGED_IGNORED).chain(markers::APP_MESSAGES);
    if let Some(m) = known.into_iter().find(|m| plain.ends_with(m)) {
        return Some(m.to_owned());
    }
    plain.rsplit_once(" - ").map(|(_, m)| m.trim().to_owned()).filter(|m| !m.is_empty())
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The object one level down that carries a family marker, with identity inherited from `outer`.
fn nested_event<'a>(text: &'a str, outer: &RawEvent<'a>) -> Option<RawEvent<'a>> {
    // Cheap test first: a nested event needs one of these keys, and most foreign lines have none.
    static KEYS: LazyLock<[memmem::Finder<'static>; 2]> =
        LazyLock::new(|| [memmem::Finder::new(b"event_type\""), memmem::Finder::new(b"\"type\"")]);
    if KEYS.iter().all(|k| k.find(text.as_bytes()).is_none()) && !names_a_family(text) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let fields: BTreeMap<Cow<'a, str>, &'a RawValue> = Deserialize::deserialize(&mut de).ok()?;
    fields.values().filter(|raw| raw.get().starts_with('{')).find_map(|raw| {
        let mut inner: RawEvent<'a> = serde_json::from_str(raw.get()).ok()?;
        if matches!(inner.family(), Family::Unknown) {
            return None;
        }
        inner.inherit_from(outer);
        Some(inner)
    })
}

/// Whether a message that failed to parse was meant to be one of our events, so that its failure is
/// a reject a user should see rather than a foreign line to skip.
pub fn mentions_our_events(message: &str) -> bool {
    // The marker fields, and the shapes of the component markers: `…_metrics"` for a `type`,
    // `… metrics"` for a `log_metrics()` message; the wrappers by name.
    const SHAPES: [&str; 4] = ["_event_type", "\"event_type\"", "_metrics\"", " metrics\""];
    static MARKERS: LazyLock<Vec<memmem::Finder<'static>>> = LazyLock::new(|| {
        SHAPES.iter().chain(&markers::WRAPPERS).chain(&markers::APP_EVENTS).map(|m| memmem::Finder::new(m.as_bytes())).collect()
    });
    MARKERS.iter().any(|m| m.find(message.as_bytes()).is_some())
}

fn has_non_finite_token(message: &str) -> bool {
    let b = message.as_bytes();
    memmem::find(b, b"NaN").is_some() || memmem::find(b, b"Infinity").is_some()
}

/// Replaces Python's bare `NaN`, `Infinity` and `-Infinity` (what `json.dumps` writes for
/// non-finite floats) outside strings with `null`. Returns the text and how many were replaced.
pub fn repair_non_finite(message: &str) -> (String, u32) {
    let b = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    let mut replaced = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut copied_to = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        let token_len = if c == b'"' {
            in_string = true;
            0
        } else if b[i..].starts_with(b"NaN") {
            3
        } else if b[i..].starts_with(b"Infinity") {
            8
        } else if b[i..].starts_with(b"-Infinity") {
            9
        } else {
            0
        };
        if token_len > 0 {
            out.push_str(&message[copied_to..i]);
            out.push_str("null");
            replaced += 1;
            i += token_len;
            copied_to = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&message[copied_to..]);
    (out, replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(message: &str) -> Family {
        match extract(message) {
            Extracted::Event(e) => e.family(),
            other => panic!("expected an event in {message:?}, got {other:?}"),
        }
    }

    #[test]
    fn bare_prefixed_and_lambda_prefixed_objects() {
        let obj = r#"{"_event_type":"voice_metrics","total_latency":1.2}"#;
        assert_eq!(family(obj), Family::VoiceMetrics);
        assert_eq!(family(&format!("2026-11-23 14:00:01,123 INFO voice-agent: {obj}")), Family::VoiceMetrics);
        assert_eq!(family(&format!("2026-11-23T14:00:01.123Z\t3f1c2a4e-1b2c-4d5e-8f90-123456789abc\tINFO\t{obj}\n")), Family::VoiceMetrics);
        assert_eq!(family(&format!("[{{pid}}] worker: {obj} trailing text")), Family::VoiceMetrics);
    }

    #[test]
    fn one_level_down_inherits_identity_from_the_formatter() {
        let line = r#"{"message": "analytics", "timestamp": "2026-11-23T14:00:00+00:00", "room_id": "RM_1",
            "analytics_data": {"_event_type": "session_analytics", "_session_id": "s-1"}}"#;
        let Extracted::Event(e) = extract(line) else { panic!() };
        assert_eq!(e.family(), Family::SessionAnalytics);
        assert_eq!(e.private_session_id.get(), Some("s-1"));
        assert_eq!(e.timestamp.millis(), crate::timefmt::parse_event_time("2026-11-23T14:00:00+00:00"));
        assert_eq!(e.room_id.get(), Some("RM_1"));
    }

    #[test]
    fn an_event_two_levels_down_is_rejected_with_the_reason_not_skipped() {
        let line = r#"{"a": {"b": {"_event_type": "voice_metrics", "total_latency": 1}}}"#;
        assert!(matches!(extract(line), Extracted::Reject { reason: RejectReason::UnrecognizedShape, .. }));
        // A marker mentioned in text is not a family named: LiveKit's own deprecation warning.
        let warning = r#"{"message": "metrics_collected is deprecated. Use session_usage_updated for usage tracking", "level": "WARNING"}"#;
        assert!(matches!(extract(warning), Extracted::Skip(SkipReason::NotAnEvent)));
    }

    #[test]
    fn a_second_object_on_the_line_is_found() {
        let line = r#"ctx={"worker": 1} event={"type": "llm_metrics", "ttft": 0.3}"#;
        assert_eq!(family(line), Family::Component { component: crate::event::Component::Llm, logged: false });
    }

    #[test]
    fn plain_text_and_foreign_json_are_skipped() {
        assert!(matches!(extract("INFO livekit.agents: registered worker"), Extracted::Skip(SkipReason::NoJson)));
        assert!(matches!(extract(""), Extracted::Skip(SkipReason::NoJson)));
        assert!(matches!(extract("formatting {user} failed"), Extracted::Skip(SkipReason::NoJson)));
        assert!(matches!(extract(r#"{"message": "received job request", "job_id": "AJ_1"}"#), Extracted::Skip(SkipReason::NotAnEvent)));
        assert!(matches!(extract("[1, 2, 3]"), Extracted::Skip(SkipReason::NoJson)));
    }

    #[test]
    fn broken_objects_that_name_our_events_are_rejected_with_the_parser_error() {
        let truncated = r#"{"_event_type": "voice_metrics", "eou": {"delay": 0.2"#;
        match extract(truncated) {
            Extracted::Reject { reason: RejectReason::MalformedJson, detail } => assert!(detail.contains("EOF"), "{detail}"),
            other => panic!("{other:?}"),
        }
        let dup = r#"{"_event_type": "voice_metrics", "total_latency": 1, "total_latency": 2}"#;
        assert!(matches!(extract(dup), Extracted::Reject { reason: RejectReason::DuplicateKey, .. }));
    }

    #[test]
    fn deep_nesting_neither_recurses_nor_costs_the_event() {
        // The fields the contract knows have bounded depth and everything else is skipped by an
        // iterative scanner, so 10,000 levels cannot exhaust a stack.
        let deep =
            format!(r#"{{"_event_type": "voice_metrics", "total_latency": 1.1, "x": {}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
        let Extracted::Event(e) = extract(&deep) else { panic!("the event survives its deep field") };
        assert_eq!(e.total_latency, crate::lenient::Number::Value(1.1));
        let objects = format!(r#"{}"_event_type": "voice_metrics"{}"#, r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        assert!(matches!(extract(&objects), Extracted::Skip(_) | Extracted::Reject { .. }));
        assert!(matches!(extract(&"[".repeat(100_000)), Extracted::Skip(SkipReason::NoJson)));
    }

    #[test]
    fn python_non_finite_tokens_are_repaired_outside_strings_only() {
        let line = r#"{"_event_type": "voice_metrics", "note": "NaN stays", "tts_ttfb": NaN, "x": -Infinity, "y": [Infinity]}"#;
        assert!(matches!(extract(line), Extracted::NeedsRepair));
        let (fixed, n) = repair_non_finite(line);
        assert_eq!(n, 3);
        assert_eq!(fixed, r#"{"_event_type": "voice_metrics", "note": "NaN stays", "tts_ttfb": null, "x": null, "y": [null]}"#);
        assert_eq!(family(&fixed), Family::VoiceMetrics);
        let escaped = r#"{"s": "a \"NaN\" b", "n": NaN}"#;
        assert_eq!(repair_non_finite(escaped), (r#"{"s": "a \"NaN\" b", "n": null}"#.to_string(), 1));
    }
}
