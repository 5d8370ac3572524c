//! The dashboard's views over a replay: what the local report page draws.

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;

use voicelake_shared::config::Config;
use voicelake_shared::metrics::metric;
use voicelake_shared::views::{self, Axis, Chart, Series};

use super::ReportBuilder;

impl ReportBuilder {
    /// The dashboard's charts ([`views::DASHBOARD`]) computed from the replayed observations.
    pub fn charts(&self, config: &Config) -> io::Result<Charts> {
        let span = self.first.zip(self.last);
        let charts = views::charts().map(|chart| self.chart(chart, config)).collect::<io::Result<_>>()?;
        Ok(Charts { span, calls_ended: self.observations[metric::SESSIONS.index].len(), charts })
    }

    pub(super) fn chart(&self, chart: &Chart, config: &Config) -> io::Result<ChartData> {
        let specs = crate::deployed_alarms::deployed(config);
        let period = i64::from(chart.period_seconds) * 1000;
        let points = |b: BTreeMap<i64, Option<f64>>| -> Vec<(i64, f64)> { b.into_iter().filter_map(|(t, v)| v.map(|v| (t, v))).collect() };
        let mut series = Vec::new();
        let mut aws_only = Vec::new();
        for s in chart.series {
            if !s.is_local() {
                aws_only.push(s.label());
                continue;
            }
            match *s {
                Series::Metric { metric, stat, label, axis } => {
                    let b = self.period_statistics(metric, period, None, stat)?;
                    series.push(SeriesData { label: label.to_owned(), axis, points: points(b) });
                }
                Series::PerAgent { metric, stat } => {
                    let mut agents: Vec<(usize, &String)> = self.agents.iter().enumerate().filter(|(_, a)| !a.is_empty()).collect();
                    agents.sort_by(|a, b| a.1.cmp(b.1));
                    for (i, agent) in agents {
                        let b = self.period_statistics(metric, period, Some(i as u32), stat)?;
                        if !b.is_empty() {
                            series.push(SeriesData { label: agent.clone(), axis: Axis::Left, points: points(b) });
                        }
                    }
                }
                Series::PerProvider { .. } => {
                    for ((kind, provider), b) in self.provider_series(period)? {
                        series.push(SeriesData { label: format!("{provider} {kind}"), axis: Axis::Left, points: points(b) });
                    }
                }
                Series::ToolSuccessPercent => {
                    let b = self.tool_success(period)?;
                    series.push(SeriesData { label: s.label().to_owned(), axis: Axis::Left, points: points(b) });
                }
                Series::Aws { .. } => unreachable!("not local"),
            }
        }
        let thresholds = chart
            .thresholds
            .iter()
            .filter_map(|t| {
                let alarm = specs.iter().find(|a| a.parameter == t.parameter)?;
                Some(ThresholdLine { label: t.label.to_owned(), value: alarm.threshold })
            })
            .collect();
        let alarm_periods = match chart.alarm.and_then(|id| specs.iter().find(|a| a.id == id)) {
            Some(spec) => {
                let series = self.alarm_series(spec)?;
                let breaching: Vec<bool> = series.iter().map(|(_, v)| v.is_some_and(|v| spec.breaches(v))).collect();
                crate::deployed_alarms::firing_periods(spec, &breaching).into_iter().map(|i| series[i].0).collect()
            }
            None => Vec::new(),
        };
        Ok(ChartData {
            id: chart.id,
            title: chart.display_title(),
            unit: chart.unit,
            right_unit: chart.right_unit,
            period_seconds: chart.period_seconds,
            y_min: chart.y_min,
            y_max: chart.y_max,
            series,
            thresholds,
            alarm: chart.alarm,
            alarm_periods,
            aws_only,
        })
    }
}

/// The dashboard's views over a replay: what the local report page draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Charts {
    /// First and last event time of the replay, epoch milliseconds.
    pub span: Option<(i64, i64)>,
    /// `session_analytics` events: calls that ended (usage updates are not calls).
    pub calls_ended: u64,
    pub charts: Vec<ChartData>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartData {
    pub id: &'static str,
    /// The title with its unit, as the dashboard shows it.
    pub title: String,
    pub unit: &'static str,
    pub right_unit: Option<&'static str>,
    pub period_seconds: u32,
    /// Fixed ends of the left axis, where the view sets them.
    pub y_min: Option<f64>,
    pub y_max: Option<f64>,
    /// The series the replay has; a series with no points has no observations in the replay.
    pub series: Vec<SeriesData>,
    pub thresholds: Vec<ThresholdLine>,
    /// The alarm whose firing periods are shaded.
    pub alarm: Option<&'static str>,
    /// Start of each period in which that alarm would be in ALARM, epoch milliseconds.
    pub alarm_periods: Vec<i64>,
    /// Series of the view that only CloudWatch has (the function's own health, Lambda, Firehose).
    pub aws_only: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesData {
    pub label: String,
    #[serde(skip)]
    pub axis: Axis,
    /// (period start in epoch milliseconds, value), periods without observations left out.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdLine {
    pub label: String,
    pub value: f64,
}
