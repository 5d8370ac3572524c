//! The query-sync custom resource: on every `sam deploy` it makes the account's saved queries equal
//! to the files of `queries/` compiled into it, and on stack deletion removes what it created.
//!
//! Ownership: an Insights query definition is this stack's when its query string starts with the
//! stack's marker comment, an Athena named query when its description ends with the marker. Nothing
//! else is ever updated or deleted. Views are created with `CREATE OR REPLACE VIEW` and recorded as
//! named queries, so a view dropped from the repo is found and dropped on the next deploy.

pub mod aws;
pub mod cfn;
pub mod plan;

use std::future::Future;

use voicelake_shared::queries::{self, Kind, LogGroups, QueryFile};

use crate::plan::{Change, Saved};

pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/queries.rs"));
}

/// The queries compiled into the function.
pub fn compiled_queries() -> Vec<QueryFile> {
    let files: Vec<(String, String)> = embedded::FILES.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect();
    queries::parse_all(&files).unwrap_or_else(|e| panic!("queries/ was checked at build time by the tests: {e:?}"))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{action}: {message}")]
pub struct StoreError {
    pub action: String,
    pub message: String,
}

/// CloudWatch Logs Insights query definitions.
pub trait InsightsStore: Send + Sync {
    fn list(&self, name_prefix: &str) -> impl Future<Output = Result<Vec<Saved>, StoreError>> + Send;
    /// Creates (`id` none) or replaces a definition; returns its id.
    fn put(&self, id: Option<&str>, query: &Saved) -> impl Future<Output = Result<String, StoreError>> + Send;
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Athena named queries of one workgroup, and DDL to run in it.
pub trait AthenaStore: Send + Sync {
    fn list(&self, workgroup: &str) -> impl Future<Output = Result<Vec<Saved>, StoreError>> + Send;
    fn create(&self, workgroup: &str, query: &Saved) -> impl Future<Output = Result<String, StoreError>> + Send;
    fn update(&self, id: &str, query: &Saved) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Runs a statement to completion.
    fn execute(&self, sql: &str, database: &str, workgroup: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What the template passes to the custom resource.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Properties {
    /// The folder of the Insights queries, e.g. `voicelake`.
    pub folder: String,
    /// Log groups of the `agents` queries.
    #[serde(deserialize_with = "list_or_csv")]
    pub log_group_names: Vec<String>,
    /// The ingest function's log group, for the `ingest` queries.
    pub ingest_log_group: String,
    pub database: String,
    pub work_group: String,
    pub stack_name: String,
}

fn list_or_csv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(l) => l,
        Either::Csv(s) => s.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect(),
    })
}

use serde::Deserialize;

/// Counts of what a sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub views: usize,
}

pub struct QuerySync<I, A> {
    pub insights: I,
    pub athena: A,
}

fn desired_insights(files: &[QueryFile], p: &Properties) -> Vec<Saved> {
    files
        .iter()
        .filter(|q| q.kind == Kind::Insights)
        .map(|q| Saved {
            id: None,
            name: format!("{}/{}", p.folder, q.name),
            body: plan::insights_body(q, &p.stack_name),
            scope: match q.log_groups {
                LogGroups::Agents => p.log_group_names.clone(),
                LogGroups::Ingest => vec![p.ingest_log_group.clone()],
            },
            description: String::new(),
        })
        .collect()
}

fn desired_athena(files: &[QueryFile], p: &Properties) -> Vec<Saved> {
    files
        .iter()
        .filter(|q| q.kind != Kind::Insights)
        .map(|q| Saved {
            id: None,
            name: q.name.clone(),
            body: q.text.clone(),
            scope: vec![p.database.clone()],
            description: plan::athena_description(q, &p.stack_name),
        })
        .collect()
}

/// The view a recorded named query stands for, if it is one.
fn view_name(saved: &Saved) -> Option<String> {
    QueryFile::parse(&format!("athena/{}.sql", saved.name), &saved.body).ok().filter(|q| q.kind == Kind::AthenaView).map(|q| q.name)
}

impl<I: InsightsStore, A: AthenaStore> QuerySync<I, A> {
    /// Makes the saved queries equal to `files` (all of them removed when `files` is empty).
    pub async fn run(&self, files: &[QueryFile], p: &Properties) -> Result<Outcome, StoreError> {
        let mut outcome = Outcome::default();

        let owned: Vec<Saved> = self
            .insights
            .list(&format!("{}/", p.folder))
            .await?
            .into_iter()
            .filter(|s| plan::owns_insights(&s.body, &p.stack_name))
            .collect();
        for change in plan::plan(&desired_insights(files, p), &owned) {
            match change {
                Change::Create(q) => {
                    self.insights.put(None, &q).await?;
                    outcome.created += 1;
                }
                Change::Update { id, to } => {
                    self.insights.put(Some(&id), &to).await?;
                    outcome.updated += 1;
                }
                Change::Delete { id, .. } => {
                    self.insights.delete(&id).await?;
                    outcome.deleted += 1;
                }
            }
        }

        // Views first: a named query is recorded only for a view that exists.
        let desired = desired_athena(files, p);
        let views: Vec<&Saved> = desired.iter().filter(|s| view_name(s).is_some()).collect();
        let mut pending: Vec<&Saved> = views.clone();
        while !pending.is_empty() {
            // A view may read another one: create in rounds until none is left or none succeeds.
            let mut failed = Vec::new();
            let mut last_error = None;
            for v in &pending {
                match self.athena.execute(&v.body, &p.database, &p.work_group).await {
                    Ok(()) => outcome.views += 1,
                    Err(e) => {
                        last_error = Some(e);
                        failed.push(*v);
                    }
                }
            }
            if failed.len() == pending.len() {
                return Err(last_error.expect("a failed round has an error"));
            }
            pending = failed;
        }

        let owned: Vec<Saved> =
            self.athena.list(&p.work_group).await?.into_iter().filter(|s| plan::owns_athena(&s.description, &p.stack_name)).collect();
        let changes = plan::plan(&desired, &owned);
        // Views that leave the repo are dropped, dependents first (the reverse of creation order).
        let mut drops: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Delete { id, .. } => owned.iter().find(|o| o.id.as_deref() == Some(id.as_str())).and_then(view_name),
                _ => None,
            })
            .collect();
        drops.sort_by_key(|v| std::cmp::Reverse(dependents_first_rank(v)));
        for view in drops {
            self.athena.execute(&format!("DROP VIEW IF EXISTS {view}"), &p.database, &p.work_group).await?;
        }
        for change in changes {
            match change {
                Change::Create(q) => {
                    self.athena.create(&p.work_group, &q).await?;
                    outcome.created += 1;
                }
                Change::Update { id, to } => {
                    self.athena.update(&id, &to).await?;
                    outcome.updated += 1;
                }
                Change::Delete { id, .. } => {
                    self.athena.delete(&id).await?;
                    outcome.deleted += 1;
                }
            }
        }
        Ok(outcome)
    }
}

/// Views built on other views (their names say which) are dropped before the views they read.
fn dependents_first_rank(view: &str) -> usize {
    match view {
        "turns_dedup" | "sessions_dedup" => 0,
        _ => 1,
    }
}
