//! The ingest function's on-failure queue, and replaying what it keeps.
//!
//! CloudWatch Logs invokes the function asynchronously. When an invocation fails (a stream that
//! does not exist, throttling that outlasts the retries, a timeout), Lambda retries it twice and then
//! sends an invocation record to the on-failure queue: the subscription event is its
//! `requestPayload`. [`redrive`] invokes the function again with each kept event and deletes a
//! message only after its replay succeeded, so a replay that fails again leaves the batch where it
//! was. A queue configured as a plain dead-letter queue holds the bare event; both forms are read.

use std::future::Future;

use serde_json::Value;

use crate::args::DlqReplayArgs;

/// One message of the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMessage {
    pub id: String,
    pub receipt_handle: String,
    pub body: String,
}

/// What the queue's message says about the failed invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRecord {
    /// The event to invoke the function with again.
    pub payload: Value,
    /// `RetriesExhausted`, `EventAgeExceeded`… (absent in a plain dead-letter message).
    pub condition: Option<String>,
    pub approximate_invoke_count: Option<u64>,
    /// The function's error of its last attempt.
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("the message is not JSON: {0}")]
    NotJson(String),
    #[error(
        "the invocation record has no requestPayload: Lambda leaves it out when the record would exceed the queue's message size, so the batch cannot be replayed from here (its log events are still in CloudWatch Logs)"
    )]
    PayloadDropped,
    #[error("neither an invocation record nor a subscription event (keys: {0})")]
    Unknown(String),
}

/// Reads an invocation record (on-failure destination) or a bare event (dead-letter queue).
pub fn parse_record(body: &str) -> Result<FailureRecord, RecordError> {
    let value: Value = serde_json::from_str(body).map_err(|e| RecordError::NotJson(e.to_string()))?;
    if value.get("awslogs").is_some() {
        return Ok(FailureRecord { payload: value, condition: None, approximate_invoke_count: None, error_message: None });
    }
    let Some(context) = value.get("requestContext") else {
        let keys: Vec<&str> = value.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        return Err(RecordError::Unknown(keys.join(", ")));
    };
    let payload = match value.get("requestPayload") {
        Some(p) if !p.is_null() => p.clone(),
        _ => return Err(RecordError::PayloadDropped),
    };
    Ok(FailureRecord {
        payload,
        condition: context.get("condition").and_then(Value::as_str).map(str::to_owned),
        approximate_invoke_count: context.get("approximateInvokeCount").and_then(Value::as_u64),
        error_message: value.pointer("/responsePayload/errorMessage").and_then(Value::as_str).map(str::to_owned),
    })
}

/// The invocation record Lambda sends to an on-failure destination after the retries of an
/// asynchronous invocation ran out, for tests and tools that stand in for Lambda.
pub fn invocation_record(function_arn: &str, payload: &Value, attempts: u64, error_message: &str) -> Value {
    serde_json::json!({
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "requestContext": {
            "requestId": request_id(),
            "functionArn": format!("{function_arn}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "DeliveryError", "errorMessage": error_message},
    })
}

fn request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:016x}-{n:08x}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())
}

/// The on-failure queue.
pub trait FailureQueue {
    /// Up to `limit` (at most 10) messages, hidden from other readers while they are replayed.
    fn receive(&self, limit: usize) -> impl Future<Output = anyhow::Result<Vec<QueueMessage>>> + Send;
    fn delete(&self, receipt_handle: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The function the batches are replayed through.
pub trait Invoker {
    /// Invokes synchronously; `Err` carries the function's error or the call's.
    fn invoke(&self, payload: &Value) -> impl Future<Output = Result<Value, String>> + Send;
}

/// What a replay did, message by message.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RedriveSummary {
    pub received: usize,
    /// Replayed and deleted from the queue.
    pub replayed: usize,
    /// Message id and error: the invocation failed again, the message stays.
    pub failed: Vec<(String, String)>,
    /// Message id and why it cannot be replayed: the message stays.
    pub unreadable: Vec<(String, String)>,
}

impl RedriveSummary {
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.unreadable.is_empty()
    }
}

/// Replays up to `max` messages of `queue` through `invoker`, deleting each one whose replay
/// succeeded. Stops when the queue has nothing visible left: a message that failed stays hidden
/// for the queue's visibility timeout, so it is not replayed twice in one run.
pub async fn redrive(queue: &impl FailureQueue, invoker: &impl Invoker, max: usize) -> anyhow::Result<RedriveSummary> {
    let mut summary = RedriveSummary::default();
    // A message that failed comes back once its visibility timeout ends; a short timeout must not
    // make this loop replay it until `max`.
    let mut seen = std::collections::HashSet::new();
    while summary.received < max {
        let messages = queue.receive((max - summary.received).min(10)).await?;
        let fresh: Vec<QueueMessage> = messages.into_iter().filter(|m| seen.insert(m.id.clone())).collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh {
            summary.received += 1;
            let record = match parse_record(&message.body) {
                Ok(r) => r,
                Err(e) => {
                    summary.unreadable.push((message.id, e.to_string()));
                    continue;
                }
            };
            match invoker.invoke(&record.payload).await {
                Ok(_) => {
                    queue.delete(&message.receipt_handle).await?;
                    summary.replayed += 1;
                }
                Err(e) => summary.failed.push((message.id, e)),
            }
        }
    }
    Ok(summary)
}

/// The queue on SQS.
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    /// Seconds a received message stays hidden: longer than one replay takes.
    visibility_timeout: i32,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>, visibility_timeout: i32) -> Self {
        SqsQueue { client, url: url.into(), visibility_timeout }
    }
}

impl FailureQueue for SqsQueue {
    async fn receive(&self, limit: usize) -> anyhow::Result<Vec<QueueMessage>> {
        use anyhow::Context;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(limit.clamp(1, 10) as i32)
            .wait_time_seconds(1)
            .visibility_timeout(self.visibility_timeout)
            .send()
            .await
            .with_context(|| format!("receiving from {}", self.url))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| QueueMessage {
                id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> anyhow::Result<()> {
        use anyhow::Context;
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .with_context(|| format!("deleting a replayed message from {}", self.url))?;
        Ok(())
    }
}

/// The function on Lambda, invoked synchronously (`RequestResponse`).
pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaInvoker {
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        LambdaInvoker { client, function: function.into() }
    }
}

impl Invoker for LambdaInvoker {
    async fn invoke(&self, payload: &Value) -> Result<Value, String> {
        let bytes = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::RequestResponse)
            .payload(aws_sdk_lambda::primitives::Blob::new(bytes))
            .send()
            .await
            .map_err(|e| format!("invoking {}: {}", self.function, aws_sdk_lambda::error::DisplayErrorContext(e)))?;
        let body = out.payload().map(|b| String::from_utf8_lossy(b.as_ref()).into_owned()).unwrap_or_default();
        if let Some(kind) = out.function_error() {
            return Err(format!("{} failed ({kind}): {body}", self.function));
        }
        Ok(serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }
}

/// `voicelake dlq replay`: the queue's batches back through the function, each deleted once it is delivered.
pub fn run_replay(args: DlqReplayArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        let aws = crate::aws_setup::load(&[&args.queue_url, &args.function], None).await?;
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &args.queue_url, args.visibility_timeout);
        let invoker = LambdaInvoker::new(aws_sdk_lambda::Client::new(&aws), &args.function);
        redrive(&queue, &invoker, args.max).await
    })?;
    println!("received {}, replayed and deleted {}", summary.received, summary.replayed);
    for (id, error) in &summary.failed {
        println!("failed again, kept in the queue: {id}: {error}");
    }
    for (id, why) in &summary.unreadable {
        println!("cannot be replayed, kept in the queue: {id}: {why}");
    }
    if !summary.is_clean() {
        anyhow::bail!("{} of {} messages were not replayed", summary.failed.len() + summary.unreadable.len(), summary.received);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn reads_both_forms_and_names_what_it_cannot_replay() {
        let event = serde_json::json!({"awslogs": {"data": "H4sI"}});
        let record = invocation_record("arn:aws:lambda:us-east-1:123456789012:function:ingest", &event, 3, "not delivered: x");
        let parsed = parse_record(&record.to_string()).unwrap();
        assert_eq!(parsed.payload, event);
        assert_eq!(parsed.condition.as_deref(), Some("RetriesExhausted"));
        assert_eq!(parsed.approximate_invoke_count, Some(3));
        assert_eq!(parsed.error_message.as_deref(), Some("not delivered: x"));
        assert_eq!(parse_record(&event.to_string()).unwrap().payload, event, "a dead-letter message is the event");

        let mut dropped = record.clone();
        dropped.as_object_mut().unwrap().remove("requestPayload");
        assert_eq!(parse_record(&dropped.to_string()), Err(RecordError::PayloadDropped));
        assert!(matches!(parse_record("{"), Err(RecordError::NotJson(_))));
        assert_eq!(parse_record(r#"{"hello": 1}"#), Err(RecordError::Unknown("hello".into())));
    }

    struct MemoryQueue {
        visible: Mutex<Vec<QueueMessage>>,
        deleted: Mutex<Vec<String>>,
    }

    impl FailureQueue for MemoryQueue {
        async fn receive(&self, limit: usize) -> anyhow::Result<Vec<QueueMessage>> {
            let mut v = self.visible.lock().unwrap();
            let n = v.len().min(limit).min(10);
            Ok(v.drain(..n).collect())
        }
        async fn delete(&self, receipt_handle: &str) -> anyhow::Result<()> {
            self.deleted.lock().unwrap().push(receipt_handle.to_owned());
            Ok(())
        }
    }

    /// Fails every payload whose data is "bad".
    struct PickyInvoker;

    impl Invoker for PickyInvoker {
        async fn invoke(&self, payload: &Value) -> Result<Value, String> {
            if payload.pointer("/awslogs/data") == Some(&Value::from("bad")) { Err("still failing".into()) } else { Ok(Value::Null) }
        }
    }

    #[tokio::test]
    async fn only_replayed_messages_are_deleted() {
        let message = |i: usize, body: String| QueueMessage { id: format!("m{i}"), receipt_handle: format!("r{i}"), body };
        let mut visible: Vec<QueueMessage> = (0..23)
            .map(|i| {
                message(i, invocation_record("arn:f", &serde_json::json!({"awslogs": {"data": format!("ok{i}")}}), 3, "e").to_string())
            })
            .collect();
        visible.push(message(100, invocation_record("arn:f", &serde_json::json!({"awslogs": {"data": "bad"}}), 3, "e").to_string()));
        visible.push(message(101, "not json".into()));
        let queue = MemoryQueue { visible: Mutex::new(visible), deleted: Mutex::new(Vec::new()) };

        let summary = redrive(&queue, &PickyInvoker, 1000).await.unwrap();
        assert_eq!((summary.received, summary.replayed), (25, 23));
        assert_eq!(summary.failed, vec![("m100".to_owned(), "still failing".to_owned())]);
        assert_eq!(summary.unreadable.len(), 1);
        let deleted = queue.deleted.lock().unwrap();
        assert_eq!(deleted.len(), 23);
        assert!(!deleted.contains(&"r100".to_owned()) && !deleted.contains(&"r101".to_owned()));
    }

    /// Hands out the same message forever, as SQS does with a visibility timeout of zero.
    struct Stubborn;

    impl FailureQueue for Stubborn {
        async fn receive(&self, _limit: usize) -> anyhow::Result<Vec<QueueMessage>> {
            Ok(vec![QueueMessage { id: "m".into(), receipt_handle: "r".into(), body: "{}".into() }])
        }
        async fn delete(&self, _receipt_handle: &str) -> anyhow::Result<()> {
            unreachable!("nothing is replayed")
        }
    }

    #[tokio::test]
    async fn a_message_that_comes_back_is_tried_once_per_run() {
        let summary = redrive(&Stubborn, &PickyInvoker, 1000).await.unwrap();
        assert_eq!((summary.received, summary.unreadable.len()), (1, 1));
    }

    #[tokio::test]
    async fn stops_at_max() {
        let visible = (0..30).map(|i| QueueMessage { id: i.to_string(), receipt_handle: i.to_string(), body: "{}".into() }).collect();
        let queue = MemoryQueue { visible: Mutex::new(visible), deleted: Mutex::new(Vec::new()) };
        assert_eq!(redrive(&queue, &PickyInvoker, 15).await.unwrap().received, 15);
        assert_eq!(queue.visible.lock().unwrap().len(), 15, "the rest untouched");
    }
}
