//! Webhook mode: Telegram POSTs each update to `bridges.telegram.webhook.url`
//! (a reverse proxy in front of `webhook.listen`). An update is answered 200
//! only once it reached Matrix; otherwise 503, and Telegram sends it again.
//! `max_connections: 1` keeps updates in order.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use passerelle_api::BridgeError;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::task::JoinHandle;

use crate::module::{ALLOWED_UPDATES, Inner};

const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

pub(crate) async fn start(inner: Arc<Inner>) -> Result<JoinHandle<()>, BridgeError> {
    let hook =
        inner.config.webhook.clone().ok_or_else(|| {
            BridgeError::permanent("webhook mode without bridges.telegram.webhook")
        })?;
    let listener = tokio::net::TcpListener::bind(hook.listen)
        .await
        .map_err(|e| BridgeError::permanent(format!("cannot listen on {}: {e}", hook.listen)))?;
    inner
        .api
        .call::<bool>(
            "setWebhook",
            json!({
                "url": hook.url,
                "secret_token": hook.secret_token,
                "allowed_updates": ALLOWED_UPDATES,
                "max_connections": 1,
            }),
        )
        .await
        .map_err(|e| e.into_bridge("register the webhook"))?;
    tracing::info!(listen = %hook.listen, "Telegram webhook registered");
    let app = Router::new()
        .route("/", post(receive))
        .route("/{*path}", post(receive))
        .with_state(inner.clone());
    let mut stop = inner.shutdown.subscribe();
    Ok(tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "Telegram webhook server failed");
        }
    }))
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let expected = inner
        .config
        .webhook
        .as_ref()
        .map(|h| h.secret_token.as_bytes())
        .unwrap_or_default();
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if expected.is_empty() || !bool::from(given.ct_eq(expected)) {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(update) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    match inner.process(update).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::warn!(error = %e, "webhook update not delivered; Telegram will retry");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
