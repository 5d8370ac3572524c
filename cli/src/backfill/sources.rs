//! Where a backfill reads and writes: CloudWatch Logs, an export in S3 or on disk, and the lake in
//! S3 or on disk. Each is a small trait, so the run itself does not know which it has.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream;

/// One event `FilterLogEvents` returned.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundEvent {
    pub stream: String,
    pub id: String,
    pub timestamp: i64,
    pub message: String,
}

/// One page of `FilterLogEvents`, and the token of the next when there is one.
#[derive(Debug, Default)]
pub struct LogPage {
    pub events: Vec<FoundEvent>,
    pub next_token: Option<String>,
}

/// The events of a log group in `[from, until)` that match a filter pattern, a page at a time.
pub trait LogEvents {
    fn page(&self, group: &str, from: i64, until: i64, pattern: &str, token: Option<String>) -> impl Future<Output = Result<LogPage>>;
}

/// CloudWatch Logs through the SDK. Throttling (`FilterLogEvents` has a low per-account rate) is
/// retried with backoff by the client's retry policy, see [`retry_config`].
pub struct CloudWatchLogs {
    pub client: aws_sdk_cloudwatchlogs::Client,
    /// Events per page (at most 10,000).
    pub page_size: i32,
}

/// Retries for a backfill's clients: more attempts than the default 3, as a backfill runs long
/// enough to meet throttling more than once, with the SDK's exponential backoff and jitter.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_max_attempts(10).with_initial_backoff(std::time::Duration::from_millis(500))
}

impl LogEvents for CloudWatchLogs {
    async fn page(&self, group: &str, from: i64, until: i64, pattern: &str, token: Option<String>) -> Result<LogPage> {
        // FilterLogEvents' endTime is inclusive; a window ends just before the next one starts.
        let answer = self
            .client
            .filter_log_events()
            .log_group_name(group)
            .start_time(from)
            .end_time(until - 1)
            .set_filter_pattern(Some(pattern.to_owned()).filter(|p| !p.is_empty()))
            .limit(self.page_size)
            .set_next_token(token)
            .send()
            .await
            .with_context(|| format!("FilterLogEvents on {group}"))?;
        let events = answer
            .events()
            .iter()
            .map(|e| FoundEvent {
                stream: e.log_stream_name().unwrap_or("unknown").to_owned(),
                id: e.event_id().unwrap_or_default().to_owned(),
                timestamp: e.timestamp().unwrap_or_default(),
                message: e.message().unwrap_or_default().to_owned(),
            })
            .collect();
        Ok(LogPage { events, next_token: answer.next_token().map(str::to_owned) })
    }
}

/// The objects of a CloudWatch Logs export.
pub trait ExportObjects {
    /// Every key, in order.
    fn keys(&self) -> impl Future<Output = Result<Vec<String>>>;
    /// An object's bytes, as stored (gzip).
    fn get(&self, key: &str) -> impl Future<Output = Result<Vec<u8>>>;
    /// Where the export is, for the checkpoint and messages.
    fn location(&self) -> String;
}

/// An export in S3: every object below `prefix`.
pub struct S3Export {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

impl ExportObjects for S3Export {
    async fn keys(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&self.prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.with_context(|| format!("listing s3://{}/{}", self.bucket, self.prefix))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
        }
        keys.sort();
        Ok(keys)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("reading s3://{}/{key}", self.bucket))?;
        let body = object.body.collect().await.with_context(|| format!("reading s3://{}/{key}", self.bucket))?;
        Ok(body.into_bytes().to_vec())
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A local copy of an export (`aws s3 sync s3://BUCKET/PREFIX DIR`): every file below `root`,
/// keyed by its path relative to it.
pub struct LocalExport {
    pub root: PathBuf,
}

impl ExportObjects for LocalExport {
    async fn keys(&self) -> Result<Vec<String>> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) -> Result<()> {
            for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
                let path = entry?.path();
                if path.is_dir() {
                    walk(&path, root, out)?;
                } else if let Ok(relative) = path.strip_prefix(root) {
                    out.push(relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/"));
                }
            }
            Ok(())
        }
        let mut keys = Vec::new();
        walk(&self.root, &self.root, &mut keys)?;
        keys.sort();
        Ok(keys)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.root.join(key);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

/// Where the lake's objects go.
pub trait LakeSink {
    /// Writes (or replaces) the object `key`, relative to the lake's root: `turns/dt=…/hour=…/NAME.parquet`.
    fn put(&self, key: &str, bytes: Vec<u8>) -> impl Future<Output = Result<()>>;
    /// The lake, for the checkpoint and messages.
    fn location(&self) -> String;
}

/// A lake on disk, laid out as in S3.
pub struct LocalLake {
    pub root: PathBuf,
}

impl LakeSink for LocalLake {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        crate::replay::write_object(&self.root, key, &bytes)
    }

    fn location(&self) -> String {
        std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone()).display().to_string()
    }
}

/// The stack's lake bucket: the objects go where Firehose writes, so the Glue tables read both.
pub struct S3Lake {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

impl LakeSink for S3Lake {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let key = format!("{}{key}", self.prefix);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/vnd.apache.parquet")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .with_context(|| format!("writing s3://{}/{key}", self.bucket))?;
        Ok(())
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// `s3://BUCKET/PREFIX` as the bucket and a prefix that is empty or ends in `/`.
pub fn s3_location(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("s3://").with_context(|| format!("{url:?} is not an s3:// location"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    anyhow::ensure!(!bucket.is_empty(), "{url:?} names no bucket");
    let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_owned() } else { format!("{prefix}/") };
    Ok((bucket.to_owned(), prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations() {
        assert_eq!(s3_location("s3://lake").unwrap(), ("lake".into(), String::new()));
        assert_eq!(s3_location("s3://lake/").unwrap(), ("lake".into(), String::new()));
        assert_eq!(s3_location("s3://lake/exports/2026").unwrap(), ("lake".into(), "exports/2026/".into()));
        assert!(s3_location("lake/x").is_err());
        assert!(s3_location("s3:///x").is_err());
    }
}
