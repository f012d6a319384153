//! The Slack Web API client: form-encoded POSTs with a bearer token (every
//! method accepts them), Slack's `{"ok": false, "error": …}` mapped to
//! errors that say whether a token is dead, and 429 `Retry-After` respected
//! per method: a limited method waits, the others go on.
//!
//! Tokens never appear in errors or logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use passerelle_api::BridgeError;
use serde_json::Value;
use tokio::time::Instant;

/// Errors that mean the token no longer works: the workspace or login is
/// broken until someone acts.
pub const AUTH_ERRORS: &[&str] = &[
    "invalid_auth",
    "token_revoked",
    "account_inactive",
    "not_authed",
    "token_expired",
    "team_access_not_granted",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlackError {
    /// `ok: false` with Slack's error code (`channel_not_found`).
    Api(String),
    /// Still limited after the retries.
    RateLimited(Duration),
    Transport(String),
    Decode(String),
}

impl SlackError {
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, SlackError::Api(e) if AUTH_ERRORS.contains(&e.as_str()))
    }

    pub fn code(&self) -> &str {
        match self {
            SlackError::Api(e) => e,
            SlackError::RateLimited(_) => "ratelimited",
            SlackError::Transport(_) => "transport",
            SlackError::Decode(_) => "decode",
        }
    }

    /// What the Matrix user is told.
    pub fn into_bridge(self, doing: &str) -> BridgeError {
        match self {
            SlackError::RateLimited(after) => {
                BridgeError::retryable(format!("Slack is rate limiting {doing}"))
                    .with_retry_after(after)
            }
            SlackError::Transport(_) => {
                BridgeError::retryable(format!("Slack is unreachable ({doing})"))
            }
            SlackError::Api(e) if AUTH_ERRORS.contains(&e.as_str()) => {
                BridgeError::permanent(format!(
                    "Slack refused the token ({e}) while trying to {doing}; the admins were told"
                ))
            }
            SlackError::Api(e) => BridgeError::permanent(format!("Slack refused to {doing}: {e}")),
            SlackError::Decode(e) => {
                BridgeError::permanent(format!("unexpected answer from Slack ({doing}): {e}"))
            }
        }
    }
}

impl std::fmt::Display for SlackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlackError::Api(e) => write!(f, "{e}"),
            SlackError::RateLimited(d) => write!(f, "rate limited for {d:?}"),
            SlackError::Transport(e) => write!(f, "transport: {e}"),
            SlackError::Decode(e) => write!(f, "decode: {e}"),
        }
    }
}

/// How many times a 429 is waited out before giving up.
const RATE_LIMIT_RETRIES: usize = 3;

pub struct WebApi {
    http: reqwest::Client,
    base: String,
    /// method -> not before (from Retry-After).
    limited: Mutex<HashMap<String, Instant>>,
}

/// Form fields: strings as they are, other values as JSON (`blocks`,
/// `files`), nulls left out.
fn form_fields(params: &Value) -> Vec<(String, String)> {
    params
        .as_object()
        .map(|map| {
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

impl WebApi {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("reqwest client with rustls");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            limited: Mutex::new(HashMap::new()),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Calls `method` with `token`; `params` is a JSON object.
    pub async fn call(
        &self,
        method: &str,
        token: &str,
        params: Value,
    ) -> Result<Value, SlackError> {
        let fields = form_fields(&params);
        let mut attempts = 0;
        loop {
            let wait = self
                .limited
                .lock()
                .expect("lock")
                .get(method)
                .map(|until| until.saturating_duration_since(Instant::now()));
            if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                tokio::time::sleep(wait).await;
            }
            let response = self
                .http
                .post(format!("{}/{method}", self.base))
                .bearer_auth(token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode_form(&fields))
                .send()
                .await
                .map_err(|e| SlackError::Transport(e.without_url().to_string()))?;
            if response.status().as_u16() == 429 {
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(Duration::from_secs(1));
                self.limited
                    .lock()
                    .expect("lock")
                    .insert(method.to_owned(), Instant::now() + after);
                attempts += 1;
                tracing::debug!(method, ?after, "Slack rate limit");
                if attempts > RATE_LIMIT_RETRIES {
                    return Err(SlackError::RateLimited(after));
                }
                continue;
            }
            if response.status().is_server_error() {
                return Err(SlackError::Transport(format!("HTTP {}", response.status())));
            }
            let body: Value = response
                .json()
                .await
                .map_err(|e| SlackError::Decode(e.without_url().to_string()))?;
            if body["ok"] == true {
                return Ok(body);
            }
            let error = body["error"].as_str().unwrap_or("unknown_error").to_owned();
            return Err(SlackError::Api(error));
        }
    }

    /// Downloads a private file (`url_private`) with the token, up to `max`.
    pub async fn download(
        &self,
        url: &str,
        token: &str,
        max: u64,
    ) -> Result<(Vec<u8>, Option<String>), SlackError> {
        let mut response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| SlackError::Transport(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(SlackError::Api(format!(
                "download_failed_{}",
                response.status().as_u16()
            )));
        }
        let mime = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SlackError::Transport(e.without_url().to_string()))?
        {
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(SlackError::Api("file_too_large".to_owned()));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((bytes, mime))
    }

    /// Uploads a file the new way: `files.getUploadURLExternal`, the bytes
    /// to the URL it gives, then `files.completeUploadExternal` shares it.
    pub async fn upload(
        &self,
        token: &str,
        bytes: Vec<u8>,
        filename: &str,
        share: Value,
    ) -> Result<Value, SlackError> {
        let got = self
            .call(
                "files.getUploadURLExternal",
                token,
                serde_json::json!({"filename": filename, "length": bytes.len()}),
            )
            .await?;
        let (Some(url), Some(file_id)) = (got["upload_url"].as_str(), got["file_id"].as_str())
        else {
            return Err(SlackError::Decode("no upload_url".to_owned()));
        };
        let status = self
            .http
            .post(url)
            .body(bytes)
            .send()
            .await
            .map_err(|e| SlackError::Transport(e.without_url().to_string()))?
            .status();
        if !status.is_success() {
            return Err(SlackError::Api(format!(
                "upload_failed_{}",
                status.as_u16()
            )));
        }
        let mut params = share;
        params["files"] = serde_json::json!([{"id": file_id, "title": filename}]);
        self.call("files.completeUploadExternal", token, params)
            .await
    }
}

fn encode_form(fields: &[(String, String)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_encode_values_and_objects() {
        let fields = form_fields(&serde_json::json!({
            "channel": "C1", "text": "a&b = c ✓", "files": [{"id": "F1"}], "thread_ts": null}));
        let form = encode_form(&fields);
        assert!(form.contains("channel=C1"));
        assert!(form.contains("text=a%26b+%3D+c+%E2%9C%93"));
        assert!(form.contains("files=%5B%7B%22id%22%3A%22F1%22%7D%5D"));
        assert!(!form.contains("thread_ts"));
    }

    #[test]
    fn auth_errors_are_recognised() {
        assert!(SlackError::Api("token_revoked".into()).is_auth_failure());
        assert!(!SlackError::Api("channel_not_found".into()).is_auth_failure());
        let e = SlackError::Api("invalid_auth".into()).into_bridge("post");
        assert!(!e.is_retryable());
        assert!(e.message.contains("the admins were told"));
        let e = SlackError::RateLimited(Duration::from_secs(3)).into_bridge("post");
        assert!(e.is_retryable());
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    }
}
