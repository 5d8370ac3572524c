//! `template.yaml` and the code agree: Glue columns are the Arrow schemas, alarms are the defaults the
//! report evaluates, every metric and dimension set the alarms and the dashboard use is one the
//! function publishes, and every variable the function reads is set.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;
use voicelake_e2e::repo_root;
use voicelake_shared::alarms::{self, Statistic};
use voicelake_shared::lake::{self, Table};
use voicelake_shared::metrics::{self, metric};

fn template() -> Value {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

fn resources(t: &Value) -> &serde_norway::Mapping {
    t["Resources"].as_mapping().unwrap()
}

fn resource<'t>(t: &'t Value, id: &str) -> &'t Value {
    &t["Resources"][id]
}

/// `!Tag value` → ("Tag", value); anything else → ("", value).
fn tagged(v: &Value) -> (String, &Value) {
    match v {
        Value::Tagged(t) => (t.tag.to_string().trim_start_matches('!').to_owned(), &t.value),
        other => (String::new(), other),
    }
}

fn ref_name(v: &Value) -> Option<&str> {
    match tagged(v) {
        (tag, inner) if tag == "Ref" => inner.as_str(),
        _ => v.get("Ref").and_then(Value::as_str),
    }
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_owned).or_else(|| v.as_f64().map(|n| n.to_string())).unwrap_or_default()
}

#[test]
fn glue_tables_are_the_arrow_schemas() {
    let t = template();
    for (table, id) in [(Table::Turns, "TurnsTable"), (Table::Sessions, "SessionsTable"), (Table::Rejects, "RejectsTable")] {
        let input = &resource(&t, id)["Properties"]["TableInput"];
        assert_eq!(input["Name"].as_str(), Some(table.name()));
        let columns: Vec<(String, String)> =
            input["StorageDescriptor"]["Columns"].as_sequence().unwrap().iter().map(|c| (text(&c["Name"]), text(&c["Type"]))).collect();
        assert_eq!(columns, lake::glue_columns(table), "{id}: the Glue columns, in order, are the Arrow schema's");
        let partitions: Vec<(String, String)> =
            input["PartitionKeys"].as_sequence().unwrap().iter().map(|c| (text(&c["Name"]), text(&c["Type"]))).collect();
        assert_eq!(partitions, lake::PARTITION_KEYS.iter().map(|k| (k.to_string(), "string".to_owned())).collect::<Vec<_>>());
        let params = &input["Parameters"];
        assert_eq!(params["projection.enabled"].as_str(), Some("true"));
        assert_eq!(params["projection.dt.format"].as_str(), Some("yyyy-MM-dd"));
        let (_, location) = tagged(&params["storage.location.template"]);
        assert!(location.as_str().unwrap().ends_with(&format!("/{}/dt=${{!dt}}/hour=${{!hour}}/", table.name())));
    }
}

#[test]
fn firehose_streams_partition_on_event_time_and_convert_with_the_tables() {
    let t = template();
    for (table, id, glue) in [
        (Table::Turns, "TurnsStream", "TurnsTable"),
        (Table::Sessions, "SessionsStream", "SessionsTable"),
        (Table::Rejects, "RejectsStream", "RejectsTable"),
        (Table::Errors, "ErrorsStream", "ErrorsTable"),
    ] {
        let s3 = &resource(&t, id)["Properties"]["ExtendedS3DestinationConfiguration"];
        assert_eq!(
            s3["Prefix"].as_str(),
            Some(format!("{}/dt=!{{partitionKeyFromQuery:dt}}/hour=!{{partitionKeyFromQuery:hour}}/", table.name()).as_str())
        );
        // Records Firehose could not deliver land outside every table's folder (and its lifecycle).
        let failed = s3["ErrorOutputPrefix"].as_str().unwrap();
        assert!(Table::ALL.iter().all(|t| !failed.starts_with(&format!("{}/", t.name()))), "{failed}");
        assert_eq!(s3["DynamicPartitioningConfiguration"]["Enabled"].as_bool(), Some(true));
        let conversion = &s3["DataFormatConversionConfiguration"];
        assert_eq!(ref_name(&conversion["SchemaConfiguration"]["TableName"]), Some(glue));
        let formats = &conversion["InputFormatConfiguration"]["Deserializer"]["HiveJsonSerDe"]["TimestampFormats"];
        assert_eq!(formats.as_sequence().unwrap()[0].as_str(), Some("millis"), "event_time is epoch milliseconds in the records");
        assert_eq!(ref_name(&s3["BufferingHints"]["SizeInMBs"]), Some("FirehoseBufferSizeMB"));
    }
    assert!(t["Parameters"]["FirehoseBufferSizeMB"]["MinValue"].as_u64() >= Some(64), "Parquet conversion needs 64 MiB");
    // Every table is kept as long as the lake: its folder's lifecycle rule is LakeRetentionDays.
    let rules = resource(&t, "LakeBucket")["Properties"]["LifecycleConfiguration"]["Rules"].as_sequence().unwrap().clone();
    for table in Table::ALL {
        let folder = format!("{}/", table.name());
        let rule = rules.iter().find(|r| r["Prefix"].as_str() == Some(folder.as_str())).unwrap_or_else(|| panic!("no rule for {folder}"));
        assert_eq!(ref_name(&rule["ExpirationInDays"]), Some("LakeRetentionDays"), "{folder}");
    }
}

#[test]
fn the_function_gets_every_variable_it_reads() {
    let t = template();
    let function = &resource(&t, "IngestFunction");
    assert_eq!(function["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"));
    assert_eq!(function["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("ingest"));
    let props = &function["Properties"];
    assert_eq!(props["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(props["Architectures"][0].as_str(), Some("arm64"));
    let vars = props["Environment"]["Variables"].as_mapping().unwrap();
    let names: BTreeSet<&str> = vars.keys().filter_map(Value::as_str).collect();
    assert_eq!(names, voicelake_ingest::config::ALL.iter().copied().collect::<BTreeSet<_>>());
    for (var, stream) in [
        (voicelake_ingest::config::TURNS_STREAM, "TurnsStream"),
        (voicelake_ingest::config::SESSIONS_STREAM, "SessionsStream"),
        (voicelake_ingest::config::REJECTS_STREAM, "RejectsStream"),
    ] {
        assert_eq!(ref_name(&vars[var]), Some(stream), "{var}");
    }
    assert_eq!(ref_name(&vars[voicelake_ingest::config::LATENCY_TARGET_MS]), Some(alarms::DEFAULTS[0].parameter));
    let attempts = voicelake_ingest::config::RetryPolicy::default().attempts.to_string();
    assert_eq!(vars[voicelake_ingest::config::SEND_ATTEMPTS].as_str(), Some(attempts.as_str()), "the template runs the documented default");
    let samconfig = std::fs::read_to_string(repo_root().join("samconfig.toml")).unwrap();
    assert!(samconfig.contains("beta_features = true"), "rust-cargolambda is a beta build method");
}

#[test]
fn alarms_are_the_defaults_the_report_evaluates() {
    let t = template();
    for spec in alarms::DEFAULTS {
        let props = &resource(&t, spec.id)["Properties"];
        assert!(!props.is_null(), "template.yaml has no alarm {}", spec.id);
        let param = &t["Parameters"][spec.parameter];
        assert_eq!(param["Default"].as_f64(), Some(spec.threshold), "{}", spec.parameter);
        assert_eq!(ref_name(&props["Threshold"]), Some(spec.parameter), "{}", spec.id);
        assert_eq!(props["ComparisonOperator"].as_str(), Some(format!("{:?}", spec.comparison).as_str()), "{}", spec.id);
        assert_eq!(props["EvaluationPeriods"].as_u64(), Some(u64::from(spec.evaluation_periods)));
        assert_eq!(props["DatapointsToAlarm"].as_u64(), Some(u64::from(spec.datapoints_to_alarm)));
        assert_eq!(props["TreatMissingData"].as_str(), Some("notBreaching"), "{}: no traffic is not an incident", spec.id);
        let (_, description) = tagged(&props["AlarmDescription"]);
        assert!(description.as_str().unwrap().len() > 60, "{} says what to look at first", spec.id);
        match spec.statistic {
            Statistic::ToolSuccessPercent => {
                let metrics: Vec<String> = props["Metrics"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .filter_map(|q| q["MetricStat"]["Metric"]["MetricName"].as_str().map(str::to_owned))
                    .collect();
                assert_eq!(metrics, vec![metric::TOOL_CALL_OUTCOMES.name, metric::TOOL_CALL_FAILURES.name]);
                assert_eq!(props["Metrics"][0]["MetricStat"]["Period"].as_u64(), Some(u64::from(spec.period_seconds)));
            }
            Statistic::ProviderSum => {
                // One Metrics Insights query, each provider and kind a contributor of its own.
                let [query] = props["Metrics"].as_sequence().unwrap().as_slice() else { panic!("{}: one query", spec.id) };
                assert_eq!(query["Period"].as_u64(), Some(u64::from(spec.period_seconds)));
                let (_, sql) = tagged(&query["Expression"]);
                let sql = sql.as_str().unwrap();
                assert!(sql.starts_with(&format!("SELECT SUM({})", spec.metric.name)), "{sql}");
                assert!(sql.contains("SCHEMA(\"${MetricsNamespace}\", Environment, Kind, Provider)"), "{sql}");
                assert!(sql.contains("WHERE Environment = '${EnvironmentName}'") && sql.ends_with("GROUP BY Provider, Kind"), "{sql}");
            }
            stat => {
                assert_eq!(props["MetricName"].as_str(), Some(spec.metric.name));
                assert_eq!(props["Period"].as_u64(), Some(u64::from(spec.period_seconds)));
                match stat {
                    Statistic::P95 => {
                        assert_eq!(props["ExtendedStatistic"].as_str(), Some("p95"));
                        assert_eq!(props["EvaluateLowSampleCountPercentile"].as_str(), Some("evaluate"));
                    }
                    Statistic::Average => assert_eq!(props["Statistic"].as_str(), Some("Average")),
                    Statistic::Sum => assert_eq!(props["Statistic"].as_str(), Some("Sum")),
                    Statistic::Maximum => assert_eq!(props["Statistic"].as_str(), Some("Maximum")),
                    Statistic::ToolSuccessPercent | Statistic::ProviderSum => unreachable!(),
                }
            }
        }
    }
}

/// (metric name, dimension names) of every use of our namespace in alarms and the dashboard.
fn used_metrics(t: &Value) -> BTreeSet<(String, Vec<String>)> {
    let mut used = BTreeSet::new();
    let ours = |ns: &Value| ref_name(ns) == Some("MetricsNamespace");
    let dims = |d: &Value| -> Vec<String> {
        let mut names: Vec<String> = d.as_sequence().map(|s| s.iter().map(|x| text(&x["Name"])).collect()).unwrap_or_default();
        names.sort();
        names
    };
    for (_, r) in resources(t) {
        if r["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let p = &r["Properties"];
        if ours(&p["Namespace"]) {
            used.insert((text(&p["MetricName"]), dims(&p["Dimensions"])));
        }
        for q in p["Metrics"].as_sequence().into_iter().flatten() {
            let metric = &q["MetricStat"]["Metric"];
            if ours(&metric["Namespace"]) {
                used.insert((text(&metric["MetricName"]), dims(&metric["Dimensions"])));
            }
        }
    }
    // The dashboard body is a !Sub string, equal to the views' body (a test holds them equal); our
    // namespace is ${MetricsNamespace} in it.
    let json = voicelake_shared::views::dashboard_body();
    for w in json["widgets"].as_array().unwrap() {
        for line in w["properties"]["metrics"].as_array().into_iter().flatten() {
            let items = line.as_array().unwrap();
            if items.first().and_then(|v| v.as_str()) == Some("${MetricsNamespace}") {
                let strings: Vec<&str> = items.iter().filter_map(|v| v.as_str()).collect();
                let mut names: Vec<String> = strings[2..].iter().step_by(2).map(|s| s.to_string()).collect();
                names.sort();
                used.insert((strings[1].to_owned(), names));
            }
            if let Some(expr) = items.first().and_then(|v| v["expression"].as_str()).filter(|e| e.starts_with("SEARCH(")) {
                let name = expr.split("MetricName=\"").nth(1).and_then(|s| s.split('"').next()).unwrap();
                let set = expr.split("{${MetricsNamespace},").nth(1).and_then(|s| s.split('}').next()).unwrap();
                let mut names: Vec<String> = set.split(',').map(str::to_owned).collect();
                names.sort();
                used.insert((name.to_owned(), names));
            }
        }
    }
    used
}

#[test]
fn every_metric_the_alarms_and_dashboard_use_is_published() {
    let t = template();
    let everything = voicelake_shared::Config { model_dimension: true, tenant_dimension: true, ..Default::default() };
    let published: BTreeMap<&str, Vec<Vec<String>>> = metric::ALL
        .iter()
        .map(|spec| {
            let sets = metrics::dimension_sets(spec, &everything)
                .into_iter()
                .map(|s| {
                    let mut names: Vec<String> = s.iter().map(|d| d.to_string()).collect();
                    names.sort();
                    names
                })
                .collect();
            (spec.name, sets)
        })
        .collect();
    let used = used_metrics(&t);
    assert!(used.len() > 20, "{used:?}");
    for (name, dims) in &used {
        let sets = published.get(name.as_str()).unwrap_or_else(|| panic!("{name} is used but never published"));
        assert!(sets.contains(dims), "{name} is used with {dims:?}, published with {sets:?}");
    }
    for spec in metric::ALL {
        assert!(used.iter().any(|(n, _)| n == spec.name), "{} is published but shown nowhere", spec.name);
    }
}

#[test]
fn subscription_filters_cover_every_agent_log_group() {
    let t = template();
    let each = resources(&t).get("Fn::ForEach::AgentLogGroups").expect("one subscription per log group");
    let loop_ = each.as_sequence().unwrap();
    assert_eq!(ref_name(&loop_[1]), Some("AgentLogGroupNames"));
    let subscription = &loop_[2]["AgentSubscription&{LogGroupName}"];
    assert_eq!(subscription["Type"].as_str(), Some("AWS::Serverless::Application"));
    let props = &subscription["Properties"];
    assert_eq!(ref_name(&props["Parameters"]["FilterPattern"]), Some("SubscriptionFilterPattern"));
    let nested: Value =
        serde_norway::from_str(&std::fs::read_to_string(repo_root().join(props["Location"].as_str().unwrap())).unwrap()).unwrap();
    assert_eq!(resource(&nested, "Filter")["Type"].as_str(), Some("AWS::Logs::SubscriptionFilter"));
    let pattern = t["Parameters"]["SubscriptionFilterPattern"]["Default"].as_str().unwrap();
    assert_eq!(pattern, voicelake_shared::config::DEFAULT_FILTER_PATTERN, "voicelake backfill reads with the stack's pattern");
    let missing = markers_missing_from(pattern);
    assert!(missing.is_empty(), "the default filter pattern drops events marked {missing:?}");
    for (name, default) in voicelake_cli::samconfig::TEMPLATE_DEFAULTS {
        assert_eq!(text(&t["Parameters"][name]["Default"]), default, "voicelake preflight assumes {name}'s default");
    }
}

/// The family markers that no term of an unstructured filter pattern (`?term ?"two words"`) matches:
/// CloudWatch Logs passes an event when a term appears in it.
fn markers_missing_from(pattern: &str) -> Vec<&'static str> {
    let terms: Vec<String> = pattern.split('?').map(|t| t.trim().trim_matches('"').to_owned()).filter(|t| !t.is_empty()).collect();
    voicelake_shared::event::markers::read()
        .chain(voicelake_shared::event::markers::FAILURE_TERMS)
        .filter(|m| !terms.iter().any(|t| m.contains(t.as_str())))
        .collect()
}

#[test]
fn a_filter_pattern_without_a_family_marker_fails_the_check() {
    let full = voicelake_shared::config::DEFAULT_FILTER_PATTERN;
    assert!(markers_missing_from(full).is_empty());
    assert_eq!(markers_missing_from(&full.replace(" ?\"EOU metrics\"", "")), vec!["EOU metrics"]);
    assert_eq!(markers_missing_from(&full.replace(" ?session_usage_updated", "")), vec!["session_usage_updated"]);
}

#[test]
fn the_saved_queries_resource_gets_what_query_sync_reads() {
    let t = template();
    let r = resource(&t, "SavedQueries");
    assert_eq!(r["Type"].as_str(), Some("Custom::SavedQueries"));
    // The views read every table: they are created after all of them.
    let after: BTreeSet<&str> = r["DependsOn"].as_sequence().unwrap().iter().filter_map(|d| d.as_str()).collect();
    for table in Table::ALL {
        let id = format!("{}{}Table", table.name()[..1].to_uppercase(), &table.name()[1..]);
        assert!(after.contains(id.as_str()), "SavedQueries does not wait for {id}");
    }
    let p = &r["Properties"];
    for key in ["Folder", "LogGroupNames", "IngestLogGroup", "Database", "WorkGroup", "StackName"] {
        assert!(!p[key].is_null(), "SavedQueries passes {key}");
    }
    let (_, version) = tagged(&p["Version"]);
    assert_eq!(version.as_str(), Some("QuerySyncFunction.Version"), "a changed query publishes a new version, which re-runs the sync");
    let function = &resource(&t, "QuerySyncFunction")["Properties"];
    assert_eq!(function["AutoPublishAlias"].as_str(), Some("live"));
    assert_eq!(resource(&t, "QuerySyncFunction")["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("query-sync"));
}

#[test]
fn the_queries_named_in_alarm_texts_exist() {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let mut names = BTreeSet::new();
    for part in text.split("saved query 'voicelake/").skip(1) {
        names.insert(format!("insights/{}.logsinsights", part.split('\'').next().unwrap()));
    }
    for part in text.split("Athena query '").skip(1) {
        names.insert(format!("athena/{}.sql", part.split('\'').next().unwrap()));
    }
    assert!(names.len() >= 4, "{names:?}");
    for n in names {
        assert!(repo_root().join("queries").join(&n).exists(), "an alarm cites {n}, which does not exist");
    }
}

// ---------------------------------------------------------------- security

/// Every policy statement in the template: (resource id, policy property, statement).
fn statements(t: &Value) -> Vec<(String, String, Value)> {
    fn walk(v: &Value, id: &str, property: &str, out: &mut Vec<(String, String, Value)>) {
        match tagged(v).1 {
            Value::Mapping(m) => {
                for (k, child) in m {
                    let key = k.as_str().unwrap_or_default();
                    if key == "Statement" {
                        for s in child.as_sequence().into_iter().flatten() {
                            // A conditional statement (`!If [cond, statement, !Ref AWS::NoValue]`) is
                            // checked in each branch that is a statement.
                            match tagged(s) {
                                (tag, Value::Sequence(branches)) if tag == "If" => {
                                    for b in branches.iter().skip(1).filter(|b| b.is_mapping()) {
                                        out.push((id.to_owned(), property.to_owned(), b.clone()));
                                    }
                                }
                                _ => out.push((id.to_owned(), property.to_owned(), s.clone())),
                            }
                        }
                    } else {
                        let property = if key.ends_with("PolicyDocument") || key == "KeyPolicy" { key } else { property };
                        walk(child, id, property, out);
                    }
                }
            }
            Value::Sequence(s) => s.iter().for_each(|c| walk(c, id, property, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (id, r) in resources(t) {
        walk(r, id.as_str().unwrap_or("Fn::ForEach"), "", &mut out);
    }
    out
}

fn strings(v: &Value) -> Vec<&Value> {
    match tagged(v).1 {
        Value::Sequence(s) if tagged(v).0.is_empty() => s.iter().collect(),
        _ => vec![v],
    }
}

/// What a user names for the stack to use, rather than the stack creating it, each with what it is.
const USER_NAMED: [(&str, &str); 4] = [
    ("LogGroupName", "one of the agents' log groups (Fn::ForEach over AgentLogGroupNames)"),
    ("SlackWebhookParameter", "the SSM parameter (or Secrets Manager reference) holding the Slack URL"),
    ("WebhookUrlParameter", "the SSM parameter (or Secrets Manager reference) holding the webhook URL"),
    ("LakeKmsKeyArn", "the customer-managed key the user gives for the lake (used only through S3)"),
];

/// Every `!Ref` name under `v`.
fn refs(v: &Value) -> Vec<&str> {
    let mut out: Vec<&str> = ref_name(v).into_iter().collect();
    match tagged(v).1 {
        Value::Mapping(m) => m.values().for_each(|c| out.extend(refs(c))),
        Value::Sequence(s) => s.iter().for_each(|c| out.extend(refs(c))),
        _ => {}
    }
    out
}

/// Whether `resource` names one of the stack's own resources: `!Ref X`, `!GetAtt X.Arn`, or a
/// `!Sub` whose text uses `${X…}` for a resource X of the template, or one the user named for
/// the stack to use ([`USER_NAMED`]), directly or through a variable of the `!Sub`.
fn is_own(t: &Value, resource: &Value) -> bool {
    let ids: BTreeSet<&str> = resources(t).keys().filter_map(Value::as_str).collect();
    let user_named = |n: &str| USER_NAMED.iter().any(|(p, _)| *p == n);
    match tagged(resource) {
        (tag, Value::Sequence(parts)) if tag == "Sub" => {
            let text = parts.first().and_then(Value::as_str).unwrap_or_default();
            let vars = parts.get(1).and_then(Value::as_mapping);
            text.split("${").skip(1).filter_map(|p| p.split(['}', '.']).next()).any(|n| {
                ids.contains(n)
                    || user_named(n)
                    || vars.and_then(|v| v.get(n)).is_some_and(|v| refs(v).iter().any(|r| ids.contains(r) || user_named(r)))
            })
        }
        (tag, v) if tag == "Ref" => v.as_str().is_some_and(|n| ids.contains(n) || user_named(n)),
        (tag, v) if tag == "GetAtt" => v.as_str().and_then(|s| s.split('.').next()).is_some_and(|n| ids.contains(n)),
        (tag, v) if tag == "Sub" => {
            let text = v.as_str().unwrap_or_default();
            // Glue checks every table action against the catalog too: the account's own catalog in
            // this region is the narrowest scope there is.
            if text == GLUE_CATALOG || text == GLUE_DEFAULT_DATABASE {
                return true;
            }
            text.split("${").skip(1).filter_map(|p| p.split(['}', '.']).next()).any(|n| ids.contains(n) || user_named(n))
        }
        _ => false,
    }
}

const GLUE_CATALOG: &str = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog";
/// Athena reads (and on a new account creates) the catalog's `default` database for every query,
/// whatever database the query names: the views cannot be created without it.
const GLUE_DEFAULT_DATABASE: &str = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/default";

/// Where `"*"` as a resource is the only possible scope, each with the reason.
const STAR_RESOURCE_ALLOWED: [(&str, &str, &str); 4] = [
    ("IngestRole", "Metrics", "PutMetricData has no resource-level permission; a condition limits it to the stack's namespace"),
    ("QuerySyncRole", "InsightsQueries", "Logs query definitions have no resource-level permission"),
    ("NotifyRole", "MetricSeries", "GetMetricData and ListMetrics have no resource-level permission; they only read"),
    ("NotifyRole", "QueryResults", "a Logs Insights query id is not a resource: GetQueryResults and StopQuery cannot be scoped"),
];

#[test]
fn iam_grants_no_wildcard_action_and_only_the_stacks_own_resources() {
    let t = template();
    let mut problems = Vec::new();
    let all = statements(&t);
    assert!(all.len() > 15, "the walk finds the statements: {}", all.len());
    for (id, property, s) in &all {
        let sid = s["Sid"].as_str().unwrap_or("");
        let here = format!("{id} {property} {sid:?}");
        if s["Effect"].as_str() != Some("Allow") || property == "AssumeRolePolicyDocument" {
            continue; // Deny statements may be broad; trust policies name a service principal.
        }
        let actions: Vec<String> = strings(&s["Action"]).iter().map(|a| text(a)).collect();
        for a in &actions {
            // A key policy must let the account administer its key (AWS's default key policy),
            // or the key can become unmanageable; that is the one wildcard.
            let key_admin = property == "KeyPolicy" && sid == "Account" && a == "kms:*";
            if a.contains('*') && !key_admin {
                problems.push(format!("{here}: wildcard action {a}"));
            }
        }
        for r in strings(&s["Resource"]) {
            if text(r) == "*" {
                if property == "KeyPolicy" {
                    continue; // In a key policy, "*" is the key itself.
                }
                match STAR_RESOURCE_ALLOWED.iter().find(|(i, s, _)| i == id && *s == sid) {
                    Some(("IngestRole", _, _)) => {
                        let namespace = &s["Condition"]["StringEquals"]["cloudwatch:namespace"];
                        if ref_name(namespace) != Some("MetricsNamespace") {
                            problems.push(format!("{here}: PutMetricData on * without the namespace condition"));
                        }
                    }
                    Some(_) => {}
                    None => problems.push(format!("{here}: Resource \"*\"")),
                }
            } else if !is_own(&t, r) {
                problems.push(format!("{here}: {r:?} is not one of the stack's resources"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    for (id, r) in resources(&t) {
        let props = &r["Properties"];
        match r["Type"].as_str() {
            Some("AWS::IAM::Role") => {
                assert!(props.get("ManagedPolicyArns").is_none(), "{id:?}: managed policies grant more than it needs")
            }
            Some("AWS::Serverless::Function") => {
                assert!(props.get("Policies").is_none(), "{id:?}: SAM policy templates are broader than its own role");
                let role = tagged(&props["Role"]);
                assert_eq!(role.0, "GetAtt", "{id:?} runs as a role of this stack");
            }
            _ => {}
        }
    }
}

/// The Deny statement of a resource policy that refuses requests without TLS.
fn denies_plain_http(t: &Value, policy_id: &str, action: &str) -> bool {
    let doc = &resource(t, policy_id)["Properties"]["PolicyDocument"];
    doc["Statement"].as_sequence().into_iter().flatten().any(|s| {
        s["Effect"] == "Deny"
            && text(&s["Principal"]) == "*"
            && strings(&s["Action"]).iter().any(|a| text(a) == action)
            && text(&s["Condition"]["Bool"]["aws:SecureTransport"]) == "false"
    })
}

#[test]
fn the_lake_refuses_plain_http_and_public_access_and_everything_is_encrypted_at_rest() {
    let t = template();
    let bucket = &resource(&t, "LakeBucket")["Properties"];
    for setting in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(bucket["PublicAccessBlockConfiguration"][setting], Value::Bool(true), "{setting}");
    }
    assert_eq!(bucket["OwnershipControls"]["Rules"][0]["ObjectOwnership"], "BucketOwnerEnforced", "no ACLs at all");
    // Encryption depends on `LakeKmsKeyArn` (a condition): read as deployed, without and with a key.
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let deployed = [
        voicelake_e2e::stack::Stack::deployed(&[("AgentLogGroupNames", "/ecs/a")]),
        voicelake_e2e::stack::Stack::deployed(&[("AgentLogGroupNames", "/ecs/a"), ("LakeKmsKeyArn", key)]),
    ];
    for (s, algorithm) in deployed.iter().zip(["AES256", "aws:kms"]) {
        let sse = &s.resource("LakeBucket")["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
        assert_eq!(sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"].as_str(), Some(algorithm), "bucket encryption: {sse:?}");
        for stream in ["TurnsStream", "SessionsStream", "RejectsStream", "ErrorsStream"] {
            let kind = &s.resource(stream)["Properties"]["DeliveryStreamEncryptionConfigurationInput"]["KeyType"];
            assert!(kind.as_str().is_some_and(|k| !k.is_empty()), "{stream} buffers encrypted");
        }
        let results = &s.resource("AthenaWorkGroup")["Properties"]["WorkGroupConfiguration"]["ResultConfiguration"];
        assert!(results["EncryptionConfiguration"]["EncryptionOption"].as_str().is_some(), "Athena results are encrypted");
    }
    assert!(denies_plain_http(&t, "LakeBucketPolicy", "s3:*"));
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled", "an overwrite or a delete can be undone");
    let rules = bucket["LifecycleConfiguration"]["Rules"].as_sequence().unwrap();
    assert!(
        rules.iter().any(|r| r["Prefix"].is_null() && r["NoncurrentVersionExpiration"]["NoncurrentDays"].as_u64().is_some()),
        "noncurrent versions expire, so that versioning does not keep every overwritten object forever"
    );
    let resources_of_deny = &resource(&t, "LakeBucketPolicy")["Properties"]["PolicyDocument"]["Statement"][0]["Resource"];
    assert_eq!(strings(resources_of_deny).len(), 2, "the bucket and its objects");

    let queue = &resource(&t, "IngestFailureQueue")["Properties"];
    assert!(queue["SqsManagedSseEnabled"] == Value::Bool(true) || queue.get("KmsMasterKeyId").is_some(), "the failure queue is encrypted");
    assert!(denies_plain_http(&t, "IngestFailureQueuePolicy", "sqs:*"));

    for topic in ["AlarmTopic", "PagingTopic"] {
        assert_eq!(ref_name(&resource(&t, topic)["Properties"]["KmsMasterKeyId"]), Some("TopicKey"), "{topic} is encrypted");
    }
    assert!(denies_plain_http(&t, "TopicPolicy", "sns:Publish"));
    assert_eq!(resource(&t, "TopicKey")["Properties"]["EnableKeyRotation"], Value::Bool(true));

    for (id, r) in resources(&t) {
        if r["Type"] == "AWS::Logs::LogGroup" {
            assert!(r["Properties"].get("RetentionInDays").is_some(), "{id:?} keeps logs for a set time");
        }
    }
}

#[test]
fn no_secret_reaches_an_environment_variable() {
    let t = template();
    let secret_name = |n: &str| {
        let n = n.to_ascii_lowercase();
        ["secret", "password", "passwd", "token", "api_key", "apikey", "private_key", "credential"].iter().any(|s| n.contains(s))
    };
    let mut checked = 0;
    for (id, r) in resources(&t) {
        let vars = &r["Properties"]["Environment"]["Variables"];
        for (name, value) in vars.as_mapping().into_iter().flatten() {
            checked += 1;
            let name = name.as_str().unwrap_or_default();
            assert!(!secret_name(name), "{id:?}: {name} looks like a secret; use Secrets Manager or SSM SecureString");
            let literal = text(value);
            let access_key = literal.len() == 20 && literal.starts_with("AKIA");
            assert!(!access_key, "{id:?}: {name} holds an access key id");
        }
    }
    for (name, p) in t["Parameters"].as_mapping().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        assert!(!secret_name(name) || p["NoEcho"] == Value::Bool(true), "{name} must be NoEcho");
    }
    assert!(checked >= 10, "the function's variables were found: {checked}");
}

/// The fault tests play Lambda's asynchronous retries with these settings.
#[test]
fn failed_invocations_are_retried_twice_then_kept_in_the_failure_queue() {
    let t = template();
    let invoke = &resource(&t, "IngestFunction")["Properties"]["EventInvokeConfig"];
    assert_eq!(invoke["MaximumRetryAttempts"].as_u64(), Some(2));
    let destination = &invoke["DestinationConfig"]["OnFailure"];
    assert_eq!(destination["Type"], "SQS");
    assert_eq!(tagged(&destination["Destination"]), ("GetAtt".to_owned(), &Value::String("IngestFailureQueue.Arn".into())));
    let retention = resource(&t, "IngestFailureQueue")["Properties"]["MessageRetentionPeriod"].as_u64();
    assert_eq!(retention, Some(14 * 24 * 3600), "kept for the longest time SQS allows");
}

#[test]
fn the_dashboard_is_the_views_list_the_local_page_draws() {
    let t = template();
    let (_, body) = tagged(&resource(&t, "Dashboard")["Properties"]["DashboardBody"]);
    let deployed = body.as_str().unwrap();
    let views = voicelake_shared::views::dashboard_body_text();
    assert!(deployed == views, "template.yaml's DashboardBody differs from shared/src/views.rs; its body should read:\n{views}");
}

#[test]
fn the_notify_function_gets_every_variable_it_reads_and_hears_every_alarm() {
    let t = template();
    let function = &resource(&t, "NotifyFunction");
    assert_eq!(function["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("notify"));
    let props = &function["Properties"];
    let vars = props["Environment"]["Variables"].as_mapping().unwrap();
    let names: BTreeSet<&str> = vars.keys().filter_map(Value::as_str).collect();
    assert_eq!(names, voicelake_notify::config::VARIABLES.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(ref_name(&vars["VOICELAKE_NOTIFICATION_TOPIC"]), Some("NotificationTopic"));
    assert_eq!(ref_name(&vars["VOICELAKE_INGEST_LOG_GROUP"]), Some("IngestLogGroup"));
    // `voicelake notify test --stack NAME` invokes NAME-notify.
    assert_eq!(text(tagged(&props["FunctionName"]).1), "${AWS::StackName}-notify");

    // Subscribed to every topic an alarm notifies, except the one it writes to.
    let topics: BTreeSet<&str> =
        props["Events"].as_mapping().unwrap().values().filter_map(|e| ref_name(&e["Properties"]["Topic"])).collect();
    assert_eq!(topics, BTreeSet::from(["AlarmTopic", "PagingTopic"]));

    // It may read the history of every alarm that reaches it.
    let history = statements(&t)
        .into_iter()
        .find(|(id, _, s)| id == "NotifyRole" && s["Sid"] == "AlarmHistory")
        .expect("the AlarmHistory statement")
        .2;
    let readable: BTreeSet<String> =
        strings(&history["Resource"]).iter().filter_map(|r| text(tagged(r).1).strip_suffix(".Arn").map(str::to_owned)).collect();
    let mut notifying = BTreeSet::new();
    for (id, r) in resources(&t) {
        let kind = r["Type"].as_str().unwrap_or_default();
        if !kind.starts_with("AWS::CloudWatch::") || !kind.ends_with("Alarm") {
            continue;
        }
        let actions = &r["Properties"]["AlarmActions"];
        let to_topics: Vec<&str> = strings(actions).iter().filter_map(|a| ref_name(a)).collect();
        if to_topics.iter().any(|t| topics.contains(t)) {
            notifying.insert(id.as_str().unwrap().to_owned());
        }
        // Its own failure alarm must not go through it.
        if id.as_str() == Some("NotifyFailuresAlarm") {
            assert_eq!(to_topics, ["NotifyFailureTopic"]);
        }
    }
    assert_eq!(readable, notifying, "DescribeAlarmHistory is granted on exactly the alarms that notify the function");

    let invoke = &props["EventInvokeConfig"];
    assert_eq!(invoke["MaximumRetryAttempts"].as_u64(), Some(2));
    assert_eq!(text(tagged(&invoke["DestinationConfig"]["OnFailure"]["Destination"]).1), "NotifyFailureQueue.Arn");
    let alarm = &resource(&t, "NotifyFailuresAlarm")["Properties"];
    assert_eq!(text(tagged(&alarm["Dimensions"][0]["Value"]).1), "NotifyFailureQueue.QueueName");
    for p in ["SlackWebhookParameter", "WebhookUrlParameter", "FlappingCooldownSeconds"] {
        assert!(t["Parameters"].get(p).is_some(), "{p}");
    }
}
