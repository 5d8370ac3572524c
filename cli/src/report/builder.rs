//! Adding a batch's rows to the report's stores: turns, observations of every metric at event time,
//! and what a diagnosis looks into.

use std::collections::{BTreeMap, HashMap};
use std::io;

use voicelake_shared::diagnosis::FailureFact;
use voicelake_shared::metrics::{self, MetricSpec, metric};
use voicelake_shared::rows::{ErrorRow, LatencySource, RejectRow, SessionRecordType, SessionRow, TurnRow};
use voicelake_shared::{BatchOutput, BatchStats};

use crate::spill::Spill;

use super::records::{EndedCall, MetricSample, NO_SESSION, Rejected, SessionName, Spend, ToolFailure, TurnPoint, session_key};
use super::{Limits, NAMED_REJECTS, RejectPlace, ReportBuilder};

impl Default for ReportBuilder {
    fn default() -> Self {
        ReportBuilder::with_limits(Limits::default())
    }
}

/// The key of session `id`, and its name stored the first time the batch names it.
fn see_session<'a>(names: &mut Spill<SessionName>, batch: &mut HashMap<&'a str, u128>, id: &'a str) -> io::Result<u128> {
    if let Some(key) = batch.get(id) {
        return Ok(*key);
    }
    let key = session_key(id);
    names.push(&SessionName { key, id: id.to_owned() })?;
    batch.insert(id, key);
    Ok(key)
}

impl ReportBuilder {
    pub fn with_limits(limits: Limits) -> ReportBuilder {
        ReportBuilder {
            limits,
            stats: BatchStats::default(),
            turns: Spill::new(limits.chunk_bytes),
            observations: (0..metric::ALL.len()).map(|_| Spill::new(limits.chunk_bytes)).collect(),
            agents: Vec::new(),
            reported: 0,
            computed: 0,
            tool_rounds: 0,
            failures_by_tool: BTreeMap::new(),
            tool_failures: Spill::new(limits.chunk_bytes),
            rejects: Spill::new(limits.chunk_bytes),
            spend: Spill::new(limits.chunk_bytes),
            calls: Spill::new(limits.chunk_bytes),
            failures: Spill::new(limits.chunk_bytes),
            served: BTreeMap::new(),
            session_names: Spill::new(limits.chunk_bytes),
            first: None,
            last: None,
            first_rejects: Vec::new(),
        }
    }

    pub(super) fn agent_id(&mut self, agent: &str) -> u32 {
        match self.agents.iter().position(|a| a == agent) {
            Some(i) => i as u32,
            None => {
                self.agents.push(agent.to_owned());
                (self.agents.len() - 1) as u32
            }
        }
    }

    pub(super) fn observe(&mut self, spec: MetricSpec, time: i64, agent: u32, value: f64) -> io::Result<()> {
        let second = u32::try_from(time.div_euclid(1000)).unwrap_or_else(|_| unreachable!("event times are within 2000..2100"));
        self.observations[spec.index].push(&MetricSample { second, agent, value })
    }

    pub(super) fn see(&mut self, t: i64) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }

    pub fn add(&mut self, out: &BatchOutput) -> io::Result<()> {
        self.stats.merge(&out.stats);
        let mut batch_sessions: HashMap<&str, u128> = HashMap::new();
        for s in &out.sessions {
            see_session(&mut self.session_names, &mut batch_sessions, &s.session_id)?;
        }
        self.add_turns(&out.turns, &mut batch_sessions)?;
        self.add_calls(&out.sessions)?;
        self.add_failures(&out.errors)?;
        self.add_rejects(&out.rejects)?;
        self.add_event_times(&out.event_timestamps)
    }

    /// Every metric a turn publishes, and the complete turns themselves.
    fn add_turns<'a>(&mut self, turns: &'a [TurnRow], batch_sessions: &mut HashMap<&'a str, u128>) -> io::Result<()> {
        // Counters of whole turns, only ever summed: one observation per minute and agent of the
        // batch keeps every period's sum (periods are whole minutes) without one per turn.
        let mut counted: BTreeMap<(usize, i64, u32), f64> = BTreeMap::new();
        for row in turns {
            self.see(row.event_time);
            let agent = self.agent_id(&row.agent_name);
            let mut seen = Vec::new();
            metrics::turn_observations(row, |spec, value| seen.push((spec, value)));
            for (spec, value) in seen {
                if spec.index == metric::TURNS.index || spec.index == metric::TURNS_OVER_TARGET.index {
                    *counted.entry((spec.index, row.event_time.div_euclid(60_000) * 60_000, agent)).or_default() += value;
                } else {
                    self.observe(spec, row.event_time, agent, value)?;
                }
            }
            let session = match row.session_id.as_deref() {
                Some(id) => see_session(&mut self.session_names, batch_sessions, id)?,
                None => NO_SESSION,
            };
            for (kind, provider) in [("llm", &row.llm_provider), ("tts", &row.tts_provider), ("stt", &row.stt_provider)] {
                if let Some(p) = provider {
                    let minute = row.event_time.div_euclid(60_000) * 60_000;
                    self.served.entry((row.agent_name.clone(), kind, p.clone())).or_default().insert(minute);
                }
            }
            if let Some(latency) = row.total_latency_ms {
                match row.latency_source {
                    Some(LatencySource::Reported) => self.reported += 1,
                    Some(LatencySource::ComputedToolRound | LatencySource::EstimatedToolRound) => {
                        self.computed += 1;
                        self.tool_rounds += 1;
                    }
                    _ => self.computed += 1,
                }
                self.turns.push(&TurnPoint {
                    time: row.event_time,
                    session,
                    agent,
                    latency,
                    eou: row.eou_delay_ms.unwrap_or(f64::NAN),
                    hook: row.on_user_turn_completed_delay_ms.unwrap_or(f64::NAN),
                    ttft: row.llm_ttft_ms.unwrap_or(f64::NAN),
                    ttfb: row.tts_ttfb_ms.unwrap_or(f64::NAN),
                    over_target: row.over_target == Some(true),
                })?;
            }
        }
        for ((index, minute, agent), n) in counted {
            self.observe(metric::ALL[index], minute, agent, n)?;
        }
        Ok(())
    }

    /// A call that ended: its metrics, failed tool calls, spend, and the call for a diagnosis.
    fn add_calls(&mut self, sessions: &[SessionRow]) -> io::Result<()> {
        for s in sessions {
            self.see(s.event_time);
            if s.record_type != SessionRecordType::Analytics {
                continue;
            }
            let agent = self.agent_id(&s.agent_name);
            let mut seen = Vec::new();
            metrics::call_observations(s, |spec, value| seen.push((spec, value)));
            for (spec, value) in seen {
                self.observe(spec, s.event_time, agent, value)?;
            }
            for call in s.tool_calls.iter().filter(|c| c.success == Some(false)) {
                *self.failures_by_tool.entry(call.name.clone()).or_default() += 1;
                self.tool_failures.push(&ToolFailure(s.event_time, call.name.clone(), call.error.clone()))?;
            }
            self.calls.push(&EndedCall {
                time: s.event_time,
                session: s.session_id.clone(),
                agent: s.agent_name.clone(),
                cost_usd: s.estimated_cost_usd,
                failed_tool_calls: s.tool_failure_count.max(0) as u64,
            })?;
            for u in &s.model_usage {
                if let Some(cost) = u.cost_usd {
                    self.spend.push(&Spend(s.event_time, format!("{}/{}", u.provider, u.model), cost))?;
                }
            }
        }
        Ok(())
    }

    fn add_failures(&mut self, errors: &[ErrorRow]) -> io::Result<()> {
        for e in errors {
            self.see(e.event_time);
            let agent = self.agent_id(&e.agent_name);
            let mut seen = Vec::new();
            metrics::failure_observations(e, |spec, value| seen.push((spec, value)));
            for (spec, value) in seen {
                self.observe(spec, e.event_time, agent, value)?;
            }
            self.failures.push(&FailureFact::of(e))?;
        }
        Ok(())
    }

    fn add_rejects(&mut self, rejects: &[RejectRow]) -> io::Result<()> {
        for r in rejects {
            self.see(r.event_time);
            // A reject row has no agent: it could not be read far enough to know one.
            let agent = self.agent_id("");
            self.observe(metric::EVENTS_REJECTED, r.event_time, agent, 1.0)?;
            self.rejects.push(&Rejected(r.event_time, r.reason.clone(), r.raw_message.clone()))?;
            if self.first_rejects.len() < NAMED_REJECTS {
                let place = r.event_id.clone().unwrap_or_else(|| r.log_group.clone().unwrap_or_default());
                let detail = voicelake_shared::rows::truncate_utf8(&r.detail, 300).to_owned();
                self.first_rejects.push(RejectPlace { place, reason: r.reason.clone(), detail });
            }
        }
        Ok(())
    }

    /// `EventsIn`, at each log event's time.
    fn add_event_times(&mut self, event_timestamps: &[i64]) -> io::Result<()> {
        if !event_timestamps.is_empty() {
            // A counter, only ever summed: one observation per minute of the batch keeps every
            // period's sum (periods are whole minutes) without one per log event.
            let agent = self.agent_id("");
            let mut per_minute: BTreeMap<i64, f64> = BTreeMap::new();
            for &t in event_timestamps {
                *per_minute.entry(t.div_euclid(60_000) * 60_000).or_default() += 1.0;
            }
            for (minute, n) in per_minute {
                self.observe(metric::EVENTS_IN, minute, agent, n)?;
            }
        }
        Ok(())
    }
}
