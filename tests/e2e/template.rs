//! `template.yaml` and the code agree: Glue columns are the Arrow schemas, alarms are the defaults the
//! report evaluates, every metric and dimension set the alarms and the dashboard use is one the
//! function publishes, and every variable the function reads is set.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;
use voicelake_e2e::repo_root;
use voicelake_shared::alarms::{self, Statistic};
use voicelake_shared::lake::{self, Table};
use voicelake_shared::metrics::{self, m};

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
    ] {
        let s3 = &resource(&t, id)["Properties"]["ExtendedS3DestinationConfiguration"];
        assert_eq!(
            s3["Prefix"].as_str(),
            Some(format!("{}/dt=!{{partitionKeyFromQuery:dt}}/hour=!{{partitionKeyFromQuery:hour}}/", table.name()).as_str())
        );
        assert!(s3["ErrorOutputPrefix"].as_str().is_some());
        assert_eq!(s3["DynamicPartitioningConfiguration"]["Enabled"].as_bool(), Some(true));
        let conversion = &s3["DataFormatConversionConfiguration"];
        assert_eq!(ref_name(&conversion["SchemaConfiguration"]["TableName"]), Some(glue));
        let formats = &conversion["InputFormatConfiguration"]["Deserializer"]["HiveJsonSerDe"]["TimestampFormats"];
        assert_eq!(formats.as_sequence().unwrap()[0].as_str(), Some("millis"), "event_time is epoch milliseconds in the records");
        assert_eq!(ref_name(&s3["BufferingHints"]["SizeInMBs"]), Some("FirehoseBufferSizeMB"));
    }
    assert!(t["Parameters"]["FirehoseBufferSizeMB"]["MinValue"].as_u64() >= Some(64), "Parquet conversion needs 64 MiB");
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
                assert_eq!(metrics, vec![m::TOOL_CALLS.name, m::TOOL_CALL_FAILURES.name]);
                assert_eq!(props["Metrics"][0]["MetricStat"]["Period"].as_u64(), Some(u64::from(spec.period_seconds)));
            }
            stat => {
                assert_eq!(props["MetricName"].as_str(), Some(spec.metric));
                assert_eq!(props["Period"].as_u64(), Some(u64::from(spec.period_seconds)));
                match stat {
                    Statistic::P95 => {
                        assert_eq!(props["ExtendedStatistic"].as_str(), Some("p95"));
                        assert_eq!(props["EvaluateLowSampleCountPercentile"].as_str(), Some("evaluate"));
                    }
                    Statistic::Average => assert_eq!(props["Statistic"].as_str(), Some("Average")),
                    Statistic::Sum => assert_eq!(props["Statistic"].as_str(), Some("Sum")),
                    Statistic::ToolSuccessPercent => unreachable!(),
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
    // The dashboard body is a !Sub string; our namespace is ${MetricsNamespace} in it.
    let (_, body) = tagged(&resource(t, "Dashboard")["Properties"]["DashboardBody"]);
    let json: serde_json::Value = serde_json::from_str(body.as_str().unwrap()).expect("the dashboard body is JSON");
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
    let published: BTreeMap<&str, Vec<Vec<String>>> = m::ALL
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
    for spec in m::ALL {
        assert!(used.iter().any(|(n, _)| n == spec.name), "{} is published but shown nowhere", spec.name);
    }
}

#[test]
fn subscription_filters_cover_every_agent_log_group() {
    let t = template();
    let each = resources(&t).get("Fn::ForEach::AgentLogGroups").expect("one filter per log group");
    let loop_ = each.as_sequence().unwrap();
    assert_eq!(ref_name(&loop_[1]), Some("AgentLogGroupNames"));
    let filter = &loop_[2]["SubscriptionFilter&{LogGroupName}"];
    assert_eq!(filter["Type"].as_str(), Some("AWS::Logs::SubscriptionFilter"));
    assert_eq!(ref_name(&filter["Properties"]["FilterPattern"]), Some("SubscriptionFilterPattern"));
    // The default pattern lets every family of the contract through.
    let pattern = t["Parameters"]["SubscriptionFilterPattern"]["Default"].as_str().unwrap();
    for marker in [
        "voice_metrics",
        "session_analytics",
        "_metrics",
        "metrics_collected",
        "conversation_item_added",
        "session_usage_updated",
        "LLM metrics",
        "TTS metrics",
        "EOU metrics",
    ] {
        assert!(pattern.contains(marker), "{marker} in the default filter pattern");
    }
}

#[test]
fn the_saved_queries_resource_gets_what_query_sync_reads() {
    let t = template();
    let r = resource(&t, "SavedQueries");
    assert_eq!(r["Type"].as_str(), Some("Custom::SavedQueries"));
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
