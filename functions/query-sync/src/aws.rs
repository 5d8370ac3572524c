//! The stores over the AWS SDK clients.

use std::time::Duration;

use crate::plan::Saved;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};

use crate::{AthenaStore, InsightsStore, StoreError};

fn store_error<E: std::error::Error>(action: &str, e: E) -> StoreError {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    StoreError { action: action.to_owned(), message }
}

pub struct CloudWatchLogsInsights {
    pub client: aws_sdk_cloudwatchlogs::Client,
}

impl InsightsStore for CloudWatchLogsInsights {
    async fn list(&self, name_prefix: &str) -> Result<Vec<Saved>, StoreError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .describe_query_definitions()
                .query_definition_name_prefix(name_prefix)
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| store_error("DescribeQueryDefinitions", e))?;
            for q in page.query_definitions() {
                out.push(Saved {
                    id: q.query_definition_id().map(str::to_owned),
                    name: q.name().unwrap_or_default().to_owned(),
                    body: q.query_string().unwrap_or_default().to_owned(),
                    scope: q.log_group_names().to_vec(),
                    description: String::new(),
                });
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn put(&self, id: Option<&str>, q: &Saved) -> Result<String, StoreError> {
        let out = self
            .client
            .put_query_definition()
            .name(&q.name)
            .set_query_definition_id(id.map(str::to_owned))
            .set_log_group_names(Some(q.scope.clone()))
            .query_string(&q.body)
            .send()
            .await
            .map_err(|e| store_error(&format!("PutQueryDefinition {}", q.name), e))?;
        Ok(out.query_definition_id().unwrap_or_default().to_owned())
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        match self.client.delete_query_definition().query_definition_id(id).send().await {
            Ok(_) => Ok(()),
            // Already gone is what was wanted.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(()),
            Err(e) => Err(store_error(&format!("DeleteQueryDefinition {id}"), e)),
        }
    }
}

pub struct AthenaNamedQueries {
    pub client: aws_sdk_athena::Client,
    /// How long a DDL statement may run.
    pub statement_timeout: Duration,
}

impl AthenaStore for AthenaNamedQueries {
    async fn list(&self, workgroup: &str) -> Result<Vec<Saved>, StoreError> {
        let mut ids = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_named_queries()
                .work_group(workgroup)
                .max_results(50)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| store_error("ListNamedQueries", e))?;
            ids.extend(page.named_query_ids().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut out = Vec::new();
        for chunk in ids.chunks(50) {
            let got = self
                .client
                .batch_get_named_query()
                .set_named_query_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| store_error("BatchGetNamedQuery", e))?;
            for q in got.named_queries() {
                out.push(Saved {
                    id: q.named_query_id().map(str::to_owned),
                    name: q.name().to_owned(),
                    body: q.query_string().to_owned(),
                    scope: vec![q.database().to_owned()],
                    description: q.description().unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(out)
    }

    async fn create(&self, workgroup: &str, q: &Saved) -> Result<String, StoreError> {
        let out = self
            .client
            .create_named_query()
            .name(&q.name)
            .description(&q.description)
            .database(q.scope.first().cloned().unwrap_or_default())
            .query_string(&q.body)
            .work_group(workgroup)
            .send()
            .await
            .map_err(|e| store_error(&format!("CreateNamedQuery {}", q.name), e))?;
        Ok(out.named_query_id().unwrap_or_default().to_owned())
    }

    async fn update(&self, id: &str, q: &Saved) -> Result<(), StoreError> {
        self.client
            .update_named_query()
            .named_query_id(id)
            .name(&q.name)
            .description(&q.description)
            .query_string(&q.body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&format!("UpdateNamedQuery {}", q.name), e))
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_named_query()
            .named_query_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&format!("DeleteNamedQuery {id}"), e))
    }

    async fn execute(&self, sql: &str, database: &str, workgroup: &str) -> Result<(), StoreError> {
        let started = self
            .client
            .start_query_execution()
            .query_string(sql)
            .query_execution_context(QueryExecutionContext::builder().database(database).build())
            .work_group(workgroup)
            .set_result_configuration(None::<ResultConfiguration>)
            .send()
            .await
            .map_err(|e| store_error("StartQueryExecution", e))?;
        let id = started.query_execution_id().unwrap_or_default().to_owned();
        let deadline = tokio::time::Instant::now() + self.statement_timeout;
        let mut wait = Duration::from_millis(200);
        loop {
            let got =
                self.client.get_query_execution().query_execution_id(&id).send().await.map_err(|e| store_error("GetQueryExecution", e))?;
            let status = got.query_execution().and_then(|q| q.status());
            match status.and_then(|s| s.state()) {
                Some(QueryExecutionState::Succeeded) => return Ok(()),
                Some(QueryExecutionState::Failed | QueryExecutionState::Cancelled) => {
                    let reason = status.and_then(|s| s.state_change_reason()).unwrap_or("no reason given");
                    let first_line = sql.lines().find(|l| !l.starts_with("--")).unwrap_or(sql);
                    return Err(StoreError { action: format!("Athena: {first_line}"), message: reason.to_owned() });
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(StoreError {
                        action: "Athena".into(),
                        message: format!("query {id} still running after {:?}", self.statement_timeout),
                    });
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
