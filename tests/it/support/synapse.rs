//! A real Synapse homeserver for integration tests.
//!
//! One Synapse runs per test process, started by the first test that asks for
//! it ([`Synapse::shared`]) and reused by every other test: tests therefore
//! create their own rooms, and share a user only knowingly (see
//! [`Synapse::register_user`]). Synapse is
//! started and configured by `scripts/synapse` (SQLite in a temporary
//! directory, client API on 127.0.0.1 only, rate limits relaxed) and killed by
//! a watchdog within a second or two after the test process exits, whatever
//! the cause of the exit.
//!
//! Only plain data lives in the process-wide state: each test runs on its own
//! tokio runtime, so HTTP clients are made per [`TestClient`].
//!
//! Environment: `PASSERELLE_SYNAPSE_PYTHON`, the Python that has Synapse
//! (default `.local/venv/bin/python`, installed by `scripts/install-deps`);
//! `PASSERELLE_KEEP_SYNAPSE=1` keeps its directory (config, `homeserver.log`)
//! after the tests, for a post-mortem; `PASSERELLE_SYNAPSE_LOG_LEVEL` (default
//! `WARNING`).

use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rand::distr::{Alphanumeric, SampleString as _};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{free_port, repo_root};

/// The `server_name` of the test homeserver: user ids are `@name:localhost`.
pub const SERVER_NAME: &str = "localhost";

/// How long [`TestClient::wait_for_event`] callers usually wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

const ADMIN_LOCALPART: &str = "passerelle-test-admin";

/// The running homeserver. Obtained from [`Synapse::shared`].
#[derive(Debug)]
pub struct Synapse {
    /// `http://127.0.0.1:<port>`: the client-server API (admin API included).
    pub base_url: String,
    pub port: u16,
    /// Always [`SERVER_NAME`].
    pub server_name: String,
    /// Synapse's directory: `homeserver.yaml`, `homeserver.log`,
    /// `registration.yaml`, `shared_secret`.
    pub dir: PathBuf,
    /// The registration shared secret (`/_synapse/admin/v1/register`).
    pub shared_secret: String,
    /// The appservice registration Synapse was started with.
    pub registration_yaml: String,
    admin_password: String,
    user_password_seed: String,
    admin_token: tokio::sync::OnceCell<String>,
}

/// The process-wide homeserver, or why it could not start (so that every
/// later test fails at once with the same message instead of retrying).
static SHARED: OnceLock<Result<Synapse, String>> = OnceLock::new();

impl Synapse {
    /// The homeserver of this test process, started on first use with
    /// `registration_yaml` as its only appservice registration (its `url:` may
    /// point at a listener the test binds later: Synapse only calls it when
    /// events arrive).
    ///
    /// Panics if Synapse is not installed or does not start, and if another
    /// test of the same process already started it with a different
    /// registration: all tests of a process must share one registration.
    pub async fn shared(registration_yaml: &str) -> &'static Synapse {
        let registration = registration_yaml.to_owned();
        // Starting blocks for seconds: keep it off the test's runtime, whose
        // other tasks (an appservice listener, say) may want to run.
        let started = tokio::task::spawn_blocking(move || {
            SHARED.get_or_init(|| Synapse::start(&registration))
        })
        .await;
        let hs = match started {
            Ok(Ok(hs)) => hs,
            Ok(Err(message)) => panic!("{message}"),
            Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
        };
        assert!(
            hs.registration_yaml == registration_yaml,
            "Synapse::shared was already called in this test process with another appservice \
             registration; all tests of one process share one Synapse, so they must pass the same \
             registration.\nfirst:\n{}\nnow:\n{registration_yaml}",
            hs.registration_yaml,
        );
        hs
    }

    fn start(registration_yaml: &str) -> Result<Synapse, String> {
        let python = synapse_python();
        if !python.exists() {
            return Err(format!(
                "Synapse is not installed: run `scripts/install-deps` (or `scripts/test`, which \
                 does it) ({} does not exist)",
                python.display()
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("passerelle-synapse-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory for Synapse: {e}"))?
            .keep();
        let registration_path = dir.join("registration.yaml");
        std::fs::write(&registration_path, registration_yaml)
            .map_err(|e| format!("writing {}: {e}", registration_path.display()))?;

        let began = Instant::now();
        let mut attempt = 1;
        let port = loop {
            let port = free_port();
            let started = run_script(
                &python,
                &[
                    "start".as_ref(),
                    dir.as_os_str(),
                    SERVER_NAME.as_ref(),
                    port.to_string().as_ref(),
                    registration_path.as_os_str(),
                ],
            );
            match started {
                Ok(()) => break port,
                // Another process took the free port before Synapse bound it.
                Err(e) if attempt < 3 && e.contains("Address already in use") => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        let startup = began.elapsed();

        let pid = read_trimmed(&dir.join("synapse.pid"))?;
        spawn_watchdog(&pid, &dir)?;

        let admin_password = random_token(24);
        run_script(
            &python,
            &[
                "register".as_ref(),
                dir.as_os_str(),
                port.to_string().as_ref(),
                ADMIN_LOCALPART.as_ref(),
                admin_password.as_ref(),
                "--admin".as_ref(),
            ],
        )?;
        let shared_secret = read_trimmed(&dir.join("shared_secret"))?;

        eprintln!(
            "[support::synapse] Synapse on 127.0.0.1:{port} started in {:.1} s (files in {})",
            startup.as_secs_f64(),
            dir.display()
        );
        Ok(Synapse {
            base_url: format!("http://127.0.0.1:{port}"),
            port,
            server_name: SERVER_NAME.to_owned(),
            dir,
            shared_secret,
            registration_yaml: registration_yaml.to_owned(),
            admin_password,
            user_password_seed: random_token(16),
            admin_token: tokio::sync::OnceCell::new(),
        })
    }

    /// `@<localpart>:<server_name>`.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.server_name)
    }

    /// Synapse's log, for a test that wants to show it on failure.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("homeserver.log")
    }

    /// Logs in as the normal (not admin, not appservice) user
    /// `@<localpart>:localhost`, registering it on first use. Tests share the
    /// homeserver: a second `register_user("alice")` in the same process, by
    /// the same or another test, logs in to the same account again (a new
    /// device and access token), which suits fixed ids such as the ones a
    /// test config grants permissions to. For an account no other test
    /// touches, use [`Synapse::register_unique_user`].
    pub async fn register_user(&self, localpart: &str) -> TestClient {
        let user_id = self.user_id(localpart);
        // Stable per user within this process, so that an existing account
        // is logged in to without changing its password (which would log
        // out another test's client).
        let password = format!("{}-{localpart}", self.user_password_seed);
        let admin = self.admin().await;
        let path = format!("/_synapse/admin/v2/users/{}", enc(&user_id));
        let (status, answer) = admin.request(Method::GET, &path, None).await;
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                let body = json!({ "password": password, "admin": false, "logout_devices": false });
                let (status, answer) = admin.request(Method::PUT, &path, Some(body)).await;
                // Another test created the same user meanwhile, with the
                // same password: fine.
                let taken = answer["errcode"] == "M_USER_IN_USE";
                assert!(
                    status.is_success() || taken,
                    "PUT {path} failed: {status} {answer}"
                );
            }
            status => panic!("GET {path} failed: {status} {answer}"),
        }
        TestClient::login(&self.base_url, localpart, &password).await
    }

    /// Registers a new normal user, `@<prefix>_<6 random characters>:localhost`,
    /// that no other test knows. Use [`TestClient::user_id`] to name it.
    pub async fn register_unique_user(&self, prefix: &str) -> TestClient {
        let localpart = format!("{prefix}_{}", random_token(6).to_lowercase());
        self.register_user(&localpart).await
    }

    /// A client for the homeserver's admin user (for `/_synapse/admin` calls).
    pub async fn admin(&self) -> TestClient {
        let token = self
            .admin_token
            .get_or_init(|| async {
                TestClient::login(&self.base_url, ADMIN_LOCALPART, &self.admin_password)
                    .await
                    .access_token
            })
            .await;
        TestClient::new(
            &self.base_url,
            self.user_id(ADMIN_LOCALPART),
            self.admin_password.clone(),
            token.clone(),
        )
    }

    /// A client acting for an appservice: `as_token` from the registration,
    /// `user_id` a user of its namespace (or its sender), asserted with
    /// `?user_id=` on every request.
    pub fn appservice_client(&self, as_token: &str, user_id: &str) -> TestClient {
        let mut client = TestClient::new(
            &self.base_url,
            user_id.to_owned(),
            String::new(),
            as_token.to_owned(),
        );
        client.assert_identity = true;
        client
    }
}

/// A Matrix user logged in to the test homeserver, with one helper per
/// client-server API call the tests need. Every helper panics with the
/// request and the server's answer when the call fails; use
/// [`TestClient::request`] to look at a failure instead.
///
/// Bound to the tokio runtime it was made on: make one per test.
#[derive(Debug)]
pub struct TestClient {
    http: reqwest::Client,
    base_url: String,
    user_id: String,
    password: String,
    access_token: String,
    assert_identity: bool,
    next_txn: AtomicU64,
}

impl TestClient {
    fn new(base_url: &str, user_id: String, password: String, access_token: String) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building an HTTP client");
        TestClient {
            http,
            base_url: base_url.to_owned(),
            user_id,
            password,
            access_token,
            assert_identity: false,
            next_txn: AtomicU64::new(0),
        }
    }

    async fn login(base_url: &str, localpart: &str, password: &str) -> Self {
        let anonymous = TestClient::new(base_url, String::new(), String::new(), String::new());
        let (status, body) = anonymous
            .request(
                Method::POST,
                "/_matrix/client/v3/login",
                Some(json!({
                    "type": "m.login.password",
                    "identifier": { "type": "m.id.user", "user": localpart },
                    "password": password,
                    "initial_device_display_name": "passerelle tests",
                })),
            )
            .await;
        assert!(
            status.is_success(),
            "logging in as {localpart}: {status} {body}"
        );
        let field = |name: &str| {
            body[name]
                .as_str()
                .unwrap_or_else(|| panic!("login answer without {name}: {body}"))
                .to_owned()
        };
        TestClient::new(
            base_url,
            field("user_id"),
            password.to_owned(),
            field("access_token"),
        )
    }

    /// The full Matrix user id, e.g. `@alice_x1y2z3:localhost`.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// Any call: `path` starts with `/_matrix/` or `/_synapse/` (ids in it
    /// percent-encoded, see [`enc`]). Returns the status and the JSON body
    /// (`Null` when the body is empty or not JSON); never panics on a status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut url = format!("{}{path}", self.base_url);
        if self.assert_identity {
            let sep = if path.contains('?') { '&' } else { '?' };
            write!(url, "{sep}user_id={}", enc(&self.user_id)).expect("writing to a String");
        }
        let mut builder = self.http.request(method.clone(), &url);
        if !self.access_token.is_empty() {
            builder = builder.bearer_auth(&self.access_token);
        }
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let response = builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} as {}: {e}", self.user_id));
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_else(|e| {
            panic!("{method} {path} as {}: reading the body: {e}", self.user_id)
        });
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Like [`TestClient::request`], but panics unless the status is 2xx.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.request(method.clone(), path, body).await;
        assert!(
            status.is_success(),
            "{method} {path} as {} failed: {status} {answer}",
            self.user_id
        );
        answer
    }

    fn txn_id(&self) -> String {
        let n = self.next_txn.fetch_add(1, Ordering::Relaxed);
        format!("t{}.{n}", random_token(8))
    }

    /// `POST /createRoom` with `body` as is (`json!({})` for a private room
    /// with defaults; `"invite"`, `"preset"`, `"room_alias_name"`,
    /// `"initial_state"`... as the spec says). Returns the room id.
    pub async fn create_room(&self, body: Value) -> String {
        let answer = self
            .call(Method::POST, "/_matrix/client/v3/createRoom", Some(body))
            .await;
        string_field(&answer, "room_id")
    }

    /// Joins a room by id or alias (`#alias:localhost`). Returns the room id.
    pub async fn join(&self, room_or_alias: &str) -> String {
        let path = format!("/_matrix/client/v3/join/{}", enc(room_or_alias));
        let answer = self.call(Method::POST, &path, Some(json!({}))).await;
        string_field(&answer, "room_id")
    }

    pub async fn leave(&self, room: &str) {
        let path = format!("/_matrix/client/v3/rooms/{}/leave", enc(room));
        self.call(Method::POST, &path, Some(json!({}))).await;
    }

    pub async fn invite(&self, room: &str, user_id: &str) {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", enc(room));
        self.call(Method::POST, &path, Some(json!({ "user_id": user_id })))
            .await;
    }

    /// Sends an `m.text` message. Returns its event id.
    pub async fn send_text(&self, room: &str, body: &str) -> String {
        self.send_event(
            room,
            "m.room.message",
            json!({ "msgtype": "m.text", "body": body }),
        )
        .await
    }

    /// Sends a message event of any type. Returns its event id.
    pub async fn send_event(&self, room: &str, event_type: &str, content: Value) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/{}",
            enc(room),
            enc(event_type),
            self.txn_id()
        );
        let answer = self.call(Method::PUT, &path, Some(content)).await;
        string_field(&answer, "event_id")
    }

    /// Sets a state event. Returns its event id.
    pub async fn set_state(
        &self,
        room: &str,
        event_type: &str,
        state_key: &str,
        content: Value,
    ) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room),
            enc(event_type),
            enc(state_key)
        );
        let answer = self.call(Method::PUT, &path, Some(content)).await;
        string_field(&answer, "event_id")
    }

    /// A room of this user's where the bridge bot `bot` is invited with power
    /// 100 (so it may link it and set state); returns once the bot joined.
    /// `body` adds to or overrides the `createRoom` body (a `null` removes a
    /// key: a `trusted_private_chat` makes the bot a creator, which room
    /// version 12 refuses to see in the power levels).
    pub async fn room_with_bot(&self, bot: &str, body: Value) -> String {
        let mut request = json!({
            "preset": "private_chat",
            "invite": [bot],
            "power_level_content_override": {"users": {bot: 100}},
        });
        for (k, v) in body.as_object().into_iter().flatten() {
            match v {
                Value::Null => drop(request.as_object_mut().expect("object").remove(k)),
                v => request[k] = v.clone(),
            }
        }
        let room = self.create_room(request).await;
        self.wait_joined(&room, bot).await;
        room
    }

    /// Waits until `user_id` is a member of `room` as this client sees it.
    pub async fn wait_joined(&self, room: &str, user_id: &str) -> Value {
        self.wait_for_event(
            room,
            |e| {
                e["type"] == "m.room.member"
                    && e["state_key"] == user_id
                    && e["content"]["membership"] == "join"
            },
            DEFAULT_TIMEOUT,
        )
        .await
    }

    /// Sends `!passerelle <line>` in `room` and returns the bridge bot's
    /// reply (the notice that replies to it).
    pub async fn command(&self, room: &str, line: &str) -> String {
        let sent = self.send_text(room, &format!("!passerelle {line}")).await;
        let reply = self
            .wait_for_event(
                room,
                |e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == sent.as_str(),
                DEFAULT_TIMEOUT,
            )
            .await;
        reply["content"]["body"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A sync token for [`TestClient::wait_invite`]: take it before what
    /// should invite. (Synapse caches an initial sync's answer for minutes,
    /// so only incremental syncs see a new invitation in time.)
    pub async fn sync_token(&self) -> String {
        let answer = self
            .call(Method::GET, "/_matrix/client/v3/sync?timeout=0", None)
            .await;
        string_field(&answer, "next_batch")
    }

    /// The first room this user is invited to after `since`.
    pub async fn wait_invite(&self, since: &str) -> String {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        let mut since = since.to_owned();
        loop {
            let path = format!("/_matrix/client/v3/sync?timeout=1000&since={since}");
            let answer = self.call(Method::GET, &path, None).await;
            if let Some((room, _)) = answer["rooms"]["invite"]
                .as_object()
                .and_then(|m| m.iter().next())
            {
                return room.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{} got no invitation within {DEFAULT_TIMEOUT:?}",
                self.user_id
            );
            since = string_field(&answer, "next_batch");
        }
    }

    /// Uploads a file; returns its `mxc://` URI.
    pub async fn upload(&self, bytes: Vec<u8>, mime: &str) -> String {
        let answer: Value = self
            .http
            .post(format!(
                "{}/_matrix/media/v3/upload?filename=file",
                self.base_url
            ))
            .bearer_auth(&self.access_token)
            .header("content-type", mime)
            .body(bytes)
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload as {}: {e}", self.user_id))
            .json()
            .await
            .unwrap_or_else(|e| panic!("upload as {}: {e}", self.user_id));
        string_field(&answer, "content_uri")
    }

    /// Downloads a file by its `mxc://` URI (authenticated media).
    pub async fn download(&self, mxc: &str) -> Vec<u8> {
        let path = mxc.strip_prefix("mxc://").expect("an mxc URI");
        let response = self
            .http
            .get(format!(
                "{}/_matrix/client/v1/media/download/{path}",
                self.base_url
            ))
            .bearer_auth(&self.access_token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("download {mxc}: {e}"));
        assert!(
            response.status().is_success(),
            "download {mxc}: {}",
            response.status()
        );
        response.bytes().await.expect("media bytes").to_vec()
    }

    /// Redacts an event. Returns the redaction's event id.
    pub async fn redact(&self, room: &str, event_id: &str) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{}",
            enc(room),
            enc(event_id),
            self.txn_id()
        );
        let answer = self.call(Method::PUT, &path, Some(json!({}))).await;
        string_field(&answer, "event_id")
    }

    /// The last 100 timeline events of the room (state events included), in
    /// chronological order: oldest first, newest last.
    pub async fn messages(&self, room: &str) -> Vec<Value> {
        match self.try_messages(room).await {
            Ok(events) => events,
            Err(error) => panic!("{error}"),
        }
    }

    async fn try_messages(&self, room: &str) -> Result<Vec<Value>, String> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
            enc(room)
        );
        let (status, answer) = self.request(Method::GET, &path, None).await;
        if !status.is_success() {
            return Err(format!(
                "GET {path} as {} failed: {status} {answer}",
                self.user_id
            ));
        }
        let mut events = match answer["chunk"].as_array() {
            Some(chunk) => chunk.clone(),
            None => return Err(format!("GET {path}: no chunk in {answer}")),
        };
        events.reverse();
        Ok(events)
    }

    /// Polls [`TestClient::messages`] until an event matches `predicate`, and
    /// returns it (the newest match). Panics after `timeout` (usually
    /// [`DEFAULT_TIMEOUT`]) listing the events it saw. Errors while polling
    /// (not joined yet, say) count as "nothing yet".
    pub async fn wait_for_event(
        &self,
        room: &str,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.try_messages(room).await;
            if let Ok(events) = &seen
                && let Some(found) = events.iter().rev().find(|event| predicate(event))
            {
                return found.clone();
            }
            if Instant::now() >= deadline {
                let report = match seen {
                    Ok(events) => describe_events(&events),
                    Err(error) => format!("the last poll failed: {error}"),
                };
                panic!(
                    "no matching event in room {room} as seen by {} within {timeout:?}; {report}",
                    self.user_id
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The content of a state event, or `None` if the room has none with
    /// this type and state key.
    pub async fn room_state(&self, room: &str, event_type: &str, state_key: &str) -> Option<Value> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room),
            enc(event_type),
            enc(state_key)
        );
        let (status, answer) = self.request(Method::GET, &path, None).await;
        match status {
            StatusCode::NOT_FOUND => None,
            status if status.is_success() => Some(answer),
            status => panic!("GET {path} as {} failed: {status} {answer}", self.user_id),
        }
    }

    /// The user ids of the room's joined members, sorted.
    pub async fn joined_members(&self, room: &str) -> Vec<String> {
        let path = format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room));
        let answer = self.call(Method::GET, &path, None).await;
        let mut members: Vec<String> = answer["joined"]
            .as_object()
            .unwrap_or_else(|| panic!("GET {path}: no `joined` object in {answer}"))
            .keys()
            .cloned()
            .collect();
        members.sort();
        members
    }
}

/// Percent-encodes one path segment (a room id, an alias, an event type...).
pub fn enc(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

fn string_field(answer: &Value, name: &str) -> String {
    answer[name]
        .as_str()
        .unwrap_or_else(|| panic!("no `{name}` in {answer}"))
        .to_owned()
}

/// One line per event, newest last, bodies cut short: for panic messages.
fn describe_events(events: &[Value]) -> String {
    let mut out = format!("it saw {} events (oldest first):", events.len());
    for event in events {
        let mut content = event["content"].to_string();
        if content.len() > 200 {
            let mut cut = 200;
            while !content.is_char_boundary(cut) {
                cut -= 1;
            }
            content.truncate(cut);
            content.push('…');
        }
        let state_key = match event.get("state_key").and_then(Value::as_str) {
            Some(key) => format!(" [{key}]"),
            None => String::new(),
        };
        write!(
            out,
            "\n  {} {}{state_key} from {}: {content}",
            event["event_id"].as_str().unwrap_or("?"),
            event["type"].as_str().unwrap_or("?"),
            event["sender"].as_str().unwrap_or("?"),
        )
        .expect("writing to a String");
    }
    out
}

fn random_token(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

fn synapse_python() -> PathBuf {
    match std::env::var_os("PASSERELLE_SYNAPSE_PYTHON") {
        Some(python) if !python.is_empty() => PathBuf::from(python),
        _ => repo_root().join(".local/venv/bin/python"),
    }
}

fn read_trimmed(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Runs `scripts/synapse <args>` and waits for it (it returns once Synapse
/// answers, leaving Synapse running).
fn run_script(python: &Path, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let script = repo_root().join("scripts/synapse");
    let output = Command::new("bash")
        .arg(&script)
        .args(args)
        .env("PASSERELLE_SYNAPSE_PYTHON", python)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "`scripts/synapse {}` failed ({}):\n{}{}",
        args.first()
            .map_or(String::new(), |a| a.to_string_lossy().into_owned()),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    ))
}

/// Starts a watchdog shell: once this test process is gone (finished,
/// panicked, killed), it stops Synapse and deletes its directory (kept when
/// `PASSERELLE_KEEP_SYNAPSE` is set). In its own process group, so that a
/// Ctrl-C meant for `cargo test` does not kill the watchdog first.
fn spawn_watchdog(synapse_pid: &str, dir: &Path) -> Result<(), String> {
    const SCRIPT: &str = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        kill "$2" 2>/dev/null
        i=0
        while kill -0 "$2" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
        kill -9 "$2" 2>/dev/null
        if [ "$4" = 1 ]; then rm -rf "$3"; fi
    "#;
    let remove_dir = std::env::var_os("PASSERELLE_KEEP_SYNAPSE").is_none_or(|v| v.is_empty());
    Command::new("sh")
        .args(["-c", SCRIPT, "passerelle-synapse-watchdog"])
        .arg(std::process::id().to_string())
        .arg(synapse_pid)
        .arg(dir)
        .arg(if remove_dir { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("starting the Synapse watchdog: {e}"))
}
