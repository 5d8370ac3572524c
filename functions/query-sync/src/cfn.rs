//! The CloudFormation side: read the request whatever its shape, run the sync, and always answer,
//! so that no stack waits an hour for a response that never comes.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::cloudformation::{CloudFormationCustomResourceResponse, CloudFormationCustomResourceResponseStatus};
use serde_json::Value;

use crate::{AthenaStore, InsightsStore, Outcome, Properties, QuerySync, compiled_queries};

/// Where the answer goes, and what it must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub request_type: String,
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub physical_resource_id: Option<String>,
}

impl Envelope {
    /// The fields CloudFormation always sends; without them there is nobody to answer.
    pub fn of(event: &Value) -> Option<Envelope> {
        let s = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Envelope {
            request_type: s("RequestType")?,
            response_url: s("ResponseURL")?,
            stack_id: s("StackId")?,
            request_id: s("RequestId")?,
            logical_resource_id: s("LogicalResourceId")?,
            physical_resource_id: s("PhysicalResourceId"),
        })
    }
}

/// Sends the answer to CloudFormation's pre-signed URL.
pub trait Responder: Send + Sync {
    fn respond(&self, url: &str, body: String) -> impl Future<Output = Result<(), String>> + Send;
}

/// `PUT`s the answer with reqwest, retrying transient failures.
pub struct HttpResponder {
    client: reqwest::Client,
}

impl Default for HttpResponder {
    fn default() -> Self {
        HttpResponder { client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a default client builds") }
    }
}

impl Responder for HttpResponder {
    async fn respond(&self, url: &str, body: String) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            // The URL is signed without a content type: sending one would break the signature.
            match self.client.put(url).header("content-type", "").body(body.clone()).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("HTTP {}", r.status()),
                // The pre-signed URL is a credential for the stack's answer: it never reaches a log.
                Err(e) => last = e.without_url().to_string(),
            }
        }
        Err(last)
    }
}

pub fn response_body(envelope: &Envelope, physical_id: &str, result: &Result<Outcome, String>) -> String {
    let mut r = CloudFormationCustomResourceResponse::default();
    r.stack_id = envelope.stack_id.clone();
    r.request_id = envelope.request_id.clone();
    r.logical_resource_id = envelope.logical_resource_id.clone();
    r.physical_resource_id = physical_id.to_owned();
    match result {
        Ok(o) => {
            r.status = CloudFormationCustomResourceResponseStatus::Success;
            r.data = [("Created", o.created), ("Updated", o.updated), ("Deleted", o.deleted), ("Views", o.views)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_string()))
                .collect();
        }
        Err(reason) => {
            r.status = CloudFormationCustomResourceResponseStatus::Failed;
            // CloudFormation shows the reason in the stack's events; it allows at most 4 KiB.
            r.reason = Some(voicelake_shared::rows::truncate_utf8(reason, 3000).to_owned());
        }
    }
    serde_json::to_string(&r).expect("a response serializes")
}

/// Handles one custom-resource event within `budget`, and answers CloudFormation on every path.
pub async fn handle<I: InsightsStore, A: AthenaStore, R: Responder>(
    sync: &QuerySync<I, A>,
    responder: &R,
    event: &Value,
    budget: Duration,
) -> Result<String, String> {
    let Some(envelope) = Envelope::of(event) else {
        return Err("not a CloudFormation custom resource event: no ResponseURL to answer".into());
    };
    let physical_id =
        envelope.physical_resource_id.clone().unwrap_or_else(|| format!("voicelake-queries-{}", envelope.logical_resource_id));
    let result: Result<Outcome, String> = async {
        let props: Properties = serde_json::from_value(event.get("ResourceProperties").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("the resource's properties are not those of voicelake's template: {e}"))?;
        let files = match envelope.request_type.as_str() {
            "Create" | "Update" => compiled_queries(),
            // Removing the stack removes what it created, and nothing else.
            "Delete" => Vec::new(),
            other => return Err(format!("unknown request type {other}")),
        };
        match tokio::time::timeout(budget, sync.run(&files, &props)).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(format!("saved queries not synced: {e}")),
            Err(_) => {
                Err(format!("saved queries not synced within {} s; some may be; the next deploy completes the sync", budget.as_secs()))
            }
        }
    }
    .await;
    // A delete that fails would leave the stack in DELETE_FAILED, holding everything else: what could
    // not be removed is logged (the caller logs the error) and the stack goes on.
    let answered = match (&result, envelope.request_type.as_str()) {
        (Err(_), "Delete") => Ok(Outcome::default()),
        _ => result.clone(),
    };
    let body = response_body(&envelope, &physical_id, &answered);
    responder.respond(&envelope.response_url, body).await.map_err(|e| format!("could not answer CloudFormation: {e}"))?;
    match result {
        Ok(o) => Ok(format!("{} {}: {o:?}", envelope.request_type, physical_id)),
        Err(e) if envelope.request_type == "Delete" => {
            Err(format!("{e}; answered SUCCESS so that the stack's deletion goes on: remove what is left by hand"))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_that_fails_on_the_network_does_not_name_the_pre_signed_url() {
        // Nothing listens on the discard port.
        let url = "http://127.0.0.1:9/cloudformation-custom-resource-response-useast1/arn%3Aaws?X-Amz-Signature=f00dfeed&X-Amz-Credential=AKIAEXAMPLE";
        let e = HttpResponder::default().respond(url, "{}".into()).await.unwrap_err();
        for part in ["127.0.0.1", "X-Amz", "f00dfeed", "AKIAEXAMPLE", "cloudformation-custom-resource"] {
            assert!(!e.contains(part), "{part} in {e}");
        }
        assert!(!e.is_empty());
    }
}
