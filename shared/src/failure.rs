//! What LiveKit's failure lines say, from their text: which step failed (a retry, a fallback
//! switch, a session closed), which kind of model (LLM, STT, TTS, realtime) or the worker process,
//! which provider (from the plugin's label), and the error's class.
//!
//! The wording is livekit-agents 1.8's (`llm/llm.py`, `tts/tts.py`, `stt/stt.py`, the three
//! `fallback_adapter.py`, `voice/agent_session.py`, `ipc/supervised_proc.py`);
//! `tests/fixtures/livekit-1.8/errors.jsonl` holds the lines the library itself wrote.

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A provider call failed and is tried again.
    Retry,
    /// A FallbackAdapter gave up on a provider and moved to the next.
    Fallback,
    /// Every provider of a FallbackAdapter failed.
    AllFailed,
    /// A FallbackAdapter's provider answers again.
    Recovered,
    /// The session closed on an unrecoverable error (LiveKit's log line, or its `close` event).
    Closed,
    /// LiveKit's `error` session event: the same failure its retry or close line reports.
    Error,
    /// A worker's job process over its memory warning threshold.
    Memory,
    /// A job process slow to answer the worker's pings.
    Unresponsive,
    /// A job process killed (unresponsive, or over its memory limit).
    Killed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Fallback => "fallback",
            Action::AllFailed => "all_failed",
            Action::Recovered => "recovered",
            Action::Closed => "closed",
            Action::Error => "error",
            Action::Memory => "memory",
            Action::Unresponsive => "unresponsive",
            Action::Killed => "killed",
        }
    }

    /// A provider failure event: what `ProviderFailures` counts and the report's `errors.events`
    /// holds. `error` session events restate a retry or close that has its own line, and are not.
    pub fn is_failure(self) -> bool {
        matches!(self, Action::Retry | Action::Fallback | Action::AllFailed | Action::Closed)
    }

    pub const ALL: [Action; 9] = [
        Action::Retry,
        Action::Fallback,
        Action::AllFailed,
        Action::Recovered,
        Action::Closed,
        Action::Error,
        Action::Memory,
        Action::Unresponsive,
        Action::Killed,
    ];

    /// The action of a row's `action` column.
    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// [`Action::is_failure`] of a row's `action` column.
    pub fn is_failure_str(action: &str) -> bool {
        Action::parse(action).is_some_and(Action::is_failure)
    }
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Llm,
    Stt,
    Tts,
    Realtime,
    /// The worker's job process.
    Process,
    /// A session closed with no kind in its line; the batch gives it its session's last failure's.
    Unknown,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Llm => "llm",
            Kind::Stt => "stt",
            Kind::Tts => "tts",
            Kind::Realtime => "realtime",
            Kind::Process => "process",
            Kind::Unknown => "unknown",
        }
    }

    /// `LLM`, `llm`, and the plurals of the fallback lines (`LLMs`, `TTSs`, `STTs`).
    fn of_word(word: &str) -> Option<Kind> {
        let word = word.to_ascii_lowercase();
        let singular = match word.as_str() {
            "llms" | "ttss" | "stts" => &word[..3],
            w => w,
        };
        match singular {
            "llm" => Some(Kind::Llm),
            "stt" => Some(Kind::Stt),
            "tts" => Some(Kind::Tts),
            "realtime" | "realtime_model" => Some(Kind::Realtime),
            _ => None,
        }
    }

    /// The kind of an `error` event's `type` (`llm_error`, `tts_error`, `realtime_model_error`).
    pub fn of_error_type(t: &str) -> Option<Kind> {
        Kind::of_word(t.strip_suffix("_error")?)
    }
}

/// One failure line, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure<'m> {
    pub action: Action,
    pub kind: Kind,
    /// The provider's label where the line names it (`livekit.plugins.elevenlabs.tts.TTS`).
    pub label: Option<&'m str>,
    /// The error's text where the line carries it.
    pub error: Option<&'m str>,
    /// The error was a timeout although the text says no more (`… timed out, switching to next LLM`).
    pub timed_out: bool,
}

impl<'m> Failure<'m> {
    fn new(action: Action, kind: Kind) -> Self {
        Failure { action, kind, label: None, error: None, timed_out: false }
    }

    /// Reads a log message; `None` when it is not a failure line. A message logged with
    /// `logger.exception` in a job process carries its traceback after the first line.
    pub fn of_message(message: &'m str) -> Option<Failure<'m>> {
        let line = message.split('\n').next().unwrap_or(message).trim_end();
        let retries = [
            ("failed to generate LLM completion", Kind::Llm),
            ("failed to synthesize speech", Kind::Tts),
            ("failed to recognize speech", Kind::Stt),
        ];
        for (prefix, kind) in retries {
            if let Some(rest) = line.strip_prefix(prefix) {
                let error = rest.strip_prefix(": ").map(|e| e.rsplit_once(", retrying in ").map_or(e, |(e, _)| e));
                return Some(Failure { error, ..Failure::new(Action::Retry, kind) });
            }
        }
        if let Some((head, tail)) = line.split_once(", switching to next ") {
            let (kind_word, error) = tail.split_once(": ").map_or((tail, None), |(k, e)| (k, Some(e)));
            let kind = Kind::of_word(kind_word.trim())?;
            let (label, timed_out) = [" unexpected error", " timed out", " failed", " error"]
                .iter()
                .find_map(|end| head.strip_suffix(end).map(|l| (l, *end == " timed out")))
                .unwrap_or((head, false));
            return Some(Failure { label: Some(label), error, timed_out, ..Failure::new(Action::Fallback, kind) });
        }
        if let Some(rest) = line.strip_prefix("all ")
            && let Some(word) = rest.strip_suffix(" are unavailable, retrying..")
        {
            return Some(Failure::new(Action::AllFailed, Kind::of_word(word)?));
        }
        if let Some(rest) = line.strip_prefix("AgentSession is closing due to unrecoverable error") {
            return Some(Failure { error: rest.strip_prefix(": "), ..Failure::new(Action::Closed, Kind::Unknown) });
        }
        if let Some((adapter, rest)) = line.split_once(".FallbackAdapter, ")
            && let Some(label) = rest.strip_suffix(" recovered")
        {
            return Some(Failure { label: Some(label), ..Failure::new(Action::Recovered, Kind::of_word(adapter)?) });
        }
        // An STT FallbackAdapter's recognize path says only `<label> recovered`.
        if let Some(label) = line.strip_suffix(" recovered")
            && let (_, Some(kind)) = provider_of(label)
            && label.starts_with("livekit.")
        {
            return Some(Failure { label: Some(label), ..Failure::new(Action::Recovered, kind) });
        }
        if line.ends_with("process memory usage is above the warning threshold")
            || line.contains("process memory usage is above the warning threshold (")
        {
            return Some(Failure::new(Action::Memory, Kind::Process));
        }
        if line.ends_with("process exceeded memory limit, killing it") || line == "process is unresponsive, killing process" {
            return Some(Failure::new(Action::Killed, Kind::Process));
        }
        if line == "process is unresponsive" {
            return Some(Failure::new(Action::Unresponsive, Kind::Process));
        }
        None
    }
}

/// A session's close line names no provider: it is the failure that closed it, the session's
/// latest failure before it in the batch. Rows are in line order.
pub fn attribute_closes(rows: &mut [crate::rows::ErrorRow]) {
    let mut last: std::collections::HashMap<String, (String, String)> = std::collections::HashMap::new();
    for row in rows.iter_mut() {
        let Some(session) = row.session_id.clone() else { continue };
        let failed = Action::is_failure_str(&row.action) && row.action != Action::Closed.as_str();
        if failed && row.kind != Kind::Unknown.as_str() {
            last.insert(session, (row.kind.clone(), row.provider.clone()));
        } else if row.action == Action::Closed.as_str()
            && row.kind == Kind::Unknown.as_str()
            && let Some((kind, provider)) = last.get(&session)
        {
            row.kind = kind.clone();
            if row.provider == "unknown" {
                row.provider = provider.clone();
            }
        }
    }
}

/// The provider a label names, and the kind of model its module is: `livekit.plugins.elevenlabs.tts.TTS`
/// is (`elevenlabs`, tts); an adapter's own label (`livekit.agents.tts.fallback_adapter.FallbackAdapter`)
/// is `fallback_adapter`. Any other label is the provider, lower-cased.
pub fn provider_of(label: &str) -> (String, Option<Kind>) {
    let parts: Vec<&str> = label.split('.').collect();
    match parts.as_slice() {
        ["livekit", "plugins", provider, module, ..] => (provider.to_ascii_lowercase(), Kind::of_word(module)),
        ["livekit", "agents", module, "fallback_adapter", ..] => ("fallback_adapter".into(), Kind::of_word(module)),
        _ => (label.trim().to_ascii_lowercase(), None),
    }
}

/// The class of an error from its text: `http_503` for an HTTP status, `ws_1011` for a WebSocket
/// close code (LiveKit reports a provider's dropped socket as a status too), `timeout`,
/// `connection`, or `other`.
pub fn error_class(text: &str) -> (String, Option<i64>) {
    if let Some(code) = status_code(text) {
        let scheme = if code >= 1000 { "ws" } else { "http" };
        return (format!("{scheme}_{code}"), Some(code));
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("timed out") || lower.contains("timeout") {
        ("timeout".into(), None)
    } else if lower.contains("connect") || lower.contains("connection") {
        ("connection".into(), None)
    } else {
        ("other".into(), None)
    }
}

/// `status_code=503` as LiveKit's `APIStatusError` renders it, or `Error code: 503` as OpenAI's does.
fn status_code(text: &str) -> Option<i64> {
    ["status_code=", "Error code: "].iter().find_map(|key| {
        let at = text.find(key)? + key.len();
        let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok().filter(|c| (100..1000).contains(c) || (1000..5000).contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_lines_give_their_kind_and_error() {
        let f = Failure::of_message(
            "failed to generate LLM completion: message='Error code: 503 - overloaded', status_code=503, retryable=True, retrying in 0.1s",
        )
        .unwrap();
        assert_eq!((f.action, f.kind), (Action::Retry, Kind::Llm));
        assert_eq!(f.error, Some("message='Error code: 503 - overloaded', status_code=503, retryable=True"));
        assert_eq!(error_class(f.error.unwrap()), ("http_503".into(), Some(503)));
        let f = Failure::of_message("failed to synthesize speech: Request timed out., retrying in 2.0s").unwrap();
        assert_eq!((f.kind, error_class(f.error.unwrap()).0.as_str()), (Kind::Tts, "timeout"));
    }

    #[test]
    fn fallback_lines_name_the_provider_that_failed() {
        let f =
            Failure::of_message("livekit.plugins.elevenlabs.tts.TTS error, switching to next TTS\nTraceback (most recent call last):\n…")
                .unwrap();
        assert_eq!((f.action, f.kind, f.label), (Action::Fallback, Kind::Tts, Some("livekit.plugins.elevenlabs.tts.TTS")));
        let f = Failure::of_message("livekit.plugins.openai.llm.LLM timed out, switching to next LLM").unwrap();
        assert!(f.timed_out);
        let f = Failure::of_message("livekit.plugins.openai.llm.LLM failed, switching to next LLM: could not connect").unwrap();
        assert_eq!((f.label, f.error), (Some("livekit.plugins.openai.llm.LLM"), Some("could not connect")));
        assert_eq!(Failure::of_message("all TTSs are unavailable, retrying..").unwrap().action, Action::AllFailed);
        let f = Failure::of_message("tts.FallbackAdapter, livekit.plugins.elevenlabs.tts.TTS recovered").unwrap();
        assert_eq!((f.action, f.kind), (Action::Recovered, Kind::Tts));
    }

    #[test]
    fn process_lines_and_closes() {
        let memory = "job process memory usage is above the warning threshold (advisory only, the process will not be terminated)";
        assert_eq!(Failure::of_message(memory).unwrap().action, Action::Memory);
        assert_eq!(Failure::of_message("process is unresponsive, killing process").unwrap().action, Action::Killed);
        assert_eq!(Failure::of_message("process is unresponsive").unwrap().action, Action::Unresponsive);
        let f = Failure::of_message("AgentSession is closing due to unrecoverable error: message='x', status_code=500").unwrap();
        assert_eq!((f.action, f.error), (Action::Closed, Some("message='x', status_code=500")));
        assert!(Failure::of_message("LLM metrics").is_none());
        assert!(Failure::of_message("killing process").is_none());
    }

    #[test]
    fn providers_from_labels() {
        assert_eq!(provider_of("livekit.plugins.elevenlabs.tts.TTS"), ("elevenlabs".into(), Some(Kind::Tts)));
        assert_eq!(provider_of("livekit.plugins.openai.realtime.RealtimeModel"), ("openai".into(), Some(Kind::Realtime)));
        assert_eq!(provider_of("livekit.agents.llm.fallback_adapter.FallbackAdapter"), ("fallback_adapter".into(), Some(Kind::Llm)));
        assert_eq!(provider_of("MyTTS"), ("mytts".into(), None));
        assert_eq!(error_class("could not connect to ElevenLabs (caused by ConnectionRefusedError)").0, "connection");
        assert_eq!(error_class("boom").0, "other");
    }
}
