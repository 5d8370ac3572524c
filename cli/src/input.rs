//! Reading replay inputs, whatever their form: Lambda subscription events (one per file, or one per
//! line), the JSON that `aws logs filter-log-events` / `get-log-events` print, or JSON Lines of raw
//! log messages.

use std::path::Path;

use anyhow::{Context, Result};
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

pub fn read(path: &Path, now_ms: i64) -> Result<Vec<Unit>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.file_name().map_or_else(|| "input".to_owned(), |n| n.to_string_lossy().into_owned());
    let trimmed = text.trim_start();
    if trimmed.starts_with('{')
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed)
    {
        if value.get("awslogs").is_some() {
            let event: SubscriptionEvent = serde_json::from_value(value).with_context(|| format!("{name}: not a subscription event"))?;
            return Ok(vec![Unit::Payload(event.awslogs.data)]);
        }
        if value.get("events").is_some_and(|e| e.is_array()) {
            let events: CliEvents = serde_json::from_value(value).with_context(|| format!("{name}: not aws logs output"))?;
            return Ok(from_cli_events(&name, events.events));
        }
    }
    Ok(from_lines(&name, &text, now_ms))
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

/// Lines that are subscription events become payloads; every other non-empty line is a raw log
/// message. A raw line's time is its event's own, else the replay's start.
fn from_lines(name: &str, text: &str, now_ms: i64) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut raw: Vec<LogEvent> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.trim_start().starts_with("{\"awslogs\"")
            && let Ok(event) = serde_json::from_str::<SubscriptionEvent>(line)
        {
            units.push(Unit::Payload(event.awslogs.data));
            continue;
        }
        raw.push(LogEvent { id: format!("{name}:{}", i + 1), timestamp: now_ms, message: line.to_owned() });
        if raw.len() == RAW_BATCH {
            units.push(Unit::Batch(batch(name, "replay".into(), std::mem::take(&mut raw))));
        }
    }
    if !raw.is_empty() {
        units.push(Unit::Batch(batch(name, "replay".into(), raw)));
    }
    units
}
