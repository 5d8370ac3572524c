//! How a command fails: bad arguments, missing AWS settings, the error and its causes.

use std::process::Command;

#[test]
fn bad_arguments_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent.jsonl");
    let lake = dir.path().join("lake");
    let out = Command::new(env!("CARGO_BIN_EXE_voicelake"))
        .args(["replay", missing.to_str().unwrap(), "--lake", lake.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(missing.to_str().unwrap()));
}

/// What a command needs from AWS and does not have is said in one line, before any call: the
/// credentials, or the region (taken from an ARN when one is given).
#[test]
fn missing_credentials_and_region_are_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], region: Option<&str>| -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_voicelake"));
        cmd.args(args).current_dir(dir.path());
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "RUST_BACKTRACE",
            "RUST_LIB_BACKTRACE",
        ] {
            cmd.env_remove(var);
        }
        let missing = dir.path().join("none");
        cmd.env("AWS_CONFIG_FILE", &missing).env("AWS_SHARED_CREDENTIALS_FILE", &missing).env("AWS_EC2_METADATA_DISABLED", "true");
        if let Some(r) = region {
            cmd.env("AWS_REGION", r);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    };
    let no_region = run(&["notify", "test", "--function", "voicelake-notify"], None);
    assert!(no_region.contains("no AWS region") && no_region.lines().count() == 1, "{no_region}");
    // The ARN names the region: what is missing then is the credentials.
    let arn = "arn:aws:lambda:eu-west-1:123456789012:function:voicelake-notify";
    let no_credentials = run(&["notify", "test", "--function", arn], None);
    assert!(no_credentials.contains("no AWS credentials") && no_credentials.lines().count() == 1, "{no_credentials}");
    assert!(no_credentials.len() < 400 && !no_credentials.contains("could not deliver"), "{no_credentials}");
    let queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/voicelake-failures";
    let dlq = run(&["dlq", "replay", "--queue-url", queue, "--function", "voicelake-ingest"], None);
    assert!(dlq.contains("no AWS credentials"), "{dlq}");
}

/// A failure is one line, the error and its cause; `--verbose` gives every cause, one a line.
#[test]
fn a_failure_is_one_line_and_verbose_gives_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let run = |verbose: bool| {
        let mut args = vec!["replay", missing.to_str().unwrap(), "--lake", dir.path().to_str().unwrap()];
        if verbose {
            args.insert(0, "--verbose");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_voicelake")).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap()
    };
    let short = run(false);
    assert_eq!(short.lines().count(), 1, "{short}");
    assert!(short.starts_with("error: reading ") && short.contains("No such file"), "{short}");
    let long = run(true);
    assert_eq!(long.lines().count(), 2, "{long}");
    assert!(long.lines().nth(1).unwrap().starts_with("  caused by: "), "{long}");
}
