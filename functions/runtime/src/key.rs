//! The deployment's pseudonym key, read from Secrets Manager at cold start: the ingest function
//! makes the lake's pseudonyms with it, and the notify function shows the same ones.

use voicelake_shared::pii::{KEY_ARN_VARIABLE, PseudonymKey};

/// The deployment's pseudonym key, read at cold start from the secret [`KEY_ARN_VARIABLE`] names;
/// none when it is unset. A key that cannot be read is an error: a function without it would
/// write or show pseudonyms that join nothing, so its start fails instead and the event is retried.
pub async fn deployed_key(aws: &aws_config::SdkConfig) -> Result<Option<PseudonymKey>, KeyError> {
    match std::env::var(KEY_ARN_VARIABLE).ok().filter(|s| !s.trim().is_empty()) {
        Some(secret) => fetch_key(&aws_sdk_secretsmanager::Client::new(aws), secret.trim()).await.map(Some),
        None => Ok(None),
    }
}

/// The pseudonym key kept in the Secrets Manager secret `secret` (its text). The error names the
/// secret and the call, never the value.
pub async fn fetch_key(client: &aws_sdk_secretsmanager::Client, secret: &str) -> Result<PseudonymKey, KeyError> {
    let out = client
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| KeyError::Read { secret: secret.to_owned(), chain: voicelake_shared::errors::chain(&e) })?;
    let text = out.secret_string().ok_or_else(|| KeyError::NoText(secret.to_owned()))?;
    PseudonymKey::new(text.as_bytes()).map_err(|e| KeyError::Invalid { secret: secret.to_owned(), why: e.to_string() })
}

/// Why the deployment's key could not be had. None of them carries the key's value.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("GetSecretValue of the pseudonym key {secret}: {chain}")]
    Read { secret: String, chain: String },
    #[error("the pseudonym key {0} has no text value")]
    NoText(String),
    #[error("the pseudonym key {secret}: {why}")]
    Invalid { secret: String, why: String },
}
