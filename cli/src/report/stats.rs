//! Statistics over the stores: summaries, CloudWatch's statistics by period or group, and calls,
//! each computed by scans that hold at most [`Limits`] in memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;

use voicelake_shared::metrics::MetricSpec;
use voicelake_shared::views::Stat;

use crate::spill::{at_ranks, nearest_rank};

use super::records::{MetricSample, NO_SESSION, TurnPoint, dominant_component};
use super::{Distribution, ReportBuilder, SessionLatency, percentile};

/// Mean and variance in one pass (Welford's update), which stays exact to rounding where summing
/// squares of large latencies would cancel.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    pub(super) fn add(&mut self, v: f64) {
        self.n += 1;
        let delta = v - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (v - self.mean);
    }

    pub(super) fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    pub(super) fn std_dev(&self) -> Option<f64> {
        (self.n > 0).then(|| (self.m2 / self.n as f64).sqrt())
    }
}

/// Count, sum and maximum of values, summed in the order they come, as a `Vec`'s would be.
#[derive(Debug, Clone, Copy)]
pub(super) struct CountSumMax {
    n: u64,
    sum: f64,
    max: f64,
}

impl Default for CountSumMax {
    fn default() -> CountSumMax {
        // The neutral element of the standard library's float sum, whatever the toolchain makes it.
        CountSumMax { n: 0, sum: std::iter::empty::<f64>().sum(), max: f64::NEG_INFINITY }
    }
}

impl CountSumMax {
    pub(super) fn add(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
        self.max = self.max.max(v);
    }

    /// The statistic, for the ones a tally holds (not percentiles).
    pub(super) fn value(&self, stat: Stat) -> Option<f64> {
        (self.n > 0).then(|| match stat {
            Stat::Sum => self.sum,
            Stat::Average => self.sum / self.n as f64,
            Stat::Maximum => self.max,
            Stat::P50 | Stat::P95 | Stat::P99 => unreachable!("percentiles are selected, not tallied"),
        })
    }
}

impl ReportBuilder {
    /// Count, mean, min, standard deviation, p50, p95, p99 and maximum of the `n` values of
    /// `values`, exact.
    pub(super) fn summary(&self, n: u64, values: &dyn crate::spill::Values) -> io::Result<Distribution> {
        if n == 0 {
            return Ok(Distribution::default());
        }
        let ranks = [1, nearest_rank(50.0, n), nearest_rank(95.0, n), nearest_rank(99.0, n), n];
        let [min, p50, p95, p99, max] = at_ranks(values, n, &ranks, self.limits.values)?[..] else { unreachable!("one value per rank") };
        let mut moments = Moments::default();
        values.each(&mut |v| moments.add(v))?;
        Ok(Distribution {
            count: n,
            mean: moments.mean(),
            min: Some(min),
            std_dev: moments.std_dev(),
            p50: Some(p50),
            p95: Some(p95),
            p99: Some(p99),
            max: Some(max),
        })
    }

    /// The statistic of the observations of `spec` that `keep` admits, as CloudWatch computes it
    /// over one period (percentiles nearest-rank).
    pub(super) fn statistic(&self, spec: MetricSpec, stat: Stat, keep: impl Fn(&MetricSample) -> bool) -> io::Result<Option<f64>> {
        Ok(self.grouped_statistics(spec, stat, keep, |_| ())?.remove(&()).flatten())
    }

    /// The statistic of the observations of `spec` in each period (its start, epoch milliseconds)
    /// that has any, for one agent or all.
    pub(super) fn period_statistics(
        &self,
        spec: MetricSpec,
        period_ms: i64,
        agent: Option<u32>,
        stat: Stat,
    ) -> io::Result<BTreeMap<i64, Option<f64>>> {
        self.grouped_statistics(spec, stat, |o| agent.is_none_or(|a| o.agent == a), |o| o.time().div_euclid(period_ms) * period_ms)
    }

    /// The statistic of the observations of `spec` that `keep` admits, for each group (by `group_of`)
    /// that has any. A percentile's values are gathered in the counting scan while all of them fit
    /// the limit; past it, consecutive groups are gathered up to the limit per scan, and a group with
    /// more is selected on its own.
    pub(super) fn grouped_statistics<K: Ord + Copy>(
        &self,
        spec: MetricSpec,
        stat: Stat,
        keep: impl Fn(&MetricSample) -> bool,
        group_of: impl Fn(&MetricSample) -> K,
    ) -> io::Result<BTreeMap<K, Option<f64>>> {
        let store = &self.observations[spec.index];
        let limit = self.limits.values as u64;
        let mut tallies: BTreeMap<K, CountSumMax> = BTreeMap::new();
        let mut gathered: Option<BTreeMap<K, Vec<f64>>> = stat.percentile().map(|_| BTreeMap::new());
        let mut seen = 0u64;
        store.scan(|o| {
            if keep(&o) {
                let group = group_of(&o);
                tallies.entry(group).or_default().add(o.value);
                seen += 1;
                if seen > limit {
                    gathered = None;
                }
                if let Some(groups) = &mut gathered {
                    groups.entry(group).or_default().push(o.value);
                }
            }
        })?;
        let Some(p) = stat.percentile() else {
            return Ok(tallies.into_iter().map(|(group, t)| (group, t.value(stat))).collect());
        };
        let percentiles = |groups: BTreeMap<K, Vec<f64>>, out: &mut BTreeMap<K, Option<f64>>| {
            for (group, mut values) in groups {
                values.sort_by(f64::total_cmp);
                out.insert(group, percentile(&values, p));
            }
        };
        let mut out = BTreeMap::new();
        if let Some(groups) = gathered {
            percentiles(groups, &mut out);
            return Ok(out);
        }
        let counts: Vec<(K, u64)> = tallies.iter().map(|(group, t)| (*group, t.n)).collect();
        let mut i = 0;
        while i < counts.len() {
            let (group, n) = counts[i];
            if n > limit {
                let values = |f: &mut dyn FnMut(f64)| {
                    store.scan(|o| {
                        if keep(&o) && group_of(&o) == group {
                            f(o.value)
                        }
                    })
                };
                out.insert(group, at_ranks(&values, n, &[nearest_rank(p, n)], self.limits.values)?.first().copied());
                i += 1;
                continue;
            }
            let mut end = i;
            let mut gathering = 0;
            while end < counts.len() && gathering + counts[end].1 <= limit {
                gathering += counts[end].1;
                end += 1;
            }
            let (first, last) = (counts[i].0, counts[end - 1].0);
            let mut groups: BTreeMap<K, Vec<f64>> = BTreeMap::new();
            store.scan(|o| {
                let group = group_of(&o);
                if keep(&o) && (first..=last).contains(&group) {
                    groups.entry(group).or_default().push(o.value);
                }
            })?;
            percentiles(groups, &mut out);
            i = end;
        }
        Ok(out)
    }

    /// Distinct session ids: the calls of the replay.
    pub(super) fn distinct_sessions(&self) -> io::Result<u64> {
        let groups = self.session_names.len().div_ceil(self.limits.group as u64).max(1);
        let mut distinct = 0;
        for group in 0..groups {
            let mut keys = HashSet::new();
            self.session_names.scan(|s| {
                if s.key % u128::from(groups) == u128::from(group) {
                    keys.insert(s.key);
                }
            })?;
            distinct += keys.len() as u64;
        }
        Ok(distinct)
    }

    /// The ids of the sessions with these keys.
    pub(super) fn session_ids(&self, keys: &HashSet<u128>) -> io::Result<HashMap<u128, String>> {
        let mut ids = HashMap::new();
        self.session_names.scan(|s| {
            if keys.contains(&s.key) {
                ids.entry(s.key).or_insert(s.id);
            }
        })?;
        Ok(ids)
    }

    /// The turns of each call, a group of calls at a time (by key), in the order they came.
    pub(super) fn each_call(&self, keep: impl Fn(&TurnPoint) -> bool, mut f: impl FnMut(u128, Vec<TurnPoint>)) -> io::Result<()> {
        let group = self.limits.group as u64;
        let mut turns = self.turns.len();
        if turns > group {
            turns = 0;
            self.turns.scan(|t| turns += u64::from(t.session != NO_SESSION && keep(&t)))?;
        }
        let groups = turns.div_ceil(group).max(1);
        for group in 0..groups {
            let mut calls: HashMap<u128, Vec<TurnPoint>> = HashMap::new();
            self.turns.scan(|t| {
                if t.session != NO_SESSION && t.session % u128::from(groups) == u128::from(group) && keep(&t) {
                    calls.entry(t.session).or_default().push(t);
                }
            })?;
            calls.into_iter().for_each(|(key, turns)| f(key, turns));
        }
        Ok(())
    }

    /// The five calls with the highest p95 turn latency (ties by session id).
    pub(super) fn slowest_sessions(&self) -> io::Result<Vec<SessionLatency>> {
        const SLOWEST: usize = 5;
        // Every call that could still be among the slowest: those at or above the fifth p95 so far.
        let mut candidates: Vec<(u128, SessionLatency)> = Vec::new();
        let mut prune_at = 4 * SLOWEST;
        self.each_call(
            |_| true,
            |key, turns| {
                let summary = Distribution::of(turns.iter().map(|t| t.latency).collect());
                candidates.push((
                    key,
                    SessionLatency {
                        session_id: String::new(),
                        agent: self.agents[turns[0].agent as usize].clone(),
                        turns: turns.len() as u64,
                        p95_ms: summary.p95.unwrap_or(0.0),
                        max_ms: summary.max.unwrap_or(0.0),
                        dominant_component: dominant_component(&turns),
                    },
                ));
                if candidates.len() > prune_at {
                    candidates.sort_by(|a, b| b.1.p95_ms.total_cmp(&a.1.p95_ms));
                    let cut = candidates[SLOWEST - 1].1.p95_ms;
                    candidates.retain(|c| c.1.p95_ms >= cut);
                    // Ties at the cut stay; pruning again only once they have doubled keeps this linear.
                    prune_at = prune_at.max(2 * candidates.len());
                }
            },
        )?;
        let ids = self.session_ids(&candidates.iter().map(|c| c.0).collect())?;
        let mut slowest: Vec<SessionLatency> = candidates
            .into_iter()
            .map(|(key, mut s)| {
                s.session_id = ids.get(&key).cloned().unwrap_or_default();
                s
            })
            .collect();
        slowest.sort_by(|a, b| b.p95_ms.total_cmp(&a.p95_ms).then_with(|| a.session_id.cmp(&b.session_id)));
        slowest.truncate(SLOWEST);
        Ok(slowest)
    }
}
