//! The notify function: an alarm's state change in, a diagnosed notification out to Slack, a
//! webhook and an SNS topic for email and SMS.
//!
//! Per SNS record: parse the alarm message, read its history (flapping, how long it lasted), for
//! ALARM gather the evidence within a time budget (GetMetricData, Logs Insights) and diagnose it
//! with the same code as the local report, then deliver to every channel with retries. A delivery
//! that still fails fails the invocation: Lambda retries it, then keeps it in the failure queue.

pub mod aws;
pub mod config;
pub mod destination;
pub mod enrich;
pub mod history;
pub mod log_query;
pub mod message;
pub mod render;

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sns::{SnsEvent, SnsRecord};
use serde_json::Value;
use tokio::time::Instant;
use voicelake_shared::alarms::{AlarmKind, AlarmSpec};
use voicelake_shared::diagnosis::{self, Diagnosis, Evidence, Snapshot, Window};
use voicelake_shared::timefmt;

use crate::aws::{CallError, Insights, Metrics, QueryState, Secrets, Topic};
use crate::config::NotifyConfig;
use crate::destination::Channel;
use crate::enrich::{MetricPlan, Row};
use crate::history::{Pace, Transition};
use crate::log_query::{LogQuery, RowEvidence};
use crate::message::{AlarmMessage, State, Trigger};
use crate::render::{Flapping, Links, Notification};

/// The SNS message attribute `voicelake notify test` sets on its sample.
pub const TEST_ATTRIBUTE: &str = "voicelake-test";

const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("delivery failed on {}: {}", .failed.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", "), .failed.iter().map(|(c, e)| format!("{c}: {e}")).collect::<Vec<_>>().join("; "))]
    Delivery { failed: Vec<(&'static str, String)> },
    #[error("no channel is configured: set the Slack or webhook parameter, or the notification topic")]
    NoChannel,
}

/// The error Lambda records for a failed invocation: a type a reader can alarm and search on (the
/// runtime would otherwise name the Rust type), and what failed.
impl From<NotifyError> for lambda_runtime::Diagnostic {
    fn from(e: NotifyError) -> Self {
        let error_type = match e {
            NotifyError::Delivery { .. } => "DeliveryFailed",
            NotifyError::NoChannel => "NoChannel",
        };
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: e.to_string() }
    }
}

/// What one record came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        channels: Vec<&'static str>,
        notification: Box<Notification>,
    },
    /// Flapping, already reported within the cooldown.
    Held,
    /// An OK that follows INSUFFICIENT_DATA: every new alarm makes this change once after a deploy,
    /// and nothing happened.
    NotNews,
}

/// What an invocation answers: per record, the channels it reached and what it could not gather.
pub fn summary(outcomes: &[Outcome]) -> Value {
    Value::Array(
        outcomes
            .iter()
            .map(|o| match o {
                Outcome::Delivered { channels, notification } => serde_json::json!({
                    "alarm": notification.alarm,
                    "state": notification.state,
                    "delivered": channels,
                    "missing": notification.missing,
                }),
                Outcome::Held => serde_json::json!({"held": true}),
                Outcome::NotNews => serde_json::json!({"not_news": true}),
            })
            .collect(),
    )
}

pub struct Notify<M, I, S, T> {
    pub config: NotifyConfig,
    metrics: M,
    insights: I,
    secrets: S,
    topic: T,
    http: reqwest::Client,
}

const OUT_OF_TIME: &str = "not delivered before the function's deadline";

/// Runs `fut` until `deadline`; what fails or is late is named in `missing`.
async fn within<T>(deadline: Instant, what: &str, fut: impl Future<Output = Result<T, CallError>>, missing: &mut Vec<String>) -> Option<T> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::warn!(what, error = %e, "enrichment call failed; the notification goes out without it");
            missing.push(format!("{what} ({e})"));
            None
        }
        Err(_) => {
            tracing::warn!(what, "enrichment ran out of time; the notification goes out without it");
            missing.push(format!("{what} (no answer within the enrichment budget)"));
            None
        }
    }
}

/// The alarm being explained: the message's own, or for a composite alarm its child that fired.
struct Subject {
    name: String,
    trigger: Option<Trigger>,
    changed_ms: i64,
    reason_values: Vec<f64>,
}

impl<M: Metrics, I: Insights, S: Secrets, T: Topic> Notify<M, I, S, T> {
    pub fn new(config: NotifyConfig, metrics: M, insights: I, secrets: S, topic: T) -> Self {
        let http = destination::client(config.http_timeout, &config.url_policy);
        Notify { config, metrics, insights, secrets, topic, http }
    }

    /// Every record of an SNS event. One that cannot be delivered fails the invocation after the
    /// others are done.
    pub async fn handle(&self, event: &SnsEvent, deadline: Instant) -> Result<Vec<Outcome>, NotifyError> {
        if !self.config.has_channel() {
            return Err(NotifyError::NoChannel);
        }
        let mut outcomes = Vec::new();
        let mut failed = Vec::new();
        for record in &event.records {
            match self.record(record, deadline).await {
                Ok(o) => outcomes.push(o),
                Err(NotifyError::Delivery { failed: f }) => failed.extend(f),
                Err(e) => return Err(e),
            }
        }
        if failed.is_empty() { Ok(outcomes) } else { Err(NotifyError::Delivery { failed }) }
    }

    async fn record(&self, record: &SnsRecord, deadline: Instant) -> Result<Outcome, NotifyError> {
        let test = record.sns.message_attributes.contains_key(TEST_ATTRIBUTE);
        let notification = match AlarmMessage::parse(&record.sns.message) {
            Ok(msg) if !test && msg.is_not_news() => {
                tracing::info!(alarm = msg.alarm_name, "OK after INSUFFICIENT_DATA: not notified");
                return Ok(Outcome::NotNews);
            }
            Ok(msg) => match self.notification(&msg, test, deadline).await {
                Some(n) => n,
                None => {
                    tracing::info!(alarm = msg.alarm_name, state = msg.new_state_value.as_str(), "flapping: held within the cooldown");
                    return Ok(Outcome::Held);
                }
            },
            Err(e) => {
                // Not lost: whatever reached the alarm topic is passed on as it is.
                tracing::error!(error = %e, "a message on the alarm topic is not an alarm notification; passing it on as text");
                self.unrecognized(record, &e.to_string())
            }
        };
        let channels = self.deliver(&notification, deadline).await?;
        tracing::info!(
            alarm = notification.alarm,
            state = notification.state.as_str(),
            channels = ?channels,
            missing = ?notification.missing,
            test,
            "notified"
        );
        Ok(Outcome::Delivered { channels, notification: Box::new(notification) })
    }

    fn unrecognized(&self, record: &SnsRecord, error: &str) -> Notification {
        let text: String = record.sns.message.chars().take(1000).collect();
        Notification {
            alarm: record.sns.subject.clone().unwrap_or_else(|| "(not an alarm message)".into()),
            state: State::InsufficientData,
            previous_state: None,
            time: record.sns.timestamp.to_rfc3339(),
            headline: "A message on the alarm topic is not a CloudWatch alarm notification; it is passed on as it came.".into(),
            cause: None,
            reason: text,
            description: None,
            diagnosis: None,
            triggered_by: Vec::new(),
            lasted_seconds: None,
            flapping: None,
            links: Links::default(),
            missing: vec![error.to_owned()],
            test: false,
        }
    }

    /// The notification of one alarm message, or `None` when a flapping alarm is held.
    pub async fn notification(&self, msg: &AlarmMessage, test: bool, deadline: Instant) -> Option<Notification> {
        let budget = deadline.min(Instant::now() + self.config.enrichment_budget);
        let changed_ms = msg.state_change_ms().unwrap_or_else(|_| timefmt::now_ms());
        let now = Transition { at_ms: changed_ms, to: msg.new_state_value };
        let mut missing = Vec::new();

        // History: since the start of the cooldown, and for an OK far enough back to find its ALARM.
        let mut lasted_seconds = None;
        let mut flapping = None;
        if !test {
            let cooldown_ms = self.config.flapping_cooldown.as_millis() as i64;
            let from = changed_ms - cooldown_ms.max(enrich::DAY_MS);
            let history = within(
                budget,
                "alarm history (DescribeAlarmHistory)",
                self.metrics.history(&msg.alarm_name, from, changed_ms + 1),
                &mut missing,
            )
            .await;
            if let Some(history) = history {
                match history::pace(&history, now, cooldown_ms) {
                    Pace::Normal => {}
                    Pace::Held { .. } => return None,
                    Pace::Flapping { transitions, since_ms } => flapping = Some(Flapping { transitions, since: timefmt::iso(since_ms) }),
                }
                if msg.new_state_value != State::Alarm && msg.old_state_value == Some(State::Alarm) {
                    lasted_seconds = history::alarm_lasted_ms(&history, now).map(|ms| ms / 1000);
                }
            }
        }

        let region = msg.region().unwrap_or_else(|| self.config.region.clone());
        let mut n = Notification {
            alarm: msg.alarm_name.clone(),
            state: msg.new_state_value,
            previous_state: msg.old_state_value,
            time: timefmt::iso(changed_ms),
            headline: String::new(),
            cause: None,
            reason: msg.new_state_reason.clone(),
            description: msg.alarm_description.clone(),
            diagnosis: None,
            triggered_by: msg.triggering_children.iter().map(|c| c.name().to_owned()).collect(),
            lasted_seconds,
            flapping,
            links: Links {
                alarm: Some(render::alarm_url(&region, &msg.alarm_name)),
                dashboard: self.config.dashboard.as_deref().map(|d| render::dashboard_url(&region, d)),
                insights: None,
                athena: self.config.athena_workgroup.as_deref().map(|w| render::athena_url(&region, w)),
            },
            missing: Vec::new(),
            test,
        };

        if msg.new_state_value == State::Alarm {
            let subject = self.subject(msg, changed_ms, budget, &mut missing).await;
            self.diagnose(&subject, &region, budget, &mut n, &mut missing).await;
        } else {
            n.headline = match (msg.new_state_value, n.lasted_seconds) {
                (State::Ok, Some(s)) => format!("{} is OK again after {} in ALARM.", msg.alarm_name, history::duration_words(s * 1000)),
                (State::Ok, None) => format!("{} is OK.", msg.alarm_name),
                (_, _) => format!("{} has insufficient data: {}", msg.alarm_name, msg.new_state_reason),
            };
        }
        if n.headline.is_empty() {
            n.headline = format!("{} is in ALARM: {}", msg.alarm_name, msg.new_state_reason);
        }
        missing.dedup();
        n.missing = missing;
        Some(n)
    }

    /// The alarm to diagnose: for a composite alarm, the first child that fired and that
    /// `DescribeAlarms` describes, preferring one voicelake knows.
    async fn subject(&self, msg: &AlarmMessage, changed_ms: i64, budget: Instant, missing: &mut Vec<String>) -> Subject {
        if !msg.is_composite() {
            return Subject { name: msg.alarm_name.clone(), trigger: msg.trigger.clone(), changed_ms, reason_values: msg.reason_values() };
        }
        let names: Vec<String> = msg.triggering_children.iter().map(|c| c.name().to_owned()).collect();
        let children = if names.is_empty() {
            None
        } else {
            within(budget, "the composite alarm's children (DescribeAlarms)", self.metrics.metric_alarms(&names), missing).await
        };
        let mut children = children.unwrap_or_default();
        children.sort_by_key(|c| message::spec_of(&c.trigger).is_none());
        match children.into_iter().next() {
            Some(c) => Subject { name: c.name, trigger: Some(c.trigger), changed_ms: c.state_change_ms.max(1), reason_values: Vec::new() },
            None => Subject { name: msg.alarm_name.clone(), trigger: None, changed_ms, reason_values: Vec::new() },
        }
    }

    async fn diagnose(&self, subject: &Subject, region: &str, budget: Instant, n: &mut Notification, missing: &mut Vec<String>) {
        let spec = subject.trigger.as_ref().and_then(message::spec_of);
        let window = subject
            .trigger
            .as_ref()
            .and_then(|t| message::window_of(t, subject.changed_ms))
            .unwrap_or(Window { start_ms: subject.changed_ms - 900_000, end_ms: subject.changed_ms });
        let query = LogQuery::of(spec.as_ref());
        let groups: Vec<String> =
            if query.on_ingest() { self.config.ingest_log_group.iter().cloned().collect() } else { self.config.agent_log_groups.clone() };
        n.links.insights = Some(render::insights_url(region, query.text(), &groups, window.start_ms, window.end_ms));
        let (measured, rows) = self.gather(spec.as_ref(), query, &groups, window, budget, missing).await;
        let found = query.read(&rows, &self.config, window);
        match spec {
            Some(spec) => explain(&spec, subject, measured, found, window, n, missing),
            None => explain_pipeline_alarm(subject, &found.error_lines, n),
        }
    }

    /// The alarm's metrics (its series and each agent's, now and at the baselines) and its query's
    /// rows, fetched at once within the budget; the rows scrubbed of personal data.
    async fn gather(
        &self,
        spec: Option<&AlarmSpec>,
        query: LogQuery,
        groups: &[String],
        window: Window,
        budget: Instant,
        missing: &mut Vec<String>,
    ) -> (Option<Measured>, Vec<Row>) {
        let mut metric_missing = Vec::new();
        let mut log_missing = Vec::new();
        let metrics = async {
            let spec = spec?;
            let agents = within(
                budget,
                "agents (ListMetrics)",
                self.metrics.agents(&self.config.namespace, &self.config.environment, enrich::agent_metric(spec)),
                &mut metric_missing,
            )
            .await;
            let plan = MetricPlan::new(spec, window, &agents.unwrap_or_default());
            let series = within(
                budget,
                "metric series (GetMetricData)",
                self.metrics.metric_data(&self.config.namespace, &self.config.environment, &plan),
                &mut metric_missing,
            )
            .await;
            Some((plan, series))
        };
        let logs = async {
            if !query.runs() {
                return None;
            }
            if groups.is_empty() {
                log_missing.push(format!("{} (no log group configured)", query.what()));
                return None;
            }
            within(budget, query.what(), self.insights_rows(groups, query.text(), query.span(window), budget), &mut log_missing).await
        };
        let (measured, rows) = tokio::join!(metrics, logs);
        missing.append(&mut metric_missing);
        missing.append(&mut log_missing);
        let mut rows = rows.unwrap_or_default();
        // The agents' own logs, unscrubbed: the caller's number in a room name, an email in a tool's error.
        let scrub = voicelake_shared::pii::Scrub { mode: self.config.pii, key: self.config.pseudonym_key.as_ref() };
        // Insights' own fields (`@timestamp`, `@log`) are not: a timestamp's digits look like a phone number.
        rows.iter_mut()
            .flat_map(|r| r.iter_mut())
            .filter(|(k, _)| !k.starts_with('@'))
            .for_each(|(_, v)| voicelake_shared::pii::scrub_in_place(v, scrub));
        (measured, rows)
    }

    /// Runs a Logs Insights query to completion, or stops it when the budget runs out.
    async fn insights_rows(&self, groups: &[String], query: &str, window: Window, budget: Instant) -> Result<Vec<Row>, CallError> {
        let id = self.insights.start_query(groups, query, window.start_ms, window.end_ms).await?;
        loop {
            match self.insights.query_results(&id).await? {
                QueryState::Complete(rows) => return Ok(rows),
                QueryState::Ended(status) => {
                    return Err(CallError { call: "GetQueryResults", message: format!("the query ended {status}") });
                }
                QueryState::Running => {}
            }
            if Instant::now() + POLL >= budget {
                let _ = self.insights.stop_query(&id).await;
                return Err(CallError {
                    call: "GetQueryResults",
                    message: "still running when the enrichment budget ran out; stopped".into(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Delivers to every configured channel at once, all of it before `deadline`; the channels
    /// that failed after retries are named in the error.
    pub async fn deliver(&self, n: &Notification, deadline: Instant) -> Result<Vec<&'static str>, NotifyError> {
        let slack = async {
            let p = self.config.slack_parameter.as_deref()?;
            Some(("slack", self.post_to(p, Channel::Slack, &n.slack(), deadline).await))
        };
        let webhook = async {
            let p = self.config.webhook_parameter.as_deref()?;
            Some(("webhook", self.post_to(p, Channel::Webhook, &n.webhook(), deadline).await))
        };
        let sns = async {
            let topic = self.config.topic_arn.as_deref()?;
            let (subject, body) = n.text();
            let publish = self.publish(topic, &subject, &body);
            Some(("sns", tokio::time::timeout_at(deadline, publish).await.unwrap_or_else(|_| Err(OUT_OF_TIME.into()))))
        };
        let (a, b, c) = tokio::join!(slack, webhook, sns);
        let mut delivered = Vec::new();
        let mut failed = Vec::new();
        for (channel, result) in [a, b, c].into_iter().flatten() {
            match result {
                Ok(()) => delivered.push(channel),
                Err(e) => {
                    tracing::error!(channel, error = %e, alarm = n.alarm, "delivery failed after retries");
                    failed.push((channel, e));
                }
            }
        }
        if failed.is_empty() { Ok(delivered) } else { Err(NotifyError::Delivery { failed }) }
    }

    async fn publish(&self, topic: &str, subject: &str, body: &str) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=self.config.retry.attempts {
            match self.topic.publish(topic, subject, body).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            if attempt < self.config.retry.attempts {
                tokio::time::sleep(self.config.retry.wait(attempt)).await;
            }
        }
        Err(format!("{} attempts, last: {last}", self.config.retry.attempts))
    }

    /// POSTs `body` to the URL kept in the SSM parameter `parameter`, once [`destination::check`]
    /// allows it. Server errors, 429, 408 and timeouts are retried until `deadline`; other client
    /// errors and redirects are not (the same request would fail again). What is returned names
    /// the status or the kind of failure, never the URL, and never echoes the answer's body (an
    /// endpoint could reflect the request into it).
    async fn post_to(&self, parameter: &str, channel: Channel, body: &Value, deadline: Instant) -> Result<(), String> {
        let attempts = async {
            let url = self.secrets.secret(parameter).await.map_err(|e| format!("the URL could not be read: {e}"))?;
            let url = destination::check(&url, channel, &self.config.url_policy).map_err(|e| format!("refused: {e}"))?;
            let mut last = String::new();
            for attempt in 1..=self.config.retry.attempts {
                let request = self.http.post(url.clone()).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
                match request.send().await {
                    Ok(r) if r.status().is_success() => return Ok(()),
                    Ok(r) if r.status().is_redirection() => return Err(format!("HTTP {}: redirects are not followed", r.status())),
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 && r.status().as_u16() != 408 => {
                        return Err(format!("HTTP {}", r.status()));
                    }
                    Ok(r) => last = format!("HTTP {}", r.status()),
                    Err(e) if e.is_timeout() => last = format!("no answer within {:?}", self.config.http_timeout),
                    Err(e) => last = voicelake_shared::errors::chain(&e.without_url()),
                }
                if attempt < self.config.retry.attempts {
                    tokio::time::sleep(self.config.retry.wait(attempt)).await;
                }
            }
            Err(format!("{} attempts, last: {last}", self.config.retry.attempts))
        };
        tokio::time::timeout_at(deadline, attempts).await.unwrap_or_else(|_| Err(OUT_OF_TIME.into()))
    }
}

/// The alarm's metric plan and the series it fetched (`None`: not within the budget).
type Measured = (MetricPlan, Option<Vec<enrich::Series>>);

/// A voicelake alarm's diagnosis from its metrics and its query's rows.
fn explain(
    spec: &AlarmSpec,
    subject: &Subject,
    measured: Option<Measured>,
    found: RowEvidence,
    window: Window,
    n: &mut Notification,
    missing: &mut Vec<String>,
) {
    let (mut breach, baselines) = match measured {
        Some((plan, Some(series))) => plan.snapshots(&series),
        _ => (Snapshot::empty(window), Vec::new()),
    };
    if breach.value.is_none() {
        breach.value = subject.reason_values.iter().copied().max_by(|a, b| spec.cmp_badness(*a, *b));
    }
    let evidence = Evidence {
        alarm: spec,
        breach,
        baselines,
        calls: found.calls,
        tool_failures: found.tool_failures,
        rejects: found.rejects,
        error_lines: Vec::new(),
        failures: found.failures,
        serving: Default::default(),
        missing: Vec::new(),
    };
    let mut d: Diagnosis = diagnosis::diagnose(&evidence);
    if spec.kind == AlarmKind::Cost && d.cost_driver.is_none() {
        missing.push("cost by provider and model (not in the metrics: run the Athena query cost_by_model on the window)".into());
    }
    missing.append(&mut d.missing);
    n.headline = if subject.name == n.alarm { d.headline.clone() } else { format!("{}: {}", n.alarm, d.headline) };
    n.cause = d.cause.clone();
    n.diagnosis = Some(d);
}

/// Not one of the alarms voicelake diagnoses (the pipeline's own): what the ingest function logged.
fn explain_pipeline_alarm(subject: &Subject, lines: &[String], n: &mut Notification) {
    n.headline = format!("{} is in ALARM: {}", subject.name, n.reason);
    if subject.name != n.alarm {
        n.headline = format!("{} is in ALARM because {} is: {}", n.alarm, subject.name, n.reason);
    }
    n.diagnosis = None;
    if let Some(latest) = lines.first() {
        n.cause = Some(format!("the ingest function's latest error: {latest}"));
    }
    n.triggered_by.retain(|c| c != &subject.name);
    n.triggered_by.insert(0, subject.name.clone());
    n.triggered_by.dedup();
    if !lines.is_empty() {
        n.reason = format!("{}\nLatest errors:\n{}", n.reason, lines.join("\n"));
    }
}
