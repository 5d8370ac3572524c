//! Realistic synthetic traffic, deterministic for a seed: what the quick start replays and what the
//! benchmarks and end-to-end tests feed the pipeline.
//!
//! Three agents log in the three families of the contract:
//! - `support-agent`: application `voice_metrics` and `session_analytics`, bare, behind Python
//!   logging and Lambda prefixes, and nested under `analytics_data`;
//! - `sales-agent`: LiveKit component metrics (`metrics_collected` around `model_dump()`, with
//!   `speech_id`) and, for some calls, `log_metrics()` lines of LiveKit's JSON formatter;
//! - `booking-agent`: LiveKit ≥ 1.7 chat-message metrics and `session_usage_updated`.
//!
//! The support agent retrieves in its `on_user_turn_completed` hook on most turns; some of the sales
//! agent's turns call a tool, which puts two LLM calls under one `speech_id` (LiveKit 1.8's tool
//! round). Latencies are log-normal with a long tail; the sales agent's TTS degrades for a stretch of the run
//! so that the report has an incident to find. With `noise`, streams also carry foreign lines and the
//! malformed input agents really write (truncated JSON, Python `NaN`, wrong types, LiveKit sentinels).

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use serde_json::{Value, json};

use voicelake_shared::envelope::{self, LogBatch, LogEvent, MessageType};
use voicelake_shared::timefmt;

#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub calls: usize,
    pub seed: u64,
    /// Event time of the first call, epoch milliseconds.
    pub start_ms: i64,
    /// Foreign lines and malformed events mixed in.
    pub noise: bool,
    /// A provider failing for a while.
    pub outage: Option<Outage>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions { calls: 200, seed: 7, start_ms: 1_795_442_400_000, noise: true, outage: None }
    }
}

/// A provider's outage: from `start_minute` of the traffic for `minutes`, every turn of the calls
/// of `agent` (every agent when `None`) retries the provider twice and falls back from it, as
/// LiveKit 1.8 logs it, and some calls close on the error and take no more turns.
#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    /// `llm`, `stt` or `tts`.
    pub kind: String,
    /// The plugin's name, as in `livekit.plugins.<provider>.tts.TTS`.
    pub provider: String,
    pub agent: Option<String>,
    pub start_minute: u32,
    pub minutes: u32,
}

impl std::str::FromStr for Outage {
    type Err = String;

    /// `KIND:PROVIDER[:AGENT][@START_MINUTE[+MINUTES]]`, e.g. `tts:cartesia:sales-agent@20+10`.
    fn from_str(s: &str) -> Result<Outage, String> {
        let usage = || format!("{s:?}: expected KIND:PROVIDER[:AGENT][@START_MINUTE[+MINUTES]], e.g. tts:cartesia:sales-agent@20+10");
        let (what, when) = s.split_once('@').map_or((s, None), |(w, t)| (w, Some(t)));
        let mut parts = what.split(':');
        let (Some(kind), Some(provider)) = (parts.next(), parts.next()) else { return Err(usage()) };
        let agent = parts.next().map(str::to_owned);
        if parts.next().is_some() || !["llm", "stt", "tts"].contains(&kind) || provider.is_empty() {
            return Err(usage());
        }
        if let Some(a) = &agent
            && !AGENTS.iter().any(|x| x.name() == a)
        {
            return Err(format!("{s:?}: the agents are {}", AGENTS.map(Agent::name).join(", ")));
        }
        let (start_minute, minutes) = match when {
            None => (20, 10),
            Some(t) => {
                let (start, length) = t.split_once('+').map_or((t, None), |(a, b)| (a, Some(b)));
                let start = start.parse().map_err(|_| usage())?;
                let length = length.map(str::parse).transpose().map_err(|_| usage())?.unwrap_or(10);
                (start, length)
            }
        };
        if minutes == 0 {
            return Err(usage());
        }
        Ok(Outage { kind: kind.to_owned(), provider: provider.to_owned(), agent, start_minute, minutes })
    }
}

const AGENTS: [Agent; 3] = [Agent::Support, Agent::Sales, Agent::Booking];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Support,
    Sales,
    Booking,
}

impl Agent {
    fn name(self) -> &'static str {
        match self {
            Agent::Support => "support-agent",
            Agent::Sales => "sales-agent",
            Agent::Booking => "booking-agent",
        }
    }
    fn log_group(self) -> String {
        format!("/ecs/{}", self.name())
    }
    fn llm(self) -> (&'static str, &'static str) {
        match self {
            Agent::Booking => ("openai", "gpt-4o"),
            _ => ("openai", "gpt-4o-mini"),
        }
    }
    fn tools(self) -> &'static [(&'static str, f64)] {
        match self {
            Agent::Support => &[("crm_lookup", 0.02), ("create_ticket", 0.01)],
            Agent::Sales => &[("crm_lookup", 0.02), ("send_quote", 0.03)],
            Agent::Booking => &[("calendar_lookup", 0.12), ("book_slot", 0.04)],
        }
    }
}

/// What an outage did to a call's turns.
#[derive(Default)]
struct Outcome {
    /// Turns that failed: no reply, no metrics.
    failed: Vec<usize>,
    /// The turn at which the session closed: it and every later one do not happen.
    closed_at: Option<usize>,
}

/// One log line before batching.
struct Line {
    group: String,
    stream: String,
    time: i64,
    message: String,
}

struct Latencies {
    eou: LogNormal<f64>,
    transcription: LogNormal<f64>,
    ttft: LogNormal<f64>,
    ttfb: LogNormal<f64>,
    ttfb_degraded: LogNormal<f64>,
    hook: LogNormal<f64>,
}

fn lognormal(median_ms: f64, sigma: f64) -> LogNormal<f64> {
    LogNormal::new(median_ms.ln(), sigma).expect("valid log-normal parameters")
}

struct Turn {
    speech_id: String,
    time: i64,
    eou_ms: f64,
    transcription_ms: f64,
    ttft_ms: f64,
    ttfb_ms: f64,
    llm_duration_ms: f64,
    tts_duration_ms: f64,
    audio_s: f64,
    user_audio_s: f64,
    prompt_tokens: u64,
    cached_tokens: u64,
    completion_tokens: u64,
    characters: u64,
    /// The `on_user_turn_completed` hook's time (retrieval); 0 where the agent has none.
    hook_ms: f64,
    tool_round: Option<ToolRound>,
}

/// A tool call between two LLM calls of one turn: the first call asks for the tool, the second,
/// given its result, starts the reply.
struct ToolRound {
    /// The tool call's generation after its first token: a function call is a few tokens.
    call_rest_ms: f64,
    tool_ms: f64,
    reply_ttft_ms: f64,
    reply_rest_ms: f64,
}

struct Generator {
    rng: ChaCha8Rng,
    /// Draws for what was added after the first: its own stream, so that the traffic of a seed
    /// stays what it was but for the new parts.
    extra: ChaCha8Rng,
    lat: Latencies,
    /// The outage's own draws: traffic without one is what it always was.
    outage_rng: ChaCha8Rng,
    opts: SynthOptions,
    lines: Vec<Line>,
    window_ms: i64,
}

fn secs(ms: f64) -> f64 {
    (ms / 10.0).round() / 100.0 // LiveKit logs seconds, rounded to 10 ms by log_metrics().
}

fn secs_precise(ms: f64) -> f64 {
    (ms).round() / 1000.0
}

fn python_asctime(ms: i64) -> String {
    timefmt::utc(ms).format("%Y-%m-%d %H:%M:%S,%3f").to_string()
}

fn python_isoformat(ms: i64) -> String {
    timefmt::utc(ms).format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

impl Generator {
    fn hex(&mut self, n: usize) -> String {
        (0..n).map(|_| format!("{:x}", self.rng.random_range(0..16u8))).collect()
    }

    fn push(&mut self, agent: Agent, stream: &str, time: i64, message: String) {
        self.lines.push(Line { group: agent.log_group(), stream: stream.to_owned(), time, message });
    }

    fn turn(&mut self, agent: Agent, time: i64, degraded: bool, turn_index: usize) -> Turn {
        let mut ttft = self.lat.ttft.sample(&mut self.rng);
        if self.rng.random_bool(0.02) {
            ttft *= 3.0; // provider hiccup: the long tail
        }
        let ttfb = if degraded { self.lat.ttfb_degraded.sample(&mut self.rng) } else { self.lat.ttfb.sample(&mut self.rng) };
        let eou = self.lat.eou.sample(&mut self.rng);
        let transcription = self.lat.transcription.sample(&mut self.rng).min(eou * 0.8);
        let characters = self.rng.random_range(40..260);
        let prompt = 900 + 180 * turn_index as u64 + self.rng.random_range(0..120);
        let hook_ms = if agent == Agent::Support && self.extra.random_bool(0.5) { self.lat.hook.sample(&mut self.extra) } else { 0.0 };
        let tool_round = (agent == Agent::Sales && self.extra.random_bool(0.06)).then(|| ToolRound {
            call_rest_ms: self.extra.random_range(40.0..250.0),
            tool_ms: self.extra.random_range(150.0..900.0),
            reply_ttft_ms: self.lat.ttft.sample(&mut self.extra),
            reply_rest_ms: self.extra.random_range(200.0..900.0),
        });
        Turn {
            hook_ms,
            tool_round,
            speech_id: format!("speech_{}", self.hex(12)),
            time,
            eou_ms: eou,
            transcription_ms: transcription,
            ttft_ms: ttft,
            ttfb_ms: ttfb,
            llm_duration_ms: ttft + self.rng.random_range(300.0..1400.0),
            tts_duration_ms: ttfb + self.rng.random_range(200.0..900.0),
            audio_s: characters as f64 / 15.0,
            user_audio_s: self.rng.random_range(1.0..6.0),
            prompt_tokens: prompt,
            cached_tokens: if turn_index > 0 { prompt / 2 } else { 0 },
            completion_tokens: self.rng.random_range(12..90),
            characters,
        }
    }

    fn call(&mut self, index: usize) {
        let agent = *AGENTS
            .choose_weighted(&mut self.rng, |a| match a {
                Agent::Support => 40,
                Agent::Sales => 35,
                Agent::Booking => 25,
            })
            .expect("weights are positive");
        let spacing = self.window_ms / self.opts.calls.max(1) as i64;
        let start = self.opts.start_ms + index as i64 * spacing + self.rng.random_range(0..spacing.max(1));
        let position = (start - self.opts.start_ms) as f64 / self.window_ms as f64;
        let degraded = agent == Agent::Sales && (0.25..0.45).contains(&position);
        let task = self.rng.random_range(0..3);
        let stream = format!("{}/{}/task-{task}", agent.name(), agent.name());
        let setup_failed = self.rng.random_bool(0.01);
        let n_turns = if setup_failed { 0 } else { self.rng.random_range(3..=14) };
        let mut t = start + self.rng.random_range(2_000..6_000);
        let mut turns = Vec::with_capacity(n_turns);
        for i in 0..n_turns {
            turns.push(self.turn(agent, t, degraded, i));
            t += self.rng.random_range(6_000..16_000);
        }
        let mut end = t;
        let session = match agent {
            Agent::Support => format!("sess_{}", self.hex(16)),
            Agent::Sales => format!("call-{}", self.hex(10)),
            Agent::Booking => format!("room-{}", self.hex(10)),
        };
        let room_id = format!("RM_{}", self.hex(12));
        let job_id = format!("AJ_{}", self.hex(12));
        let logged_form = agent == Agent::Sales && self.rng.random_bool(0.3);
        let session_id = if logged_form { room_id.clone() } else { session.clone() };
        let outcome = self.outage(agent, &stream, &session_id, &room_id, &job_id, &mut turns);
        if let Some(closed_at) = outcome.closed_at {
            // The call ends when LiveKit closes it.
            end = turns[closed_at].time + 5_000;
            turns.truncate(closed_at);
        }
        let kept = turns.len();
        for &i in outcome.failed.iter().rev().filter(|&&i| i < kept) {
            turns.remove(i);
        }
        for (i, turn) in turns.iter().enumerate() {
            match agent {
                Agent::Support => self.support_turn(&stream, &session, turn),
                Agent::Sales if logged_form => self.sales_log_metrics_turn(&stream, &room_id, &job_id, turn),
                Agent::Sales => self.sales_turn(&stream, &session, &room_id, &job_id, turn),
                Agent::Booking => {
                    self.booking_turn(&stream, &session, &job_id, turn);
                    if i % 4 == 3 {
                        self.booking_usage(&stream, &session, &job_id, &turns[..=i], turn.time + 2_000);
                    }
                }
            }
            if self.opts.noise {
                self.noise(agent, &stream, turn.time + 500);
            }
        }
        self.session_analytics(agent, &stream, &session_id, start, end, &turns, setup_failed);
    }

    /// The lines of the outage in this call's turns, as LiveKit's JSON formatter writes them: behind
    /// a fallback, two retries and a switch before each affected turn, which waits for them. One
    /// call in four has no fallback: each affected turn retries three times and fails, and the
    /// fourth failure closes the session. Which turns failed, and where the call closed.
    #[allow(clippy::too_many_arguments)]
    fn outage(&mut self, agent: Agent, stream: &str, session: &str, room_id: &str, job_id: &str, turns: &mut [Turn]) -> Outcome {
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

    fn support_turn(&mut self, stream: &str, session: &str, t: &Turn) {
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

    fn uuid(&mut self) -> String {
        format!("{}-{}-4{}-a{}-{}", self.hex(8), self.hex(4), self.hex(3), self.hex(3), self.hex(12))
    }

    fn livekit_line(&mut self, time: i64, room: Option<&str>, room_id: &str, job_id: &str, fields: Value) -> String {
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

    fn sales_turn(&mut self, stream: &str, room: &str, room_id: &str, job_id: &str, t: &Turn) {
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

    fn sales_log_metrics_turn(&mut self, stream: &str, room_id: &str, job_id: &str, t: &Turn) {
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

    fn booking_turn(&mut self, stream: &str, room: &str, job_id: &str, t: &Turn) {
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

    fn booking_usage(&mut self, stream: &str, room: &str, job_id: &str, turns: &[Turn], time: i64) {
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
    fn session_analytics(&mut self, agent: Agent, stream: &str, session: &str, start: i64, end: i64, turns: &[Turn], setup_failed: bool) {
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

    /// Foreign lines, and now and then an event as agents get it wrong.
    fn noise(&mut self, agent: Agent, stream: &str, time: i64) {
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

    /// Groups lines into subscription batches per log stream, as CloudWatch does.
    fn batches(mut self) -> Vec<LogBatch> {
        self.lines.sort_by(|a, b| (&a.group, &a.stream, a.time).cmp(&(&b.group, &b.stream, b.time)));
        let mut batches = vec![LogBatch {
            message_type: MessageType::ControlMessage,
            owner: "CloudwatchLogs".into(),
            log_group: String::new(),
            log_stream: String::new(),
            subscription_filters: vec![],
            log_events: vec![LogEvent {
                id: String::new(),
                timestamp: self.opts.start_ms,
                message: "CWL CONTROL MESSAGE: Checking health of destination Lambda function.".into(),
            }],
        }];
        let mut sequence: u64 = 0;
        // Each line's message moves into its event: the traffic is held once, not twice.
        let mut lines = std::mem::take(&mut self.lines).into_iter().peekable();
        while let Some(first) = lines.next() {
            let size = self.rng.random_range(8..=64);
            let (group, stream) = (first.group, first.stream);
            let mut events = Vec::with_capacity(size);
            let mut next = Some((first.time, first.message));
            while let Some((time, message)) = next.take() {
                sequence += 1;
                events.push(LogEvent { id: format!("{:0>32}{:0>24}", time, sequence), timestamp: time, message });
                if events.len() < size
                    && let Some(line) = lines.next_if(|l| l.group == group && l.stream == stream)
                {
                    next = Some((line.time, line.message));
                }
            }
            batches.push(LogBatch {
                message_type: MessageType::DataMessage,
                owner: "123456789012".into(),
                log_group: group,
                log_stream: stream,
                subscription_filters: vec!["voicelake-ingest".into()],
                log_events: events,
            });
        }
        // Streams are delivered interleaved, in rough time order.
        batches[1..].sort_by_key(|b| (b.log_events[0].timestamp, b.log_stream.clone()));
        batches
    }
}

/// The span over which `calls` calls start: one every 15 s on average, at least an hour.
pub fn window_ms(calls: usize) -> i64 {
    (calls as i64 * 15_000).max(3_600_000)
}

/// Generates the traffic of `opts.calls` calls as subscription batches (the first is a
/// `CONTROL_MESSAGE`, as when a subscription filter is created).
pub fn generate(opts: &SynthOptions) -> Vec<LogBatch> {
    let window_ms = window_ms(opts.calls);
    let mut g = Generator {
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        extra: ChaCha8Rng::seed_from_u64(opts.seed ^ 0x9e37_79b9_7f4a_7c15),
        lat: Latencies {
            eou: lognormal(380.0, 0.3),
            transcription: lognormal(120.0, 0.35),
            ttft: lognormal(330.0, 0.3),
            ttfb: lognormal(140.0, 0.3),
            ttfb_degraded: lognormal(620.0, 0.35),
            hook: lognormal(90.0, 0.4),
        },
        outage_rng: ChaCha8Rng::seed_from_u64(opts.seed ^ 0x07a6e),
        opts: opts.clone(),
        lines: Vec::new(),
        window_ms,
    };
    for i in 0..opts.calls {
        g.call(i);
    }
    g.batches()
}

/// One batch holding generated events of every family until its JSON reaches `min_bytes`: the
/// largest payload a subscription delivers is about 1 MB decompressed. For benchmarks and load tests.
pub fn batch_of_size(min_bytes: usize, seed: u64) -> LogBatch {
    let calls = (min_bytes / 4_000).max(10);
    let batches = generate(&SynthOptions { calls, seed, ..SynthOptions::default() });
    let mut big = batches[1].clone();
    big.log_events.clear();
    let mut size = serde_json::to_vec(&big).expect("batches serialize").len();
    for e in batches[1..].iter().flat_map(|b| b.log_events.iter()) {
        size += serde_json::to_vec(e).expect("events serialize").len() + 1; // and its comma
        big.log_events.push(e.clone());
        if size >= min_bytes {
            break;
        }
    }
    big
}

/// Writes the Lambda events of the batches, one JSON object per line, without building them as one
/// text first.
pub fn write_subscription_lines(batches: &[LogBatch], out: &mut impl std::io::Write) -> std::io::Result<()> {
    for b in batches {
        serde_json::to_writer(&mut *out, &envelope::subscription_event(b))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The Lambda events of the batches, one JSON object per line.
pub fn subscription_lines(batches: &[LogBatch]) -> String {
    let mut out = String::new();
    for b in batches {
        out.push_str(&serde_json::to_string(&envelope::subscription_event(b)).expect("events serialize"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_a_given_size() {
        let b = batch_of_size(1 << 20, 1);
        let json = serde_json::to_vec(&b).unwrap().len();
        assert!((1 << 20..(1 << 20) + 4096).contains(&json), "{json}");
    }

    #[test]
    fn the_same_seed_gives_the_same_traffic() {
        let opts = SynthOptions { calls: 20, ..SynthOptions::default() };
        assert_eq!(generate(&opts), generate(&opts));
        assert_ne!(generate(&opts), generate(&SynthOptions { seed: 8, ..opts.clone() }));
    }

    #[test]
    fn batches_hold_one_stream_each_and_cover_every_agent() {
        let batches = generate(&SynthOptions { calls: 60, ..SynthOptions::default() });
        assert_eq!(batches[0].message_type, MessageType::ControlMessage);
        for b in &batches[1..] {
            assert!(!b.log_events.is_empty() && b.log_events.len() <= 64);
            assert!(b.log_stream.starts_with(b.log_group.trim_start_matches("/ecs/")));
        }
        for agent in AGENTS {
            assert!(batches.iter().any(|b| b.log_group == agent.log_group()), "{agent:?}");
        }
        let ids: std::collections::HashSet<&str> = batches.iter().flat_map(|b| b.log_events.iter().map(|e| e.id.as_str())).collect();
        assert_eq!(ids.len(), batches.iter().map(|b| b.log_events.len()).sum::<usize>(), "event ids are unique");
    }
}
