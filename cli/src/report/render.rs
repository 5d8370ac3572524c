//! The report as text for a terminal.

use std::fmt::Write as _;

use voicelake_shared::shown::one_line;

use super::{Distribution, Report};

/// "1 call", "2 calls".
pub(super) fn calls(n: impl Into<u64>) -> String {
    match n.into() {
        1 => "1 call".into(),
        n => format!("{n} calls"),
    }
}

pub(super) fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

impl Report {
    /// The rows of the latency table, text and page alike: turn latency, each component, each agent.
    pub fn latency_rows(&self) -> Vec<(String, &Distribution)> {
        let mut rows = vec![("turn latency".to_owned(), &self.latency_ms)];
        rows.extend(self.components_ms.iter().map(|(name, summary)| (name.to_string(), summary)));
        rows.extend(self.agents.iter().map(|a| (format!("agent {}", a.agent), &a.latency_ms)));
        rows
    }

    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_counts(&mut s);
        self.render_latency(&mut s);
        self.render_spend(&mut s);
        self.render_alarms(&mut s);
        s
    }

    /// What was read, rejected and skipped, and where the input needed help.
    fn render_counts(&self, s: &mut String) {
        let _ = writeln!(s, "voicelake report");
        let c = &self.counts;
        let _ = writeln!(
            s,
            "  events {}  turns {} (+{} partial)  sessions {}  skipped {}  rejected {}  nulled values {}",
            c.events_in, c.turns, c.partial_turns, c.sessions, c.skipped, c.rejected, c.nulled_values
        );
        if let (Some(a), Some(b)) = (&self.first_event, &self.last_event) {
            let _ = writeln!(s, "  event time {a} .. {b}");
        }
        if !self.rejected_by_reason.is_empty() {
            let reasons: Vec<String> = self.rejected_by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  rejected by reason: {}", reasons.join(", "));
        }
        if !self.skipped_by_reason.is_empty() {
            let reasons: Vec<String> = self.skipped_by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  skipped by reason: {}", reasons.join(", "));
        }
        for r in &self.input.first_rejects {
            let _ = writeln!(s, "  rejected at {}: {}: {}", one_line(&r.place), r.reason, one_line(&r.detail));
        }
        if let Some(unknown) = self.agents.iter().find(|a| a.agent == "unknown") {
            let _ = writeln!(
                s,
                "  agent unknown: {} turns whose lines name no agent, in an input that names no log group (give --log-group NAME)",
                unknown.latency_ms.count
            );
        }
        if self.input.replaced_bytes > 0 || self.input.joined_lines > 0 {
            let _ = writeln!(
                s,
                "  input: {} bytes not UTF-8 (or NUL) replaced, {} cut lines joined",
                self.input.replaced_bytes, self.input.joined_lines
            );
        }
    }

    /// The latency table, the target, interruptions and the slowest calls.
    fn render_latency(&self, s: &mut String) {
        let _ = writeln!(s, "\nlatency (ms)                     count    mean     min  stddev     p50     p95     p99     max");
        for (name, x) in self.latency_rows() {
            let [mean, min, sd, p50, p95, p99, max] = [x.mean, x.min, x.std_dev, x.p50, x.p95, x.p99, x.max].map(fmt_ms);
            let name = one_line(&name);
            let _ = writeln!(s, "  {name:<29} {:>7} {mean:>7} {min:>7} {sd:>7} {p50:>7} {p95:>7} {p99:>7} {max:>7}", x.count);
        }
        let _ = writeln!(
            s,
            "  ({} reported by agents, {} computed as eou + on_user_turn_completed hook + llm phase + tts ttfb, {} of them with a tool round)",
            self.latency_reported, self.latency_computed, self.latency_tool_rounds
        );
        let t = &self.target;
        let _ = writeln!(
            s,
            "\ntarget {} ms: {} within, {} over, compliance {}; calls with every turn within {} of {} ({})",
            t.target_ms,
            t.within_target,
            t.over_target,
            t.compliance_pct.map_or("-".into(), |p| format!("{p}%")),
            t.calls_within_target,
            t.calls,
            t.calls_compliance_pct.map_or("-".into(), |p| format!("{p}%"))
        );
        let i = &self.interrupted;
        let _ = writeln!(s, "interrupted: {} turns ({})", i.turns, i.pct.map_or("-".into(), |p| format!("{p}% of complete turns")));
        if !self.slowest_sessions.is_empty() {
            let _ = writeln!(s, "\nslowest sessions (by p95)");
            for x in &self.slowest_sessions {
                let _ = writeln!(
                    s,
                    "  {:<28} {:<16} turns {:>3}  p95 {:>6.0} ms  max {:>6.0} ms  mostly {}",
                    one_line(&x.session_id),
                    one_line(&x.agent),
                    x.turns,
                    x.p95_ms,
                    x.max_ms,
                    x.dominant_component.unwrap_or("-")
                );
            }
        }
    }

    /// Cost, tools and provider failures.
    fn render_spend(&self, s: &mut String) {
        let c = &self.cost;
        let _ = writeln!(
            s,
            "\ncost: {}, total ${:.4}, per call p50 ${} p95 ${} max ${}",
            calls(c.calls),
            c.total_usd,
            c.per_call_usd.p50.map_or("-".into(), |v| format!("{v:.4}")),
            c.per_call_usd.p95.map_or("-".into(), |v| format!("{v:.4}")),
            c.per_call_usd.max.map_or("-".into(), |v| format!("{v:.4}"))
        );
        let tl = &self.tools;
        let _ = write!(
            s,
            "tools: {}, {} with an outcome, {} failed, success {}",
            calls(tl.calls),
            tl.with_outcome,
            tl.failures,
            tl.success_pct.map_or("-".into(), |p| format!("{p}%"))
        );
        if !tl.failures_by_tool.is_empty() {
            let worst: Vec<String> = tl.failures_by_tool.iter().take(3).map(|(n, c)| format!("{} {c}", one_line(n))).collect();
            let _ = write!(s, " (failures: {})", worst.join(", "));
        }
        let e = &self.errors;
        let _ = write!(s, "\nprovider failures: {} events, {} sessions closed by errors", e.events, e.sessions_closed_by_error);
        if !e.by_provider.is_empty() {
            let worst: Vec<String> =
                e.by_provider.iter().take(5).map(|p| format!("{} {} {}", one_line(&p.kind), one_line(&p.provider), p.events)).collect();
            let _ = write!(s, " ({})", worst.join(", "));
        }
    }

    /// Each alarm: whether it would fire, its worst period and its diagnosis.
    fn render_alarms(&self, s: &mut String) {
        let _ = writeln!(s, "\n\nalarms (default thresholds, evaluated on event time)");
        for a in &self.alarms {
            let state = if a.would_fire { "WOULD FIRE" } else { "ok" };
            let _ = write!(
                s,
                "  {:<30} {:<10} threshold {:<6} breaching {}/{} periods",
                a.alarm, state, a.threshold, a.periods_breaching, a.periods_evaluated
            );
            if let (Some(v), Some(p)) = (a.worst_value, &a.worst_period) {
                let _ = write!(s, ", worst {v} at {p}");
            }
            let _ = writeln!(s);
            if let Some(d) = a.detail.as_ref().filter(|_| a.would_fire) {
                let _ = writeln!(s, "  {:<30} {}", "", one_line(d));
            }
            if let Some(d) = &a.diagnosis {
                let _ = writeln!(s, "  {:<30} {}", "", one_line(&d.headline));
                if let Some(cause) = &d.cause {
                    let _ = writeln!(s, "  {:<30} cause: {}", "", one_line(cause));
                }
                if !d.worst_sessions.is_empty() {
                    let _ = writeln!(s, "  {:<30} worst calls: {}", "", one_line(&d.worst_sessions.join(", ")));
                }
            }
        }
    }
}
