//! What stands between an agent's stdout and CloudWatch Logs. Voice agents mostly run in containers,
//! and their lines reach CloudWatch through a log router or a container runtime that wraps them:
//!
//! - ECS FireLens / Fluent Bit's `cloudwatch_logs` output writes the whole record, the line as a
//!   string under `log` beside `container_id`, `container_name`, `source`, `ecs_cluster`,
//!   `ecs_task_arn`, `ecs_task_definition`; with a JSON parser filter the line's keys are merged
//!   into the record instead;
//! - Docker's `json-file` records: `{"log": "<line>\n", "stream", "time"}`, a line over 16 KiB cut
//!   into parts whose `log` has no newline but the last's;
//! - Fluent Bit on Kubernetes (EKS Container Insights): `time`, `stream`, `_p`, `log`,
//!   `log_processed`, `kubernetes`, or the line's keys merged beside `kubernetes`;
//! - containerd's CRI log lines: `<RFC3339Nano> stdout|stderr F|P <line>`, `P` for a part that
//!   continues;
//! - loguru's `serialize=True`: `{"text", "record": {"extra": {…}, "message", "time"}}`.
//!
//! [`unwrap`] takes the wrapper off (cheaply: a line that names none of these keys is not parsed
//! here) and keeps what it says: the workload it names and the time it gives. The logging
//! libraries that write the event's keys at the top level (pino, bunyan, winston, structlog,
//! python-json-logger) need no unwrapping; their message and time keys are read with the event.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use memchr::memmem;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::lenient::Text;

/// How a line was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Form {
    /// As the agent wrote it.
    #[default]
    Bare,
    /// The line as a string in a router's or runtime's record (`log`).
    Record,
    /// The line's keys merged into a router's record, beside its metadata.
    Merged,
    /// A containerd CRI log line.
    Cri,
    /// loguru's serialized record.
    Loguru,
}

/// Whether a line is whole, or a part of one that a runtime cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Part {
    #[default]
    Whole,
    /// A part the next one continues.
    Continues,
    /// The last part of a cut line.
    Last,
}

/// What the wrapper says about the line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivery {
    pub form: Form,
    /// The workload the wrapper names: an ECS task definition's family, a Kubernetes app label or
    /// the pod's name without its generated suffixes, a container name.
    pub workload: Option<String>,
    /// The wrapper's time of the line, epoch milliseconds.
    pub time_ms: Option<i64>,
    pub part: Part,
}

/// A log event's message with its wrapper taken off.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrapped<'a> {
    /// The agent's own line.
    pub line: Cow<'a, str>,
    pub delivery: Delivery,
}

/// Keys only a router's or runtime's record has: a line that names none of them is not parsed here.
/// Every line pays for this test, so the searchers are built once.
static ROUTER_KEYS: LazyLock<[memmem::Finder<'static>; 6]> = LazyLock::new(|| {
    [&b"\"log\""[..], b"\"log_processed\"", b"\"kubernetes\"", b"\"ecs_task_definition\"", b"\"container_name\"", b"\"record\""]
        .map(memmem::Finder::new)
});

/// Takes off whatever wrapper `message` came in.
pub fn unwrap(message: &str) -> Unwrapped<'_> {
    if let Some((line, time_ms, part)) = strip_cri(message) {
        let inner = unwrap_record(line).unwrap_or_else(|| Unwrapped { line: Cow::Borrowed(line), delivery: Delivery::default() });
        let delivery = Delivery { form: Form::Cri, time_ms: inner.delivery.time_ms.or(time_ms), part, ..inner.delivery };
        return Unwrapped { line: inner.line, delivery };
    }
    unwrap_record(message).unwrap_or_else(|| Unwrapped { line: Cow::Borrowed(message), delivery: Delivery::default() })
}

/// `<RFC3339Nano> stdout|stderr F|P <line>` → the line, its time, and whether it continues.
fn strip_cri(message: &str) -> Option<(&str, Option<i64>, Part)> {
    let b = message.as_bytes();
    // Cheap: a year, a dash, and the stream name soon after.
    if b.len() < 30 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let (time, rest) = message.split_once(' ')?;
    let rest = rest.strip_prefix("stdout ").or_else(|| rest.strip_prefix("stderr "))?;
    let (tag, line) = rest.split_at_checked(1)?;
    let line = line.strip_prefix(' ').or_else(|| line.is_empty().then_some(""))?;
    let part = match tag {
        "F" => Part::Whole,
        "P" => Part::Continues,
        _ => return None,
    };
    let time_ms = chrono::DateTime::parse_from_rfc3339(time).ok()?.timestamp_millis();
    Some((line, Some(time_ms).filter(|t| crate::timefmt::in_range(*t)), part))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Record<'a> {
    #[serde(borrow)]
    log: Text<'a>,
    #[serde(borrow)]
    log_processed: Option<&'a RawValue>,
    #[serde(borrow)]
    stream: Text<'a>,
    #[serde(borrow)]
    time: Text<'a>,
    #[serde(borrow)]
    source: Text<'a>,
    #[serde(borrow, rename = "_p")]
    cri_tag: Text<'a>,
    #[serde(borrow)]
    container_id: Text<'a>,
    #[serde(borrow)]
    container_name: Text<'a>,
    #[serde(borrow)]
    ecs_task_definition: Text<'a>,
    #[serde(borrow)]
    kubernetes: Option<Kubernetes<'a>>,
    #[serde(borrow)]
    partial_message: Text<'a>,
    #[serde(borrow)]
    partial_last: Text<'a>,
    #[serde(borrow)]
    text: Text<'a>,
    #[serde(borrow)]
    record: Option<LoguruRecord<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Kubernetes<'a> {
    #[serde(borrow)]
    pod_name: Text<'a>,
    #[serde(borrow)]
    container_name: Text<'a>,
    #[serde(borrow)]
    labels: BTreeMap<Cow<'a, str>, Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoguruRecord<'a> {
    #[serde(borrow)]
    extra: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Text<'a>,
    time: Option<LoguruTime>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoguruTime {
    timestamp: Option<f64>,
}

impl Record<'_> {
    /// The workload the record names.
    fn workload(&self) -> Option<String> {
        if let Some(family) = self.ecs_task_definition.get().and_then(|d| d.split(':').next()).filter(|f| !f.is_empty()) {
            return Some(family.to_owned());
        }
        if let Some(k) = &self.kubernetes {
            let label = ["app.kubernetes.io/name", "app"].iter().find_map(|l| k.labels.get(*l).and_then(Text::get));
            if let Some(name) = label.or_else(|| k.pod_name.get().map(pod_workload)).or_else(|| k.container_name.get()) {
                return Some(name.to_owned());
            }
        }
        self.container_name.get().map(ecs_container_workload)
    }

    fn is_router_record(&self) -> bool {
        [&self.stream, &self.time, &self.source, &self.cri_tag, &self.container_id, &self.container_name, &self.ecs_task_definition]
            .iter()
            .any(|t| t.get().is_some())
            || self.kubernetes.is_some()
            || self.log_processed.is_some()
    }
}

/// A record of a router or runtime, loguru's included; `None` for a line that is not one.
fn unwrap_record(message: &str) -> Option<Unwrapped<'_>> {
    let trimmed = message.trim_start();
    if !trimmed.starts_with('{') || !ROUTER_KEYS.iter().any(|k| k.find(trimmed.as_bytes()).is_some()) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(trimmed);
    let record = Record::deserialize(&mut de).ok()?;
    if let (Some(text), Some(loguru)) = (record.text.get(), &record.record) {
        return Some(unwrap_loguru(text, loguru));
    }
    if !record.is_router_record() {
        return None;
    }
    let time_ms = record.time.get().and_then(crate::timefmt::parse_event_time);
    let workload = record.workload();
    let delivery = |form, part| Delivery { form, workload: workload.clone(), time_ms, part };
    if let Some(log) = record.log.get() {
        let part = if record.partial_message.get() == Some("true") {
            if record.partial_last.get() == Some("true") { Part::Last } else { Part::Continues }
        } else if is_json_file_part(&record, log) {
            Part::Continues
        } else {
            Part::Whole
        };
        let log = log.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(log);
        // A Kubernetes record whose `log` still carries the CRI prefix.
        let (line, cri_time, part) = match strip_cri(log) {
            Some((line, time, cri_part)) => (line, time, if part == Part::Whole { cri_part } else { part }),
            None => (log, None, part),
        };
        let line = Cow::Owned(line.to_owned());
        let mut d = delivery(Form::Record, part);
        d.time_ms = d.time_ms.or(cri_time);
        return Some(Unwrapped { line, delivery: d });
    }
    if let Some(processed) = record.log_processed.filter(|p| p.get().starts_with('{')) {
        return Some(Unwrapped { line: Cow::Owned(processed.get().to_owned()), delivery: delivery(Form::Record, Part::Whole) });
    }
    // The line's keys are the record's: only the metadata comes off.
    Some(Unwrapped { line: Cow::Borrowed(message), delivery: delivery(Form::Merged, Part::Whole) })
}

/// A `json-file` record of a line Docker cut at 16 KiB: its `log` has no newline, and nothing but
/// `json-file`'s own keys are there (a router's record carries the line without one whole).
fn is_json_file_part(record: &Record, log: &str) -> bool {
    !log.ends_with('\n')
        && record.stream.get().is_some()
        && record.time.get().is_some()
        && record.cri_tag.get().is_none()
        && record.source.get().is_none()
        && record.kubernetes.is_none()
        && record.log_processed.is_none()
}

/// loguru's record: the bound values are the event, the logged text its message.
fn unwrap_loguru<'a>(_text: &str, record: &LoguruRecord) -> Unwrapped<'a> {
    let extra = record.extra.map(RawValue::get).filter(|e| e.starts_with('{')).unwrap_or("{}");
    let message = record.message.get().filter(|m| !m.is_empty());
    let line = match message {
        Some(m) if memmem::find(extra.as_bytes(), b"\"message\"").is_none() => {
            let quoted = serde_json::to_string(m).expect("a string serializes");
            let body = extra.trim_start_matches('{').trim_start();
            if body.starts_with('}') { format!("{{\"message\":{quoted}}}") } else { format!("{{\"message\":{quoted},{body}") }
        }
        _ => extra.to_owned(),
    };
    let time_ms = record.time.as_ref().and_then(|t| t.timestamp).and_then(crate::timefmt::from_epoch);
    Unwrapped { line: Cow::Owned(line), delivery: Delivery { form: Form::Loguru, time_ms, ..Delivery::default() } }
}

/// A Kubernetes pod's name without the suffixes its controller generates: a Deployment's
/// `<name>-<replicaset hash>-<5 characters>`, a DaemonSet's or Job's `<name>-<5 characters>`.
/// Kubernetes draws both from an alphabet without vowels (`rand.SafeEncodeString`), so a word such
/// as `agent` is never taken for one.
pub fn pod_workload(pod: &str) -> &str {
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let strip = |s: &'_ str, lens: std::ops::RangeInclusive<usize>| -> Option<usize> {
        let (stem, tail) = s.rsplit_once('-')?;
        (lens.contains(&tail.len()) && tail.bytes().all(|b| SAFE.contains(&b)) && !stem.is_empty()).then_some(stem.len())
    };
    let Some(end) = strip(pod, 5..=5) else { return pod };
    let stem = &pod[..end];
    strip(stem, 6..=10).map_or(stem, |end| &stem[..end])
}

/// The workload of a container name: on ECS with EC2, Docker names a task's container
/// `/ecs-<task definition family>-<revision>-<container>-<hex>`; elsewhere the name is the
/// container's own.
pub fn ecs_container_workload(name: &str) -> String {
    let name = name.trim_start_matches('/');
    if let Some(rest) = name.strip_prefix("ecs-") {
        let parts: Vec<&str> = rest.split('-').collect();
        // The revision is the first all-digit part after at least one part of family.
        if let Some(rev) = parts.iter().skip(1).position(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            return parts[..rev + 1].join("-");
        }
    }
    name.to_owned()
}

/// The sizes at which container runtimes cut a long line: 16 KiB (Docker's json-file and
/// non-blocking awslogs before Docker 20.10.6, containerd, FireLens) and 256 KiB less
/// CloudWatch's 26 bytes of event overhead (Docker's awslogs), or the whole 256 KiB.
pub const SPLIT_SIZES: [usize; 3] = [16_384, 262_118, 262_144];

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"_event_type": "voice_metrics", "_session_id": "room-wrap-01", "speech_id": "speech_1"}"#;

    #[test]
    fn a_bare_line_is_itself() {
        let u = unwrap(LINE);
        assert_eq!((u.line.as_ref(), u.delivery.form), (LINE, Form::Bare));
        let with_log_key = r#"{"_event_type": "voice_metrics", "log": "an app field"}"#;
        assert_eq!(unwrap(with_log_key).delivery.form, Form::Bare, "a `log` key alone is the app's");
    }

    #[test]
    fn firelens_records_give_the_line_and_the_task_definition() {
        let record = serde_json::json!({"container_id": "7ad5", "container_name": "/ecs-voice-agent-7-app-a4eafbb3d4c7f1e16e00",
            "source": "stdout", "log": LINE, "ecs_cluster": "voice-prod", "ecs_task_definition": "voice-agent:7"})
        .to_string();
        let u = unwrap(&record);
        assert_eq!((u.line.as_ref(), u.delivery.form, u.delivery.workload.as_deref()), (LINE, Form::Record, Some("voice-agent")));
        assert_eq!(ecs_container_workload("/ecs-voice-agent-7-app-a4eafbb3d4c7f1e16e00"), "voice-agent");
        assert_eq!(ecs_container_workload("agent"), "agent");
    }

    #[test]
    fn docker_json_file_records_lose_their_newline_and_mark_their_parts() {
        let whole =
            serde_json::json!({"log": format!("{LINE}\n"), "stream": "stdout", "time": "2025-10-16T09:12:02.004158871Z"}).to_string();
        let u = unwrap(&whole);
        assert_eq!((u.line.as_ref(), u.delivery.part, u.delivery.time_ms), (LINE, Part::Whole, Some(1_760_605_922_004)));
        let part = serde_json::json!({"log": &LINE[..20], "stream": "stdout", "time": "2025-10-16T09:12:02Z"}).to_string();
        assert_eq!(unwrap(&part).delivery.part, Part::Continues);
    }

    #[test]
    fn cri_lines_and_kubernetes_records() {
        let cri = format!("2025-10-16T09:12:02.004158871Z stdout F {LINE}");
        let u = unwrap(&cri);
        assert_eq!((u.line.as_ref(), u.delivery.form, u.delivery.part), (LINE, Form::Cri, Part::Whole));
        assert_eq!(unwrap(&format!("2025-10-16T09:12:02Z stderr P {}", &LINE[..10])).delivery.part, Part::Continues);
        let eks = serde_json::json!({"time": "2025-10-16T09:12:02.004158871Z", "stream": "stdout", "_p": "F", "log": LINE,
            "kubernetes": {"pod_name": "support-agent-7d9c5b6f4-x2x7q", "container_name": "agent"}})
        .to_string();
        assert_eq!(unwrap(&eks).delivery.workload.as_deref(), Some("support-agent"));
        let labelled = serde_json::json!({"time": "2025-10-16T09:12:02Z", "stream": "stdout", "_event_type": "voice_metrics",
            "kubernetes": {"pod_name": "x-1", "labels": {"app": "sales-agent"}}})
        .to_string();
        let u = unwrap(&labelled);
        assert_eq!(
            (u.delivery.form, u.delivery.workload.as_deref(), u.line.as_ref()),
            (Form::Merged, Some("sales-agent"), labelled.as_str())
        );
        let prefixed =
            serde_json::json!({"log": format!("2025-10-16T09:12:02Z stdout F {LINE}"), "stream": "stdout", "_p": "F"}).to_string();
        assert_eq!(unwrap(&prefixed).line, LINE, "a log string that still carries the CRI prefix");
    }

    #[test]
    fn pod_names_lose_their_generated_suffixes() {
        assert_eq!(pod_workload("support-agent-7d9c5b6f4-x2x7q"), "support-agent");
        assert_eq!(pod_workload("fluent-bit-x2x7q"), "fluent-bit");
        assert_eq!(pod_workload("voice-agent"), "voice-agent");
        assert_eq!(pod_workload("db-0"), "db-0");
    }

    #[test]
    fn loguru_records_give_the_bound_event_with_its_message() {
        let record = serde_json::json!({"text": "… - LLM metrics\n", "record": {"extra": {"ttft": 0.4, "job_id": "AJ_1"},
            "message": "LLM metrics", "time": {"repr": "…", "timestamp": 1760605922.0}}})
        .to_string();
        let u = unwrap(&record);
        let line: serde_json::Value = serde_json::from_str(&u.line).unwrap();
        assert_eq!(line, serde_json::json!({"message": "LLM metrics", "job_id": "AJ_1", "ttft": 0.4}));
        assert!(u.line.starts_with(r#"{"message":"LLM metrics","#), "{}", u.line);
        assert_eq!((u.delivery.form, u.delivery.time_ms), (Form::Loguru, Some(1_760_605_922_000)));
    }
}
