//! A notification, and how each channel shows it: Slack Block Kit, a generic JSON webhook, and a
//! plain-text body for email and SMS through SNS.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Value, json};
use voicelake_shared::diagnosis::{self, Diagnosis};
use voicelake_shared::shown::one_line;
use voicelake_shared::timefmt;

use crate::history::duration_words;
use crate::message::State;

/// Console links for the breach.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Links {
    pub alarm: Option<String>,
    pub dashboard: Option<String>,
    /// The saved Insights query that explains this alarm, opened on the breach window.
    pub insights: Option<String>,
    pub athena: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flapping {
    pub transitions: usize,
    pub since: String,
}

/// Everything a channel shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub alarm: String,
    pub state: State,
    pub previous_state: Option<State>,
    /// RFC 3339.
    pub time: String,
    /// One sentence: what happened.
    pub headline: String,
    pub cause: Option<String>,
    /// CloudWatch's own reason for the change.
    pub reason: String,
    pub description: Option<String>,
    pub diagnosis: Option<Diagnosis>,
    /// For a composite alarm: the children that put it in its state.
    pub triggered_by: Vec<String>,
    /// For OK after ALARM: how long the alarm lasted.
    pub lasted_seconds: Option<i64>,
    pub flapping: Option<Flapping>,
    pub links: Links,
    /// What could not be gathered in time, said instead of guessed.
    pub missing: Vec<String>,
    /// Sent by `voicelake notify test`, not by an alarm.
    pub test: bool,
}

impl Notification {
    fn marker(&self) -> &'static str {
        match self.state {
            State::Alarm => "🔴",
            State::Ok => "✅",
            State::InsufficientData => "⚪",
        }
    }

    /// One line for subjects and Slack's fallback text.
    pub fn title(&self) -> String {
        let test = if self.test { "[test] " } else { "" };
        let what = if self.flapping.is_some() { "FLAPPING" } else { self.state.as_str() };
        format!("{test}{what}: {}", self.alarm)
    }

    fn lasted(&self) -> Option<String> {
        self.lasted_seconds.map(|s| format!("The alarm lasted {}.", duration_words(s * 1000)))
    }

    fn flapping_line(&self) -> Option<String> {
        self.flapping.as_ref().map(|f| {
            format!(
                "The alarm changed state {} times since {}; further changes within the cooldown are not notified one by one. It is now {}.",
                f.transitions,
                f.since,
                self.state.as_str()
            )
        })
    }

    fn window_line(d: &Diagnosis) -> String {
        format!("{} to {}", d.window_start, d.window_end)
    }

    fn component_line(d: &Diagnosis) -> Option<String> {
        let c = d.component?;
        let mut s = format!("{} {}", diagnosis::label(c), d.value_ms.map_or("-".into(), |v| format!("{v:.0} ms")));
        if let Some(b) = d.baseline_ms {
            s.push_str(&format!(" (baseline {b:.0} ms)"));
        }
        Some(s)
    }

    /// A provider alarm's failing model: kind and provider, since when, how it failed, what serves
    /// in its place, the calls closed over it.
    fn provider_line(d: &Diagnosis) -> Option<String> {
        let (kind, provider) = (d.kind.as_ref()?, d.provider.as_ref()?);
        let mut s = format!("{kind} {provider}");
        if let Some(since) = &d.since {
            s.push_str(&format!(" failing since {since}"));
        }
        if !d.error_classes.is_empty() {
            let classes: Vec<String> = d.error_classes.iter().take(3).map(|(c, n)| format!("{c} ×{n}")).collect();
            s.push_str(&format!("; {}", classes.join(", ")));
        }
        if let Some(next) = &d.fallback {
            s.push_str(&format!("; now served by {next}"));
        }
        if let Some(closed) = d.sessions_closed.filter(|n| *n > 0) {
            s.push_str(&format!("; {closed} closed by the error"));
        }
        Some(s)
    }

    /// The calls a provider alarm hit, worst first, where no call measurements name them.
    fn affected_line(d: &Diagnosis) -> Option<String> {
        (d.worst_calls.is_empty() && d.kind.is_some() && !d.worst_sessions.is_empty()).then(|| d.worst_sessions.join(", "))
    }

    fn worst_call_lines(d: &Diagnosis) -> Vec<String> {
        d.worst_calls
            .iter()
            .map(|c| {
                let mut s = c.session_id.clone();
                if !c.agent.is_empty() {
                    s.push_str(&format!(" ({})", c.agent));
                }
                if let Some(p) = c.p95_ms {
                    s.push_str(&format!(": p95 {p:.0} ms"));
                }
                if let Some(dc) = c.dominant_component {
                    s.push_str(&format!(", mostly {}", diagnosis::label(dc)));
                }
                if let Some(cost) = c.cost_usd {
                    s.push_str(&format!(", ${cost:.4}"));
                }
                if c.failed_tool_calls > 0 {
                    s.push_str(&format!(", {} failed tool calls", c.failed_tool_calls));
                }
                s
            })
            .collect()
    }

    fn detail_lines(d: &Diagnosis) -> Vec<String> {
        let mut lines = Vec::new();
        for t in &d.failing_tools {
            lines.push(match &t.most_common_error {
                Some(e) => format!("{} failed {} times, most often: {e}", t.tool, t.failures),
                None => format!("{} failed {} times", t.tool, t.failures),
            });
        }
        for r in &d.top_rejects {
            lines.push(format!("{} × {}, e.g. {}", r.count, r.reason, r.example));
        }
        lines.extend(d.error_lines.iter().cloned());
        lines
    }

    fn link_list(&self) -> Vec<(&'static str, &str)> {
        let l = &self.links;
        [("Alarm", &l.alarm), ("Dashboard", &l.dashboard), ("Logs Insights on the window", &l.insights), ("Athena", &l.athena)]
            .into_iter()
            .filter_map(|(n, u)| u.as_deref().map(|u| (n, u)))
            .collect()
    }

    /// SNS subject (at most 100 ASCII characters, one line) and body.
    pub fn text(&self) -> (String, String) {
        let subject: String = self.title().chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(100).collect();
        let mut b = vec![self.title(), String::new(), self.headline.clone()];
        b.extend(self.cause.iter().map(|c| format!("Cause: {c}.")));
        b.extend(self.flapping_line());
        b.extend(self.lasted());
        if let Some(d) = &self.diagnosis {
            b.extend(Self::component_line(d).map(|c| format!("Component: {c}")));
            b.extend(Self::provider_line(d).map(|p| format!("Provider: {p}")));
            b.extend(d.agent.iter().map(|a| format!("Agent: {a}")));
            b.extend(Self::affected_line(d).map(|c| format!("Calls hit (closed first): {c}")));
            b.push(format!("Window: {}", Self::window_line(d)));
            let calls = Self::worst_call_lines(d);
            if !calls.is_empty() {
                b.push(String::new());
                b.push("Worst calls:".into());
                b.extend(calls.into_iter().map(|c| format!("  - {c}")));
            }
            let details = Self::detail_lines(d);
            if !details.is_empty() {
                b.push(String::new());
                b.extend(details.into_iter().map(|c| format!("  - {c}")));
            }
        }
        if !self.triggered_by.is_empty() {
            b.push(format!("Triggered by: {}", self.triggered_by.join(", ")));
        }
        b.push(String::new());
        b.push(format!("CloudWatch: {}", self.reason));
        b.extend(self.description.iter().map(|d| format!("What to check: {d}")));
        if !self.missing.is_empty() {
            b.push(format!("Not known (enrichment failed or ran out of time): {}.", self.missing.join("; ")));
        }
        let links = self.link_list();
        if !links.is_empty() {
            b.push(String::new());
            b.extend(links.into_iter().map(|(n, u)| format!("{n}: {u}")));
        }
        // Names, ids and errors come from agents' logs: a newline or a terminal escape in one must
        // not forge a line of the email or reach a terminal.
        let body: Vec<Cow<str>> = b.iter().map(|line| one_line(line)).collect();
        (subject, body.join("\n"))
    }

    /// A Slack incoming-webhook message in Block Kit.
    pub fn slack(&self) -> Value {
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": clip(&format!("{} {}", self.marker(), self.title()), 150), "emoji": true}}),
        ];
        let mut main = format!("*{}*", escape(&self.headline));
        for line in self.cause.iter().map(|c| format!("Cause: {c}.")).chain(self.flapping_line()).chain(self.lasted()) {
            main.push_str(&format!("\n{}", escape(&line)));
        }
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&main, 3000)}}));
        if let Some(d) = &self.diagnosis {
            let mut fields = Vec::new();
            if let Some(c) = Self::component_line(d) {
                fields.push(format!("*Component*\n{}", escape(&c)));
            }
            if let Some(p) = Self::provider_line(d) {
                fields.push(format!("*Provider*\n{}", escape(&p)));
            }
            if let Some(a) = &d.agent {
                fields.push(format!("*Agent*\n{}", escape(a)));
            }
            if let Some(c) = Self::affected_line(d) {
                fields.push(format!("*Calls hit (closed first)*\n{}", escape(&c)));
            }
            fields.push(format!("*Window*\n{}", escape(&Self::window_line(d))));
            blocks.push(json!({"type": "section", "fields": fields.iter().map(|f| json!({"type": "mrkdwn", "text": clip(f, 2000)})).collect::<Vec<_>>()}));
            let calls = Self::worst_call_lines(d);
            if !calls.is_empty() {
                let text = format!("*Worst calls*\n{}", calls.iter().map(|c| format!("• `{}`", escape(c))).collect::<Vec<_>>().join("\n"));
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&text, 3000)}}));
            }
            let details = Self::detail_lines(d);
            if !details.is_empty() {
                let text = details.iter().map(|c| format!("• {}", escape(c))).collect::<Vec<_>>().join("\n");
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&text, 3000)}}));
            }
        }
        let mut context = vec![format!("CloudWatch: {}", escape(&self.reason))];
        if !self.triggered_by.is_empty() {
            context.push(format!("Triggered by: {}", escape(&self.triggered_by.join(", "))));
        }
        if !self.missing.is_empty() {
            context.push(format!("Not known: {}", escape(&self.missing.join("; "))));
        }
        blocks.push(json!({"type": "context", "elements": context.iter().take(10).map(|c| json!({"type": "mrkdwn", "text": clip(c, 3000)})).collect::<Vec<_>>()}));
        let buttons: Vec<Value> = self
            .link_list()
            .into_iter()
            .filter(|(_, url)| url.len() <= SLACK_MAX_URL)
            .map(|(name, url)| json!({"type": "button", "text": {"type": "plain_text", "text": name}, "url": url}))
            .collect();
        if !buttons.is_empty() {
            blocks.push(json!({"type": "actions", "elements": buttons}));
        }
        // The top-level text is mrkdwn too (notifications and clients without blocks show it): a
        // `<!channel>` or `<url|label>` from data must stay text.
        json!({"text": clip(&escape(&format!("{}: {}", self.title(), self.headline)), 3000), "blocks": blocks})
    }

    /// The generic webhook body: the notification as data, versioned.
    pub fn webhook(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("a notification serializes");
        v["version"] = json!(1);
        v["source"] = json!("voicelake");
        v["title"] = json!(self.title());
        v
    }
}

/// Slack's limit on a button's URL.
const SLACK_MAX_URL: usize = 3000;

/// Slack's mrkdwn escaping: `&`, `<` and `>` are all it interprets as control (mentions such as
/// `<!channel>`, links such as `<url|label>`).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Logs Insights in the console with `query` on `log_groups` over `[start_ms, end_ms)`, in the
/// console's own encoding of its query state (JSURL inside the fragment).
pub fn insights_url(region: &str, query: &str, log_groups: &[String], start_ms: i64, end_ms: i64) -> String {
    fn jsurl(s: &str) -> String {
        let mut out = String::from("'");
        for c in s.chars() {
            match c {
                c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => out.push(c),
                c if (c as u32) < 0x100 => out.push_str(&format!("*{:02x}", c as u32)),
                c => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("**{:04x}", u));
                    }
                }
            }
        }
        out
    }
    // Comment lines and indentation cost three characters each once encoded, and Slack refuses
    // button URLs over 3,000 characters.
    let query: String = query.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect::<Vec<_>>().join(" ");
    let sources: String = log_groups.iter().map(|g| format!("~{}", jsurl(g))).collect();
    format!(
        "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:logs-insights$3FqueryDetail$3D~(end~{}~start~{}~timeType~'ABSOLUTE~tz~'UTC~editorString~{}~source~({}))",
        jsurl(&timefmt::iso(end_ms)),
        jsurl(&timefmt::iso(start_ms)),
        jsurl(&query),
        sources
    )
}

pub fn alarm_url(region: &str, alarm: &str) -> String {
    let name: String = alarm
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    format!("https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#alarmsV2:alarm/{name}")
}

pub fn dashboard_url(region: &str, dashboard: &str) -> String {
    format!("https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={dashboard}")
}

pub fn athena_url(region: &str, workgroup: &str) -> String {
    format!("https://{region}.console.aws.amazon.com/athena/home?region={region}#/query-editor?workgroup={workgroup}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insights_link_carries_the_query_window_and_groups_in_the_consoles_encoding() {
        let url = insights_url(
            "eu-west-1",
            "# name: x\nfields @timestamp\n  | limit 5",
            &["/ecs/voice-agent".into()],
            1_795_442_400_000,
            1_795_443_300_000,
        );
        assert!(url.starts_with("https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:logs-insights$3FqueryDetail$3D~(end~'2026-11-23T14*3a15*3a00.000Z~start~'2026-11-23T14*3a00*3a00.000Z"), "{url}");
        assert!(url.contains("editorString~'fields*20*40timestamp*20*7c*20limit*205~source~(~'*2fecs*2fvoice-agent))"), "{url}");
        assert_eq!(
            alarm_url("us-east-1", "a b/c"),
            "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:alarm/a%20b%2Fc"
        );
    }

    fn hostile() -> Notification {
        Notification {
            alarm: "voicelake-turn-latency-p95".into(),
            state: State::Alarm,
            previous_state: Some(State::Ok),
            time: "2026-11-23T14:17:32Z".into(),
            headline: "<!channel> p95 1834 ms for agent <https://evil.example|click here>\nForged: line\u{1b}[2J\u{202e}".into(),
            cause: Some("tool error: <!here>\r\nAgent: someone-else".into()),
            reason: "Threshold Crossed".into(),
            description: None,
            diagnosis: None,
            triggered_by: vec!["<@U123>".into()],
            lasted_seconds: None,
            flapping: None,
            links: Links::default(),
            missing: vec![],
            test: false,
        }
    }

    #[test]
    fn data_cannot_mention_link_or_forge_lines() {
        let n = hostile();
        let slack = n.slack().to_string();
        for raw in ["<!channel>", "<!here>", "<https://evil", "<@U123>"] {
            assert!(!slack.contains(raw), "{raw} in {slack}");
        }
        assert!(n.slack()["text"].as_str().unwrap().contains("&lt;!channel&gt;"), "the top-level text is escaped too");
        let (subject, body) = n.text();
        assert!(subject.chars().all(|c| c.is_ascii() && !c.is_ascii_control()), "{subject:?}");
        assert!(!body.contains('\u{1b}') && !body.contains('\r') && !body.contains('\u{202e}'), "{body:?}");
        assert!(!body.lines().any(|l| l.starts_with("Forged") || l.starts_with("Agent: someone-else")), "{body}");
    }

    #[test]
    fn long_text_is_clipped_to_slacks_limits() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(escape("<a & b>"), "&lt;a &amp; b&gt;");
    }
}
