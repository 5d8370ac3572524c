//! The deploy's settings locally: a price file, the latency target, a samconfig.toml's thresholds
//! and prices.

use serde_json::Value;

mod support;
use support::{generate, voicelake};

/// `--prices` lays a file over the built-in table, as the function lays `PriceTableOverride`: the
/// whole table laid over itself changes nothing, a price for a model the traffic does not use
/// changes nothing, and a price it uses changes the total.
#[test]
fn a_price_file_is_laid_over_the_built_in_table() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 60, false);
    let total = |n: &str, prices: Option<&str>| -> f64 {
        let mut args =
            vec!["replay".to_owned(), input.to_str().unwrap().to_owned(), "--lake".into(), dir.path().join(n).to_str().unwrap().into()];
        args.extend(["--format".into(), "json".into()]);
        if let Some(text) = prices {
            let file = dir.path().join(format!("{n}.json"));
            std::fs::write(&file, text).unwrap();
            args.extend(["--prices".into(), file.to_str().unwrap().into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let report: Value = serde_json::from_str(&voicelake(&args)).unwrap();
        report["cost"]["total_usd"].as_f64().unwrap()
    };
    let built_in = total("a", None);
    assert!(built_in > 0.0);
    assert_eq!(total("b", Some(voicelake_shared::cost::DEFAULT_PRICE_TABLE)), built_in);
    assert_eq!(total("c", Some(r#"{"models": {"nobody/unused-model": {"stt_per_minute": 9}}}"#)), built_in);
    assert!(total("d", Some(r#"{"default": {"transport_per_minute": 0.5}}"#)) > built_in);
}

/// In the stack one parameter is both the latency target and the turn-latency alarm's threshold:
/// `--target-ms` is both locally, so the alarm is judged at the target the report states.
#[test]
fn the_target_is_the_turn_latency_alarms_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 60, false);
    let alarm = |n: &str, target: &str| -> Value {
        let lake = dir.path().join(n);
        let args = ["replay", input.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--format", "json", "--target-ms", target];
        let report: Value = serde_json::from_str(&voicelake(&args)).unwrap();
        assert_eq!(report["target"]["target_ms"].as_f64(), Some(target.parse().unwrap()));
        report["alarms"].as_array().unwrap().iter().find(|a| a["alarm"] == "TurnLatencyP95Alarm").unwrap().clone()
    };
    let low = alarm("low", "400");
    let high = alarm("high", "60000");
    assert_eq!((low["threshold"].as_f64(), high["threshold"].as_f64()), (Some(400.0), Some(60000.0)));
    assert_eq!((low["would_fire"].as_bool(), high["would_fire"].as_bool()), (Some(true), Some(false)), "{low}\n{high}");
}

/// `--params samconfig.toml` judges the alarms at the thresholds the deploy sets, the target and
/// the turn-latency threshold still one number, and lays its price override over the prices.
#[test]
fn the_deploys_parameters_set_the_local_thresholds_and_prices() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 40, true);
    let params = dir.path().join("samconfig.toml");
    std::fs::write(
        &params,
        r#"version = 0.1
[default.deploy.parameters]
parameter_overrides = "EnvironmentName=dev"
[prod.deploy.parameters]
parameter_overrides = [
  "TurnLatencyP95ThresholdMs=900",
  "ProviderFailuresThreshold=500 CostPerCallThresholdUsd=0.05",
  'PriceTableOverride="{\"default\": {\"transport_per_minute\": 0.5}}"',
]
"#,
    )
    .unwrap();
    let run = |name: &str, extra: &[&str]| -> Value {
        let lake = dir.path().join(name);
        let mut args = vec!["replay", input.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&voicelake(&args)).unwrap()
    };
    let threshold = |report: &Value, id: &str| {
        report["alarms"].as_array().unwrap().iter().find(|a| a["alarm"] == id).unwrap()["threshold"].as_f64().unwrap()
    };
    let plain = run("plain", &[]);
    let prod = run("prod", &["--params", params.to_str().unwrap(), "--config-env", "prod"]);
    assert_eq!(prod["target"]["target_ms"].as_f64(), Some(900.0));
    assert_eq!(threshold(&prod, "TurnLatencyP95Alarm"), 900.0);
    assert_eq!(threshold(&prod, "ProviderErrorsAlarm"), 500.0);
    assert_eq!(threshold(&prod, "CostPerCallAlarm"), 0.05);
    assert_eq!(threshold(&prod, "TTSTimeToFirstByteP95Alarm"), threshold(&plain, "TTSTimeToFirstByteP95Alarm"), "unset: the template's");
    assert!(prod["cost"]["total_usd"].as_f64() > plain["cost"]["total_usd"].as_f64(), "the override's transport price is laid over");
    // An explicit --target-ms still wins, and an environment without overrides is the template's defaults.
    let explicit = run("explicit", &["--params", params.to_str().unwrap(), "--config-env", "prod", "--target-ms", "1200"]);
    assert_eq!(threshold(&explicit, "TurnLatencyP95Alarm"), 1200.0);
    let default_env = run("default", &["--params", params.to_str().unwrap()]);
    assert_eq!(threshold(&default_env, "TurnLatencyP95Alarm"), 1500.0);
}
