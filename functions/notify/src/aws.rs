//! The AWS calls of a notification, behind small traits: what the handler asks of CloudWatch,
//! Logs Insights, SSM and SNS.

use std::future::Future;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, HistoryItemType, Metric, MetricDataQuery, MetricStat, RecentlyActive, ScanBy};
use aws_sdk_cloudwatchlogs::types::QueryStatus;
use voicelake_shared::metrics::dim;

use crate::enrich::{MetricPlan, Query, Row, Series};
use crate::history::{self, Transition};
use crate::message::{self, MathQuery, MetricRef, MetricStat as MsgMetricStat, Trigger};

/// A failed call: which one, and the error with its causes.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{call}: {message}")]
pub struct CallError {
    pub call: &'static str,
    pub message: String,
}

fn call_error(call: &'static str) -> impl FnOnce(&(dyn std::error::Error + 'static)) -> CallError {
    move |e| CallError { call, message: voicelake_shared::errors::chain(e) }
}

macro_rules! sdk {
    ($call:literal, $fut:expr) => {
        $fut.await.map_err(|e| call_error($call)(&e))
    };
}

/// A metric alarm as `DescribeAlarms` tells it: what a composite alarm's child watches.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildAlarm {
    pub name: String,
    pub description: Option<String>,
    pub state_change_ms: i64,
    pub trigger: Trigger,
}

pub trait Metrics {
    /// The agents with recent data for `metric` in `environment`.
    fn agents(&self, namespace: &str, environment: &str, metric: &str) -> impl Future<Output = Result<Vec<String>, CallError>> + Send;
    fn metric_data(
        &self,
        namespace: &str,
        environment: &str,
        plan: &MetricPlan,
    ) -> impl Future<Output = Result<Vec<Series>, CallError>> + Send;
    /// State changes of `alarm` from `start_ms` on.
    fn history(&self, alarm: &str, start_ms: i64, end_ms: i64) -> impl Future<Output = Result<Vec<Transition>, CallError>> + Send;
    fn metric_alarms(&self, names: &[String]) -> impl Future<Output = Result<Vec<ChildAlarm>, CallError>> + Send;
}

/// Where a Logs Insights query stands.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryState {
    Running,
    Complete(Vec<Row>),
    /// Failed, cancelled or timed out on CloudWatch's side.
    Ended(String),
}

pub trait Insights {
    fn start_query(
        &self,
        log_groups: &[String],
        query: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> impl Future<Output = Result<String, CallError>> + Send;
    fn query_results(&self, query_id: &str) -> impl Future<Output = Result<QueryState, CallError>> + Send;
    fn stop_query(&self, query_id: &str) -> impl Future<Output = Result<(), CallError>> + Send;
}

pub trait Secrets {
    /// A SecureString parameter, decrypted (also `/aws/reference/secretsmanager/NAME`).
    fn secret(&self, parameter: &str) -> impl Future<Output = Result<String, CallError>> + Send;
}

pub trait Topic {
    fn publish(&self, topic_arn: &str, subject: &str, body: &str) -> impl Future<Output = Result<(), CallError>> + Send;
}

pub struct CloudWatch(pub aws_sdk_cloudwatch::Client);

fn env_dimension(environment: &str) -> Dimension {
    Dimension::builder().name(dim::ENVIRONMENT).value(environment).build()
}

impl Metrics for CloudWatch {
    async fn agents(&self, namespace: &str, environment: &str, metric: &str) -> Result<Vec<String>, CallError> {
        let mut agents = Vec::new();
        let mut pages = self
            .0
            .list_metrics()
            .namespace(namespace)
            .metric_name(metric)
            .dimensions(DimensionFilter::builder().name(dim::ENVIRONMENT).value(environment).build())
            .dimensions(DimensionFilter::builder().name(dim::AGENT).build())
            .recently_active(RecentlyActive::Pt3H)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("ListMetrics")(&e))?;
            for m in page.metrics() {
                if let Some(agent) = m.dimensions().iter().find(|d| d.name() == Some(dim::AGENT)).and_then(|d| d.value()) {
                    agents.push(agent.to_owned());
                }
            }
        }
        agents.sort();
        agents.dedup();
        Ok(agents)
    }

    async fn metric_data(&self, namespace: &str, environment: &str, plan: &MetricPlan) -> Result<Vec<Series>, CallError> {
        let queries: Vec<MetricDataQuery> = plan
            .queries
            .iter()
            .map(|q| match q {
                Query::Stat { id, metric, agent, stat, period_s, return_data } => {
                    let mut m = Metric::builder().namespace(namespace).metric_name(*metric).dimensions(env_dimension(environment));
                    if let Some(agent) = agent {
                        m = m.dimensions(Dimension::builder().name(dim::AGENT).value(agent).build());
                    }
                    MetricDataQuery::builder()
                        .id(id)
                        .metric_stat(MetricStat::builder().metric(m.build()).period(*period_s as i32).stat(*stat).build())
                        .return_data(*return_data)
                        .build()
                }
                Query::Expr { id, expression } => MetricDataQuery::builder().id(id).expression(expression).return_data(true).build(),
            })
            .collect();
        let mut series: Vec<Series> = Vec::new();
        let mut pages = self
            .0
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(DateTime::from_millis(plan.start_ms))
            .end_time(DateTime::from_millis(plan.end_ms))
            .scan_by(ScanBy::TimestampAscending)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("GetMetricData")(&e))?;
            for r in page.metric_data_results() {
                let id = r.id().unwrap_or_default();
                let points = r.timestamps().iter().map(|t| t.to_millis().unwrap_or(i64::MIN)).zip(r.values().iter().copied());
                match series.iter_mut().find(|s| s.id == id) {
                    Some(s) => s.points.extend(points),
                    None => series.push(Series { id: id.to_owned(), points: points.collect() }),
                }
            }
        }
        Ok(series)
    }

    async fn history(&self, alarm: &str, start_ms: i64, end_ms: i64) -> Result<Vec<Transition>, CallError> {
        let out = sdk!(
            "DescribeAlarmHistory",
            self.0
                .describe_alarm_history()
                .alarm_name(alarm)
                .history_item_type(HistoryItemType::StateUpdate)
                .start_date(DateTime::from_millis(start_ms))
                .end_date(DateTime::from_millis(end_ms))
                .max_records(100)
                .send()
        )?;
        Ok(out
            .alarm_history_items()
            .iter()
            .filter_map(|i| history::transition(i.timestamp()?.to_millis().ok()?, i.history_data(), i.history_summary()))
            .collect())
    }

    async fn metric_alarms(&self, names: &[String]) -> Result<Vec<ChildAlarm>, CallError> {
        let out = sdk!("DescribeAlarms", self.0.describe_alarms().set_alarm_names(Some(names.to_vec())).send())?;
        let dimensions = |ds: &[Dimension]| -> Vec<message::Dimension> {
            ds.iter()
                .map(|d| message::Dimension { name: d.name().unwrap_or_default().into(), value: d.value().unwrap_or_default().into() })
                .collect()
        };
        let metric_ref = |m: &Metric| MetricRef {
            metric_name: m.metric_name().unwrap_or_default().to_owned(),
            namespace: m.namespace().unwrap_or_default().to_owned(),
            dimensions: dimensions(m.dimensions()),
        };
        Ok(out
            .metric_alarms()
            .iter()
            .map(|a| ChildAlarm {
                name: a.alarm_name().unwrap_or_default().to_owned(),
                description: a.alarm_description().map(str::to_owned),
                state_change_ms: a.state_updated_timestamp().and_then(|t| t.to_millis().ok()).unwrap_or_default(),
                trigger: Trigger {
                    metric_name: a.metric_name().map(str::to_owned),
                    namespace: a.namespace().map(str::to_owned),
                    statistic: a.statistic().map(|s| s.as_str().to_owned()),
                    extended_statistic: a.extended_statistic().map(str::to_owned),
                    dimensions: dimensions(a.dimensions()),
                    period: a.period().map(|p| p as u32),
                    evaluation_periods: a.evaluation_periods().unwrap_or(1) as u32,
                    datapoints_to_alarm: a.datapoints_to_alarm().map(|d| d as u32),
                    comparison_operator: a.comparison_operator().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                    threshold: a.threshold(),
                    metrics: a
                        .metrics()
                        .iter()
                        .map(|q| MathQuery {
                            id: q.id().unwrap_or_default().to_owned(),
                            metric_stat: q.metric_stat().and_then(|s| {
                                Some(MsgMetricStat {
                                    metric: metric_ref(s.metric()?),
                                    period: s.period()? as u32,
                                    stat: s.stat()?.to_owned(),
                                })
                            }),
                            expression: q.expression().map(str::to_owned),
                            period: q.period().map(|p| p as u32),
                            return_data: q.return_data(),
                        })
                        .collect(),
                },
            })
            .collect())
    }
}

pub struct Logs(pub aws_sdk_cloudwatchlogs::Client);

impl Insights for Logs {
    async fn start_query(&self, log_groups: &[String], query: &str, start_ms: i64, end_ms: i64) -> Result<String, CallError> {
        let out = sdk!(
            "StartQuery",
            self.0
                .start_query()
                .set_log_group_names(Some(log_groups.to_vec()))
                .query_string(query)
                .start_time(start_ms.div_euclid(1000))
                .end_time((end_ms + 999).div_euclid(1000))
                .send()
        )?;
        out.query_id().map(str::to_owned).ok_or(CallError { call: "StartQuery", message: "the answer has no query id".into() })
    }

    async fn query_results(&self, query_id: &str) -> Result<QueryState, CallError> {
        let out = sdk!("GetQueryResults", self.0.get_query_results().query_id(query_id).send())?;
        Ok(match out.status() {
            Some(QueryStatus::Complete) => QueryState::Complete(
                out.results()
                    .iter()
                    .map(|row| row.iter().filter_map(|f| Some((f.field()?.to_owned(), f.value()?.to_owned()))).collect())
                    .collect(),
            ),
            Some(QueryStatus::Running | QueryStatus::Scheduled) | None => QueryState::Running,
            Some(other) => QueryState::Ended(other.as_str().to_owned()),
        })
    }

    async fn stop_query(&self, query_id: &str) -> Result<(), CallError> {
        sdk!("StopQuery", self.0.stop_query().query_id(query_id).send()).map(|_| ())
    }
}

pub struct Ssm(pub aws_sdk_ssm::Client);

impl Secrets for Ssm {
    async fn secret(&self, parameter: &str) -> Result<String, CallError> {
        let out = sdk!("GetParameter", self.0.get_parameter().name(parameter).with_decryption(true).send())?;
        out.parameter()
            .and_then(|p| p.value())
            .map(str::to_owned)
            .ok_or(CallError { call: "GetParameter", message: format!("{parameter} has no value") })
    }
}

pub struct Sns(pub aws_sdk_sns::Client);

impl Topic for Sns {
    async fn publish(&self, topic_arn: &str, subject: &str, body: &str) -> Result<(), CallError> {
        sdk!("Publish", self.0.publish().topic_arn(topic_arn).subject(subject).message(body).send()).map(|_| ())
    }
}
