//! The stack as a first `sam deploy` would create it (the SAM CLI's own transforms, every intrinsic
//! resolved to what CloudFormation documents), checked for the defects an account would meet and a
//! template read alone does not show:
//! - the dashboard body, substituted, against the structure `PutDashboard` validates;
//! - every AWS call each function and each Firehose stream makes, in the form AWS authorizes it,
//!   evaluated against its role with IAM's matching rules, and beside it what each role must not reach;
//! - who may invoke the ingest function, and that the lake's partitions cover what it accepts.
//!
//! Needs the pinned SAM CLI of infra/requirements.txt (`./infra/test` installs it into .venv).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;
use voicelake_e2e::stack::{Request, Stack, scalar_text};
use voicelake_e2e::{ACCOUNT, REGION};

const AGENTS: &str = "/ecs/support-agent,/ecs/sales-agent";

fn stack() -> Stack {
    Stack::deployed(&[("AgentLogGroupNames", AGENTS)])
}

fn env<'s>(stack: &'s Stack, function: &str, var: &str) -> &'s str {
    stack.resource(function)["Properties"]["Environment"]["Variables"][var].as_str().unwrap_or_else(|| panic!("{function} has no {var}"))
}

fn role_of(stack: &Stack, function: &str) -> String {
    let arn = stack.resource(function)["Properties"]["Role"].as_str().expect("a role ARN").to_owned();
    stack
        .resources
        .iter()
        .find(|(id, r)| r["Type"] == "AWS::IAM::Role" && stack.attribute(id, "Arn") == arn)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("{function} runs as {arn}, no role of the stack"))
}

fn logs_group(name: &str) -> String {
    format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*")
}

fn logs_stream(group: &str, stream: &str) -> String {
    format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:{stream}")
}

fn glue(path: &str) -> String {
    format!("arn:aws:glue:{REGION}:{ACCOUNT}:{path}")
}

/// Each request must be allowed to the role, and each forbidden one refused.
fn check(stack: &Stack, role: &str, needed: &[Request], forbidden: &[Request]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in needed {
        if !stack.allows(role, r) {
            problems.push(format!("{role} may not {} on {} ({:?}), which it needs", r.action, r.resource, r.context));
        }
    }
    for r in forbidden {
        if stack.allows(role, r) {
            problems.push(format!("{role} may {} on {} ({:?}), which it must not reach", r.action, r.resource, r.context));
        }
    }
    problems
}

/// What Lambda itself does with a function's role: its log streams in the log group of its logging
/// configuration.
fn own_logging(stack: &Stack, function: &str) -> Vec<Request> {
    let group = stack.resource(function)["Properties"]["LoggingConfig"]["LogGroup"].as_str().expect("a log group").to_owned();
    vec![
        Request::new("logs:CreateLogStream", logs_group(&group)),
        Request::new("logs:PutLogEvents", logs_stream(&group, "2026/11/30/[$LATEST]0123456789abcdef")),
    ]
}

#[test]
fn the_ingest_role_reaches_its_streams_metrics_and_logs_and_nothing_else() {
    let s = stack();
    let role = role_of(&s, "IngestFunction");
    let stream = |var: &str| format!("arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{}", env(&s, "IngestFunction", var));
    let namespace = env(&s, "IngestFunction", "VOICELAKE_METRICS_NAMESPACE");
    let mut needed = own_logging(&s, "IngestFunction");
    for var in ["VOICELAKE_TURNS_STREAM", "VOICELAKE_SESSIONS_STREAM", "VOICELAKE_REJECTS_STREAM", "VOICELAKE_ERRORS_STREAM"] {
        needed.push(Request::new("firehose:PutRecordBatch", stream(var)));
    }
    needed.push(Request::new("cloudwatch:PutMetricData", "*").with("cloudwatch:namespace", namespace));
    // An asynchronous invocation's failure destination is written with the function's role.
    let queue = s.attribute("IngestFailureQueue", "Arn");
    needed.push(Request::new("sqs:SendMessage", &queue));
    // The parts of turns cut across deliveries, in the table the function is told of.
    let table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}", env(&s, "IngestFunction", "VOICELAKE_PENDING_TABLE"));
    for action in ["dynamodb:Query", "dynamodb:Scan", "dynamodb:PutItem", "dynamodb:DeleteItem"] {
        needed.push(Request::new(action, &table));
    }
    // The pseudonym key, in the secret the function is told of.
    let key = env(&s, "IngestFunction", "VOICELAKE_PSEUDONYM_KEY_ARN");
    assert!(key.starts_with("arn:aws:secretsmanager:"), "{key}");
    needed.push(Request::new("secretsmanager:GetSecretValue", key));
    let forbidden = [
        Request::new("secretsmanager:GetSecretValue", format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:someone-elses-AbCdEf")),
        Request::new("secretsmanager:PutSecretValue", key),
        Request::new("dynamodb:PutItem", format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/someone-elses")),
        Request::new("dynamodb:DeleteTable", &table),
        Request::new("firehose:PutRecordBatch", format!("arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/someone-elses")),
        Request::new("cloudwatch:PutMetricData", "*").with("cloudwatch:namespace", "AWS/Lambda"),
        Request::new("logs:PutLogEvents", logs_stream("/aws/lambda/another-function", "s")),
        Request::new("sqs:SendMessage", format!("arn:aws:sqs:{REGION}:{ACCOUNT}:another-queue")),
        Request::new("s3:PutObject", format!("{}/turns/x", s.attribute("LakeBucket", "Arn"))),
    ];
    let problems = check(&s, &role, &needed, &forbidden);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn firehose_reaches_its_prefixes_schema_and_error_logs_and_nothing_else() {
    let s = stack();
    let bucket = s.attribute("LakeBucket", "Arn");
    let database = s.physical_id("LakeDatabase");
    let log_group = s.physical_id("FirehoseLogGroup");
    for (stream, table) in [
        ("TurnsStream", "TurnsTable"),
        ("SessionsStream", "SessionsTable"),
        ("RejectsStream", "RejectsTable"),
        ("ErrorsStream", "ErrorsTable"),
    ] {
        let dest = &s.resource(stream)["Properties"]["ExtendedS3DestinationConfiguration"];
        let role = s
            .resources
            .iter()
            .find(|(id, r)| r["Type"] == "AWS::IAM::Role" && s.attribute(id, "Arn") == scalar_text(&dest["RoleARN"]))
            .map(|(id, _)| id.clone())
            .expect("the stream's role is the stack's");
        let prefix = dest["Prefix"].as_str().unwrap().split('/').next().unwrap().to_owned();
        let table_name = s.physical_id(table);
        let logging = &dest["CloudWatchLoggingOptions"];
        assert_eq!(logging["LogGroupName"].as_str(), Some(log_group.as_str()));
        let log_stream = logging["LogStreamName"].as_str().unwrap();
        let needed = [
            Request::new("s3:PutObject", format!("{bucket}/{prefix}/dt=2026-11-30/hour=14/file.parquet")),
            Request::new("s3:PutObject", format!("{bucket}/delivery-errors/{prefix}/format-conversion-failed/dt=2026-11-30/file")),
            Request::new("s3:AbortMultipartUpload", format!("{bucket}/{prefix}/dt=2026-11-30/hour=14/file.parquet")),
            Request::new("s3:GetBucketLocation", &bucket),
            Request::new("s3:ListBucket", &bucket),
            Request::new("glue:GetTable", glue("catalog")),
            Request::new("glue:GetTable", glue(&format!("database/{database}"))),
            Request::new("glue:GetTable", glue(&format!("table/{database}/{table_name}"))),
            Request::new("glue:GetTableVersions", glue(&format!("table/{database}/{table_name}"))),
            // Conversion and delivery errors go to the log group the delivery alarm points at.
            Request::new("logs:PutLogEvents", logs_stream(&log_group, log_stream)),
        ];
        let forbidden = [
            Request::new("s3:PutObject", format!("{bucket}/athena-results/x")),
            Request::new("s3:PutObject", "arn:aws:s3:::someone-elses-bucket/turns/x"),
            Request::new("s3:DeleteObject", format!("{bucket}/{prefix}/x")),
            Request::new("glue:GetTable", glue("table/other_database/t")),
            Request::new("logs:PutLogEvents", logs_stream("/aws/lambda/other", "s")),
        ];
        let problems = check(&s, &role, &needed, &forbidden);
        assert!(problems.is_empty(), "{stream}:\n{}", problems.join("\n"));
    }
}

#[test]
fn query_sync_can_create_the_views_athena_runs_and_nothing_else() {
    let s = stack();
    let role = role_of(&s, "QuerySyncFunction");
    let database = s.physical_id("LakeDatabase");
    let workgroup = format!("arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/{}", s.physical_id("AthenaWorkGroup"));
    let bucket = s.attribute("LakeBucket", "Arn");
    let mut needed = own_logging(&s, "QuerySyncFunction");
    for action in ["logs:DescribeQueryDefinitions", "logs:PutQueryDefinition", "logs:DeleteQueryDefinition"] {
        needed.push(Request::new(action, "*"));
    }
    for action in [
        "athena:ListNamedQueries",
        "athena:BatchGetNamedQuery",
        "athena:CreateNamedQuery",
        "athena:UpdateNamedQuery",
        "athena:DeleteNamedQuery",
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
    ] {
        needed.push(Request::new(action, &workgroup));
    }
    // What Athena does with the caller's rights for `CREATE OR REPLACE VIEW` and `DROP VIEW`: the
    // catalog's default database for every query, then the lake's database and the view.
    for action in ["glue:GetDatabase", "glue:CreateDatabase"] {
        needed.push(Request::new(action, glue("catalog")));
        needed.push(Request::new(action, glue("database/default")));
    }
    // Every view of queries/ (`-- kind: view`), and only those, may be written.
    let views: Vec<String> = std::fs::read_dir(voicelake_e2e::repo_root().join("queries/athena"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read_to_string(p).unwrap().lines().any(|l| l.trim() == "-- kind: view"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(views.len() >= 4 && views.iter().any(|v| v == "turns_dedup"), "{views:?}");
    for action in ["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable"] {
        needed.push(Request::new(action, glue("catalog")));
        needed.push(Request::new(action, glue(&format!("database/{database}"))));
        for view in &views {
            needed.push(Request::new(action, glue(&format!("table/{database}/{view}"))));
        }
    }
    needed.push(Request::new("glue:GetTable", glue(&format!("table/{database}/turns"))));
    needed.push(Request::new("s3:GetBucketLocation", &bucket));
    needed.push(Request::new("s3:PutObject", format!("{bucket}/athena-results/abc.csv")));
    needed.push(Request::new("s3:GetObject", format!("{bucket}/athena-results/abc.csv")));
    let forbidden = [
        Request::new("glue:DeleteTable", glue("table/other_database/t")),
        Request::new("glue:DeleteTable", glue(&format!("table/{database}/turns"))),
        Request::new("glue:UpdateTable", glue(&format!("table/{database}/sessions"))),
        Request::new("glue:CreateTable", glue(&format!("table/{database}/not_a_view_of_ours"))),
        Request::new("glue:CreateDatabase", glue("database/other_database")),
        Request::new("glue:DeleteDatabase", glue("database/default")),
        Request::new("athena:StartQueryExecution", format!("arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/primary")),
        Request::new("s3:GetObject", format!("{bucket}/turns/dt=2026-11-30/hour=14/x.parquet")),
    ];
    let problems = check(&s, &role, &needed, &forbidden);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn notify_reads_what_it_diagnoses_with_and_sends_only_where_configured() {
    let s = Stack::deployed(&[
        ("AgentLogGroupNames", AGENTS),
        ("SlackWebhookParameter", "/voicelake/slack"),
        ("WebhookUrlParameter", "/aws/reference/secretsmanager/voicelake-webhook"),
    ]);
    let role = role_of(&s, "NotifyFunction");
    let mut needed = own_logging(&s, "NotifyFunction");
    for group in env(&s, "NotifyFunction", "VOICELAKE_AGENT_LOG_GROUPS").split(',') {
        needed.push(Request::new("logs:StartQuery", logs_group(group)));
    }
    needed.push(Request::new("logs:StartQuery", logs_group(env(&s, "NotifyFunction", "VOICELAKE_INGEST_LOG_GROUP"))));
    needed.push(Request::new("logs:GetQueryResults", "*"));
    needed.push(Request::new("cloudwatch:GetMetricData", "*"));
    for (id, r) in &s.resources {
        let kind = r["Type"].as_str().unwrap_or_default();
        let actions: Vec<String> = r["Properties"]["AlarmActions"].as_array().into_iter().flatten().map(scalar_text).collect();
        let heard = [s.physical_id("AlarmTopic"), s.physical_id("PagingTopic")];
        if kind.starts_with("AWS::CloudWatch::") && actions.iter().any(|a| heard.contains(a)) {
            needed.push(Request::new("cloudwatch:DescribeAlarmHistory", s.attribute(id, "Arn")));
        }
    }
    let topic = env(&s, "NotifyFunction", "VOICELAKE_NOTIFICATION_TOPIC");
    needed.push(Request::new("sns:Publish", topic));
    needed.push(Request::new("kms:GenerateDataKey", s.attribute("TopicKey", "Arn")));
    needed.push(Request::new("secretsmanager:GetSecretValue", env(&s, "NotifyFunction", "VOICELAKE_PSEUDONYM_KEY_ARN")));
    needed.push(Request::new("ssm:GetParameter", format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/voicelake/slack")));
    needed.push(Request::new(
        "ssm:GetParameter",
        format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/aws/reference/secretsmanager/voicelake-webhook"),
    ));
    needed.push(Request::new(
        "secretsmanager:GetSecretValue",
        format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:voicelake-webhook-AbCdEf"),
    ));
    needed.push(Request::new("sqs:SendMessage", s.attribute("NotifyFailureQueue", "Arn")));
    let forbidden = [
        Request::new("logs:StartQuery", logs_group("/aws/lambda/someone-else")),
        Request::new("sns:Publish", s.physical_id("PagingTopic")),
        Request::new("ssm:GetParameter", format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/other/secret")),
        Request::new("secretsmanager:GetSecretValue", format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:other-AbCdEf")),
    ];
    let problems = check(&s, &role, &needed, &forbidden);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_agents_log_groups_may_invoke_the_ingest_function() {
    let s = stack();
    for group in AGENTS.split(',') {
        assert!(s.may_invoke("IngestFunction", "logs.amazonaws.com", &logs_group(group), ACCOUNT), "{group}");
    }
    assert!(!s.may_invoke("IngestFunction", "logs.amazonaws.com", &logs_group("/ecs/unrelated"), ACCOUNT), "another log group");
    assert!(!s.may_invoke("IngestFunction", "logs.amazonaws.com", &logs_group("/ecs/support-agent-2"), ACCOUNT), "a longer name");
    assert!(!s.may_invoke("IngestFunction", "logs.amazonaws.com", &logs_group("/ecs/support-agent"), "999999999999"), "another account");
    // Each group's filter is created after its permission, in the same nested stack.
    let filters: Vec<(String, &Value)> =
        s.all_resources().into_iter().filter(|(_, r)| r["Type"] == "AWS::Logs::SubscriptionFilter").collect();
    let groups: BTreeSet<String> = filters.iter().map(|(_, r)| scalar_text(&r["Properties"]["LogGroupName"])).collect();
    assert_eq!(groups, AGENTS.split(',').map(str::to_owned).collect::<BTreeSet<_>>());
    for (id, filter) in &filters {
        assert_eq!(scalar_text(&filter["Properties"]["DestinationArn"]), s.attribute("IngestFunction", "Arn"), "{id}");
        assert_eq!(scalar_text(&filter["DependsOn"]), "Permission", "{id}: CloudWatch Logs tests the destination on creation");
        let pattern = scalar_text(&filter["Properties"]["FilterPattern"]);
        assert_eq!(pattern, voicelake_shared::config::DEFAULT_FILTER_PATTERN);
    }
}

#[test]
fn the_lakes_partitions_cover_exactly_what_the_function_accepts() {
    let s = Stack::deployed(&[("AgentLogGroupNames", AGENTS), ("LakeRetentionDays", "730")]);
    let retention = env(&s, "IngestFunction", "VOICELAKE_LAKE_RETENTION_DAYS");
    assert_eq!(retention, "730");
    let config = voicelake_ingest::IngestConfig::from_vars(|k| {
        s.resource("IngestFunction")["Properties"]["Environment"]["Variables"][k].as_str().map(str::to_owned)
    })
    .expect("the deployed variables are a valid configuration");
    assert_eq!(config.pipeline.time_window, voicelake_shared::config::TimeWindow::deployed(730));
    for table in ["TurnsTable", "SessionsTable", "RejectsTable"] {
        let params = &s.resource(table)["Properties"]["TableInput"]["Parameters"];
        assert_eq!(params["projection.dt.range"], "NOW-730DAYS,NOW+1DAYS", "{table}");
        assert_eq!(params["projection.dt.interval.unit"], "DAYS");
    }
    // The function's window, at its edges: what it keeps is inside the projection above.
    let now = 1_795_442_400_000;
    let w = config.pipeline.time_window;
    assert!(w.refuses(now - 730 * 86_400_000 + 60_000, now - 730 * 86_400_000 + 60_000, now).is_none());
    assert!(w.refuses(now - 730 * 86_400_000 - 60_000, now - 730 * 86_400_000 - 60_000, now).is_some());
    assert!(w.refuses(now + 86_400_000 + 60_000, now + 86_400_000, now).is_some());
}

#[test]
fn the_custom_resource_cannot_hold_the_stack_for_an_hour() {
    let s = stack();
    let timeout = scalar_text(&s.resource("SavedQueries")["Properties"]["ServiceTimeout"]).parse::<u64>().unwrap();
    let function = scalar_text(&s.resource("QuerySyncFunction")["Properties"]["Timeout"]).parse::<u64>().unwrap();
    assert!(timeout > function && timeout <= 900, "ServiceTimeout {timeout} s against the function's {function} s");
}

#[test]
fn raw_alarm_mail_passes_every_change_but_ok_after_insufficient_data() {
    let s = Stack::deployed(&[("AgentLogGroupNames", AGENTS), ("AlarmEmail", "a@example.com"), ("PagingEmail", "p@example.com")]);
    let function_topics: BTreeSet<String> = ["AlarmTopic", "PagingTopic"].iter().map(|t| s.physical_id(t)).collect();
    let mut raw_alarm_topics = BTreeSet::new();
    for r in s.resources.values() {
        if r["Type"].as_str().is_some_and(|k| k.starts_with("AWS::CloudWatch::")) {
            for a in r["Properties"]["AlarmActions"].as_array().into_iter().flatten() {
                raw_alarm_topics.insert(scalar_text(a));
            }
        }
    }
    let mut checked = 0;
    for (id, r) in &s.resources {
        let p = &r["Properties"];
        if r["Type"] != "AWS::SNS::Subscription" || !["email", "email-json", "sms"].contains(&p["Protocol"].as_str().unwrap_or("")) {
            continue;
        }
        let topic = scalar_text(&p["TopicArn"]);
        if !raw_alarm_topics.contains(&topic) {
            continue;
        }
        checked += 1;
        assert!(!function_topics.contains(&topic) || id == "PagingEmailSubscription", "{id}");
        assert_eq!(p["FilterPolicyScope"], "MessageBody", "{id}");
        let policy = &p["FilterPolicy"];
        let passes =
            |old: &str, new: &str| sns_body_filter_passes(policy, &serde_json::json!({"OldStateValue": old, "NewStateValue": new}));
        assert!(!passes("INSUFFICIENT_DATA", "OK"), "{id}: a new alarm's first evaluation is not news");
        for (old, new) in [("OK", "ALARM"), ("ALARM", "OK"), ("INSUFFICIENT_DATA", "ALARM"), ("ALARM", "INSUFFICIENT_DATA")] {
            assert!(passes(old, new), "{id}: {old} to {new}");
        }
    }
    assert_eq!(checked, 2, "the paging email and the notify-failures email");
}

/// SNS's message-body filter for the operators these policies use: `$or` of key blocks, each key's
/// values exact strings or `anything-but`.
fn sns_body_filter_passes(policy: &Value, body: &Value) -> bool {
    let block = |b: &Value| {
        b.as_object().expect("a filter block").iter().all(|(key, wanted)| {
            let got = body[key].as_str();
            wanted.as_array().expect("a list of values").iter().any(|w| match w {
                Value::String(s) => got == Some(s.as_str()),
                Value::Object(o) => match o.get("anything-but") {
                    Some(Value::String(no)) => got.is_some_and(|g| g != no),
                    other => panic!("filter operator {other:?} is not evaluated here"),
                },
                other => panic!("filter value {other}"),
            })
        })
    };
    match policy.get("$or") {
        Some(branches) => branches.as_array().unwrap().iter().any(block),
        None => block(policy),
    }
}

// ---------------------------------------------------------------- the dashboard body

/// The dashboard body structure PutDashboard validates ("Dashboard Body Structure and Syntax"), for
/// every field the views use, with its type. Unknown fields are refused, so a field the views add
/// must be added here with the type the documentation gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    widgets: Vec<Widget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Widget {
    #[serde(rename = "type")]
    kind: String,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    properties: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextProperties {
    #[allow(dead_code)]
    markdown: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmProperties {
    alarms: Vec<String>,
    #[allow(dead_code)]
    title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct MetricProperties {
    metrics: Vec<Vec<Value>>,
    region: String,
    period: u32,
    view: String,
    stacked: Option<bool>,
    title: Option<String>,
    stat: Option<String>,
    annotations: Option<Annotations>,
    y_axis: Option<YAxes>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Annotations {
    horizontal: Vec<HorizontalAnnotation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct HorizontalAnnotation {
    value: f64,
    label: Option<String>,
    color: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct YAxes {
    left: Option<YAxis>,
    right: Option<YAxis>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct YAxis {
    min: Option<f64>,
    max: Option<f64>,
    label: Option<String>,
    show_units: Option<bool>,
}

/// The options object that may end a metric line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct MetricOptions {
    id: Option<String>,
    label: Option<String>,
    stat: Option<String>,
    visible: Option<bool>,
    y_axis: Option<String>,
    expression: Option<String>,
    period: Option<u32>,
    color: Option<String>,
}

#[test]
fn the_dashboard_body_as_deployed_is_one_put_dashboard_accepts() {
    let s = stack();
    let text = scalar_text(&s.resource("Dashboard")["Properties"]["DashboardBody"]);
    assert!(!text.contains("${"), "every ${{…}} is substituted: {text}");
    let body: Body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("the deployed dashboard body is not valid: {e}\n{text}"));
    assert!(body.widgets.len() >= 10);
    let alarm_arns: BTreeSet<String> = s
        .resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str().is_some_and(|k| k.starts_with("AWS::CloudWatch::") && k.ends_with("Alarm")))
        .map(|(id, _)| s.attribute(id, "Arn"))
        .collect();
    for w in body.widgets {
        assert!(w.x + w.width <= 24 && w.width > 0 && w.height > 0, "{w:?}");
        let _ = w.y;
        let properties = w.properties.clone();
        match w.kind.as_str() {
            "text" => {
                serde_json::from_value::<TextProperties>(properties).unwrap();
            }
            "alarm" => {
                let p: AlarmProperties = serde_json::from_value(properties).unwrap();
                for arn in p.alarms {
                    assert!(alarm_arns.contains(&arn), "the alarm widget shows {arn}, no alarm of the stack");
                }
            }
            "metric" => {
                let p: MetricProperties =
                    serde_json::from_value(properties).unwrap_or_else(|e| panic!("a metric widget: {e}\n{}", w.properties));
                assert_eq!(p.region, REGION);
                assert!(["timeSeries", "singleValue", "gauge", "bar", "pie"].contains(&p.view.as_str()));
                assert!(p.period.is_multiple_of(60) && p.period > 0);
                for line in p.metrics {
                    let (options, names): (Vec<&Value>, Vec<&Value>) = line.iter().partition(|v| v.is_object());
                    assert!(options.len() <= 1, "{line:?}");
                    assert!(names.iter().all(|n| n.is_string()), "namespace, metric and dimensions are strings: {line:?}");
                    assert!(names.is_empty() || names.len() % 2 == 0, "namespace, metric, then name/value pairs: {line:?}");
                    if let Some(o) = options.first() {
                        serde_json::from_value::<MetricOptions>((*o).clone()).unwrap_or_else(|e| panic!("{e}: {o}"));
                    }
                }
            }
            other => panic!("a widget of type {other}"),
        }
    }
}

#[test]
fn the_deployed_function_publishes_a_declared_set_of_names() {
    use voicelake_shared::metrics::LabelSet;
    let config_of = |s: &Stack| {
        voicelake_ingest::IngestConfig::from_vars(|k| {
            s.resource("IngestFunction")["Properties"]["Environment"]["Variables"][k].as_str().map(str::to_owned)
        })
        .expect("the deployed variables are a valid configuration")
    };
    let labels = config_of(&stack()).pipeline.metric_labels;
    assert_eq!(labels.agents, LabelSet::Only(["support-agent".to_owned(), "sales-agent".to_owned()].into()), "named after the log groups");
    assert_eq!(labels.tenants, LabelSet::Only(Default::default()));
    assert_eq!(labels.models.bound(), Some(voicelake_shared::cost::PriceTable::default().models.len() + 1));
    let declared = Stack::deployed(&[("AgentLogGroupNames", AGENTS), ("MetricAgentNames", "alpha,beta"), ("MetricTenantNames", "acme")]);
    let labels = config_of(&declared).pipeline.metric_labels;
    assert_eq!(labels.agents, LabelSet::Only(["alpha".to_owned(), "beta".to_owned()].into()));
    assert_eq!(labels.tenants, LabelSet::Only(["acme".to_owned()].into()));
}

/// With `LakeKmsKeyArn`, the lake is encrypted with that key everywhere it is written, and the roles
/// that write it may use the key through S3 only; without it, nothing names a key.
#[test]
fn a_customer_managed_key_encrypts_the_lake_and_only_its_writers_may_use_it_through_s3() {
    let key = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let s = Stack::deployed(&[("AgentLogGroupNames", AGENTS), ("LakeKmsKeyArn", &key)]);
    let sse = &s.resource("LakeBucket")["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    assert_eq!(sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"].as_str(), Some("aws:kms"));
    assert_eq!(sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"].as_str(), Some(key.as_str()));
    for stream in ["TurnsStream", "SessionsStream", "RejectsStream", "ErrorsStream"] {
        let p = &s.resource(stream)["Properties"];
        assert_eq!(p["DeliveryStreamEncryptionConfigurationInput"]["KeyARN"].as_str(), Some(key.as_str()), "{stream}");
        let dest = &p["ExtendedS3DestinationConfiguration"]["EncryptionConfiguration"]["KMSEncryptionConfig"];
        assert_eq!(dest["AWSKMSKeyARN"].as_str(), Some(key.as_str()), "{stream}");
    }
    let results = &s.resource("AthenaWorkGroup")["Properties"]["WorkGroupConfiguration"]["ResultConfiguration"]["EncryptionConfiguration"];
    assert_eq!((results["EncryptionOption"].as_str(), results["KmsKey"].as_str()), (Some("SSE_KMS"), Some(key.as_str())));

    let via_s3 = |action: &str| Request::new(action, &key).with("kms:ViaService", &format!("s3.{REGION}.amazonaws.com"));
    let firehose = s.resources.iter().find(|(id, r)| r["Type"] == "AWS::IAM::Role" && id.starts_with("Firehose")).unwrap().0.clone();
    for role in [firehose, role_of(&s, "QuerySyncFunction")] {
        let needed = [via_s3("kms:GenerateDataKey"), via_s3("kms:Decrypt")];
        let forbidden = [
            Request::new("kms:Decrypt", &key),
            Request::new("kms:Decrypt", &key).with("kms:ViaService", &format!("sqs.{REGION}.amazonaws.com")),
            via_s3("kms:ScheduleKeyDeletion"),
        ];
        let problems = check(&s, &role, &needed, &forbidden);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
    let problems = check(&s, &role_of(&s, "IngestFunction"), &[], &[via_s3("kms:Decrypt")]);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let plain = stack();
    assert_eq!(
        plain.resource("TurnsStream")["Properties"]["DeliveryStreamEncryptionConfigurationInput"]["KeyType"].as_str(),
        Some("AWS_OWNED_CMK")
    );
    assert!(plain.resource("TurnsStream")["Properties"]["ExtendedS3DestinationConfiguration"].get("EncryptionConfiguration").is_none());
}
