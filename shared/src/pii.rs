//! Personal data in free-form fields, before it reaches the lake.
//!
//! Agents put what callers say into `discovered_signals` (emails, phone numbers), telephony puts
//! caller numbers into room names and so into session ids, and rejects keep the raw message. By
//! default every email address and phone number found there is replaced by a stable pseudonym
//! (`email:` or `phone:` and 16 hex digits of its SHA-256), so calls stay joinable and counts stay
//! true without storing the value. `drop` replaces them with `[redacted]`; `keep` stores them.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

use crate::batch::BatchOutput;
use crate::rows::RejectRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PiiMode {
    /// Replace by a pseudonym (the default).
    #[default]
    Hash,
    /// Replace by `[redacted]`.
    Drop,
    /// Store as logged.
    Keep,
}

impl std::str::FromStr for PiiMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hash" => Ok(PiiMode::Hash),
            "drop" => Ok(PiiMode::Drop),
            "keep" => Ok(PiiMode::Keep),
            other => Err(format!("{other:?}: expected hash, drop or keep")),
        }
    }
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b").expect("the email pattern compiles"));
/// Candidates for a phone number: digits, with `+`, spaces, dashes, dots and parentheses between
/// them. [`is_phone`] decides.
static PHONE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\+?\(?\d[\d \-.()]*\d").expect("the phone pattern compiles"));
static DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}$").expect("the date pattern compiles"));

/// Whether the candidate `m`, found at `start..end` of `text`, is a phone number: 7 to 15 digits
/// (E.164 or national, with the usual separators), bounded by characters that are not letters or
/// digits (an underscore bounds it: SIP dispatch rooms write `call-_+15105550123_aBc1`). Not a
/// phone number: digits inside an identifier (`RM_6e17c3018663`), a date, a decimal (`1765184401.5`),
/// an epoch time in seconds or milliseconds without separators, or a JSON number (an agent logs a
/// caller's number as text).
fn is_phone(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    if before.is_some_and(char::is_alphanumeric) || after.is_some_and(char::is_alphanumeric) {
        return false;
    }
    // A decimal's fraction or integer part: `1765184401.5`, `0.1234567`.
    if before == Some('.') || (after == Some('.') && text[end + 1..].starts_with(|c: char| c.is_ascii_digit())) {
        return false;
    }
    let n = digits(m);
    if !(7..=15).contains(&n) || DATE.is_match(m) {
        return false;
    }
    let groups: Vec<&str> = m.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
    if groups.last().is_some_and(|g| g.len() < 2) {
        return false;
    }
    // One dot and nothing else between the digits: a decimal (`12500.00`), not `555.010.4477`.
    if m.matches('.').count() == 1 && m.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return false;
    }
    let bare = groups.len() == 1 && !m.starts_with('+');
    if bare {
        // Epoch seconds or milliseconds of 2001-2033, as agents log times.
        if (n == 10 || n == 13) && m.starts_with('1') {
            return false;
        }
        // A JSON number: a value after `:`, or an element of an array.
        let previous = text[..start].trim_end().chars().next_back();
        if matches!(previous, Some(':' | '[')) || (previous == Some(',') && !text[..start].trim_end().ends_with("\",")) {
            return false;
        }
    }
    true
}

fn digits(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

fn pseudonym(kind: &str, value: &str) -> String {
    let normalized: String = if kind == "phone" { value.chars().filter(|c| c.is_ascii_digit()).collect() } else { value.to_lowercase() };
    let digest = Sha256::digest(normalized.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{kind}:{hex}")
}

/// `text` with every email address and phone number handled by `mode`.
pub fn scrub(text: &str, mode: PiiMode) -> Cow<'_, str> {
    if mode == PiiMode::Keep {
        return Cow::Borrowed(text);
    }
    let replace = |kind: &'static str| {
        move |caps: &regex::Captures| match mode {
            PiiMode::Drop => "[redacted]".to_owned(),
            _ => pseudonym(kind, &caps[0]),
        }
    };
    let emails = EMAIL.replace_all(text, replace("email"));
    let mut phones = String::with_capacity(emails.len());
    let mut copied = 0;
    for m in PHONE.find_iter(&emails) {
        // A candidate's leading `(` belongs to the number only when it closes too.
        let (start, end) = (m.start(), m.end());
        if !is_phone(&emails, start, end) {
            continue;
        }
        phones.push_str(&emails[copied..start]);
        phones.push_str(&match mode {
            PiiMode::Drop => "[redacted]".to_owned(),
            _ => pseudonym("phone", m.as_str()),
        });
        copied = end;
    }
    phones.push_str(&emails[copied..]);
    if phones == text { Cow::Borrowed(text) } else { Cow::Owned(phones) }
}

/// Applies the personal-data policy to the free-form fields of every row.
pub(crate) fn scrub_batch(out: &mut BatchOutput, mode: PiiMode) {
    if mode == PiiMode::Keep {
        return;
    }
    let fix = |s: &mut String| scrub_in_place(s, mode);
    for t in &mut out.turns {
        t.session_id.as_mut().map(fix);
    }
    for s in &mut out.sessions {
        fix(&mut s.session_id);
        s.discovered_signals.values_mut().for_each(fix);
        s.tool_calls.iter_mut().filter_map(|c| c.error.as_mut()).for_each(fix);
    }
    for r in &mut out.rejects {
        scrub_reject(r, mode);
    }
}

/// Applies the personal-data policy to a reject row's raw input and detail.
pub(crate) fn scrub_reject(reject: &mut RejectRow, mode: PiiMode) {
    scrub_in_place(&mut reject.raw_message, mode);
    scrub_in_place(&mut reject.detail, mode);
}

fn scrub_in_place(text: &mut String, mode: PiiMode) {
    if let Cow::Owned(clean) = scrub(text, mode) {
        *text = clean;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_phone_numbers_become_stable_pseudonyms() {
        let a = scrub("call me at +1 (555) 010-4477 or jane.doe@Example.com", PiiMode::Hash);
        let b = scrub("+15550104477 / JANE.DOE@example.com", PiiMode::Hash);
        assert!(!a.contains("555") && !a.contains("jane"), "{a}");
        let email = |s: &str| s.split_whitespace().find(|w| w.starts_with("email:")).unwrap().to_owned();
        let phone = |s: &str| s.split_whitespace().find(|w| w.starts_with("phone:")).unwrap().to_owned();
        assert_eq!(email(&a), email(&b), "the same address, the same pseudonym");
        assert_eq!(phone(&a), phone(&b), "the same number, whatever its punctuation");
        assert_eq!(email(&a).len(), "email:".len() + 16);
    }

    #[test]
    fn drop_and_keep() {
        assert_eq!(scrub("lead@example.com, +44 20 7946 0958", PiiMode::Drop), "[redacted], [redacted]");
        assert_eq!(scrub("lead@example.com", PiiMode::Keep), "lead@example.com");
    }

    #[test]
    fn ordinary_values_are_left_alone() {
        for text in [
            "book_demo",
            "51-200",
            "2026-11-23",
            "14:05:01",
            "speech_5f1c2d3e4a6b",
            "RM_h7Fq2LkP9w",
            "1432",
            "4.21",
            "call-0d249213a3",
            "true",
            "12500.00",
            "3f1c2a4e-1b2c-4d5e-8f90-123456789abc",
            "RM_6e17c3018663",
            "AJ_Xq7mTr2kLp9a",
            r#"{"_timestamp": 1765184401.0, "time": 1731234560104, "epoch": 1765184401, "bytes": [12345678, 23456789]}"#,
            "speech_3f1a9c0d7e21",
            "0.123456789",
        ] {
            assert_eq!(scrub(text, PiiMode::Hash), text);
        }
    }

    #[test]
    fn numbers_in_identifiers_are_found_where_they_stand_alone() {
        let room = scrub("call-_+15105550123_aBc1", PiiMode::Hash);
        assert!(room.starts_with("call-_phone:") && room.ends_with("_aBc1") && !room.contains("5105550123"), "{room}");
        assert_eq!(room, scrub("call-_+1 510 555 0123_aBc1", PiiMode::Hash), "the same pseudonym whatever the separators");
        for text in ["sip_+447700900123", "room-+33612345678", "caller (510) 555-0123.", "\"+15105550123\""] {
            assert!(scrub(text, PiiMode::Hash).contains("phone:"), "{text}");
        }
    }
}
