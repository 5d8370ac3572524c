//! query-sync against an SDK-level fake of an account (aws-smithy-mocks rules sharing state; moto
//! does not implement query definitions), answering a stand-in for CloudFormation's response URL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_athena::operation::batch_get_named_query::BatchGetNamedQueryOutput;
use aws_sdk_athena::operation::create_named_query::CreateNamedQueryOutput;
use aws_sdk_athena::operation::delete_named_query::DeleteNamedQueryOutput;
use aws_sdk_athena::operation::get_query_execution::GetQueryExecutionOutput;
use aws_sdk_athena::operation::list_named_queries::ListNamedQueriesOutput;
use aws_sdk_athena::operation::start_query_execution::StartQueryExecutionOutput;
use aws_sdk_athena::operation::update_named_query::UpdateNamedQueryOutput;
use aws_sdk_athena::types::{NamedQuery, QueryExecution, QueryExecutionState, QueryExecutionStatus};
use aws_sdk_cloudwatchlogs::operation::delete_query_definition::DeleteQueryDefinitionOutput;
use aws_sdk_cloudwatchlogs::operation::describe_query_definitions::DescribeQueryDefinitionsOutput;
use aws_sdk_cloudwatchlogs::operation::put_query_definition::{PutQueryDefinitionError, PutQueryDefinitionOutput};
use aws_sdk_cloudwatchlogs::types::QueryDefinition;
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
use serde_json::{Value, json};
use voicelake_query_sync::aws::{AthenaNamedQueries, CloudWatchLogsInsights};
use voicelake_query_sync::cfn::{self, HttpResponder};
use voicelake_query_sync::plan::Saved;
use voicelake_query_sync::{InsightsStore, QuerySync, StoreError, compiled_queries};
use voicelake_shared::queries::Kind;

#[derive(Debug, Clone, PartialEq)]
struct Definition {
    id: String,
    name: String,
    query: String,
    log_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Named {
    id: String,
    name: String,
    description: String,
    database: String,
    sql: String,
}

#[derive(Debug, Default)]
struct Account {
    definitions: Vec<Definition>,
    named: Vec<Named>,
    executed: Vec<String>,
    next: u32,
    /// PutQueryDefinition fails while set.
    refuse_puts: bool,
}

impl Account {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("id-{}", self.next)
    }
}

type Shared = Arc<Mutex<Account>>;

fn clients(account: &Shared) -> QuerySync<CloudWatchLogsInsights, AthenaNamedQueries> {
    QuerySync {
        insights: CloudWatchLogsInsights { client: logs_client(account) },
        athena: AthenaNamedQueries { client: athena_client(account), statement_timeout: Duration::from_secs(5) },
    }
}

/// CloudWatch Logs' query definitions of `account`, by the SDK's own test rules.
fn logs_client(account: &Shared) -> aws_sdk_cloudwatchlogs::Client {
    let a = account.clone();
    let describe = mock!(aws_sdk_cloudwatchlogs::Client::describe_query_definitions).then_compute_output(move |input| {
        let prefix = input.query_definition_name_prefix().unwrap_or("").to_owned();
        let defs = a.lock().unwrap().definitions.clone();
        DescribeQueryDefinitionsOutput::builder()
            .set_query_definitions(Some(
                defs.iter()
                    .filter(|d| d.name.starts_with(&prefix))
                    .map(|d| {
                        QueryDefinition::builder()
                            .query_definition_id(&d.id)
                            .name(&d.name)
                            .query_string(&d.query)
                            .set_log_group_names(Some(d.log_groups.clone()))
                            .build()
                    })
                    .collect(),
            ))
            .build()
    });
    let a = account.clone();
    let put = mock!(aws_sdk_cloudwatchlogs::Client::put_query_definition).then_compute_response(move |input| {
        let mut acc = a.lock().unwrap();
        if acc.refuse_puts {
            return MockResponse::Error(PutQueryDefinitionError::LimitExceededException(
                aws_sdk_cloudwatchlogs::types::error::LimitExceededException::builder().message("too many query definitions").build(),
            ));
        }
        let def = Definition {
            id: String::new(),
            name: input.name().unwrap().to_owned(),
            query: input.query_string().unwrap().to_owned(),
            log_groups: input.log_group_names().to_vec(),
        };
        let id = match input.query_definition_id() {
            Some(id) => {
                let existing = acc.definitions.iter_mut().find(|d| d.id == id).expect("updates name an existing definition");
                *existing = Definition { id: id.to_owned(), ..def };
                id.to_owned()
            }
            None => {
                let id = acc.id();
                acc.definitions.push(Definition { id: id.clone(), ..def });
                id
            }
        };
        MockResponse::Output(PutQueryDefinitionOutput::builder().query_definition_id(id).build())
    });
    let a = account.clone();
    let delete = mock!(aws_sdk_cloudwatchlogs::Client::delete_query_definition).then_compute_output(move |input| {
        a.lock().unwrap().definitions.retain(|d| Some(d.id.as_str()) != input.query_definition_id());
        DeleteQueryDefinitionOutput::builder().success(true).build()
    });
    mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&describe, &put, &delete])
}

/// Athena's named queries and statements of `account`, by the SDK's own test rules.
fn athena_client(account: &Shared) -> aws_sdk_athena::Client {
    let a = account.clone();
    let list = mock!(aws_sdk_athena::Client::list_named_queries).then_compute_output(move |_| {
        ListNamedQueriesOutput::builder().set_named_query_ids(Some(a.lock().unwrap().named.iter().map(|n| n.id.clone()).collect())).build()
    });
    let a = account.clone();
    let get = mock!(aws_sdk_athena::Client::batch_get_named_query).then_compute_output(move |input| {
        let acc = a.lock().unwrap();
        BatchGetNamedQueryOutput::builder()
            .set_named_queries(Some(
                acc.named
                    .iter()
                    .filter(|n| input.named_query_ids().contains(&n.id))
                    .map(|n| {
                        NamedQuery::builder()
                            .named_query_id(&n.id)
                            .name(&n.name)
                            .description(&n.description)
                            .database(&n.database)
                            .query_string(&n.sql)
                            .build()
                            .unwrap()
                    })
                    .collect(),
            ))
            .build()
    });
    let a = account.clone();
    let create = mock!(aws_sdk_athena::Client::create_named_query).then_compute_output(move |input| {
        let mut acc = a.lock().unwrap();
        let id = acc.id();
        acc.named.push(Named {
            id: id.clone(),
            name: input.name().unwrap().to_owned(),
            description: input.description().unwrap_or("").to_owned(),
            database: input.database().unwrap().to_owned(),
            sql: input.query_string().unwrap().to_owned(),
        });
        CreateNamedQueryOutput::builder().named_query_id(id).build()
    });
    let a = account.clone();
    let update = mock!(aws_sdk_athena::Client::update_named_query).then_compute_output(move |input| {
        let mut acc = a.lock().unwrap();
        let n = acc.named.iter_mut().find(|n| Some(n.id.as_str()) == input.named_query_id()).unwrap();
        n.name = input.name().unwrap().to_owned();
        n.description = input.description().unwrap_or("").to_owned();
        n.sql = input.query_string().unwrap().to_owned();
        UpdateNamedQueryOutput::builder().build()
    });
    let a = account.clone();
    let remove = mock!(aws_sdk_athena::Client::delete_named_query).then_compute_output(move |input| {
        a.lock().unwrap().named.retain(|n| Some(n.id.as_str()) != input.named_query_id());
        DeleteNamedQueryOutput::builder().build()
    });
    let a = account.clone();
    let start = mock!(aws_sdk_athena::Client::start_query_execution).then_compute_output(move |input| {
        let mut acc = a.lock().unwrap();
        acc.executed.push(input.query_string().unwrap().to_owned());
        let id = acc.id();
        StartQueryExecutionOutput::builder().query_execution_id(id).build()
    });
    let status = mock!(aws_sdk_athena::Client::get_query_execution).then_output(|| {
        GetQueryExecutionOutput::builder()
            .query_execution(
                QueryExecution::builder().status(QueryExecutionStatus::builder().state(QueryExecutionState::Succeeded).build()).build(),
            )
            .build()
    });
    mock_client!(aws_sdk_athena, RuleMode::MatchAny, [&list, &get, &create, &update, &remove, &start, &status])
}

fn properties() -> Value {
    json!({
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:query-sync",
        "Folder": "voicelake",
        "LogGroupNames": ["/ecs/support-agent", "/ecs/sales-agent"],
        "IngestLogGroup": "/aws/lambda/voicelake-ingest",
        "Database": "voicelake_prod",
        "WorkGroup": "voicelake",
        "StackName": "voicelake",
        "Version": "arn:aws:lambda:us-east-1:123456789012:function:query-sync:3"
    })
}

fn event(kind: &str, url: &str) -> Value {
    let mut e = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:query-sync",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/voicelake/guid",
        "RequestId": format!("req-{kind}"),
        "ResourceType": "Custom::SavedQueries",
        "LogicalResourceId": "SavedQueries",
        "ResourceProperties": properties(),
    });
    if kind != "Create" {
        e["PhysicalResourceId"] = json!("voicelake-queries-SavedQueries");
    }
    if kind == "Update" {
        e["OldResourceProperties"] = properties();
    }
    e
}

/// CloudFormation's pre-signed response URL: keeps what it is sent.
async fn cloudformation() -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("PUT")).respond_with(wiremock::ResponseTemplate::new(200)).mount(&server).await;
    server
}

async fn last_response(server: &wiremock::MockServer) -> Value {
    let requests = server.received_requests().await.unwrap();
    let r = requests.last().expect("CloudFormation was answered");
    assert_eq!(r.headers.get("content-type").map(|v| v.to_str().unwrap()), Some(""), "the signed URL allows no content type");
    serde_json::from_slice(&r.body).unwrap()
}

const BUDGET: Duration = Duration::from_secs(30);

#[tokio::test]
async fn create_saves_every_query_and_creates_the_views() {
    let account: Shared = Default::default();
    let sync = clients(&account);
    let cf = cloudformation().await;
    let url = format!("{}/cfn/response", cf.uri());
    cfn::handle(&sync, &HttpResponder::default(), &event("Create", &url), BUDGET).await.unwrap();

    let response = last_response(&cf).await;
    assert_eq!(response["Status"], "SUCCESS");
    assert_eq!(response["PhysicalResourceId"], "voicelake-queries-SavedQueries");
    assert_eq!(response["RequestId"], "req-Create");
    assert_eq!(response["LogicalResourceId"], "SavedQueries");

    let files = compiled_queries();
    let acc = account.lock().unwrap();
    let insights = files.iter().filter(|q| q.kind == Kind::Insights).count();
    assert_eq!(acc.definitions.len(), insights);
    for d in &acc.definitions {
        assert!(d.name.starts_with("voicelake/") && d.name.len() <= 255, "{}", d.name);
        assert!(d.query.starts_with("# managed by voicelake stack voicelake:"), "{}", d.query);
        assert!(d.query.len() <= 10_000);
        let file =
            files.iter().find(|q| q.kind == Kind::Insights && d.name == format!("voicelake/{}", q.name)).expect("a file of queries/");
        let expected: &[&str] = match file.log_groups {
            voicelake_shared::queries::LogGroups::Ingest => &["/aws/lambda/voicelake-ingest"],
            voicelake_shared::queries::LogGroups::Agents => &["/ecs/support-agent", "/ecs/sales-agent"],
        };
        assert_eq!(d.log_groups, expected, "{}", d.name);
    }
    assert_eq!(acc.named.len(), files.len() - insights);
    assert!(acc.named.iter().all(|n| n.database == "voicelake_prod" && n.description.ends_with("(managed by voicelake stack voicelake)")));
    let views: Vec<&str> = files.iter().filter(|q| q.kind == Kind::AthenaView).map(|q| q.name.as_str()).collect();
    assert_eq!(acc.executed.len(), views.len());
    for v in views {
        assert!(acc.executed.iter().any(|sql| sql.contains(&format!("CREATE OR REPLACE VIEW {v} AS"))), "{v}");
    }
    assert_eq!(response["Data"]["Created"], (files.len()).to_string());
}

#[tokio::test]
async fn update_changes_only_what_differs_prunes_its_own_and_leaves_others_alone() {
    let account: Shared = Default::default();
    let sync = clients(&account);
    let cf = cloudformation().await;
    let url = format!("{}/r", cf.uri());
    cfn::handle(&sync, &HttpResponder::default(), &event("Create", &url), BUDGET).await.unwrap();
    {
        let mut acc = account.lock().unwrap();
        // A user's own queries, in the same folder and workgroup.
        acc.definitions.push(Definition {
            id: "mine-1".into(),
            name: "voicelake/my-own".into(),
            query: "fields @message".into(),
            log_groups: vec![],
        });
        acc.named.push(Named {
            id: "mine-2".into(),
            name: "adhoc".into(),
            description: "scratch".into(),
            database: "voicelake_prod".into(),
            sql: "SELECT 1".into(),
        });
        // Another stack's query with the same name.
        acc.definitions.push(Definition {
            id: "other-stack".into(),
            name: "voicelake/slowest-turns".into(),
            query: "# managed by voicelake stack staging: edit queries/insights/slowest-turns.logsinsights in the repo, not here\nfields @message".into(),
            log_groups: vec![],
        });
        // Drift: someone edited one of ours; one of ours left the repo.
        let edited = acc.definitions.iter_mut().find(|d| d.name == "voicelake/latency-percentiles").unwrap();
        edited.query.push_str("\n| limit 1");
        let gone = Definition {
            id: "gone-1".into(),
            name: "voicelake/retired-query".into(),
            query: "# managed by voicelake stack voicelake: edit queries/insights/retired-query.logsinsights in the repo, not here\nfields @message".into(),
            log_groups: vec!["/ecs/support-agent".into()],
        };
        acc.definitions.push(gone);
        acc.named.push(Named {
            id: "gone-view".into(),
            name: "old_view".into(),
            description: "an old view (managed by voicelake stack voicelake)".into(),
            database: "voicelake_prod".into(),
            sql: "-- name: old_view\n-- kind: view\n-- description: old\nCREATE OR REPLACE VIEW old_view AS SELECT 1".into(),
        });
        acc.executed.clear();
    }
    cfn::handle(&sync, &HttpResponder::default(), &event("Update", &url), BUDGET).await.unwrap();
    let response = last_response(&cf).await;
    assert_eq!(response["Status"], "SUCCESS");
    assert_eq!(
        (response["Data"]["Created"].as_str(), response["Data"]["Updated"].as_str(), response["Data"]["Deleted"].as_str()),
        (Some("0"), Some("1"), Some("2"))
    );
    let acc = account.lock().unwrap();
    assert!(acc.definitions.iter().any(|d| d.id == "mine-1"), "a user's query in the folder is not ours");
    assert!(acc.definitions.iter().any(|d| d.id == "other-stack"), "another stack's query is not ours");
    assert!(acc.named.iter().any(|n| n.id == "mine-2"));
    assert!(!acc.definitions.iter().any(|d| d.id == "gone-1"), "ours, and no longer in the repo");
    assert!(!acc.named.iter().any(|n| n.id == "gone-view"));
    assert!(acc.executed.iter().any(|sql| sql == "DROP VIEW IF EXISTS old_view"), "{:?}", acc.executed);
    let edited = acc.definitions.iter().find(|d| d.name == "voicelake/latency-percentiles").unwrap();
    assert!(!edited.query.ends_with("| limit 1"), "drift is put back");
}

#[tokio::test]
async fn a_second_sync_with_nothing_changed_changes_nothing() {
    let account: Shared = Default::default();
    let sync = clients(&account);
    let cf = cloudformation().await;
    let url = format!("{}/r", cf.uri());
    cfn::handle(&sync, &HttpResponder::default(), &event("Create", &url), BUDGET).await.unwrap();
    let snapshot = |a: &Shared| {
        let acc = a.lock().unwrap();
        (acc.definitions.clone(), acc.named.clone())
    };
    let before = snapshot(&account);
    cfn::handle(&sync, &HttpResponder::default(), &event("Update", &url), BUDGET).await.unwrap();
    let response = last_response(&cf).await;
    assert_eq!(
        (response["Data"]["Created"].as_str(), response["Data"]["Updated"].as_str(), response["Data"]["Deleted"].as_str()),
        (Some("0"), Some("0"), Some("0"))
    );
    assert_eq!(snapshot(&account), before);
}

#[tokio::test]
async fn delete_removes_everything_it_created_and_nothing_else() {
    let account: Shared = Default::default();
    let sync = clients(&account);
    let cf = cloudformation().await;
    let url = format!("{}/r", cf.uri());
    cfn::handle(&sync, &HttpResponder::default(), &event("Create", &url), BUDGET).await.unwrap();
    account.lock().unwrap().definitions.push(Definition {
        id: "mine".into(),
        name: "voicelake/mine".into(),
        query: "fields @message".into(),
        log_groups: vec![],
    });
    account.lock().unwrap().executed.clear();
    cfn::handle(&sync, &HttpResponder::default(), &event("Delete", &url), BUDGET).await.unwrap();
    assert_eq!(last_response(&cf).await["Status"], "SUCCESS");
    let acc = account.lock().unwrap();
    assert_eq!(acc.definitions.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["mine"]);
    assert!(acc.named.is_empty());
    let drops: Vec<&String> = acc.executed.iter().filter(|s| s.starts_with("DROP VIEW")).collect();
    assert_eq!(drops.len(), compiled_queries().iter().filter(|q| q.kind == Kind::AthenaView).count());
    let position = |v: &str| drops.iter().position(|s| s.ends_with(v)).unwrap();
    assert!(position("turns_assembled") < position("turns_dedup"), "a view is dropped before the views it reads");
}

#[tokio::test]
async fn a_failure_is_reported_to_cloudformation_with_its_reason() {
    let account: Shared = Default::default();
    account.lock().unwrap().refuse_puts = true;
    let sync = clients(&account);
    let cf = cloudformation().await;
    let url = format!("{}/r", cf.uri());
    let err = cfn::handle(&sync, &HttpResponder::default(), &event("Create", &url), BUDGET).await.unwrap_err();
    assert!(err.contains("LimitExceeded") || err.contains("too many query definitions"), "{err}");
    let response = last_response(&cf).await;
    assert_eq!(response["Status"], "FAILED");
    let reason = response["Reason"].as_str().unwrap();
    assert!(reason.contains("PutQueryDefinition voicelake/") && reason.contains("too many query definitions"), "{reason}");
}

#[tokio::test]
async fn a_delete_that_fails_is_logged_and_lets_the_stack_go_on() {
    let account: Shared = Default::default();
    let sync = clients(&account);
    let cf = cloudformation().await;
    let url = format!("{}/r", cf.uri());
    cfn::handle(&sync, &HttpResponder::default(), &event("Create", &url), BUDGET).await.unwrap();
    // The account refuses the deletes: answering FAILED would leave the stack in DELETE_FAILED.
    let slow = QuerySync { insights: Slow(clients(&account).insights), athena: clients(&account).athena };
    let err = cfn::handle(&slow, &HttpResponder::default(), &event("Delete", &url), Duration::from_millis(200)).await.unwrap_err();
    assert!(err.contains("not synced within") && err.contains("answered SUCCESS"), "{err}");
    assert_eq!(last_response(&cf).await["Status"], "SUCCESS");
}

#[tokio::test]
async fn an_answer_that_cannot_be_sent_does_not_name_the_presigned_url() {
    let account: Shared = Default::default();
    let sync = clients(&account);
    // Nothing listens there: the PUT fails on the network, with the URL in reqwest's own error.
    let url = "http://127.0.0.1:9/stack?X-Amz-Signature=secret-signature";
    let err = cfn::handle(&sync, &HttpResponder::default(), &event("Create", url), BUDGET).await.unwrap_err();
    assert!(err.contains("could not answer CloudFormation"), "{err}");
    assert!(!err.contains("secret-signature") && !err.contains("X-Amz"), "{err}");
}

#[tokio::test]
async fn events_of_the_wrong_shape_are_still_answered() {
    let account: Shared = Default::default();
    let sync = clients(&account);
    let cf = cloudformation().await;
    let mut e = event("Create", &format!("{}/r", cf.uri()));
    e["ResourceProperties"] = json!({"Folder": 7});
    let err = cfn::handle(&sync, &HttpResponder::default(), &e, BUDGET).await.unwrap_err();
    assert!(err.contains("properties"), "{err}");
    assert_eq!(last_response(&cf).await["Status"], "FAILED");
    // Without a ResponseURL there is nobody to answer: the error says so.
    let err = cfn::handle(&sync, &HttpResponder::default(), &json!({"hello": 1}), BUDGET).await.unwrap_err();
    assert!(err.contains("no ResponseURL"));
}

/// A CloudWatch Logs that takes its time.
struct Slow(CloudWatchLogsInsights);

impl InsightsStore for Slow {
    async fn list(&self, prefix: &str) -> Result<Vec<Saved>, StoreError> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        self.0.list(prefix).await
    }
    async fn put(&self, id: Option<&str>, q: &Saved) -> Result<String, StoreError> {
        self.0.put(id, q).await
    }
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.0.delete(id).await
    }
}

#[tokio::test]
async fn a_sync_that_outlives_its_budget_is_reported_failed_in_time() {
    let account: Shared = Default::default();
    let fast = clients(&account);
    let sync = QuerySync { insights: Slow(fast.insights), athena: fast.athena };
    let cf = cloudformation().await;
    let url = format!("{}/r", cf.uri());
    let started = std::time::Instant::now();
    let err = cfn::handle(&sync, &HttpResponder::default(), &event("Create", &url), Duration::from_millis(200)).await.unwrap_err();
    assert!(err.contains("not synced within"), "{err}");
    assert_eq!(last_response(&cf).await["Status"], "FAILED");
    assert!(started.elapsed() < Duration::from_secs(2), "answered within the budget, not after the slow call");
}
