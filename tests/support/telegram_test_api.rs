//! A fake Telegram Bot API for integration tests: the npm package
//! `telegram-test-api` (pinned in `scripts/telegram-test-api.d/`), one server
//! per [`TelegramTestApi`], on 127.0.0.1 only, killed when it is dropped.
//!
//! The bridge talks to it as to the real Bot API
//! (`bridges.telegram.api_url` = [`TelegramTestApi::api_url`]); the test plays
//! the Telegram users through the package's own client routes
//! ([`TelegramTestApi::user_sends`]) and reads what the bot did from the
//! package's storage ([`TelegramTestApi::bot_messages`]). What the fake does
//! and does not do, and how it differs from the real Bot API:
//! `docs/fakes/telegram-test-api.md`. In short: users can only send new
//! messages (no user edits, deletes, reactions or media); the bot's
//! `editMessageText` shows as changed text, its `deleteMessage` as a message
//! gone from the storage.
//!
//! [`TelegramTestApi::start`] runs the package behind the launcher's
//! compatibility layer (Bot API answer shapes, getUpdates
//! offset/limit/timeout, webhook secret header);
//! [`TelegramTestApi::start_raw`] runs the package as published.
//!
//! Include it with
//! `#[path = "<relative path to>/tests/support/telegram_test_api.rs"] mod telegram_test_api;`.
//! Needs `tokio`, `reqwest` (feature `json`) and `serde_json`.
//!
//! Environment: `PASSERELLE_NODE`, `PASSERELLE_NPM` (default: from `PATH`);
//! `PASSERELLE_KEEP_TELEGRAM_TEST_API=1` keeps the server's log file after the
//! test (it is always kept when the test panics);
//! `PASSERELLE_TELEGRAM_TEST_API_DEBUG=1` logs every request into it.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// How long [`TelegramTestApi::wait_for_bot_messages`] callers usually wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One running fake Bot API server (a `node` child process).
#[derive(Debug)]
pub struct TelegramTestApi {
    child: Child,
    port: u16,
    raw: bool,
    log_path: PathBuf,
    http: reqwest::Client,
}

/// The outcome of `scripts/telegram-test-api install`, once per test process.
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

impl TelegramTestApi {
    /// Installs the package if needed (`scripts/telegram-test-api install`,
    /// into `.local/telegram-test-api`), starts it on a free port of
    /// 127.0.0.1 with the compatibility layer, and waits until it answers.
    ///
    /// Panics, saying how to install them, when node or npm is missing.
    pub async fn start() -> TelegramTestApi {
        Self::start_with(false).await
    }

    /// Like [`TelegramTestApi::start`], with the package's behaviour
    /// unchanged (`--raw`): `editMessageText`, `deleteMessage`, `getMe`,
    /// `setWebhook` then answer in shapes typed clients (frankenstein)
    /// reject, and getUpdates ignores offset, limit and timeout.
    pub async fn start_raw() -> TelegramTestApi {
        Self::start_with(true).await
    }

    async fn start_with(raw: bool) -> TelegramTestApi {
        let installed = tokio::task::spawn_blocking(|| INSTALLED.get_or_init(install).clone())
            .await
            .expect("the install task panicked");
        if let Err(message) = installed {
            panic!("{message}");
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building an HTTP client");
        let mut attempt = 1;
        loop {
            let port = free_port();
            match launch(port, raw, &http).await {
                Ok((child, log_path)) => {
                    return TelegramTestApi {
                        child,
                        port,
                        raw,
                        log_path,
                        http,
                    };
                }
                // Another process took the free port before node bound it.
                Err(e) if attempt < 3 && e.contains("Address already in use") => attempt += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// `http://127.0.0.1:<port>`: what the bridge uses as
    /// `bridges.telegram.api_url` (methods are `{api_url}/bot{token}/{method}`).
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `{api_url}/bot{token}`, what frankenstein's `Bot::new_url` takes.
    pub fn bot_url(&self, bot_token: &str) -> String {
        format!("{}/bot{bot_token}", self.api_url())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this server runs without the compatibility layer.
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// The server's stdout and stderr (requests too, with
    /// `PASSERELLE_TELEGRAM_TEST_API_DEBUG=1`).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The Telegram user `user_id` sends `text` to the bot in chat `chat_id`:
    /// a private chat when `chat_id > 0` (normally `chat_id == user_id`), a
    /// basic group when negative, a supergroup from -10^12 down (`-100…`).
    /// A leading `/command` gets its `bot_command` entity, as Telegram does.
    ///
    /// Returns the update as the bot receives it, `{"update_id": …,
    /// "message": {…, "message_id": …}}`. The package puts a `botToken` field
    /// of its own into every user message, which bots ignore.
    pub async fn user_sends(
        &self,
        bot_token: &str,
        chat_id: i64,
        user_id: i64,
        text: &str,
    ) -> Value {
        let mut message = json!({
            "from": user_json(user_id),
            "chat": chat_json(chat_id, user_id),
            "date": unix_now(),
            "text": text,
        });
        if let Some(len) = command_len(text) {
            message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
        }
        self.user_sends_message(bot_token, message).await
    }

    /// The user side, with a message written by the test: any fields
    /// (`chat`, `from`, `text`, `entities`, `reply_to_message`, …) reach the
    /// bot as they are, except `message_id`, which the fake assigns. `date`
    /// defaults to now. Returns the update as the bot receives it.
    ///
    /// Without the compatibility layer and with a webhook set, the package
    /// does not tell the ids: the result is then `{"message": …}` alone.
    pub async fn user_sends_message(&self, bot_token: &str, message: Value) -> Value {
        let Value::Object(mut body) = message else {
            panic!("user_sends_message: the message must be a JSON object, not {message}");
        };
        body.entry("date").or_insert_with(|| json!(unix_now()));
        body.insert("botToken".to_owned(), json!(bot_token));
        let body = Value::Object(body);
        let answer = self.client_post("/sendMessage", &body).await;
        if !self.raw {
            return answer["result"].clone();
        }
        // The package answers `result: null`: find the update in its storage
        // (the newest one equal to what was sent).
        let found = self
            .history(bot_token)
            .await
            .into_iter()
            .filter(|entry| entry.get("message") == Some(&body))
            .max_by_key(|entry| entry["updateId"].as_i64());
        match found {
            Some(entry) => format_update(&entry),
            None => json!({ "message": body }),
        }
    }

    /// What the bot sent to chat `chat_id` and did not delete, oldest first:
    /// for each message, the parameters of its `sendMessage` call (`chat_id`,
    /// `text`, `parse_mode`, `entities`, `reply_markup`, `reply_parameters`,
    /// … as the bot sent them), merged with those of its later
    /// `editMessageText`/`editMessageReplyMarkup` calls (so `text` is the
    /// latest), plus `message_id`, `date` (Unix seconds of the send) and
    /// `edited` (true once an edit was applied; with the compatibility layer
    /// also `edit_date`). A deleted message is simply absent.
    pub async fn bot_messages(&self, bot_token: &str, chat_id: i64) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .history(bot_token)
            .await
            .iter()
            .filter(|entry| is_bot_entry(entry) && same_chat(&entry["message"]["chat_id"], chat_id))
            .map(bot_message_view)
            .collect();
        out.sort_by_key(|m| m["message_id"].as_i64());
        out
    }

    /// One message of [`TelegramTestApi::bot_messages`]: `None` when the bot
    /// deleted it (or never sent it).
    pub async fn bot_message(
        &self,
        bot_token: &str,
        chat_id: i64,
        message_id: i64,
    ) -> Option<Value> {
        self.bot_messages(bot_token, chat_id)
            .await
            .into_iter()
            .find(|m| m["message_id"].as_i64() == Some(message_id))
    }

    /// Polls [`TelegramTestApi::bot_messages`] until `done` accepts them;
    /// panics after `timeout` with what was there last.
    pub async fn wait_for_bot_messages(
        &self,
        bot_token: &str,
        chat_id: i64,
        timeout: Duration,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.bot_messages(bot_token, chat_id).await;
            if done(&messages) {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "telegram-test-api: the bot's messages in chat {chat_id} did not reach the \
                 expected state within {timeout:?}; last: {}",
                serde_json::to_string_pretty(&messages).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The users' messages in chat `chat_id` still stored, as the bot receives
    /// them (`{"update_id", "message"}`), oldest first: the bot's
    /// `deleteMessage` on one removes it from here. With a webhook set the
    /// package stores none.
    pub async fn user_messages(&self, bot_token: &str, chat_id: i64) -> Vec<Value> {
        self.history(bot_token)
            .await
            .iter()
            .filter(|entry| {
                !is_bot_entry(entry)
                    && entry.get("message").is_some()
                    && same_chat(&entry["message"]["chat"]["id"], chat_id)
            })
            .map(format_update)
            .collect()
    }

    /// The package's raw storage for one bot (`POST /getUpdatesHistory`):
    /// `{time (ms), botToken, updateId, messageId, isRead, message}` entries,
    /// user and bot messages mixed, by time.
    pub async fn history(&self, bot_token: &str) -> Vec<Value> {
        let answer = self
            .client_post("/getUpdatesHistory", &json!({ "token": bot_token }))
            .await;
        match &answer["result"] {
            Value::Array(entries) => entries.clone(),
            other => panic!("telegram-test-api: /getUpdatesHistory answered {other}"),
        }
    }

    async fn client_post(&self, path: &str, body: &Value) -> Value {
        let url = format!("{}{path}", self.api_url());
        let response = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("telegram-test-api: POST {path}: {e}"));
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("telegram-test-api: POST {path}: {status}, not JSON: {e}"));
        assert!(
            status.is_success() && answer["ok"] == json!(true),
            "telegram-test-api: POST {path} {body} answered {status} {answer}"
        );
        answer
    }
}

impl Drop for TelegramTestApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let keep = std::thread::panicking()
            || std::env::var_os("PASSERELLE_KEEP_TELEGRAM_TEST_API").is_some_and(|v| !v.is_empty());
        if keep {
            eprintln!(
                "[support::telegram_test_api] log of the fake on port {}: {}",
                self.port,
                self.log_path.display()
            );
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

/// The repository root: the nearest directory above the including crate's
/// manifest that has `scripts/telegram-test-api`.
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("scripts/telegram-test-api").is_file())
        .unwrap_or_else(|| panic!("no scripts/telegram-test-api above {}", manifest.display()))
        .to_path_buf()
}

fn script() -> PathBuf {
    repo_root().join("scripts/telegram-test-api")
}

/// `scripts/telegram-test-api install`: a no-op taking milliseconds once done.
fn install() -> Result<(), String> {
    let script = script();
    let output = Command::new("bash")
        .arg(&script)
        .arg("install")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let what = if output.status.code() == Some(3) {
        "telegram-test-api (the fake Telegram Bot API, an npm package) is not installed and could \
         not be installed"
    } else {
        "`scripts/telegram-test-api install` failed"
    };
    Err(format!(
        "{what} ({}):\n{}{stderr}\nTo install it: have Node.js >= 12 and npm (Debian: `apt-get \
         install nodejs npm`), then run `scripts/telegram-test-api install`.",
        output.status,
        String::from_utf8_lossy(&output.stdout),
    ))
}

/// Starts `scripts/telegram-test-api run <port>` (which becomes node) and
/// waits until the launcher says it listens and `getMe` answers.
async fn launch(port: u16, raw: bool, http: &reqwest::Client) -> Result<(Child, PathBuf), String> {
    let log_path = std::env::temp_dir().join(format!(
        "passerelle-telegram-test-api-{}-{port}.log",
        std::process::id()
    ));
    let log =
        File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut command = Command::new("bash");
    command.arg(script()).arg("run").arg(port.to_string());
    if raw {
        command.arg("--raw");
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("running scripts/telegram-test-api run {port}: {e}"))?;

    let listening = format!("listening on http://127.0.0.1:{port} ");
    let url = format!("http://127.0.0.1:{port}/bot1:ready/getMe");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::fs::remove_file(&log_path);
            return Err(format!(
                "telegram-test-api exited during start-up ({status}) on 127.0.0.1:{port}:\n{log_text}"
            ));
        }
        if log_text.contains(&listening) {
            let answered = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if answered {
                return Ok((child, log_path));
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "telegram-test-api did not answer {url} within {START_TIMEOUT:?}; its log ({}):\n{log_text}",
                log_path.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn user_json(user_id: i64) -> Value {
    json!({
        "id": user_id,
        "is_bot": false,
        "first_name": format!("User {user_id}"),
        "username": format!("user{user_id}"),
    })
}

/// Telegram's id conventions: private chats > 0, basic groups < 0,
/// supergroups -100… (at most -10^12).
fn chat_json(chat_id: i64, user_id: i64) -> Value {
    if chat_id > 0 {
        json!({
            "id": chat_id,
            "type": "private",
            "first_name": format!("User {user_id}"),
            "username": format!("user{user_id}"),
        })
    } else if chat_id <= -1_000_000_000_000 {
        json!({ "id": chat_id, "type": "supergroup", "title": format!("Chat {chat_id}") })
    } else {
        json!({ "id": chat_id, "type": "group", "title": format!("Chat {chat_id}") })
    }
}

/// The UTF-16 length of a leading `/command[@bot]`, if any.
fn command_len(text: &str) -> Option<usize> {
    let rest = text.strip_prefix('/')?;
    let len = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '@')
        .count();
    (len > 0).then_some(1 + len)
}

/// The package's bot messages are stored with the raw `sendMessage`
/// parameters; users' messages always carry the package's `botToken` field.
fn is_bot_entry(entry: &Value) -> bool {
    entry["message"].is_object() && entry["message"].get("botToken").is_none()
}

fn same_chat(value: &Value, chat_id: i64) -> bool {
    match value {
        Value::Number(n) => n.as_i64() == Some(chat_id),
        Value::String(s) => s.trim() == chat_id.to_string(),
        _ => false,
    }
}

/// `TelegramServer.formatUpdate` of the package, for a stored user entry.
fn format_update(entry: &Value) -> Value {
    let mut message = entry["message"].as_object().cloned().unwrap_or_default();
    message.insert("message_id".to_owned(), entry["messageId"].clone());
    json!({ "update_id": entry["updateId"], "message": Value::Object(message) })
}

fn bot_message_view(entry: &Value) -> Value {
    let mut out: Map<String, Value> = entry["message"].as_object().cloned().unwrap_or_default();
    // Only an edit's parameters bring a `message_id` into the stored message.
    let edited = out.contains_key("message_id") || entry.get("editTime").is_some();
    out.insert("message_id".to_owned(), entry["messageId"].clone());
    out.insert(
        "date".to_owned(),
        json!(entry["time"].as_i64().unwrap_or(0) / 1000),
    );
    out.insert("edited".to_owned(), json!(edited));
    if let Some(ms) = entry.get("editTime").and_then(Value::as_i64) {
        out.insert("edit_date".to_owned(), json!(ms / 1000));
    }
    Value::Object(out)
}
