//! Turn assembly within a batch: LiveKit's component lines joined by `speech_id`, `log_metrics()`
//! lines by their order within a session, chat replies with the user message before them, the latest
//! usage update per session. Here, and only here, a turn's latency is decided
//! ([`TurnRow::settle_latency`]), once its parts are together.

use std::collections::{HashMap, HashSet};

use crate::batch::{BatchOutput, BatchStats};
use crate::config::Config;
use crate::event::Component;
use crate::normalize::Observation;
use crate::reasons::SkipReason;
use crate::rows::{ErrorRow, SessionRow, SourceFormat, TurnRow};

/// Turn assembly within a batch.
#[derive(Default)]
pub(crate) struct Assembly {
    /// Turns and rows that stay on their own, each with the latency its agent reported and, for a
    /// turn that parts arriving later could still complete, the parts it was assembled from.
    turns: Vec<(TurnRow, Option<f64>, Option<Parts>)>,
    /// LiveKit component rows by `speech_id`, in order of first appearance.
    by_speech: Vec<Vec<TurnRow>>,
    /// `log_metrics()` rows, which carry no `speech_id`: assembled by order within their session.
    logged: Vec<TurnRow>,
    speech_index: HashMap<String, usize>,
    /// Chat messages in order of arrival: the row, and for an agent reply its reported latency.
    chat: Vec<(usize, TurnRow, Option<Option<f64>>)>,
    sessions: Vec<SessionRow>,
    errors: Vec<ErrorRow>,
    /// The latest usage update per session.
    usage: HashMap<String, SessionRow>,
    /// The events seen, to use each once.
    seen: Seen,
}

/// What makes two observations copies of one event: an app that logs its analytics through its
/// own formatter while LiveKit's root JSON handler writes the same record again, or a handler
/// added twice, gives two lines of the same event of the same session.
#[derive(Hash)]
enum Copy<'a> {
    Turn(Option<&'a str>, Option<&'a str>, Option<i64>),
    Component(Option<&'a str>, Option<&'a str>, Option<Component>, i64, &'a str),
    Chat(Option<&'a str>, Option<&'a str>, bool),
    Session(&'a str, i64),
}

impl<'a> Copy<'a> {
    fn of(obs: &'a Observation) -> Option<Copy<'a>> {
        Some(match obs {
            // One turn of one session: its speech id, else its time.
            Observation::Turn { row, .. } => {
                Copy::Turn(row.session_id.as_deref(), row.speech_id.as_deref(), row.speech_id.is_none().then_some(row.event_time))
            }
            // A tool round gives one speech id several LLM calls: the metric's own time tells them apart.
            Observation::Component(row) => {
                Copy::Component(row.session_id.as_deref(), row.speech_id.as_deref(), row.component, row.event_time, &row.log_stream)
            }
            Observation::ChatUser(row) => Copy::Chat(row.session_id.as_deref(), row.speech_id.as_deref(), false),
            Observation::ChatAssistant { row, .. } => Copy::Chat(row.session_id.as_deref(), row.speech_id.as_deref(), true),
            Observation::Session(s) => Copy::Session(&s.session_id, s.event_time),
            Observation::Usage(_) | Observation::Failure(_) | Observation::Skip(_) | Observation::Reject { .. } => return None,
        })
    }
}

/// The events seen, each kept as a 64-bit fingerprint of its [`Copy`] under this process's random
/// keys: every event is looked up, and copying its strings into the set cost more than the lookup.
/// Two events of one batch share a fingerprint with odds near n²/2^65 (below 10^-11 for a batch of
/// ten thousand events), and since the keys are secret, data cannot be made to collide.
#[derive(Default)]
struct Seen {
    keys: std::hash::RandomState,
    fingerprints: HashSet<u64>,
}

impl Seen {
    /// True the first time an event is seen.
    fn first(&mut self, copy: &Copy) -> bool {
        use std::hash::BuildHasher;
        self.fingerprints.insert(self.keys.hash_one(copy))
    }
}

impl Assembly {
    pub(crate) fn add(&mut self, obs: Observation, stats: &mut BatchStats) {
        // The first copy of an event is used; later ones are counted as duplicates.
        if let Some(copy) = Copy::of(&obs)
            && !self.seen.first(&copy)
        {
            *stats.skipped.entry(SkipReason::DuplicateEvent).or_default() += 1;
            stats.events_used -= 1;
            return;
        }
        match obs {
            Observation::Turn { row, reported_ms } => self.turns.push((row, reported_ms, None)),
            Observation::Component(row) if row.speech_id.is_none() && row.source_format == SourceFormat::LivekitLogMetrics => {
                self.logged.push(row)
            }
            Observation::Component(row) => match row.speech_id.clone() {
                Some(speech) => {
                    let next = self.by_speech.len();
                    let at = *self.speech_index.entry(speech).or_insert(next);
                    if at == next {
                        self.by_speech.push(Vec::new());
                    }
                    self.by_speech[at].push(row);
                }
                None => self.turns.push((row, None, None)),
            },
            Observation::ChatUser(row) => self.chat.push((self.chat.len(), row, None)),
            Observation::ChatAssistant { row, reported_ms } => self.chat.push((self.chat.len(), row, Some(reported_ms))),
            Observation::Session(row) => self.sessions.push(row),
            Observation::Failure(row) => self.errors.push(row),
            Observation::Usage(row) => {
                let key = row.session_id.clone();
                match self.usage.get_mut(&key) {
                    Some(current) if current.event_time > row.event_time => {
                        *stats.skipped.entry(SkipReason::SupersededUsage).or_default() += 1;
                        stats.events_used -= 1;
                    }
                    Some(current) => {
                        *current = row;
                        *stats.skipped.entry(SkipReason::SupersededUsage).or_default() += 1;
                        stats.events_used -= 1;
                    }
                    None => {
                        self.usage.insert(key, row);
                    }
                }
            }
            Observation::Skip(_) | Observation::Reject { .. } => unreachable!("handled by the caller"),
        }
    }

    /// Assembles the turns, decides each turn's latency, and counts what the batch gave. With
    /// `holding`, a turn that later parts could still complete is not settled: the event ids of its
    /// parts are returned, for the caller to hold back and carry into the stream's next batch.
    pub(crate) fn finish(mut self, config: &Config, out: &mut BatchOutput, holding: Option<Holding>) -> Vec<String> {
        // Where an app's voice_metrics and LiveKit's component metrics describe the same turn (one
        // session, one speech id), the app's event is the turn: its components are not a second one.
        let app_turns: HashSet<(Option<String>, String)> =
            self.turns.iter().filter_map(|(t, ..)| Some((t.session_id.clone(), t.speech_id.clone()?))).collect();
        for parts in std::mem::take(&mut self.by_speech) {
            let key = (parts[0].session_id.clone(), parts[0].speech_id.clone().unwrap_or_default());
            if app_turns.contains(&key) {
                *out.stats.skipped.entry(SkipReason::DuplicateEvent).or_default() += parts.len() as u64;
                out.stats.events_used -= parts.len() as u64;
                continue;
            }
            let of = Parts::of(&parts, Growth::MayGrow);
            self.turns.push((merge_components(parts), None, Some(of)));
        }
        for parts in sequence_logged(std::mem::take(&mut self.logged)) {
            // STT lines meter audio, not a turn: nothing completes them.
            let of = parts.iter().any(|r| r.component != Some(Component::Stt)).then(|| Parts::of(&parts, Growth::MayGrow));
            self.turns.push((merge_components(parts), None, of));
        }
        self.join_chat(holding.is_some_and(|h| h.before_carry));
        let mut held = Vec::new();
        let mut turns = Vec::with_capacity(self.turns.len());
        for (mut row, reported_ms, parts) in self.turns {
            row.settle_latency(reported_ms, config.latency_target_ms);
            if let (Some(h), Some(parts)) = (holding, parts)
                && h.holds(&parts, row.is_complete)
            {
                out.stats.events_used -= parts.ids.len() as u64;
                held.extend(parts.ids);
                continue;
            }
            let nulled = row.value_issues.len() as u64;
            out.stats.nulled_values += nulled;
            if row.is_complete {
                out.stats.turns += 1;
            } else {
                out.stats.partial_turns += 1;
            }
            turns.push(row);
        }
        let mut usage: Vec<SessionRow> = self.usage.into_values().collect();
        usage.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
        self.sessions.extend(usage);
        for s in &self.sessions {
            out.stats.nulled_values += s.value_issues.len() as u64;
        }
        out.stats.sessions = self.sessions.len() as u64;
        turns.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
        out.turns = turns;
        out.sessions = self.sessions;
        out.errors = self.errors;
        crate::failure::attribute_closes(&mut out.errors);
        held
    }

    /// Gives each agent chat message the end-of-turn delay of the user message before it in the
    /// same session. A user message left unanswered in the batch can still be answered by a later
    /// one; with `before_carry`, so can a reply without its user message be given one carried
    /// from an earlier batch, and both are held where holding is on.
    fn join_chat(&mut self, before_carry: bool) {
        let mut chat = std::mem::take(&mut self.chat);
        chat.sort_by_key(|a| (a.1.event_time, a.0));
        let mut pending_user: HashMap<Option<String>, TurnRow> = HashMap::new();
        for (_, row, reply) in chat {
            let Some(reported_ms) = reply else {
                // A newer user message leaves the earlier one unanswered for good.
                if let Some(unanswered) = pending_user.insert(row.session_id.clone(), row) {
                    self.turns.push((unanswered, None, None));
                }
                continue;
            };
            let mut turn = row;
            let parts = match pending_user.remove(&turn.session_id) {
                Some(user) => {
                    turn.absorb(user);
                    None
                }
                None => before_carry.then(|| Parts::of(std::slice::from_ref(&turn), Growth::MayTakeEarlier)),
            };
            self.turns.push((turn, reported_ms, parts));
        }
        let mut rest: Vec<TurnRow> = pending_user.into_values().collect();
        rest.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
        self.turns.extend(rest.into_iter().map(|row| {
            let parts = Parts::of(std::slice::from_ref(&row), Growth::Waits);
            (row, None, Some(parts))
        }));
    }
}

/// Whether and which turns wait for parts still to come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Holding {
    /// An incomplete turn whose newest part is older than this (epoch milliseconds) is settled,
    /// partial: its other parts are not coming.
    pub horizon_ms: i64,
    /// A complete turn whose newest part is this recent may still take in lines logged after it.
    pub settle_from_ms: i64,
    /// The batch is processed before the parts its stream carries are known (a replay processes
    /// batches in parallel, then carries): an incomplete turn is held whatever it lacks, and an
    /// agent reply without its user message too, for the pass with the carried parts to decide.
    pub before_carry: bool,
}

impl Holding {
    fn holds(&self, parts: &Parts, complete: bool) -> bool {
        match (parts.growth, complete) {
            // Once the carried parts are in, a turn that lacks a line LiveKit writes before the ones
            // it has will never get it: only a turn still waiting for a later line is held.
            (_, false) => (self.before_carry || parts.waiting) && parts.newest_ms >= self.horizon_ms,
            (Growth::MayGrow, true) => parts.newest_ms >= self.settle_from_ms,
            (Growth::MayTakeEarlier, true) => true,
            (Growth::Waits, true) => false,
        }
    }
}

/// The log events a turn was assembled from, to hold it back whole.
struct Parts {
    /// The event ids of its rows.
    ids: Vec<String>,
    newest_ms: i64,
    growth: Growth,
    /// What it lacks comes after what it has: LiveKit writes a turn's EOU line, then its LLM
    /// lines, then its speech's; a user message comes before its reply.
    waiting: bool,
}

/// What a turn may still take in from other batches.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Growth {
    /// Lines logged after it, while complete too (a tool round's reply call, later speech).
    MayGrow,
    /// A user message an earlier batch holds: an agent reply processed before the carried parts
    /// are known ([`Holding::before_carry`]).
    MayTakeEarlier,
    /// Only what completes it (a user message waiting for its reply).
    Waits,
}

impl Parts {
    fn of(rows: &[TurnRow], growth: Growth) -> Parts {
        let has = |c: Component| rows.iter().any(|r| r.component == Some(c));
        let waiting = match growth {
            Growth::MayGrow => has(Component::Eou) && !has(Component::Tts),
            Growth::Waits => true,
            Growth::MayTakeEarlier => false,
        };
        Parts {
            ids: rows.iter().map(|r| r.event_id.clone()).collect(),
            newest_ms: rows.iter().map(|r| r.event_time).max().unwrap_or(i64::MIN),
            growth,
            waiting,
        }
    }
}

/// Groups `log_metrics()` rows into turns without a `speech_id`: within one session and log stream,
/// in time order, an EOU line opens a turn and the LLM and TTS lines after it join it until the next
/// EOU line. LiveKit writes them in that order (end of turn, then the reply's LLM call, then its
/// speech). Lines before any EOU line of the batch (a greeting, or a turn whose EOU line went in the
/// previous batch), and STT lines, which meter audio rather than turns, stay component rows.
fn sequence_logged(mut rows: Vec<TurnRow>) -> Vec<Vec<TurnRow>> {
    rows.sort_by(|a, b| {
        (&a.session_id, &a.log_stream, a.event_time, &a.event_id).cmp(&(&b.session_id, &b.log_stream, b.event_time, &b.event_id))
    });
    let mut groups: Vec<Vec<TurnRow>> = Vec::new();
    let mut open: Option<usize> = None;
    let mut key: Option<(Option<String>, String)> = None;
    for row in rows {
        let row_key = (row.session_id.clone(), row.log_stream.clone());
        if key.as_ref() != Some(&row_key) {
            open = None;
            key = Some(row_key);
        }
        let is_stt = row.component == Some(Component::Stt);
        if row.component == Some(Component::Eou) && row.session_id.is_some() {
            open = Some(groups.len());
            groups.push(vec![row]);
        } else if let (Some(at), false) = (open, is_stt) {
            groups[at].push(row);
        } else {
            groups.push(vec![row]);
        }
    }
    groups
}

/// Merges the component rows of one `speech_id`: identity from the earliest, the first LLM call's
/// ttft and duration and the first TTS segment's ttfb, usage summed over all of them.
fn merge_components(mut parts: Vec<TurnRow>) -> TurnRow {
    parts.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
    let mut iter = parts.into_iter();
    let mut turn = iter.next().expect("a speech_id group has at least one row");
    for part in iter {
        turn.absorb(part);
    }
    turn
}
