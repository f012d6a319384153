//! Socket Mode: the app-level token opens a websocket
//! (`apps.connections.open`), Slack pushes envelopes, each is acknowledged
//! with its `envelope_id` once the bridge has taken it. Slack refreshes
//! connections about hourly with a `disconnect` message: the next connection
//! is opened first and the old one closed only once the new one said hello
//! (make before break), so no envelope falls into the gap. Failures
//! reconnect with full-jitter backoff; a dead token stops and is reported.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::api::{SlackError, WebApi};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connection being opened while the current one still serves.
type Opening = Pin<Box<dyn Future<Output = Result<Socket, SlackError>> + Send>>;

/// One envelope's payload for the handler, which answers whether to
/// acknowledge it (`false`: Slack will send it again).
pub type Handler =
    Arc<dyn Fn(Envelope) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    pub envelope_id: String,
    /// `events_api`, `slash_commands`, `interactive`.
    pub kind: String,
    pub payload: Value,
    pub retry_attempt: u64,
}

/// Why the loop stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    Shutdown,
    /// The app token was refused (`invalid_auth`, `token_revoked`…).
    TokenRefused(String),
}

async fn open(api: &WebApi, app_token: &str) -> Result<Socket, SlackError> {
    let answer = api
        .call("apps.connections.open", app_token, json!({}))
        .await?;
    let url = answer["url"]
        .as_str()
        .ok_or_else(|| SlackError::Decode("no url".to_owned()))?;
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| SlackError::Transport(e.to_string()))?;
    // The first message is `hello`; nothing is delivered before it.
    let hello = tokio::time::timeout(Duration::from_secs(30), socket.next())
        .await
        .map_err(|_| SlackError::Transport("no hello".to_owned()))?;
    match hello {
        Some(Ok(Message::Text(text))) => {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if v["type"] == "hello" {
                Ok(socket)
            } else {
                Err(SlackError::Decode(format!(
                    "expected hello, got {}",
                    v["type"]
                )))
            }
        }
        other => Err(SlackError::Transport(format!("no hello: {other:?}"))),
    }
}

fn backoff(failures: u32) -> Duration {
    let cap = Duration::from_millis(500).saturating_mul(1 << failures.min(7));
    cap.min(Duration::from_secs(60))
        .mul_f64(rand::random::<f64>())
}

/// What one message on a socket asks for.
enum Next {
    Continue,
    /// Slack will close this connection soon: open the next one.
    Refresh,
    Closed,
}

async fn on_message(socket: &mut Socket, message: Message, handler: &Handler) -> Next {
    let text = match message {
        Message::Text(t) => t.to_string(),
        Message::Close(_) => return Next::Closed,
        _ => return Next::Continue,
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return Next::Continue;
    };
    match v["type"].as_str() {
        Some("disconnect") => {
            tracing::debug!(
                reason = v["reason"].as_str().unwrap_or(""),
                "Slack asks to reconnect"
            );
            Next::Refresh
        }
        Some("hello") => Next::Continue,
        Some(kind) => {
            let Some(id) = v["envelope_id"].as_str() else {
                return Next::Continue;
            };
            let envelope = Envelope {
                envelope_id: id.to_owned(),
                kind: kind.to_owned(),
                payload: v["payload"].clone(),
                retry_attempt: v["retry_attempt"].as_u64().unwrap_or(0),
            };
            if handler(envelope).await {
                let ack = json!({"envelope_id": id}).to_string();
                if socket.send(Message::Text(ack.into())).await.is_err() {
                    return Next::Closed;
                }
            }
            Next::Continue
        }
        None => Next::Continue,
    }
}

/// Resolves when shutdown is signalled (holding no borrow across awaits).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Runs until shutdown or a refused token.
pub async fn run(
    api: Arc<WebApi>,
    app_token: String,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
) -> Stopped {
    let mut failures = 0u32;
    let mut current: Option<Socket> = None;
    loop {
        if *shutdown.borrow() {
            return Stopped::Shutdown;
        }
        let mut socket = match current.take() {
            Some(s) => s,
            None => match open(&api, &app_token).await {
                Ok(s) => {
                    failures = 0;
                    tracing::info!("Slack Socket Mode connected");
                    s
                }
                Err(e) if e.is_auth_failure() => return Stopped::TokenRefused(e.code().to_owned()),
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "Slack Socket Mode connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(failures)) => continue,
                        _ = stopping(&mut shutdown) => return Stopped::Shutdown,
                    }
                }
            },
        };
        // Serve this socket; on a refresh request, open the next one while
        // still serving this one.
        let mut next: Option<Opening> = None;
        loop {
            tokio::select! {
                _ = stopping(&mut shutdown) => {
                    let _ = socket.close(None).await;
                    return Stopped::Shutdown;
                }
                opened = async { next.as_mut().expect("guarded").await }, if next.is_some() => {
                    next = None;
                    match opened {
                        Ok(new) => {
                            let _ = socket.close(None).await;
                            current = Some(new);
                            break;
                        }
                        Err(e) if e.is_auth_failure() => return Stopped::TokenRefused(e.code().to_owned()),
                        // Keep serving the old one; Slack closes it when due.
                        Err(e) => tracing::warn!(error = %e, "opening the next Slack connection failed"),
                    }
                }
                message = socket.next() => {
                    let Some(Ok(message)) = message else { break };
                    match on_message(&mut socket, message, &handler).await {
                        Next::Continue => {}
                        Next::Refresh => {
                            if next.is_none() {
                                let api = api.clone();
                                let token = app_token.clone();
                                next = Some(Box::pin(async move { open(&api, &token).await }));
                            }
                        }
                        Next::Closed => break,
                    }
                }
            }
        }
    }
}
