//! The Bot API client: frankenstein's reqwest client for the JSON methods
//! (typed results), our own multipart request for uploads so that media
//! bytes go from memory to Telegram without a temporary file, and plain GETs
//! for file downloads.
//!
//! Errors never carry the bot token (it is in every URL) nor response
//! bodies (they hold message content).

use std::time::Duration;

use frankenstein::AsyncTelegramApi;
use frankenstein::client_reqwest::Bot;
use frankenstein::response::{ErrorResponse, MethodResponse};
use passerelle_api::BridgeError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::TelegramConfig;

/// What went wrong with a Bot API call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// Telegram answered `ok: false`.
    Telegram {
        code: u64,
        description: String,
        retry_after: Option<u64>,
        migrate_to: Option<i64>,
    },
    /// Connection failure, timeout, a 5xx without a JSON body.
    Transport(String),
    /// A success whose result did not have the expected shape.
    Decode(String),
}

impl ApiError {
    pub fn description(&self) -> &str {
        match self {
            ApiError::Telegram { description, .. } => description,
            ApiError::Transport(d) | ApiError::Decode(d) => d,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Telegram { code, .. } => *code == 429 || *code >= 500,
            ApiError::Transport(_) => true,
            ApiError::Decode(_) => false,
        }
    }

    /// The token was refused: nothing works until an operator fixes it.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ApiError::Telegram { code: 401 | 404, description, .. }
            if description.contains("Unauthorized") || description.contains("Not Found"))
    }

    /// Another getUpdates or a webhook is active.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApiError::Telegram { code: 409, .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Telegram {
                retry_after: Some(s),
                ..
            } => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }

    /// The error a Matrix user sees: Telegram's own description, which names
    /// the problem ("message to edit not found") without internals.
    pub fn into_bridge(self, doing: &str) -> BridgeError {
        let retryable = self.is_retryable();
        let after = self.retry_after();
        let text = format!("Telegram refused to {doing}: {}", self.description());
        let mut error = if retryable {
            BridgeError::retryable(text)
        } else {
            BridgeError::permanent(text)
        };
        if let Some(after) = after {
            error = error.with_retry_after(after);
        }
        error
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Telegram {
                code, description, ..
            } => write!(f, "{code} {description}"),
            ApiError::Transport(d) => write!(f, "transport: {d}"),
            ApiError::Decode(d) => write!(f, "unexpected answer: {d}"),
        }
    }
}

fn from_frankenstein(e: frankenstein::Error) -> ApiError {
    match e {
        frankenstein::Error::Api(r) => ApiError::Telegram {
            code: r.error_code,
            description: r.description,
            retry_after: r
                .parameters
                .as_ref()
                .and_then(|p| p.retry_after)
                .map(u64::from),
            migrate_to: r.parameters.and_then(|p| p.migrate_to_chat_id),
        },
        // The decode error's Display holds the whole body: keep only serde's
        // message (line, column, what was expected).
        frankenstein::Error::JsonDecode { source, .. } => ApiError::Decode(source.to_string()),
        frankenstein::Error::JsonEncode { source, .. } => ApiError::Decode(source.to_string()),
        frankenstein::Error::HttpReqwest(e) => ApiError::Transport(e.without_url().to_string()),
        other => ApiError::Transport(other.to_string()),
    }
}

/// One file to upload with a multipart method.
pub struct Upload {
    /// `photo`, `document`, `voice`, `audio`, `video`.
    pub field: &'static str,
    pub bytes: Vec<u8>,
    pub filename: String,
    pub mime: String,
}

pub struct Api {
    bot: Bot,
    http: reqwest::Client,
    bot_url: String,
    file_url: String,
}

impl Api {
    pub fn new(config: &TelegramConfig) -> Self {
        // Long polls last up to `poll_timeout`; leave room on top of it.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(config.poll_timeout + Duration::from_secs(30))
            .build()
            .expect("reqwest client with rustls");
        let bot = Bot::builder()
            .api_url(config.bot_url())
            .client(http.clone())
            .build();
        Self {
            bot,
            http,
            bot_url: config.bot_url(),
            file_url: config.file_url(),
        }
    }

    /// Calls a JSON method and decodes its `result`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, ApiError> {
        let response: MethodResponse<T> = self
            .bot
            .request(method, Some(params))
            .await
            .map_err(from_frankenstein)?;
        Ok(response.result)
    }

    /// Calls a method with one file as multipart/form-data; the other
    /// parameters are form fields (objects as JSON, as the Bot API expects).
    pub async fn call_upload<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
        upload: Upload,
    ) -> Result<T, ApiError> {
        let mut form = reqwest::multipart::Form::new();
        if let Value::Object(map) = params {
            for (key, value) in map {
                form = match value {
                    Value::String(s) => form.text(key, s),
                    Value::Null => form,
                    other => form.text(key, other.to_string()),
                };
            }
        }
        let part = reqwest::multipart::Part::bytes(upload.bytes)
            .file_name(upload.filename)
            .mime_str(&upload.mime)
            .map_err(|e| ApiError::Decode(e.without_url().to_string()))?;
        form = form.part(upload.field, part);
        let response = self
            .http
            .post(format!("{}/{method}", self.bot_url))
            .multipart(form)
            .send()
            .await
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        decode(response).await
    }

    /// Downloads a file by the `file_path` getFile gave, up to `max_bytes`.
    pub async fn download(&self, file_path: &str, max_bytes: u64) -> Result<Vec<u8>, ApiError> {
        let mut response = self
            .http
            .get(format!(
                "{}/{}",
                self.file_url,
                file_path.trim_start_matches('/')
            ))
            .send()
            .await
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ApiError::Telegram {
                code: u64::from(status.as_u16()),
                description: format!("file download failed ({status})"),
                retry_after: None,
                migrate_to: None,
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?
        {
            if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
                return Err(ApiError::Decode(format!(
                    "file larger than {max_bytes} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ApiError> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
    if status.is_success() {
        let r: MethodResponse<T> =
            serde_json::from_slice(&body).map_err(|e| ApiError::Decode(e.to_string()))?;
        return Ok(r.result);
    }
    match serde_json::from_slice::<ErrorResponse>(&body) {
        Ok(r) => Err(from_frankenstein(frankenstein::Error::Api(r))),
        Err(_) => Err(ApiError::Transport(format!("HTTP {status}"))),
    }
}
