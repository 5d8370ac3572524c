//! What goes wrong: a provider's outage, and the foreign and malformed lines real streams carry.

use rand::Rng;
use serde_json::{Value, json};

use crate::{Agent, Generator, Outcome, Turn, python_asctime, python_isoformat};

impl Generator {
    pub(crate) fn outage(&mut self, agent: Agent, stream: &str, session: &str, room_id: &str, job_id: &str, turns: &mut [Turn]) -> Outcome {
        let Some(outage) = self.opts.outage.clone() else { return Outcome::default() };
        if outage.agent.as_deref().is_some_and(|a| a != agent.name()) {
            return Outcome::default();
        }
        let from = self.opts.start_ms + i64::from(outage.start_minute) * 60_000;
        let until = from + i64::from(outage.minutes) * 60_000;
        let label = format!("livekit.plugins.{}.{}.{}", outage.provider, outage.kind, outage.kind.to_ascii_uppercase());
        let retry = match outage.kind.as_str() {
            "llm" => "failed to generate LLM completion",
            "stt" => "failed to recognize speech",
            _ => "failed to synthesize speech",
        };
        let closes = self.outage_rng.random_bool(0.25);
        let line = |time: i64, level: &str, message: String, extra: Value| {
            let mut line = json!({"message": message, "level": level, "name": "livekit.agents"});
            let obj = line.as_object_mut().expect("object");
            for (k, v) in extra.as_object().expect("object") {
                obj.insert(k.clone(), v.clone());
            }
            for (k, v) in [
                ("pid", json!(4242)),
                ("job_id", json!(job_id)),
                ("room", json!(session)),
                ("room_id", json!(room_id)),
                ("agent_name", json!(agent.name())),
                ("timestamp", json!(python_isoformat(time))),
            ] {
                obj.insert(k.into(), v);
            }
            line.to_string()
        };
        let mut failed = Vec::new();
        for (i, turn) in turns.iter_mut().enumerate().filter(|(_, t)| (from..until).contains(&t.time)) {
            let request = format!("req_{:016x}", self.outage_rng.random::<u64>());
            let error = format!("message='Service Unavailable', status_code=503, retryable=True, request_id={request}");
            // Behind a FallbackAdapter a provider is retried twice (max_retry_per_tts=2); alone,
            // three times (DEFAULT_API_CONNECT_OPTIONS).
            let retries: &[(u32, &str, i64)] =
                if closes { &[(1, "0.1", 40), (2, "2.0", 180), (3, "2.0", 2_200)] } else { &[(1, "0.1", 40), (2, "2.0", 180)] };
            for &(attempt, wait, at) in retries {
                let extra = json!({outage.kind.as_str(): label, "attempt": attempt, "streamed": true});
                let message = line(turn.time + at, "WARNING", format!("{retry}: {error}, retrying in {wait}s"), extra);
                self.push(agent, stream, turn.time + at, message);
            }
            if closes {
                // Without a fallback the turn fails; LiveKit closes the session at its fourth
                // unrecoverable error (max_unrecoverable_errors=3), with the last attempt's error.
                failed.push(i);
                if failed.len() == 4 {
                    let message =
                        line(turn.time + 4_300, "ERROR", format!("AgentSession is closing due to unrecoverable error: {error}"), json!({}));
                    self.push(agent, stream, turn.time + 4_300, message);
                    return Outcome { failed, closed_at: Some(i) };
                }
                continue;
            }
            let switch = match outage.kind.as_str() {
                "tts" => format!("{label} error, switching to next TTS"),
                kind => format!("{label} failed, switching to next {}: {error}", kind.to_ascii_uppercase()),
            };
            let message = line(turn.time + 2_250, "WARNING", switch, json!({"streamed": false}));
            self.push(agent, stream, turn.time + 2_250, message);
            // The caller waited through both retries before the next provider answered.
            match outage.kind.as_str() {
                "llm" => turn.ttft_ms += 2_250.0,
                "stt" => {
                    turn.eou_ms += 2_250.0;
                    turn.transcription_ms += 2_250.0;
                }
                _ => turn.ttfb_ms += 2_250.0,
            }
            turn.llm_duration_ms = turn.llm_duration_ms.max(turn.ttft_ms);
            turn.tts_duration_ms = turn.tts_duration_ms.max(turn.ttfb_ms);
        }
        Outcome { failed, closed_at: None }
    }

    /// Foreign lines, and now and then an event as agents get it wrong.
    pub(crate) fn noise(&mut self, agent: Agent, stream: &str, time: i64) {
        let roll = self.rng.random_range(0..1000);
        let message = match roll {
            0..=59 => format!("{} INFO livekit.agents: received user transcript", python_asctime(time)),
            60..=89 => json!({"message": "job process started", "level": "INFO", "name": "livekit.agents", "pid": 4242,
                              "timestamp": python_isoformat(time)})
            .to_string(),
            90..=99 => "Traceback (most recent call last):".to_string(),
            100..=104 => {
                let full = json!({"_event_type": "voice_metrics", "_session_id": "sess_broken", "total_latency": 1.21,
                    "eou": {"end_of_utterance_delay": 0.4}, "llm": {"ttft": 0.4}}).to_string();
                full[..full.len() / 2].to_string() // the log driver cut the line
            }
            105..=107 => r#"{"_event_type": "voice_metrics", "_session_id": "sess_nan", "llm_ttft": NaN, "tts_ttfb": 0.21, "eou_delay": 0.38}"#.to_string(),
            108..=110 => r#"{"_event_type": "voice_metrics", "_session_id": "sess_types", "llm": {"ttft": "fast"}, "tts": {"ttfb": 0.2}, "eou": {"delay": -0.5}}"#.to_string(),
            111..=112 => json!({"type": "llm_metrics", "timestamp": time as f64 / 1000.0, "ttft": -1.0, "duration": 0.8, "cancelled": true,
                "completion_tokens": 0, "prompt_tokens": 900, "speech_id": format!("speech_{}", self.hex(12)), "label": "livekit.plugins.openai.llm.LLM"})
            .to_string(),
            113..=114 => json!({"type": "eou_metrics", "timestamp": time as f64 / 1000.0, "end_of_utterance_delay": 0.0, "transcription_delay": 0.0,
                "speech_id": format!("speech_{}", self.hex(12))})
            .to_string(),
            115..=117 => json!({"_event_type": "call_transferred", "_session_id": "sess_x", "target": "+15550100"}).to_string(),
            118 => r#"{"_event_type": "session_analytics", "duration_seconds": 42}"#.to_string(),
            119 => r#"{"_event_type": "voice_metrics", "_session_id": "s", "total_latency": 1.0, "total_latency": 1.1}"#.to_string(),
            _ => return,
        };
        self.push(agent, stream, time, message);
    }
}
