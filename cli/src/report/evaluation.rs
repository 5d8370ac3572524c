//! The deployed alarms evaluated on event time, as CloudWatch would, and the diagnosis of each that
//! would fire.

use std::collections::{BTreeMap, HashSet};
use std::io;

use voicelake_shared::alarms::{AlarmKind, AlarmSpec, Statistic};
use voicelake_shared::diagnosis::{
    self, AgentSnapshot, COMPONENTS, Call, Diagnosis, Evidence, ProviderFailures, RejectSample, Snapshot, ToolFailures, Window,
};
use voicelake_shared::failure::Action;
use voicelake_shared::metrics::{MetricSpec, metric};
use voicelake_shared::timefmt;
use voicelake_shared::views::Stat;

use super::records::{Rejected, Spend, ToolFailure, TurnPoint, dominant_component};
use super::{AlarmOutcome, Distribution, ErrorsSummary, ProviderEvents, ReportBuilder, round2};

impl ReportBuilder {
    /// Tool success per period: `100 × (1 − failures / outcomes)` where outcomes were reported.
    pub(super) fn tool_success(&self, period_ms: i64) -> io::Result<BTreeMap<i64, Option<f64>>> {
        let calls = self.period_statistics(metric::TOOL_CALL_OUTCOMES, period_ms, None, Stat::Sum)?;
        let failures = self.period_statistics(metric::TOOL_CALL_FAILURES, period_ms, None, Stat::Sum)?;
        Ok(calls
            .iter()
            .map(|(t, c)| (*t, success_percent(c.unwrap_or_default(), failures.get(t).copied().flatten().unwrap_or(0.0))))
            .collect())
    }

    /// The alarm's statistic for every period from the first to the last with data (`None` where a
    /// period has none), as CloudWatch would evaluate it on event time.
    pub(super) fn alarm_series(&self, spec: &AlarmSpec) -> io::Result<Vec<(i64, Option<f64>)>> {
        let period = i64::from(spec.period_seconds) * 1000;
        let metric = spec.metric;
        let values: BTreeMap<i64, Option<f64>> = match spec.statistic {
            Statistic::ToolSuccessPercent => self.tool_success(period)?,
            Statistic::P95 => self.period_statistics(metric, period, None, Stat::P95)?,
            Statistic::Average => self.period_statistics(metric, period, None, Stat::Average)?,
            Statistic::Sum => self.period_statistics(metric, period, None, Stat::Sum)?,
            Statistic::Maximum => self.period_statistics(metric, period, None, Stat::Maximum)?,
            Statistic::ProviderSum => self.provider_sums(period)?,
        };
        let mut series = Vec::new();
        if let (Some(&first), Some(&last)) = (values.keys().next(), values.keys().last()) {
            let mut t = first;
            while t <= last {
                series.push((t, values.get(&t).copied().flatten()));
                t += period;
            }
        }
        Ok(series)
    }

    /// Evaluates an alarm over consecutive periods of event time, as CloudWatch would have.
    pub(super) fn evaluate(&self, spec: &AlarmSpec) -> io::Result<AlarmOutcome> {
        let period = i64::from(spec.period_seconds) * 1000;
        let series = self.alarm_series(spec)?;
        let breaching: Vec<bool> = series.iter().map(|(_, v)| v.is_some_and(|v| spec.breaches(v))).collect();
        let worst = worst_period(spec, &series, |_| true);
        let detail = match worst.filter(|_| spec.kind == AlarmKind::TurnLatency) {
            Some((start, _)) => {
                let window = Window { start_ms: start, end_ms: start + period };
                let in_period = |spec: MetricSpec| -> io::Result<String> {
                    let p95 = self.statistic(spec, Stat::P95, |o| window.contains(o.time()))?;
                    Ok(p95.map_or("-".to_owned(), |p| format!("{p:.0}")))
                };
                Some(format!(
                    "p95 in that period: eou {} ms, llm ttft {} ms, tts ttfb {} ms",
                    in_period(metric::EOU_DELAY)?,
                    in_period(metric::LLM_TTFT)?,
                    in_period(metric::TTS_TTFB)?
                ))
            }
            None => None,
        };
        let would_fire = crate::deployed_alarms::would_fire(spec, &breaching);
        let diagnosis = match worst.filter(|_| would_fire) {
            Some((start, _)) => Some(self.diagnose(spec, &series, Window { start_ms: start, end_ms: start + period })?),
            None => None,
        };
        Ok(AlarmOutcome {
            alarm: spec.id,
            metric: spec.metric.name,
            threshold: spec.threshold,
            would_fire,
            periods_evaluated: series.iter().filter(|(_, v)| v.is_some()).count() as u64,
            periods_breaching: breaching.iter().filter(|b| **b).count() as u64,
            worst_value: worst.map(|w| round2(w.1)),
            worst_period: worst.map(|w| timefmt::iso(w.0)),
            detail,
            diagnosis,
        })
    }

    /// The statistic of `spec` over `window` for each agent (by index).
    pub(super) fn in_window_by_agent(&self, spec: MetricSpec, stat: Stat, window: Window) -> io::Result<Vec<Option<f64>>> {
        let by_agent = self.grouped_statistics(spec, stat, |o| window.contains(o.time()), |o| o.agent)?;
        Ok((0..self.agents.len() as u32).map(|i| by_agent.get(&i).copied().flatten()).collect())
    }

    /// The alarm's statistic over `window` for each agent (by index), as CloudWatch would compute it
    /// over one period that long.
    pub(super) fn alarm_values_by_agent(&self, spec: &AlarmSpec, window: Window) -> io::Result<Vec<Option<f64>>> {
        let metric = spec.metric;
        match spec.statistic {
            Statistic::ToolSuccessPercent => {
                let calls = self.in_window_by_agent(metric::TOOL_CALL_OUTCOMES, Stat::Sum, window)?;
                let failures = self.in_window_by_agent(metric::TOOL_CALL_FAILURES, Stat::Sum, window)?;
                Ok(calls.iter().zip(&failures).map(|(c, f)| success_percent(c.unwrap_or(0.0), f.unwrap_or(0.0))).collect())
            }
            Statistic::P95 => self.in_window_by_agent(metric, Stat::P95, window),
            Statistic::Average => self.in_window_by_agent(metric, Stat::Average, window),
            Statistic::Sum | Statistic::ProviderSum => self.in_window_by_agent(metric, Stat::Sum, window),
            Statistic::Maximum => self.in_window_by_agent(metric, Stat::Maximum, window),
        }
    }

    /// Each period's failure events of the provider (and kind) that failed most in it: what the
    /// Metrics Insights alarm's worst contributor has.
    pub(super) fn provider_sums(&self, period_ms: i64) -> io::Result<BTreeMap<i64, Option<f64>>> {
        let mut worst: BTreeMap<i64, Option<f64>> = BTreeMap::new();
        for (t, n) in self.provider_series(period_ms)?.into_values().flatten() {
            let v = worst.entry(t).or_insert(Some(0.0));
            *v = Some(v.unwrap_or(0.0).max(n.unwrap_or(0.0)));
        }
        Ok(worst)
    }

    /// Each provider's (and kind's) failure events per period.
    #[allow(clippy::type_complexity)]
    pub(super) fn provider_series(&self, period_ms: i64) -> io::Result<BTreeMap<(String, String), BTreeMap<i64, Option<f64>>>> {
        let mut series: BTreeMap<(String, String), BTreeMap<i64, Option<f64>>> = BTreeMap::new();
        self.failures.scan(|f| {
            if f.counted {
                let v =
                    series.entry((f.kind, f.provider)).or_default().entry(f.time.div_euclid(period_ms) * period_ms).or_insert(Some(0.0));
                *v = Some(v.unwrap_or(0.0) + 1.0);
            }
        })?;
        Ok(series)
    }

    /// The failures of `window`, by kind, provider and agent; and who served turns in it.
    #[allow(clippy::type_complexity)]
    pub(super) fn failures_in(&self, window: Window) -> io::Result<(Vec<ProviderFailures>, BTreeMap<(String, String), Vec<String>>)> {
        // Since when: a failure that began before the window began in the hour before it.
        let hour_before = Window { start_ms: window.start_ms - 3_600_000, end_ms: window.start_ms };
        let (mut inside, mut before) = (Vec::new(), Vec::new());
        self.failures.scan(|f| {
            if window.contains(f.time) {
                inside.push(f);
            } else if hour_before.contains(f.time) {
                before.push(f);
            }
        })?;
        let failures = diagnosis::group_failures(inside, before);
        let mut serving: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for ((agent, kind, provider), minutes) in &self.served {
            if minutes.range(window.start_ms..window.end_ms).next().is_some() {
                serving.entry((agent.clone(), (*kind).to_owned())).or_default().push(provider.clone());
            }
        }
        Ok((failures, serving))
    }

    /// Failure events by provider, and the sessions closed by errors.
    pub(super) fn errors_summary(&self) -> io::Result<ErrorsSummary> {
        let mut by_provider: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut closed: HashSet<String> = HashSet::new();
        // A close line without a session (the thread executor logs no job context) is one session.
        let mut closed_unnamed = 0;
        let mut events = 0;
        self.failures.scan(|f| {
            if f.counted {
                events += 1;
                *by_provider.entry((f.kind.clone(), f.provider.clone())).or_default() += 1;
            }
            if f.action == Action::Closed.as_str() {
                match f.session {
                    Some(s) => {
                        closed.insert(s);
                    }
                    None => closed_unnamed += u64::from(f.counted),
                }
            }
        })?;
        let mut by_provider: Vec<ProviderEvents> =
            by_provider.into_iter().map(|((kind, provider), events)| ProviderEvents { kind, provider, events }).collect();
        by_provider.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| (&a.kind, &a.provider).cmp(&(&b.kind, &b.provider))));
        Ok(ErrorsSummary { events, sessions_closed_by_error: closed.len() as u64 + closed_unnamed, by_provider })
    }

    /// The state of things in `window`: the worst period of the alarm's `series` in it, each agent's
    /// alarm statistic and components, spend by model.
    pub(super) fn snapshot(&self, spec: &AlarmSpec, series: &[(i64, Option<f64>)], window: Window) -> io::Result<Snapshot> {
        let mut snapshot = Snapshot::empty(window);
        snapshot.value = worst_period(spec, series, |start| window.contains(start)).map(|(_, v)| v);
        let values = self.alarm_values_by_agent(spec, window)?;
        let by_component =
            COMPONENTS.iter().map(|(_, c)| self.in_window_by_agent(*c, Stat::P95, window)).collect::<io::Result<Vec<_>>>()?;
        for (i, agent) in self.agents.iter().enumerate().filter(|(_, a)| !a.is_empty()) {
            let components = std::array::from_fn(|k| by_component[k][i]);
            let value = values[i];
            if value.is_some() || components.iter().any(Option::is_some) {
                snapshot.agents.insert(agent.clone(), AgentSnapshot { value, components });
            }
        }
        self.spend.scan(|Spend(t, model, cost)| {
            if window.contains(t) {
                *snapshot.cost_by_model.entry(model).or_default() += cost;
            }
        })?;
        Ok(snapshot)
    }

    /// The evidence of a breach in `window` of the alarm's `series`, as the replay holds it, diagnosed.
    pub(super) fn diagnose(&self, spec: &AlarmSpec, series: &[(i64, Option<f64>)], window: Window) -> io::Result<Diagnosis> {
        let hour_before = Window { start_ms: window.start_ms - 3_600_000, end_ms: window.start_ms };
        let baselines = vec![self.snapshot(spec, series, hour_before)?, self.snapshot(spec, series, hour_before.earlier(86_400_000))?];
        let mut in_window: Vec<(u128, Vec<TurnPoint>)> = Vec::new();
        self.each_call(|t| window.contains(t.time), |key, turns| in_window.push((key, turns)))?;
        let ids = self.session_ids(&in_window.iter().map(|(key, _)| *key).collect())?;
        let mut calls: BTreeMap<String, Call> = in_window
            .into_iter()
            .map(|(key, turns)| {
                let session = ids.get(&key).cloned().unwrap_or_default();
                let call = Call {
                    session_id: session.clone(),
                    agent: self.agents[turns[0].agent as usize].clone(),
                    p95_ms: Distribution::of(turns.iter().map(|t| t.latency).collect()).p95,
                    dominant_component: dominant_component(&turns),
                    ..Call::default()
                };
                (session, call)
            })
            .collect();
        self.calls.scan(|c| {
            if window.contains(c.time) {
                let call = calls.entry(c.session.clone()).or_insert_with(|| Call {
                    session_id: c.session.clone(),
                    agent: c.agent.clone(),
                    ..Call::default()
                });
                call.cost_usd = c.cost_usd;
                call.failed_tool_calls = c.failed_tool_calls;
            }
        })?;
        let calls = calls.into_values().collect();
        let mut tools: BTreeMap<String, BTreeMap<Option<String>, u64>> = BTreeMap::new();
        self.tool_failures.scan(|ToolFailure(t, tool, error)| {
            if window.contains(t) {
                *tools.entry(tool).or_default().entry(error).or_default() += 1;
            }
        })?;
        let tool_failures = tools
            .into_iter()
            .map(|(tool, errors)| ToolFailures {
                tool,
                failures: errors.values().sum(),
                most_common_error: errors
                    .iter()
                    .filter_map(|(e, n)| e.as_ref().map(|e| (e, *n)))
                    .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
                    .map(|(e, _)| e.clone()),
            })
            .collect();
        let mut reasons: BTreeMap<String, (u64, String)> = BTreeMap::new();
        self.rejects.scan(|Rejected(t, reason, raw)| {
            if window.contains(t) {
                reasons.entry(reason).or_insert((0, raw)).0 += 1;
            }
        })?;
        let rejects = reasons
            .into_iter()
            .map(|(reason, (count, raw))| RejectSample {
                reason,
                count,
                example: voicelake_shared::rows::truncate_utf8(&raw, 300).to_owned(),
            })
            .collect();
        let (failures, serving) = self.failures_in(window)?;
        Ok(diagnosis::diagnose(&Evidence {
            alarm: spec,
            breach: self.snapshot(spec, series, window)?,
            baselines,
            calls,
            tool_failures,
            rejects,
            error_lines: Vec::new(),
            failures,
            serving,
            missing: Vec::new(),
        }))
    }
}

/// `100 × (1 − failures / calls)`, where there were calls: the tool alarm's metric math.
pub(super) fn success_percent(calls: f64, failures: f64) -> Option<f64> {
    (calls > 0.0).then(|| 100.0 * (1.0 - failures / calls))
}

/// The worst `(period start, value)` of an alarm series among the periods `keep` admits.
pub(super) fn worst_period(spec: &AlarmSpec, series: &[(i64, Option<f64>)], keep: impl Fn(i64) -> bool) -> Option<(i64, f64)> {
    series.iter().filter(|(t, _)| keep(*t)).filter_map(|(t, v)| v.map(|v| (*t, v))).max_by(|a, b| spec.cmp_badness(a.1, b.1))
}
