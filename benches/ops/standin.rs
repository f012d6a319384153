//! An acknowledge-only homeserver stand-in: every client-server call the
//! daemon makes gets a plausible 200 at once, so a benchmark measures the
//! daemon's own cost. It keeps no state beyond counters, except that it
//! answers the appservice ping like a homeserver does: by calling the
//! daemon's `POST /_matrix/app/v1/ping` and recording when that answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub struct StandIn {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// Where the daemon's appservice API listens, and the token it expects.
    appservice: Mutex<Option<(String, String)>>,
    next_id: AtomicU64,
    counts: Mutex<BTreeMap<String, u64>>,
    /// When the daemon answered the ping the stand-in made for it.
    pings_answered: Mutex<Vec<Instant>>,
    http: reqwest::Client,
}

impl StandIn {
    /// Listens on 127.0.0.1 (a port the OS picks).
    pub async fn start() -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the stand-in");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let shared = Arc::new(Shared {
            appservice: Mutex::new(None),
            next_id: AtomicU64::new(0),
            counts: Mutex::new(BTreeMap::new()),
            pings_answered: Mutex::new(Vec::new()),
            http: reqwest::Client::new(),
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn { url, shared, task }
    }

    /// The daemon's appservice base URL and `hs_token`, for the ping.
    pub fn set_appservice(&self, url: &str, hs_token: &str) {
        *self.shared.appservice.lock().unwrap() = Some((url.to_owned(), hs_token.to_owned()));
    }

    /// Requests received, by kind (`PUT send`, `POST register`, ...).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.shared.counts.lock().unwrap().clone()
    }

    pub fn reset_counts(&self) {
        self.shared.counts.lock().unwrap().clear();
    }

    /// When the daemon first answered the ping made on its behalf.
    pub fn first_ping_answered(&self) -> Option<Instant> {
        self.shared.pings_answered.lock().unwrap().first().copied()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The kind of a client-server path: its fixed words, ids left out.
fn kind(method: &Method, path: &str) -> String {
    let words: Vec<&str> = path
        .split('/')
        .filter(|s| {
            !s.is_empty()
                && !s.starts_with('%')
                && !s.starts_with('!')
                && !s.starts_with('@')
                && !s.starts_with('$')
                && !s.starts_with('#')
        })
        .skip(3)
        .collect();
    let word = match words.as_slice() {
        ["rooms", _, action, ..] => (*action).to_owned(),
        [first, ..] => (*first).to_owned(),
        [] => path.to_owned(),
    };
    format!("{method} {word}")
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri.path();
    *shared
        .counts
        .lock()
        .unwrap()
        .entry(kind(&method, path))
        .or_default() += 1;
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let ok = |v: Value| (StatusCode::OK, axum::Json(v)).into_response();
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"errcode": "M_NOT_FOUND", "error": "Not found"})),
        )
            .into_response()
    };
    let segments: Vec<&str> = path.split('/').collect();
    let has = |word: &str| segments.contains(&word);
    match method {
        Method::GET if path == "/_matrix/client/versions" => ok(json!({
            "versions": ["r0.6.1", "v1.1", "v1.5", "v1.11", "v1.12"],
            "unstable_features": {}
        })),
        Method::GET if has("capabilities") => ok(json!({
            "capabilities": {"m.room_versions": {"default": "12", "available": {"12": "stable"}}}
        })),
        Method::POST if path.ends_with("/ping") && has("appservice") => ping(&shared, &body).await,
        Method::POST if has("register") => {
            let name = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["username"].as_str().map(str::to_owned))
                .unwrap_or_default();
            ok(json!({"user_id": format!("@{name}:localhost")}))
        }
        Method::POST if has("createRoom") => ok(json!({"room_id": format!("!standin{n}")})),
        Method::POST if has("join") => {
            let target = segments.last().copied().unwrap_or_default();
            let target = percent_encoding::percent_decode_str(target).decode_utf8_lossy();
            let room = if target.starts_with('!') {
                target.into_owned()
            } else {
                format!("!standin{n}")
            };
            ok(json!({"room_id": room}))
        }
        Method::PUT if has("send") || has("state") || has("redact") => {
            ok(json!({"event_id": format!("$standin{n}")}))
        }
        Method::GET if has("state") && has("m.room.member") => {
            ok(json!({"membership": "join", "displayname": "Alice"}))
        }
        Method::GET if has("state") || has("event") || has("directory") => not_found(),
        Method::GET if has("joined_members") => ok(json!({"joined": {}})),
        Method::GET if has("joined_rooms") => ok(json!({"joined_rooms": []})),
        _ => ok(json!({})),
    }
}

/// What a homeserver does on `POST /appservice/{id}/ping`: call the
/// appservice's own ping endpoint, then report the round trip.
async fn ping(shared: &Shared, body: &[u8]) -> Response {
    let Some((url, token)) = shared.appservice.lock().unwrap().clone() else {
        return (StatusCode::OK, axum::Json(json!({"duration_ms": 0}))).into_response();
    };
    let txn = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["transaction_id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let began = Instant::now();
    let answered = shared
        .http
        .post(format!("{url}/_matrix/app/v1/ping"))
        .bearer_auth(token)
        .json(&json!({"transaction_id": txn}))
        .send()
        .await;
    match answered {
        Ok(r) if r.status().is_success() => {
            shared.pings_answered.lock().unwrap().push(Instant::now());
            let ms = began.elapsed().as_millis() as u64;
            (StatusCode::OK, axum::Json(json!({"duration_ms": ms}))).into_response()
        }
        _ => (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({"errcode": "M_CONNECTION_FAILED", "error": "ping failed"})),
        )
            .into_response(),
    }
}
