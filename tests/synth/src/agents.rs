//! What each agent logs for a turn and a call, in the forms its framework writes.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

use voicelake_shared::timefmt;

use crate::{Agent, Generator, Turn, python_asctime, python_isoformat, secs, secs_precise};

impl Generator {
    pub(crate) fn support_turn(&mut self, stream: &str, session: &str, t: &Turn) {
        let reported = self.rng.random_bool(0.5);
        let mut event = json!({
            "_event_type": "voice_metrics",
            "_session_id": session,
            "_timestamp": timefmt::iso(t.time),
            "agent_name": "support-agent",
            "agent_version": "1.4.2",
            "tenant_id": (["acme", "globex", "initech"][t.characters as usize % 3]),
            "speech_id": t.speech_id,
            "eou": {"end_of_utterance_delay": secs_precise(t.eou_ms), "transcription_delay": secs_precise(t.transcription_ms)},
            "llm": {"ttft": secs_precise(t.ttft_ms), "duration": secs_precise(t.llm_duration_ms), "prompt_tokens": t.prompt_tokens,
                    "completion_tokens": t.completion_tokens, "model": "gpt-4o-mini", "provider": "openai"},
            "tts": {"ttfb": secs_precise(t.ttfb_ms), "duration": secs_precise(t.tts_duration_ms), "audio_duration": secs_precise(t.audio_s * 1000.0),
                    "characters_count": t.characters, "model": "sonic-2", "provider": "cartesia"},
            "stt": {"audio_duration": secs_precise(t.user_audio_s * 1000.0), "model": "nova-3", "provider": "deepgram"},
        });
        if t.hook_ms > 0.0 {
            event["eou"]["on_user_turn_completed_delay"] = json!(secs_precise(t.hook_ms));
        }
        if reported {
            // Agents measure end to end themselves: a little more than the sum of the parts.
            let overhead = self.rng.random_range(10.0..60.0);
            event["total_latency"] = json!(secs_precise(t.eou_ms + t.hook_ms + t.ttft_ms + t.ttfb_ms + overhead));
        }
        let json = event.to_string();
        let message = match self.rng.random_range(0..10) {
            0..=3 => json,
            4..=6 => format!("{} INFO voice-agent.metrics: {json}", python_asctime(t.time)),
            7 => format!("{}\t{}\tINFO\t{json}\n", timefmt::iso(t.time), self.uuid()),
            _ => {
                let mut inner = event.clone();
                inner.as_object_mut().expect("object").remove("_timestamp");
                json!({"message": "voice metrics", "levelname": "INFO", "name": "voice-agent", "timestamp": python_isoformat(t.time),
                       "analytics_data": inner})
                .to_string()
            }
        };
        self.push(Agent::Support, stream, t.time, message);
    }

    pub(crate) fn uuid(&mut self) -> String {
        format!("{}-{}-4{}-a{}-{}", self.hex(8), self.hex(4), self.hex(3), self.hex(3), self.hex(12))
    }

    pub(crate) fn livekit_line(&mut self, time: i64, room: Option<&str>, room_id: &str, job_id: &str, fields: Value) -> String {
        let mut line = json!({"message": "metrics_collected", "level": "INFO", "name": "sales-agent"});
        let obj = line.as_object_mut().expect("object");
        for (k, v) in fields.as_object().expect("object") {
            obj.insert(k.clone(), v.clone());
        }
        if let Some(room) = room {
            obj.insert("room".into(), json!(room));
        }
        obj.insert("pid".into(), json!(4242));
        obj.insert("job_id".into(), json!(job_id));
        obj.insert("room_id".into(), json!(room_id));
        obj.insert("timestamp".into(), json!(python_isoformat(time)));
        line.to_string()
    }

    pub(crate) fn sales_turn(&mut self, stream: &str, room: &str, room_id: &str, job_id: &str, t: &Turn) {
        let ts = |ms: i64| ms as f64 / 1000.0;
        let eou_time = t.time;
        let mut llm_time = t.time + t.ttft_ms as i64 + 5;
        let mut tts_time = llm_time + t.ttfb_ms as i64 + 5;
        let (llm_provider, llm_model) = Agent::Sales.llm();
        let mut reply = None;
        let first_call_ms = t.tool_round.as_ref().map_or(t.llm_duration_ms, |r| t.ttft_ms + r.call_rest_ms);
        if let Some(round) = &t.tool_round {
            // One timeline: the tool call starts after the hook (1 ms) and is stamped when it ends,
            // the tool runs, the reply's call starts, its first token, then the first audio.
            let tool_call_start = t.time + 1;
            llm_time = tool_call_start + first_call_ms.round() as i64;
            let reply_start = llm_time + round.tool_ms.round() as i64;
            let reply_ttft = round.reply_ttft_ms.round() as i64;
            let reply_duration = reply_ttft + round.reply_rest_ms.round() as i64;
            // The speech's metrics come when it is synthesized, after the reply's call ended (as in
            // LiveKit's own tool_round fixture).
            tts_time = (reply_start + reply_ttft + t.ttfb_ms as i64).max(reply_start + reply_duration) + 5;
            let request: String = (0..10).map(|_| format!("{:x}", self.extra.random_range(0..16u8))).collect();
            reply = Some((
                reply_start + reply_duration,
                json!({"type": "llm_metrics", "label": "livekit.plugins.openai.llm.LLM", "request_id": format!("chatcmpl-{request}"),
                "timestamp": ts(reply_start + reply_duration), "duration": reply_duration as f64 / 1000.0,
                "ttft": reply_ttft as f64 / 1000.0, "cancelled": false, "completion_tokens": t.completion_tokens,
                "prompt_tokens": t.prompt_tokens + 60, "prompt_cached_tokens": t.prompt_tokens / 2,
                "total_tokens": t.prompt_tokens + 60 + t.completion_tokens, "tokens_per_second": 42.5, "speech_id": t.speech_id,
                "metadata": {"model_name": llm_model, "model_provider": llm_provider}}),
            ));
        }
        let mut components = vec![
            (
                eou_time,
                json!({"type": "eou_metrics", "timestamp": ts(eou_time), "end_of_utterance_delay": secs_precise(t.eou_ms),
                "transcription_delay": secs_precise(t.transcription_ms), "on_user_turn_completed_delay": 0.001, "speech_id": t.speech_id}),
            ),
            (
                llm_time,
                json!({"type": "llm_metrics", "label": "livekit.plugins.openai.llm.LLM", "request_id": format!("chatcmpl-{}", self.hex(10)),
                "timestamp": ts(llm_time), "duration": secs_precise(first_call_ms), "ttft": secs_precise(t.ttft_ms), "cancelled": false,
                "completion_tokens": t.completion_tokens, "prompt_tokens": t.prompt_tokens, "prompt_cached_tokens": t.cached_tokens,
                "total_tokens": t.prompt_tokens + t.completion_tokens, "tokens_per_second": 42.5, "speech_id": t.speech_id,
                "metadata": {"model_name": llm_model, "model_provider": llm_provider}}),
            ),
            (
                tts_time,
                json!({"type": "tts_metrics", "label": "livekit.plugins.cartesia.tts.TTS", "request_id": self.hex(12),
                "timestamp": ts(tts_time), "ttfb": secs_precise(t.ttfb_ms), "duration": secs_precise(t.tts_duration_ms),
                "audio_duration": secs_precise(t.audio_s * 1000.0), "cancelled": false, "characters_count": t.characters, "streamed": true,
                "speech_id": t.speech_id, "metadata": {"model_name": "sonic-2", "model_provider": "cartesia"}}),
            ),
            (
                tts_time + 40,
                json!({"type": "vad_metrics", "label": "livekit.plugins.silero.vad.VAD", "timestamp": ts(tts_time + 40),
                "idle_time": 0.2, "inference_duration_total": 0.03, "inference_count": 32}),
            ),
        ];
        if let Some(reply) = reply {
            components.insert(2, reply);
        }
        for (time, metrics) in components {
            let line = self.livekit_line(
                time,
                Some(room),
                room_id,
                job_id,
                json!({"type": "metrics_collected", "metrics": metrics, "created_at": ts(time)}),
            );
            self.push(Agent::Sales, stream, time, line);
        }
    }

    pub(crate) fn sales_log_metrics_turn(&mut self, stream: &str, room_id: &str, job_id: &str, t: &Turn) {
        let (llm_provider, llm_model) = Agent::Sales.llm();
        // A tool round: the reply's call is logged when it ends, after the tool ran.
        let reply_at = t.tool_round.as_ref().map(|r| t.time + t.ttft_ms as i64 + (r.tool_ms + r.reply_ttft_ms).round() as i64);
        let first_audio = reply_at.unwrap_or(t.time + t.ttft_ms as i64) + t.ttfb_ms as i64;
        let mut lines = vec![
            (
                t.time,
                json!({"message": "EOU metrics", "level": "INFO", "name": "livekit.agents",
                "end_of_utterance_delay": secs(t.eou_ms), "transcription_delay": secs(t.transcription_ms)}),
            ),
            (
                t.time + t.ttft_ms as i64,
                json!({"message": "LLM metrics", "level": "INFO", "name": "livekit.agents",
                "model_name": llm_model, "model_provider": llm_provider, "ttft": secs(t.ttft_ms), "prompt_tokens": t.prompt_tokens,
                "prompt_cached_tokens": t.cached_tokens, "cache_creation_tokens": 0, "completion_tokens": t.completion_tokens,
                "reasoning_tokens": 0, "tokens_per_second": 41.27}),
            ),
            (
                if reply_at.is_some() { first_audio } else { t.time + (t.ttft_ms + t.ttfb_ms) as i64 },
                json!({"message": "TTS metrics", "level": "INFO", "name": "livekit.agents",
                "model_name": "sonic-2", "model_provider": "cartesia", "ttfb": secs_precise(t.ttfb_ms), "audio_duration": secs(t.audio_s * 1000.0)}),
            ),
        ];
        if let (Some(at), Some(round)) = (reply_at, &t.tool_round) {
            let reply = json!({"message": "LLM metrics", "level": "INFO", "name": "livekit.agents",
                "model_name": llm_model, "model_provider": llm_provider, "ttft": secs(round.reply_ttft_ms), "prompt_tokens": t.prompt_tokens + 60,
                "prompt_cached_tokens": t.prompt_tokens / 2, "cache_creation_tokens": 0, "completion_tokens": t.completion_tokens,
                "reasoning_tokens": 0, "tokens_per_second": 41.27});
            lines.insert(2, (at, reply));
        }
        for (time, mut line) in lines {
            let obj = line.as_object_mut().expect("object");
            obj.insert("pid".into(), json!(4242));
            obj.insert("job_id".into(), json!(job_id));
            obj.insert("room_id".into(), json!(room_id));
            obj.insert("timestamp".into(), json!(python_isoformat(time)));
            self.push(Agent::Sales, stream, time, line.to_string());
        }
    }

    pub(crate) fn booking_turn(&mut self, stream: &str, room: &str, job_id: &str, t: &Turn) {
        let ts = |ms: i64| ms as f64 / 1000.0;
        let stopped = t.time as f64 / 1000.0 - t.eou_ms / 1000.0;
        let (llm_provider, llm_model) = Agent::Booking.llm();
        let user = json!({"type": "conversation_item_added", "created_at": ts(t.time), "item": {
            "id": format!("item_{}", self.hex(12)), "type": "message", "role": "user", "content": ["I'd like to move my appointment"],
            "interrupted": false, "created_at": ts(t.time),
            "metrics": {"started_speaking_at": stopped - t.user_audio_s, "stopped_speaking_at": stopped,
                "transcription_delay": secs_precise(t.transcription_ms), "end_of_turn_delay": secs_precise(t.eou_ms),
                "on_user_turn_completed_delay": 0.002, "stt_metadata": {"model_name": "nova-3", "model_provider": "deepgram"}}}});
        let answer_time = t.time + (t.ttft_ms + t.ttfb_ms) as i64 + 30;
        let overhead = self.rng.random_range(15.0..50.0);
        let assistant = json!({"type": "conversation_item_added", "created_at": ts(answer_time), "item": {
            "id": format!("item_{}", self.hex(12)), "type": "message", "role": "assistant", "content": ["Sure, which day works for you?"],
            "interrupted": self.rng.random_bool(0.08), "created_at": ts(answer_time),
            "metrics": {"started_speaking_at": ts(answer_time), "stopped_speaking_at": ts(answer_time) + t.audio_s,
                "llm_node_ttft": secs_precise(t.ttft_ms), "tts_node_ttfb": secs_precise(t.ttfb_ms),
                "e2e_latency": secs_precise(t.eou_ms + t.ttft_ms + t.ttfb_ms + overhead),
                "llm_metadata": {"model_name": llm_model, "model_provider": llm_provider},
                "tts_metadata": {"model_name": "sonic-2", "model_provider": "cartesia"}}}});
        for (time, mut event) in [(t.time, user), (answer_time, assistant)] {
            let obj = event.as_object_mut().expect("object");
            obj.insert("message".into(), json!("conversation_item_added"));
            obj.insert("room".into(), json!(room));
            obj.insert("job_id".into(), json!(job_id));
            self.push(Agent::Booking, stream, time, event.to_string());
        }
    }

    pub(crate) fn booking_usage(&mut self, stream: &str, room: &str, job_id: &str, turns: &[Turn], time: i64) {
        let (llm_provider, llm_model) = Agent::Booking.llm();
        let sum = |f: fn(&Turn) -> u64| turns.iter().map(f).sum::<u64>();
        let usage = json!({"type": "session_usage_updated", "created_at": time as f64 / 1000.0, "room": room, "job_id": job_id,
            "usage": {"model_usage": [
                {"type": "llm", "provider": llm_provider, "model": llm_model, "input_tokens": sum(|t| t.prompt_tokens),
                 "input_cached_tokens": sum(|t| t.cached_tokens), "output_tokens": sum(|t| t.completion_tokens)},
                {"type": "tts", "provider": "cartesia", "model": "sonic-2", "characters_count": sum(|t| t.characters),
                 "audio_duration": turns.iter().map(|t| t.audio_s).sum::<f64>()},
                {"type": "stt", "provider": "deepgram", "model": "nova-3", "audio_duration": turns.iter().map(|t| t.user_audio_s).sum::<f64>()}]}});
        self.push(Agent::Booking, stream, time, usage.to_string());
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn session_analytics(
        &mut self,
        agent: Agent,
        stream: &str,
        session: &str,
        start: i64,
        end: i64,
        turns: &[Turn],
        setup_failed: bool,
    ) {
        let (llm_provider, llm_model) = agent.llm();
        let mut tool_calls = Vec::new();
        for _ in 0..self.rng.random_range(0..=3) {
            let &(tool, failure_rate) = agent.tools().choose(&mut self.rng).expect("every agent has tools");
            let ok = !self.rng.random_bool(failure_rate);
            let mut call = json!({"tool": tool, "success": ok, "duration_ms": self.rng.random_range(80..900)});
            if !ok {
                call["error"] = json!(["timeout", "HTTP 503 from upstream", "not found"][self.rng.random_range(0..3)]);
            }
            tool_calls.push(call);
        }
        let qualified = self.rng.random_bool(0.3);
        let mut signals = json!({"intent": (["book_demo", "support", "pricing", "reschedule"][self.rng.random_range(0..4)]), "qualified_lead": qualified});
        if qualified {
            signals["email"] = json!(format!("lead{}@example.com", self.rng.random_range(100..999)));
            signals["company_size"] = json!(["1-10", "11-50", "51-200", "200+"][self.rng.random_range(0..4)]);
        }
        let outcome = if setup_failed {
            "setup_failed"
        } else {
            ["completed", "completed", "completed", "transferred", "abandoned"][self.rng.random_range(0..5)]
        };
        let mut event = json!({
            "_event_type": "session_analytics",
            "_session_id": session,
            "_timestamp": timefmt::iso(end),
            "agent_name": agent.name(),
            "agent_version": "2.1.0",
            "tenant_id": (["acme", "globex", "initech"][session.len() % 3]),
            "duration_seconds": ((end - start) as f64 / 100.0).round() / 10.0,
            "outcome": outcome,
            "turn_count": turns.len(),
            "tool_calls": tool_calls,
            "discovered_signals": signals,
            "metrics_summary": {
                "llm_prompt_tokens": turns.iter().map(|t| t.prompt_tokens).sum::<u64>(),
                "llm_prompt_cached_tokens": turns.iter().map(|t| t.cached_tokens).sum::<u64>(),
                "llm_completion_tokens": turns.iter().map(|t| t.completion_tokens).sum::<u64>(),
                "stt_audio_seconds": (turns.iter().map(|t| t.user_audio_s).sum::<f64>() * 10.0).round() / 10.0,
                "tts_audio_seconds": (turns.iter().map(|t| t.audio_s).sum::<f64>() * 10.0).round() / 10.0,
                "tts_characters": turns.iter().map(|t| t.characters).sum::<u64>(),
            },
            "llm_model": llm_model, "llm_provider": llm_provider,
            "tts_model": "sonic-2", "tts_provider": "cartesia",
            "stt_model": "nova-3", "stt_provider": "deepgram",
            "mos": (self.rng.random_range(3.4..4.5f64) * 100.0).round() / 100.0,
            "jitter_ms": (self.rng.random_range(2.0..40.0f64) * 10.0).round() / 10.0,
            "packet_loss_rate": (self.rng.random_range(0.0..0.02f64) * 10_000.0).round() / 10_000.0,
        });
        if setup_failed {
            event["call_setup_failed"] = json!(true);
            event["setup_failure_reason"] = json!("SIP 486 busy here");
        }
        let message = if agent == Agent::Support && self.rng.random_bool(0.5) {
            let mut inner = event.clone();
            inner.as_object_mut().expect("object").remove("_timestamp");
            json!({"message": "session analytics", "levelname": "INFO", "name": "voice-agent", "timestamp": python_isoformat(end),
                   "analytics_data": inner})
            .to_string()
        } else {
            format!("{} INFO voice-agent.analytics: {}", python_asctime(end), event)
        };
        self.push(agent, stream, end, message);
    }
}
