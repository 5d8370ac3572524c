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
/// International or grouped numbers of 7 to 15 digits (E.164, spaces, dashes, parentheses): long
/// enough not to catch small numbers, and every phone number a caller dictates. Runs of 7 to 15
/// digits count as phone numbers; decimals and ISO dates do not.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+\d{1,3}[\s-]?)?(?:\(\d{1,4}\)[\s-]?)?\d{2,4}(?:[\s-]?\d{2,4}){2,4}\b|\+\d{7,15}\b")
        .expect("the phone pattern compiles")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}$").expect("the date pattern compiles"));

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
    let phones = PHONE.replace_all(&emails, |caps: &regex::Captures| {
        let m = &caps[0];
        // Dates, times and ids with separators look like numbers; a phone number has 7 to 15 digits.
        if !(7..=15).contains(&digits(m)) || DATE.is_match(m) {
            return m.to_owned();
        }
        match mode {
            PiiMode::Drop => "[redacted]".to_owned(),
            _ => pseudonym("phone", m),
        }
    });
    if phones == text { Cow::Borrowed(text) } else { Cow::Owned(phones.into_owned()) }
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
        ] {
            assert_eq!(scrub(text, PiiMode::Hash), text);
        }
    }
}
