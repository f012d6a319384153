//! The appservice API the homeserver calls (`/_matrix/app/v1`): transactions,
//! user and alias queries, ping, third-party lookups. Authentication is the
//! `hs_token`, compared in constant time.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::bridge::Bridge;

/// A Matrix error response: `{"errcode": …, "error": …}`.
pub fn matrix_error(status: StatusCode, errcode: &str, error: &str) -> Response {
    (
        status,
        axum::Json(json!({"errcode": errcode, "error": error})),
    )
        .into_response()
}

fn ok_empty() -> Response {
    (StatusCode::OK, axum::Json(json!({}))).into_response()
}

/// The router for the appservice listener; `/health` needs no token.
pub fn router(bridge: Arc<Bridge>) -> Router {
    let max_body = bridge.config.appservice.max_body_bytes;
    let api = Router::new()
        .route("/transactions/{txn_id}", put(put_transaction))
        .route("/users/{user_id}", get(query_user))
        .route("/rooms/{room_alias}", get(query_alias))
        .route("/ping", post(ping))
        .route("/thirdparty/protocol/{protocol}", get(thirdparty_protocol))
        .route("/thirdparty/location/{protocol}", get(thirdparty_location))
        .route("/thirdparty/user/{protocol}", get(thirdparty_user))
        .route("/thirdparty/location", get(thirdparty_reverse))
        .route("/thirdparty/user", get(thirdparty_reverse))
        .fallback(unknown_endpoint)
        .layer(middleware::from_fn_with_state(bridge.clone(), authenticate))
        .layer(DefaultBodyLimit::max(max_body));
    Router::new()
        .nest("/_matrix/app/v1", api)
        .route("/health", get(health))
        .route(crate::media::ROUTE, get(crate::media::serve))
        .fallback(unknown_endpoint)
        .with_state(bridge)
}

async fn unknown_endpoint() -> Response {
    matrix_error(
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
        "Unrecognized request",
    )
}

async fn health(State(bridge): State<Arc<Bridge>>) -> Response {
    let status = bridge.health().await;
    let code = if status.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(serde_json::to_value(status).unwrap_or_default()),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// Checks the `hs_token`: the `Authorization: Bearer` header, or the
/// deprecated `access_token` query parameter older homeservers send.
async fn authenticate(
    State(bridge): State<Arc<Bridge>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let header_token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = header_token.or(query.access_token.as_deref()) else {
        metrics::counter!("passerelle_appservice_auth_failures_total", "reason" => "missing")
            .increment(1);
        return matrix_error(
            StatusCode::UNAUTHORIZED,
            "M_UNAUTHORIZED",
            "Missing access token",
        );
    };
    let expected = bridge.registration.hs_token.as_bytes();
    if !bool::from(token.as_bytes().ct_eq(expected)) {
        metrics::counter!("passerelle_appservice_auth_failures_total", "reason" => "wrong")
            .increment(1);
        return matrix_error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "Invalid access token");
    }
    next.run(request).await
}

/// A transaction body. The encryption keys (MSC4203 to-device events,
/// MSC3202 device lists and key counts) are read under the unstable names
/// Synapse sends and their stable ones; other unknown keys are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Transaction {
    pub events: Vec<Value>,
    #[serde(default)]
    pub ephemeral: Vec<Value>,
    #[serde(rename = "de.sorunome.msc2409.ephemeral", default)]
    pub ephemeral_unstable: Vec<Value>,
    /// MSC4203 to-device events (Synapse: `de.sorunome.msc2409.to_device`).
    #[serde(rename = "de.sorunome.msc2409.to_device", default)]
    pub to_device: Vec<Value>,
    /// MSC3202: `{"changed": [user…], "left": [user…]}`.
    #[serde(rename = "org.matrix.msc3202.device_lists", default)]
    pub device_lists: Option<Value>,
    /// MSC3202: `{user: {device: {algorithm: count}}}`; Synapse sends it
    /// under both of these names.
    #[serde(rename = "org.matrix.msc3202.device_one_time_keys_count", default)]
    pub one_time_keys_count: Option<Value>,
    #[serde(rename = "org.matrix.msc3202.device_one_time_key_counts", default)]
    pub one_time_key_counts: Option<Value>,
    /// MSC3202: `{user: {device: [algorithm…]}}`.
    #[serde(
        rename = "org.matrix.msc3202.device_unused_fallback_key_types",
        default
    )]
    pub unused_fallback_key_types: Option<Value>,
}

impl Transaction {
    /// The encryption part, for [`crate::crypto::Crypto::receive`].
    pub fn take_crypto(&mut self) -> crate::crypto::CryptoPush {
        crate::crypto::CryptoPush {
            to_device: std::mem::take(&mut self.to_device),
            device_lists: self.device_lists.take(),
            one_time_key_counts: self
                .one_time_keys_count
                .take()
                .or(self.one_time_key_counts.take()),
            unused_fallback_keys: self.unused_fallback_key_types.take(),
        }
    }

    /// Parses a body: `M_NOT_JSON` when it is not JSON, `M_BAD_JSON` when it
    /// is JSON of the wrong shape.
    pub fn parse(body: &[u8]) -> Result<Self, (&'static str, String)> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ("M_NOT_JSON", format!("Body is not JSON: {e}")))?;
        let mut txn: Transaction = serde_json::from_value(value)
            .map_err(|e| ("M_BAD_JSON", format!("Malformed transaction: {e}")))?;
        if txn.events.iter().any(|e| !e.is_object()) {
            return Err((
                "M_BAD_JSON",
                "Malformed transaction: an event is not an object".to_owned(),
            ));
        }
        // A homeserver that knows both names sends the same events under
        // both keys: the unstable one counts only when the stable one is absent.
        let unstable = std::mem::take(&mut txn.ephemeral_unstable);
        if txn.ephemeral.is_empty() {
            txn.ephemeral = unstable;
        }
        Ok(txn)
    }
}

async fn put_transaction(
    State(bridge): State<Arc<Bridge>>,
    Path(txn_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            metrics::counter!("passerelle_transactions_rejected_total", "reason" => "too_large")
                .increment(1);
            return matrix_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "M_TOO_LARGE",
                "Transaction body too large",
            );
        }
        Err(rejection) => {
            return matrix_error(
                StatusCode::BAD_REQUEST,
                "M_BAD_JSON",
                &rejection.body_text(),
            );
        }
    };
    let txn = match Transaction::parse(&body) {
        Ok(txn) => txn,
        Err((errcode, message)) => {
            metrics::counter!("passerelle_transactions_rejected_total", "reason" => errcode)
                .increment(1);
            return matrix_error(StatusCode::BAD_REQUEST, errcode, &message);
        }
    };
    // Detached: if the homeserver gives up on the request, the handling
    // still completes instead of stopping halfway.
    let task_txn_id = txn_id.clone();
    let handled =
        tokio::spawn(async move { bridge.handle_transaction(&task_txn_id, txn).await }).await;
    match handled.unwrap_or_else(|e| Err(anyhow::anyhow!("transaction task failed: {e}"))) {
        Ok(()) => ok_empty(),
        Err(e) => {
            // Not acknowledged: the homeserver retries the same transaction.
            tracing::error!(txn_id = %txn_id, error = %e, "transaction not handled; homeserver will retry");
            matrix_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                "Temporary failure, retry later",
            )
        }
    }
}

async fn query_user(State(bridge): State<Arc<Bridge>>, Path(user_id): Path<String>) -> Response {
    match bridge.query_user(&user_id).await {
        Ok(true) => ok_empty(),
        Ok(false) => matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "No such user"),
        Err(e) => {
            tracing::warn!(user_id = %user_id, error = %e, "user query failed");
            matrix_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                "User query failed",
            )
        }
    }
}

async fn query_alias(State(bridge): State<Arc<Bridge>>, Path(alias): Path<String>) -> Response {
    match bridge.query_alias(&alias).await {
        Ok(true) => ok_empty(),
        Ok(false) => matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "No such room alias"),
        Err(e) => {
            tracing::warn!(alias = %alias, error = %e, "alias query failed");
            matrix_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                "Room alias query failed",
            )
        }
    }
}

async fn ping(body: Bytes) -> Response {
    let txn = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("transaction_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    tracing::info!(
        transaction_id = txn.as_deref().unwrap_or("-"),
        "homeserver ping received"
    );
    ok_empty()
}

async fn thirdparty_protocol(
    State(bridge): State<Arc<Bridge>>,
    Path(protocol): Path<String>,
) -> Response {
    match bridge.network(&protocol) {
        Some(network) => {
            (StatusCode::OK, axum::Json(network.thirdparty_protocol())).into_response()
        }
        None => matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "Unknown protocol"),
    }
}

async fn thirdparty_location(
    State(bridge): State<Arc<Bridge>>,
    Path(protocol): Path<String>,
    Query(fields): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(network) = bridge.network(&protocol) else {
        return matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "Unknown protocol");
    };
    let found: Vec<Value> = network
        .thirdparty_locations(&fields)
        .into_iter()
        .map(|(alias, fields)| {
            json!({"alias": format!("#{alias}:{}", bridge.domain()), "protocol": protocol, "fields": fields})
        })
        .collect();
    (StatusCode::OK, axum::Json(json!(found))).into_response()
}

async fn thirdparty_user(
    State(bridge): State<Arc<Bridge>>,
    Path(protocol): Path<String>,
    Query(fields): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(network) = bridge.network(&protocol) else {
        return matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "Unknown protocol");
    };
    let found: Vec<Value> = network
        .thirdparty_users(&fields)
        .into_iter()
        .map(|(user, fields)| {
            let userid = crate::mxid::user_id(&network.ghost_localpart(&user), bridge.domain());
            json!({"userid": userid, "protocol": protocol, "fields": fields})
        })
        .collect();
    (StatusCode::OK, axum::Json(json!(found))).into_response()
}

/// Reverse lookups (by alias or user id) across our networks.
async fn thirdparty_reverse() -> Response {
    (StatusCode::OK, axum::Json(json!([]))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_parsing_errors() {
        assert_eq!(Transaction::parse(b"not json").unwrap_err().0, "M_NOT_JSON");
        assert_eq!(Transaction::parse(b"{}").unwrap_err().0, "M_BAD_JSON");
        assert_eq!(
            Transaction::parse(br#"{"events": 3}"#).unwrap_err().0,
            "M_BAD_JSON"
        );
        assert_eq!(
            Transaction::parse(br#"{"events": [1]}"#).unwrap_err().0,
            "M_BAD_JSON"
        );
    }

    #[test]
    fn ephemeral_from_both_keys() {
        let body = br#"{"events": [], "ephemeral": [{"type": "m.typing"}],
            "de.sorunome.msc2409.ephemeral": [{"type": "m.receipt"}]}"#;
        let txn = Transaction::parse(body).unwrap();
        let types: Vec<_> = txn
            .ephemeral
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["m.typing"], "the stable key wins");
        let only_unstable =
            br#"{"events": [], "de.sorunome.msc2409.ephemeral": [{"type": "m.receipt"}]}"#;
        let txn = Transaction::parse(only_unstable).unwrap();
        assert_eq!(txn.ephemeral.len(), 1);
    }
}
