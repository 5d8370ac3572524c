//! Provider failures in a breach window: grouped from the `errors` rows, the most failing named.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metrics::metric;
use crate::timefmt;

use super::wording::{hhmm, times};
use super::{Diagnosis, Evidence, WORST_CALLS};

/// One provider's failures in the breach window, for one agent: what the `errors` rows say.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProviderFailures {
    /// `llm`, `stt`, `tts`, `realtime`.
    pub kind: String,
    pub provider: String,
    pub agent: String,
    /// Failure events: retries, fallback switches, all providers failing, sessions closed.
    pub events: u64,
    /// The first failure's time, epoch milliseconds.
    pub first_ms: i64,
    /// Failure events by error class (`http_503`, `timeout`, …).
    pub error_classes: BTreeMap<String, u64>,
    /// Whether a FallbackAdapter switched away from it.
    pub fell_back: bool,
    /// Failure events by session, and whether LiveKit closed that session over it.
    pub sessions: BTreeMap<String, (u64, bool)>,
}

/// What a diagnosis reads of one `errors` row.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureFact {
    pub time: i64,
    pub agent: String,
    pub session: Option<String>,
    pub kind: String,
    pub provider: String,
    pub action: String,
    pub class: Option<String>,
    /// A failure event ([`crate::metrics::failure_observations`] counts it as `ProviderFailures`).
    pub counted: bool,
}

impl FailureFact {
    pub fn of(row: &crate::rows::ErrorRow) -> FailureFact {
        let mut counted = false;
        crate::metrics::failure_observations(row, |spec, _| counted |= spec.index == metric::PROVIDER_FAILURES.index);
        FailureFact {
            time: row.event_time,
            agent: row.agent_name.clone(),
            session: row.session_id.clone(),
            kind: row.kind.clone(),
            provider: row.provider.clone(),
            action: row.action.clone(),
            class: row.error_class.clone(),
            counted,
        }
    }

    fn is_close(&self) -> bool {
        self.action == crate::failure::Action::Closed.as_str()
    }
}

/// The failures of a breach window by kind, provider and agent, from its facts; `earlier` (the
/// facts of the hour before it) only says since when each has been failing. Sessions a close names
/// are marked closed in every group that failed them.
pub fn group_failures(
    window: impl IntoIterator<Item = FailureFact>,
    earlier: impl IntoIterator<Item = FailureFact>,
) -> Vec<ProviderFailures> {
    let mut groups: BTreeMap<(String, String, String), ProviderFailures> = BTreeMap::new();
    let mut closed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for f in window {
        if f.is_close()
            && let Some(s) = &f.session
        {
            closed.insert(s.clone());
        }
        // Process lines, and closes no failure before them explains, are not a provider's.
        if !f.counted || f.kind == "unknown" || f.kind == "process" {
            continue;
        }
        let g = groups.entry((f.kind.clone(), f.provider.clone(), f.agent.clone())).or_insert_with(|| ProviderFailures {
            kind: f.kind.clone(),
            provider: f.provider.clone(),
            agent: f.agent.clone(),
            first_ms: f.time,
            ..ProviderFailures::default()
        });
        g.events += 1;
        g.first_ms = g.first_ms.min(f.time);
        g.fell_back |= f.action == crate::failure::Action::Fallback.as_str();
        if let Some(c) = f.class {
            *g.error_classes.entry(c).or_default() += 1;
        }
        if let Some(s) = f.session {
            g.sessions.entry(s).or_default().0 += 1;
        }
    }
    for f in earlier.into_iter().filter(|f| f.counted) {
        if let Some(g) = groups.get_mut(&(f.kind, f.provider, f.agent)) {
            g.first_ms = g.first_ms.min(f.time);
        }
    }
    let mut failures: Vec<ProviderFailures> = groups.into_values().collect();
    for g in &mut failures {
        for (session, (_, was_closed)) in g.sessions.iter_mut() {
            *was_closed = closed.contains(session);
        }
    }
    failures
}

/// The provider with the most failure events (ties: the earliest to fail). A FallbackAdapter's own
/// retries (`fallback_adapter`) and every provider failing (`all`) follow from the providers'
/// failures: a provider is named before them.
pub(super) fn most_failing(failures: &[ProviderFailures]) -> Option<&ProviderFailures> {
    let real = |f: &ProviderFailures| !matches!(f.provider.as_str(), "fallback_adapter" | "all" | "unknown");
    failures.iter().max_by(|a, b| {
        real(a)
            .cmp(&real(b))
            .then_with(|| a.events.cmp(&b.events))
            .then_with(|| b.first_ms.cmp(&a.first_ms))
            .then_with(|| b.agent.cmp(&a.agent))
    })
}

/// Kind, provider, agent, since when, the error classes, the fallback serving, the calls hit.
pub(super) fn explain_failures(d: &mut Diagnosis, f: &ProviderFailures, e: &Evidence) {
    d.kind = Some(f.kind.clone());
    d.provider = Some(f.provider.clone());
    d.agent = Some(f.agent.clone());
    d.since = Some(timefmt::iso(f.first_ms));
    let mut classes: Vec<(String, u64)> = f.error_classes.iter().map(|(c, n)| (c.clone(), *n)).collect();
    classes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    d.error_classes = classes;
    let serving = e.serving.get(&(f.agent.clone(), f.kind.clone())).into_iter().flatten();
    d.fallback = serving.filter(|p| !same_provider(p, &f.provider)).min().cloned().filter(|_| f.fell_back);
    let closed = f.sessions.values().filter(|(_, closed)| *closed).count() as u64;
    d.sessions_closed = Some(closed);
    let mut sessions: Vec<(&String, &(u64, bool))> = f.sessions.iter().collect();
    // Calls LiveKit closed first, then by failures.
    sessions.sort_by(|a, b| b.1.1.cmp(&a.1.1).then_with(|| b.1.0.cmp(&a.1.0)).then_with(|| a.0.cmp(b.0)));
    d.worst_sessions = sessions.iter().take(WORST_CALLS).map(|(s, _)| (*s).clone()).collect();
    let classes = d.error_classes.iter().take(3).map(|(c, n)| format!("{c} ×{n}")).collect::<Vec<_>>().join(", ");
    let mut cause = format!("{} {} failed {} for {} since {}", f.kind, f.provider, times(f.events), f.agent, hhmm(f.first_ms));
    if !classes.is_empty() {
        cause.push_str(&format!(" ({classes})"));
    }
    match (&d.fallback, f.fell_back) {
        (Some(next), _) => cause.push_str(&format!("; LiveKit fell back to {next}")),
        (None, true) => cause.push_str("; LiveKit fell back from it"),
        _ => {}
    }
    if closed > 0 {
        cause.push_str(&format!("; {closed} {} closed by the error", if closed == 1 { "call" } else { "calls" }));
    }
    d.cause = Some(cause);
}

/// `ElevenLabs` as LiveKit's metrics name a provider and `elevenlabs` as its plugin's label does;
/// `api.openai.com` and `openai`: one names the other as a whole word.
pub(super) fn same_provider(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let words = |s: &str| s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    a == b || words(&a).contains(&b) || words(&b).contains(&a)
}
