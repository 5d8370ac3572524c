//! Personal data in free-form fields, before it reaches the lake.
//!
//! Agents put what callers say into `discovered_signals` (emails, phone numbers), telephony puts
//! caller numbers into room names and so into session ids, and rejects keep the raw message. By
//! default every email address and phone number found there is replaced by a stable pseudonym
//! (`email:` or `phone:` and 16 hex digits of its SHA-256), so calls stay joinable and counts stay
//! true without storing the value. `drop` replaces them with `[redacted]`; `keep` stores them.

use std::borrow::Cow;
use std::sync::LazyLock;

use std::sync::Arc;

use hmac::{Hmac, Mac};
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

/// The secret pseudonyms are keyed with: the stack's generated secret, or the CLI's key file.
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymKey(Arc<[u8]>);

/// The shortest key accepted: 128 bits, written as text.
pub const MIN_KEY_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the pseudonym key is {0} bytes; at least {MIN_KEY_BYTES} are needed")]
    TooShort(usize),
    #[error("the pseudonym key file {path}: {source}")]
    File { path: String, source: std::io::Error },
}

impl PseudonymKey {
    /// The key as written (a secret's text or a file's content), surrounding whitespace aside, so
    /// that the stack's secret saved to a file gives the same key.
    pub fn new(text: &[u8]) -> Result<PseudonymKey, KeyError> {
        let trimmed = text.trim_ascii();
        if trimmed.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(trimmed.len()));
        }
        Ok(PseudonymKey(trimmed.into()))
    }

    pub fn from_file(path: &std::path::Path) -> Result<PseudonymKey, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::File { path: path.display().to_string(), source })?;
        PseudonymKey::new(&bytes)
    }
}

// Never printed: configurations are logged and compared in tests.
impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

/// The variable the template sets on the functions: the ARN of the pseudonym key's secret.
pub const KEY_ARN_VARIABLE: &str = "VOICELAKE_PSEUDONYM_KEY_ARN";

/// What is done with personal data: the mode, and the key pseudonyms are made with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scrub<'a> {
    pub mode: PiiMode,
    pub key: Option<&'a PseudonymKey>,
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

/// `kind:` and 16 hex digits: of the SHA-256 of the normalized value, or with a key of the
/// HMAC-SHA-256 of `kind:value` (the kind inside, so that an email and a phone never share one).
fn pseudonym(kind: &str, value: &str, key: Option<&PseudonymKey>) -> String {
    let normalized: String = if kind == "phone" { value.chars().filter(|c| c.is_ascii_digit()).collect() } else { value.to_lowercase() };
    let digest: Vec<u8> = match key {
        None => Sha256::digest(normalized.as_bytes()).to_vec(),
        Some(k) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(&k.0).expect("HMAC takes a key of any length");
            mac.update(kind.as_bytes());
            mac.update(b":");
            mac.update(normalized.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{kind}:{hex}")
}

/// `text` with every email address and phone number handled by `mode`, pseudonyms unkeyed.
pub fn scrub(text: &str, mode: PiiMode) -> Cow<'_, str> {
    scrub_with(text, Scrub { mode, key: None })
}

/// `text` with every email address and phone number handled by `how`.
pub fn scrub_with<'t>(text: &'t str, how: Scrub<'_>) -> Cow<'t, str> {
    let Scrub { mode, key } = how;
    if mode == PiiMode::Keep {
        return Cow::Borrowed(text);
    }
    let replace = |kind: &'static str| {
        move |caps: &regex::Captures| match mode {
            PiiMode::Drop => "[redacted]".to_owned(),
            _ => pseudonym(kind, &caps[0], key),
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
            _ => pseudonym("phone", m.as_str(), key),
        });
        copied = end;
    }
    phones.push_str(&emails[copied..]);
    if phones == text { Cow::Borrowed(text) } else { Cow::Owned(phones) }
}

/// Applies the personal-data policy to the ids and free-text fields of every row: what an agent
/// writes there (an outcome, a failure reason, a tool's error) may quote the caller.
pub(crate) fn scrub_batch(out: &mut BatchOutput, how: Scrub<'_>) {
    if how.mode == PiiMode::Keep {
        return;
    }
    let fix = |s: &mut String| scrub_in_place(s, how);
    for t in &mut out.turns {
        t.session_id.as_mut().map(fix);
    }
    for s in &mut out.sessions {
        fix(&mut s.session_id);
        s.discovered_signals.values_mut().for_each(fix);
        s.tool_calls.iter_mut().filter_map(|c| c.error.as_mut()).for_each(fix);
        s.outcome.as_mut().map(fix);
        s.setup_failure_reason.as_mut().map(fix);
        s.value_issues.iter_mut().for_each(fix);
    }
    for r in &mut out.rejects {
        scrub_reject(r, how);
    }
    // A provider's error text may quote what the caller said (a request body).
    for e in &mut out.errors {
        e.session_id.as_mut().map(fix);
        fix(&mut e.message);
        e.value_issues.iter_mut().for_each(fix);
    }
}

/// Applies the personal-data policy to a reject row's raw input and detail.
pub(crate) fn scrub_reject(reject: &mut RejectRow, how: Scrub<'_>) {
    scrub_in_place(&mut reject.raw_message, how);
    scrub_in_place(&mut reject.detail, how);
}

/// Applies the personal-data policy to one value in place.
pub fn scrub_in_place(text: &mut String, how: Scrub<'_>) {
    if let Cow::Owned(clean) = scrub_with(text, how) {
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
    fn keyed_pseudonyms_are_stable_under_a_key_and_not_found_by_enumeration_without_it() {
        let key = PseudonymKey::new(b"  0123456789abcdef0123456789abcdef\n").unwrap();
        let keyed = |t: &str| scrub_with(t, Scrub { mode: PiiMode::Hash, key: Some(&key) }).into_owned();
        let caller = keyed("caller +1 510 555 0123");
        assert_eq!(caller, keyed("caller +15105550123"), "the same number, the same pseudonym under one key");
        assert_ne!(caller, scrub("caller +15105550123", PiiMode::Hash), "keyed and plain differ");
        let other = PseudonymKey::new(b"another key of enough length!!").unwrap();
        assert_ne!(caller, scrub_with("caller +15105550123", Scrub { mode: PiiMode::Hash, key: Some(&other) }));
        // Someone with the lake but not the key enumerates the exchange: the plain hash gives the
        // number away, the keyed one does not.
        let target = caller.trim_start_matches("caller ");
        let plain = scrub("+15105550123", PiiMode::Hash).into_owned();
        let mut found_plain = None;
        for n in 0..10_000 {
            let guess = format!("+1510555{n:04}");
            let p = pseudonym("phone", &guess, None);
            if p == plain {
                found_plain = Some(guess.clone());
            }
            assert_ne!(p, target, "{guess} reverses the keyed pseudonym without the key");
        }
        assert_eq!(found_plain.as_deref(), Some("+15105550123"));
        assert!(matches!(PseudonymKey::new(b"short\n"), Err(KeyError::TooShort(5))));
        assert_eq!(format!("{key:?}"), "PseudonymKey(..)");
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
