//! The Events API over HTTP (`mode: http`): Slack POSTs each event to
//! `/slack/<workspace>` on `bridges.slack.events_listen`, signed with the
//! app's signing secret. Requests older than five minutes or with a wrong
//! signature are refused (401); an event is answered 200 once handled, so
//! Slack's retries (`X-Slack-Retry-Num`) only come for real failures, and
//! those are dropped by event id when they come anyway.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use passerelle_api::BridgeError;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::task::JoinHandle;

use crate::config::EventMode;
use crate::module::Inner;

/// How far a request's timestamp may be from now (Slack's advice).
const MAX_SKEW_SECS: i64 = 300;

/// Whether `signature` (`v0=<hex>`) signs `body` sent at `timestamp`.
pub fn verify(secret: &str, timestamp: &str, body: &[u8], signature: &str, now: i64) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > MAX_SKEW_SECS {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let expected = format!("v0={expected}");
    bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

pub(crate) async fn start(inner: Arc<Inner>) -> Result<JoinHandle<()>, BridgeError> {
    let listen = inner
        .config
        .events_listen
        .ok_or_else(|| BridgeError::permanent("no bridges.slack.events_listen"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| BridgeError::permanent(format!("cannot listen on {listen}: {e}")))?;
    tracing::info!(%listen, "Slack Events API listening");
    let app = Router::new()
        .route("/slack/{workspace}", post(receive))
        .with_state(inner.clone());
    let mut stop = inner.shutdown.subscribe();
    Ok(tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "Slack Events API server failed");
        }
    }))
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(ws) = inner
        .workspaces
        .iter()
        .find(|w| w.name == workspace && w.config.mode == EventMode::Http)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if !verify(
        &ws.config.signing_secret,
        &header("x-slack-request-timestamp"),
        &body,
        &header("x-slack-signature"),
        now,
    ) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if payload["type"] == "url_verification" {
        let challenge = payload["challenge"].as_str().unwrap_or("").to_owned();
        return axum::Json(serde_json::json!({"challenge": challenge})).into_response();
    }
    if inner.handle_callback(&payload).await {
        StatusCode::OK.into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_from_slacks_documentation() {
        // The worked example of Slack's "Verifying requests" page.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let ts = "1531420618";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let good = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert!(verify(secret, ts, body, good, 1531420618 + 10));
        assert!(!verify(secret, ts, body, good, 1531420618 + 301), "too old");
        assert!(!verify(secret, ts, b"tampered", good, 1531420618));
        assert!(!verify("other", ts, body, good, 1531420618));
        assert!(!verify(secret, "soon", body, good, 1531420618));
    }
}
