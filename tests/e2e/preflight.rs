//! `voicelake preflight` against a moto server holding the account's log groups, their subscription
//! filters and Lake Formation's settings; the Lambda account settings (which moto does not serve)
//! from the SDK's own mocks.

use aws_sdk_lakeformation::types::{DataLakePrincipal, DataLakeSettings, Permission, PrincipalPermissions};
use aws_sdk_lambda::operation::get_account_settings::GetAccountSettingsOutput;
use aws_sdk_lambda::types::AccountLimit;
use aws_smithy_mocks::{mock, mock_client};
use voicelake_cli::preflight::{self, Account, Plan, Verdict};
use voicelake_e2e::Moto;

fn lambda_with_unreserved(unreserved: i32) -> aws_sdk_lambda::Client {
    let settings = mock!(aws_sdk_lambda::Client::get_account_settings).then_output(move || {
        GetAccountSettingsOutput::builder()
            .account_limit(AccountLimit::builder().concurrent_executions(1000).unreserved_concurrent_executions(unreserved).build())
            .build()
    });
    mock_client!(aws_sdk_lambda, [&settings])
}

fn verdicts(findings: &[preflight::Finding]) -> Vec<(String, Verdict)> {
    findings.iter().map(|f| (f.check.clone(), f.verdict.clone())).collect()
}

#[tokio::test]
async fn the_account_is_checked_before_the_deploy_meets_it() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let lakeformation = aws_sdk_lakeformation::Client::new(&config);
    for group in ["/ecs/support-agent", "/ecs/sales-agent", "/ecs/support-agent-v2"] {
        logs.create_log_group().log_group_name(group).send().await.unwrap();
    }
    // Two filters of the account's own already sit on the sales agent's group (to Firehose streams,
    // destinations moto takes).
    let lake = voicelake_e2e::Lake::create(&config, "preflight").await;
    for (name, stream) in [("to-datadog", &lake.streams.turns), ("to-splunk", &lake.streams.sessions)] {
        logs.put_subscription_filter()
            .log_group_name("/ecs/sales-agent")
            .filter_name(name)
            .filter_pattern("")
            .destination_arn(format!("arn:aws:firehose:{}:{}:deliverystream/{stream}", voicelake_e2e::REGION, voicelake_e2e::ACCOUNT))
            .role_arn(format!("arn:aws:iam::{}:role/logs-to-firehose", voicelake_e2e::ACCOUNT))
            .send()
            .await
            .unwrap();
    }
    logs.put_subscription_filter()
        .log_group_name("/ecs/support-agent")
        .filter_name("voicelake-prod-ingest")
        .filter_pattern("")
        .destination_arn(format!(
            "arn:aws:firehose:{}:{}:deliverystream/{}",
            voicelake_e2e::REGION,
            voicelake_e2e::ACCOUNT,
            lake.streams.rejects
        ))
        .role_arn(format!("arn:aws:iam::{}:role/logs-to-firehose", voicelake_e2e::ACCOUNT))
        .send()
        .await
        .unwrap();

    let account = Account { logs: logs.clone(), lakeformation: lakeformation.clone(), lambda: lambda_with_unreserved(900) };
    let plan = Plan {
        stack: "voicelake-prod".into(),
        log_groups: vec!["/ecs/support-agent".into(), "/ecs/sales-agent".into(), "/ecs/missing".into()],
        reserved_concurrency: Some(50),
    };
    let findings = preflight::check(&plan, &account).await;
    assert_eq!(
        verdicts(&findings),
        [
            ("stack name".to_owned(), Verdict::Ok),
            ("log group /ecs/support-agent".to_owned(), Verdict::Ok),
            ("log group /ecs/sales-agent".to_owned(), Verdict::Fails),
            ("log group /ecs/missing".to_owned(), Verdict::Fails),
            ("Glue catalog".to_owned(), Verdict::Ok),
            ("reserved concurrency".to_owned(), Verdict::Ok),
        ],
        "{}",
        preflight::render(&findings)
    );
    let sales = &findings[2].detail;
    assert!(sales.contains("to-datadog, to-splunk") && sales.contains("delete-subscription-filter"), "{sales}");
    assert!(findings[3].detail.contains("create-log-group"), "{}", findings[3].detail);

    assert!(
        findings[1].detail.contains("0 other"),
        "the stack's own filter, from an earlier deploy, is not another: {}",
        findings[1].detail
    );
    // A redeploy checks only what it needs.
    let redeploy = Plan { stack: "voicelake-prod".into(), log_groups: vec!["/ecs/support-agent".into()], reserved_concurrency: None };
    assert!(preflight::check(&redeploy, &account).await.iter().all(|f| f.verdict == Verdict::Ok));

    // An account whose Lake Formation governs new databases, a quota too small, a stack name too long.
    lakeformation
        .put_data_lake_settings()
        .data_lake_settings(
            DataLakeSettings::builder()
                .create_database_default_permissions(
                    PrincipalPermissions::builder()
                        .principal(
                            DataLakePrincipal::builder().data_lake_principal_identifier("arn:aws:iam::123456789012:role/admin").build(),
                        )
                        .permissions(Permission::All)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tight = Account { logs, lakeformation, lambda: lambda_with_unreserved(120) };
    let plan = Plan { stack: "x".repeat(56), log_groups: vec!["/ecs/support-agent".into()], reserved_concurrency: Some(50) };
    let findings = preflight::check(&plan, &tight).await;
    let failing: Vec<&str> = findings.iter().filter(|f| f.verdict == Verdict::Fails).map(|f| f.check.as_str()).collect();
    assert_eq!(failing, ["stack name", "Glue catalog", "reserved concurrency"], "{}", preflight::render(&findings));
    let quota = findings.iter().find(|f| f.check == "reserved concurrency").unwrap();
    assert!(quota.detail.contains("at most 20"), "{}", quota.detail);
}
