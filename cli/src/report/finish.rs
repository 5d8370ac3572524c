//! The report of everything added: counts, latency, target, cost, tools, failures and the alarms.

use std::collections::HashMap;
use std::io;

use voicelake_shared::Counts;
use voicelake_shared::config::Config;
use voicelake_shared::diagnosis::COMPONENTS;
use voicelake_shared::metrics::{MetricSpec, metric};
use voicelake_shared::timefmt;
use voicelake_shared::views::Stat;

use super::records::NO_SESSION;
use super::{AgentSummary, CostSummary, InputSummary, InterruptedSummary, Report, ReportBuilder, TargetCompliance, ToolSummary, round2};

impl ReportBuilder {
    pub fn finish(&self, config: &Config) -> io::Result<Report> {
        let stats = &self.stats;
        let complete = self.turns.len();
        let mut over = 0u64;
        let mut per_agent = vec![0u64; self.agents.len()];
        // Per call: whether all its turns met the target (a caller judges the whole call).
        let mut calls: HashMap<u128, bool> = HashMap::new();
        self.turns.scan(|t| {
            over += u64::from(t.over_target);
            per_agent[t.agent as usize] += 1;
            if t.session != NO_SESSION {
                *calls.entry(t.session).or_insert(true) &= !t.over_target;
            }
        })?;
        let calls_within = calls.values().filter(|within| **within).count() as u64;
        // Each complete turn observes 100 (interrupted) or 0.
        let interrupted = (self.statistic(metric::TURNS_INTERRUPTED, Stat::Sum, |_| true)?.unwrap_or_default() / 100.0).round() as u64;
        let latency = self.summary(complete, &|f: &mut dyn FnMut(f64)| self.turns.scan(|t| f(t.latency)))?;
        let mut agents: Vec<usize> = (0..self.agents.len()).filter(|&i| per_agent[i] > 0).collect();
        agents.sort_by(|a, b| self.agents[*a].cmp(&self.agents[*b]));
        let agents = agents
            .into_iter()
            .map(|i| {
                let id = i as u32;
                let values = |f: &mut dyn FnMut(f64)| {
                    self.turns.scan(|t| {
                        if t.agent == id {
                            f(t.latency)
                        }
                    })
                };
                Ok(AgentSummary { agent: self.agents[i].clone(), turns: per_agent[i], latency_ms: self.summary(per_agent[i], &values)? })
            })
            .collect::<io::Result<Vec<_>>>()?;

        let sum = |spec: MetricSpec| self.statistic(spec, Stat::Sum, |_| true).map(|s| s.unwrap_or_default());
        let tool_calls = sum(metric::TOOL_CALLS)? as u64;
        let tool_failures = sum(metric::TOOL_CALL_FAILURES)? as u64;
        let tool_outcomes = sum(metric::TOOL_CALL_OUTCOMES)? as u64;
        let mut failures_by_tool: Vec<(String, u64)> = self.failures_by_tool.clone().into_iter().collect();
        failures_by_tool.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        let observed = |spec: MetricSpec| {
            let store = &self.observations[spec.index];
            self.summary(store.len(), &|f: &mut dyn FnMut(f64)| store.scan(|o| f(o.value)))
        };
        let costs = &self.observations[metric::CALL_COST.index];
        let total_cost = self.statistic(metric::CALL_COST, Stat::Sum, |_| true)?.unwrap_or_else(|| std::iter::empty::<f64>().sum());
        let alarms = crate::deployed_alarms::deployed(config).iter().map(|spec| self.evaluate(spec)).collect::<io::Result<Vec<_>>>()?;

        Ok(Report {
            counts: Counts { sessions: self.distinct_sessions()?, ..stats.counts() },
            rejected_by_reason: stats.rejected.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            skipped_by_reason: stats.skipped.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            first_event: self.first.map(timefmt::iso),
            last_event: self.last.map(timefmt::iso),
            latency_ms: latency,
            latency_reported: self.reported,
            latency_computed: self.computed,
            latency_tool_rounds: self.tool_rounds,
            components_ms: COMPONENTS.iter().map(|(name, spec)| Ok((*name, observed(*spec)?))).collect::<io::Result<_>>()?,
            target: TargetCompliance {
                target_ms: config.latency_target_ms,
                within_target: complete - over,
                over_target: over,
                compliance_pct: (complete > 0).then(|| round2(100.0 * (complete - over) as f64 / complete as f64)),
                calls: calls.len() as u64,
                calls_within_target: calls_within,
                calls_compliance_pct: (!calls.is_empty()).then(|| round2(100.0 * calls_within as f64 / calls.len() as f64)),
            },
            interrupted: InterruptedSummary {
                turns: interrupted,
                pct: (complete > 0).then(|| round2(100.0 * interrupted as f64 / complete as f64)),
            },
            agents,
            slowest_sessions: self.slowest_sessions()?,
            cost: CostSummary {
                calls: costs.len(),
                total_usd: voicelake_shared::cost::round_cost(total_cost),
                per_call_usd: observed(metric::CALL_COST)?,
            },
            tools: ToolSummary {
                calls: tool_calls,
                with_outcome: tool_outcomes,
                failures: tool_failures,
                success_pct: (tool_outcomes > 0)
                    .then(|| round2(100.0 * tool_outcomes.saturating_sub(tool_failures) as f64 / tool_outcomes as f64)),
                failures_by_tool,
            },
            errors: self.errors_summary()?,
            alarms,
            input: InputSummary {
                replaced_bytes: stats.replaced_bytes,
                joined_lines: stats.joined_lines,
                first_rejects: self.first_rejects.clone(),
            },
        })
    }
}
