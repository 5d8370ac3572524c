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

use voicelake_shared::envelope::{self, LogBatch, LogEvent, MessageType};
use voicelake_shared::timefmt;

mod agents;
mod faults;

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
mod tests;
