//! An in-process fake of the Telegram Bot API for integration tests.
//!
//! It serves `/bot<token>/<method>` and `/file/bot<token>/<path>` on
//! 127.0.0.1 and keeps the state a bridge depends on: users, chats and their
//! members, per-chat message ids, the bot's messages after edits and
//! deletions, its reactions, uploaded files, the update queue (getUpdates with
//! offsets and long polling, or webhook delivery) and every call made.
//! Telegram-side actions (`user_sends`, `user_reacts`, ...) queue the updates
//! the real server would produce, under the same conditions (allowed_updates,
//! bot membership and rights).
//!
//! Where it differs from the real Bot API is listed in `docs/fakes/telegram.md`.
//!
//! Include it in a test binary with
//! `#[path = "../support/telegram_fake.rs"] mod telegram_fake;`.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Text of a message, in UTF-16 code units after entity parsing.
const MAX_TEXT_LEN: usize = 4096;
/// Caption of a media message, in UTF-16 code units after entity parsing.
const MAX_CAPTION_LEN: usize = 1024;
const MAX_PHOTO_UPLOAD: usize = 10 * 1024 * 1024;
const MAX_UPLOAD: usize = 50 * 1024 * 1024;
/// getFile refuses larger files on the public server.
const MAX_DOWNLOAD: usize = 20 * 1024 * 1024;
/// Above the upload limit so that the API answers 413 itself for a file just
/// over 50 MB; larger bodies are cut by the HTTP layer and get the same answer.
const HTTP_BODY_LIMIT: usize = MAX_UPLOAD + 4 * 1024 * 1024;
const LONG_POLL_MAX_TIMEOUT: i64 = 50;
/// Real update ids do not start at 1; a bridge must not assume they do.
const FIRST_UPDATE_ID: i64 = 100_000_001;
const DEFAULT_BOT_ID: i64 = 7_000_000_001;
/// The user Telegram shows as the sender of an anonymous group admin's message.
const GROUP_ANONYMOUS_BOT_ID: i64 = 1_087_968_824;
const WEBHOOK_READ_TIMEOUT: Duration = Duration::from_secs(30);
const WEBHOOK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Update types the server holds back unless allowed_updates names them.
const NOT_DEFAULT_UPDATES: &[&str] = &["chat_member", "message_reaction", "message_reaction_count"];
#[rustfmt::skip]
const UPDATE_TYPES: &[&str] = &[
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost", "guest_message", "managed_bot", "subscription",
    "stopped_message_generation",
];

/// ReactionTypeEmoji's list, in the exact code points the API compares:
/// no variation selector 16, ZWJ inside the sequences.
#[rustfmt::skip]
pub const REACTION_EMOJI: &[&str] = &[
    "👍", "👎", "\u{2764}", "🔥", "🥰", "👏", "😁", "🤔", "🤯", "😱", "🤬", "😢", "🎉", "🤩", "🤮", "💩", "🙏",
    "👌", "\u{1f54a}", "🤡", "🥱", "🥴", "😍", "🐳", "\u{2764}\u{200d}\u{1f525}", "🌚", "🌭", "💯", "🤣",
    "\u{26a1}", "🍌", "🏆", "💔", "🤨", "😐", "🍓", "🍾", "💋", "🖕", "😈", "😴", "😭", "🤓", "👻",
    "\u{1f468}\u{200d}\u{1f4bb}", "👀", "🎃", "🙈", "😇", "😨", "🤝", "\u{270d}", "🤗", "🫡", "🎅", "🎄",
    "\u{2603}", "💅", "🤪", "🗿", "🆒", "💘", "🙉", "🦄", "😘", "💊", "🙊", "😎", "👾",
    "\u{1f937}\u{200d}\u{2642}", "🤷", "\u{1f937}\u{200d}\u{2640}", "😡",
];

/// Parameters sent as strings by form and multipart requests that the API
/// reads as integers, booleans or JSON; they are normalised so that recorded
/// calls look the same whichever encoding the client used.
#[rustfmt::skip]
const INT_PARAMS: &[&str] = &[
    "chat_id", "message_id", "message_thread_id", "reply_to_message_id", "offset", "limit",
    "timeout", "user_id", "from_chat_id", "duration", "width", "height", "length",
    "max_connections", "until_date", "icon_color",
];
#[rustfmt::skip]
const BOOL_PARAMS: &[&str] = &[
    "disable_notification", "protect_content", "allow_sending_without_reply",
    "drop_pending_updates", "is_big", "has_spoiler", "show_caption_above_media",
    "disable_content_type_detection", "supports_streaming", "allow_paid_broadcast",
    "disable_web_page_preview", "only_if_banned", "revoke_messages",
];
#[rustfmt::skip]
const JSON_PARAMS: &[&str] = &[
    "entities", "caption_entities", "reply_parameters", "reply_markup", "allowed_updates",
    "reaction", "link_preview_options", "message_ids", "media", "commands", "scope",
];

/// Methods the fake implements, in their documented spelling; the API
/// matches method names case-insensitively.
#[rustfmt::skip]
const METHODS: &[&str] = &[
    "getMe", "logOut", "close", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo",
    "sendMessage", "sendPhoto", "sendDocument", "sendAudio", "sendVoice", "sendVideo",
    "sendAnimation", "sendVideoNote", "sendSticker", "sendChatAction", "editMessageText",
    "editMessageCaption", "deleteMessage", "deleteMessages", "setMessageReaction", "getFile",
    "getChat", "getChatMember", "getChatAdministrators", "getChatMemberCount",
    "getChatMembersCount", "getUserProfilePhotos", "pinChatMessage", "unpinChatMessage",
    "setChatTitle", "setChatDescription", "leaveChat", "createForumTopic", "setMyCommands",
    "getMyCommands", "deleteMyCommands",
];

const MEMBER_STATUSES: &[&str] = &[
    "creator",
    "administrator",
    "member",
    "restricted",
    "left",
    "kicked",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatKind {
    Private,
    Group,
    Supergroup,
    SupergroupForum,
    Channel,
}

impl ChatKind {
    /// The `type` of the Chat; also the word of "bot is not a member of the ... chat".
    fn api_type(self) -> &'static str {
        match self {
            ChatKind::Private => "private",
            ChatKind::Group => "group",
            ChatKind::Supergroup | ChatKind::SupergroupForum => "supergroup",
            ChatKind::Channel => "channel",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    Photo,
    Document,
    Audio,
    Voice,
    Video,
    Animation,
    VideoNote,
    Sticker,
    ProfilePhoto,
}

impl FileKind {
    fn type_name(self) -> &'static str {
        match self {
            FileKind::Photo | FileKind::ProfilePhoto => "Photo",
            FileKind::Document => "Document",
            FileKind::Audio => "Audio",
            FileKind::Voice => "Voice",
            FileKind::Video => "Video",
            FileKind::Animation => "Animation",
            FileKind::VideoNote => "VideoNote",
            FileKind::Sticker => "Sticker",
        }
    }

    fn dir_and_ext(self) -> (&'static str, &'static str) {
        match self {
            FileKind::Photo => ("photos", "jpg"),
            FileKind::ProfilePhoto => ("profile_photos", "jpg"),
            FileKind::Document => ("documents", ""),
            FileKind::Audio => ("music", "mp3"),
            FileKind::Voice => ("voice", "oga"),
            FileKind::Video => ("videos", "mp4"),
            FileKind::Animation => ("animations", "mp4"),
            FileKind::VideoNote => ("video_notes", "mp4"),
            FileKind::Sticker => ("stickers", "webp"),
        }
    }
}

struct UserRec {
    id: i64,
    is_bot: bool,
    first_name: String,
    last_name: Option<String>,
    username: Option<String>,
    /// Newest first, as getUserProfilePhotos lists them.
    photos: Vec<String>,
}

impl UserRec {
    fn json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("is_bot".into(), json!(self.is_bot));
        m.insert("first_name".into(), json!(self.first_name));
        if let Some(l) = &self.last_name {
            m.insert("last_name".into(), json!(l));
        }
        if let Some(u) = &self.username {
            m.insert("username".into(), json!(u));
        }
        Value::Object(m)
    }
}

struct FileRec {
    file_id: String,
    file_unique_id: String,
    bytes: Arc<Vec<u8>>,
    mime: Option<String>,
    name: Option<String>,
    kind: FileKind,
    width: i64,
    height: i64,
    /// Assigned by the first getFile, as the download path.
    file_path: Option<String>,
}

impl FileRec {
    fn base_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("file_id".into(), json!(self.file_id));
        m.insert("file_unique_id".into(), json!(self.file_unique_id));
        m.insert("file_size".into(), json!(self.bytes.len()));
        m
    }

    fn photo_size(&self) -> Value {
        let mut m = self.base_json();
        m.insert("width".into(), json!(self.width));
        m.insert("height".into(), json!(self.height));
        Value::Object(m)
    }
}

struct MsgRec {
    json: Value,
    by_bot: bool,
    bot_reaction: Vec<Value>,
    user_reactions: BTreeMap<i64, Vec<Value>>,
}

struct ChatRec {
    id: i64,
    kind: ChatKind,
    title: String,
    username: Option<String>,
    description: Option<String>,
    photo: Option<String>,
    members: BTreeMap<i64, String>,
    messages: BTreeMap<i64, MsgRec>,
    next_message_id: i64,
    topics: BTreeMap<i64, String>,
    available_reactions: Option<Vec<String>>,
    pinned: Vec<i64>,
    migrated_to: Option<i64>,
}

struct Webhook {
    url: String,
    secret: Option<String>,
    max_connections: i64,
    generation: u64,
}

struct CallRec {
    method: String,
    params: Value,
    response: Option<Value>,
}

#[derive(Default)]
struct PollState {
    /// The getUpdates request currently waiting, if any.
    active: Option<u64>,
    next_seq: u64,
    /// Waiting requests that were terminated, with the 409 description.
    aborted: HashMap<u64, &'static str>,
    previous: Option<(i64, Instant)>,
    next_conflict_at: Option<Instant>,
}

struct State {
    bot: UserRec,
    users: BTreeMap<i64, UserRec>,
    chats: BTreeMap<i64, ChatRec>,
    files: BTreeMap<String, FileRec>,
    file_seq: u64,
    updates: VecDeque<Value>,
    next_update_id: i64,
    confirmed_offset: i64,
    allowed: Option<Vec<String>>,
    webhook: Option<Webhook>,
    webhook_generation: u64,
    webhook_attempts: usize,
    webhook_retry: (Duration, Duration),
    webhook_delay: Duration,
    webhook_next_attempt: Option<Instant>,
    last_webhook_error: Option<(i64, String)>,
    next_set_webhook_at: Option<Instant>,
    poll: PollState,
    calls: Vec<CallRec>,
    failures: HashMap<String, VecDeque<ApiError>>,
    dropped: Vec<Value>,
    commands: Value,
    closed: bool,
}

struct Shared {
    token: String,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its own
        // failure behind a poisoned-mutex panic in the server.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// An error answer of the API: `{"ok":false,"error_code":…,"description":…}`.
#[derive(Clone, Debug)]
struct ApiError {
    code: u16,
    description: String,
    parameters: Option<Value>,
}

impl ApiError {
    fn new(code: u16, description: impl Into<String>) -> Self {
        ApiError {
            code,
            description: description.into(),
            parameters: None,
        }
    }

    fn bad(message: impl AsRef<str>) -> Self {
        ApiError::new(400, format!("Bad Request: {}", message.as_ref()))
    }

    fn forbidden(message: impl AsRef<str>) -> Self {
        ApiError::new(403, format!("Forbidden: {}", message.as_ref()))
    }

    fn not_found() -> Self {
        ApiError::new(404, "Not Found")
    }

    fn too_large() -> Self {
        ApiError::new(413, "Request Entity Too Large")
    }

    fn retry_after(seconds: u64) -> Self {
        ApiError {
            code: 429,
            description: format!("Too Many Requests: retry after {seconds}"),
            parameters: Some(json!({ "retry_after": seconds })),
        }
    }

    fn conflict(description: &str) -> Self {
        ApiError::new(409, description)
    }

    fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("ok".into(), json!(false));
        m.insert("error_code".into(), json!(self.code));
        m.insert("description".into(), json!(self.description));
        if let Some(p) = &self.parameters {
            m.insert("parameters".into(), p.clone());
        }
        Value::Object(m)
    }
}

struct Reply {
    result: Value,
    description: Option<&'static str>,
}

impl From<Value> for Reply {
    fn from(result: Value) -> Self {
        Reply {
            result,
            description: None,
        }
    }
}

type ApiResult = Result<Reply, ApiError>;

fn reply_body(r: &ApiResult) -> Value {
    match r {
        Ok(reply) => {
            let mut m = Map::new();
            m.insert("ok".into(), json!(true));
            m.insert("result".into(), reply.result.clone());
            if let Some(d) = reply.description {
                m.insert("description".into(), json!(d));
            }
            Value::Object(m)
        }
        Err(e) => e.body(),
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A message as it appears inside another one (reply_to_message,
/// pinned_message): the API never nests a further reply_to_message there.
fn strip_reply(mut m: Value) -> Value {
    if let Some(o) = m.as_object_mut() {
        o.remove("reply_to_message");
    }
    m
}

// ---------------------------------------------------------------------------
// Request parameters

struct Upload {
    bytes: Vec<u8>,
    filename: Option<String>,
    content_type: Option<String>,
}

#[derive(Default)]
struct Params {
    values: Map<String, Value>,
    files: BTreeMap<String, Upload>,
}

impl Params {
    fn insert_text(&mut self, key: String, value: String) {
        self.values.insert(key, Value::String(value));
    }

    fn normalise(&mut self) {
        for (k, v) in self.values.iter_mut() {
            let Value::String(s) = v else { continue };
            let t = s.trim();
            if INT_PARAMS.contains(&k.as_str()) {
                if let Ok(n) = t.parse::<i64>() {
                    *v = json!(n);
                }
            } else if BOOL_PARAMS.contains(&k.as_str()) {
                match t.to_ascii_lowercase().as_str() {
                    "true" | "1" => *v = json!(true),
                    "false" | "0" | "" => *v = json!(false),
                    _ => {}
                }
            } else if JSON_PARAMS.contains(&k.as_str())
                && let Ok(parsed) = serde_json::from_str::<Value>(t)
                && (parsed.is_array() || parsed.is_object())
            {
                *v = parsed;
            }
        }
    }

    fn recorded(&self) -> Value {
        let mut m = self.values.clone();
        for (k, f) in &self.files {
            m.insert(
                k.clone(),
                json!({
                    "file_bytes_len": f.bytes.len(),
                    "filename": f.filename,
                    "content_type": f.content_type,
                }),
            );
        }
        Value::Object(m)
    }

    fn has(&self, k: &str) -> bool {
        self.values.get(k).is_some_and(|v| !v.is_null())
    }

    fn str(&self, k: &str) -> Option<String> {
        match self.values.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn int(&self, k: &str) -> Option<i64> {
        match self.values.get(k)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn bool(&self, k: &str) -> bool {
        match self.values.get(k) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1"),
            _ => false,
        }
    }

    /// A JSON-serialised parameter; `what` names it in the error the API gives
    /// for malformed JSON.
    fn json(&self, k: &str, what: &str) -> Result<Option<Value>, ApiError> {
        match self.values.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(_)) => Err(ApiError::bad(format!("can't parse {what} JSON object"))),
            Some(v) => Ok(Some(v.clone())),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_urlencoded(s: &str, p: &mut Params) {
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        p.insert_text(percent_decode(k), percent_decode(v));
    }
}

async fn read_params(req: Request) -> Result<Params, ApiError> {
    let mut p = Params::default();
    if let Some(q) = req.uri().query() {
        parse_urlencoded(q, &mut p);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &()).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::bad("can't parse multipart/form-data request")
            }
        })?;
        loop {
            let field = match mp.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(ApiError::too_large());
                }
                Err(_) => return Err(ApiError::bad("can't parse multipart/form-data request")),
            };
            let name = field.name().unwrap_or("").to_owned();
            let filename = field.file_name().map(str::to_owned);
            let ct = field.content_type().map(str::to_owned);
            let bytes = match field.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(ApiError::too_large());
                }
                Err(_) => return Err(ApiError::bad("can't parse multipart/form-data request")),
            };
            let textual_type = ct.as_deref().is_none_or(|c| c.starts_with("text/plain"));
            match String::from_utf8(bytes) {
                Ok(text) if filename.is_none() && textual_type => p.insert_text(name, text),
                Ok(text) => {
                    p.files.insert(
                        name,
                        Upload {
                            bytes: text.into_bytes(),
                            filename,
                            content_type: ct,
                        },
                    );
                }
                Err(e) => {
                    p.files.insert(
                        name,
                        Upload {
                            bytes: e.into_bytes(),
                            filename,
                            content_type: ct,
                        },
                    );
                }
            }
        }
    } else {
        let is_json = content_type.starts_with("application/json");
        let body = axum::body::to_bytes(req.into_body(), HTTP_BODY_LIMIT)
            .await
            .map_err(|_| ApiError::too_large())?;
        if is_json {
            if !body.iter().all(u8::is_ascii_whitespace) {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(m)) => p.values.extend(m),
                    _ => return Err(ApiError::bad("can't parse JSON encoded request")),
                }
            }
        } else if !body.is_empty() {
            parse_urlencoded(&String::from_utf8_lossy(&body), &mut p);
        }
    }
    p.normalise();
    Ok(p)
}

// ---------------------------------------------------------------------------
// Telegram's HTML parse mode

struct OpenTag {
    name: String,
    start: usize,
    href: Option<String>,
    class: Option<String>,
    emoji_id: Option<String>,
    expandable: bool,
    language: Option<String>,
}

/// Parses text in Telegram's HTML subset into plain text and MessageEntity
/// objects (UTF-16 offsets), failing as the API does on what it rejects.
fn parse_html(src: &str, users: &BTreeMap<i64, UserRec>) -> Result<(String, Vec<Value>), String> {
    #[rustfmt::skip]
    const TAGS: &[&str] = &[
        "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler",
        "tg-emoji", "span", "pre", "code", "blockquote",
    ];
    let b = src.as_bytes();
    let mut out = String::new();
    let mut out16 = 0usize;
    let mut stack: Vec<OpenTag> = Vec::new();
    let mut entities: Vec<Value> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'&' => {
                if let Some((decoded, used)) = decode_html_entity(&src[i..]) {
                    out16 += decoded.len_utf16();
                    out.push(decoded);
                    i += used;
                } else {
                    out.push('&');
                    out16 += 1;
                    i += 1;
                }
            }
            b'<' => {
                let begin = i;
                i += 1;
                if i < b.len() && b[i] == b'/' {
                    i += 1;
                    let name_start = i;
                    while i < b.len() && b[i] != b'>' && !b[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    let name = src[name_start..i].to_ascii_lowercase();
                    while i < b.len() && b[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    if i >= b.len() || b[i] != b'>' {
                        return Err(format!("Unclosed end tag at byte offset {begin}"));
                    }
                    i += 1;
                    let Some(open) = stack.pop() else {
                        return Err(format!("Unexpected end tag at byte offset {begin}"));
                    };
                    if open.name != name {
                        return Err(format!(
                            "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{name}>\"",
                            open.name
                        ));
                    }
                    close_tag(open, out16, &mut stack, &mut entities, users)?;
                } else {
                    let name_start = i;
                    while i < b.len() && b[i] != b'>' && b[i] != b'/' && !b[i].is_ascii_whitespace()
                    {
                        i += 1;
                    }
                    let name = src[name_start..i].to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {begin}"
                        ));
                    }
                    let mut tag = OpenTag {
                        name,
                        start: out16,
                        href: None,
                        class: None,
                        emoji_id: None,
                        expandable: false,
                        language: None,
                    };
                    loop {
                        while i < b.len() && b[i].is_ascii_whitespace() {
                            i += 1;
                        }
                        if i >= b.len() {
                            return Err(format!("Unclosed start tag at byte offset {begin}"));
                        }
                        if b[i] == b'>' {
                            i += 1;
                            break;
                        }
                        let attr_start = i;
                        while i < b.len()
                            && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'_')
                        {
                            i += 1;
                        }
                        if attr_start == i {
                            return Err(format!(
                                "Empty attribute name in the tag \"{}\" at byte offset {begin}",
                                tag.name
                            ));
                        }
                        let attr = src[attr_start..i].to_ascii_lowercase();
                        while i < b.len() && b[i].is_ascii_whitespace() {
                            i += 1;
                        }
                        let mut value = String::new();
                        if i < b.len() && b[i] == b'=' {
                            i += 1;
                            while i < b.len() && b[i].is_ascii_whitespace() {
                                i += 1;
                            }
                            if i >= b.len() {
                                return Err(format!("Unclosed start tag at byte offset {begin}"));
                            }
                            let raw = if b[i] == b'"' || b[i] == b'\'' {
                                let quote = b[i];
                                let value_start = i + 1;
                                let Some(len) = b[value_start..].iter().position(|&c| c == quote)
                                else {
                                    return Err(format!(
                                        "Unclosed start tag at byte offset {begin}"
                                    ));
                                };
                                i = value_start + len + 1;
                                &src[value_start..value_start + len]
                            } else {
                                let value_start = i;
                                while i < b.len() && b[i] != b'>' && !b[i].is_ascii_whitespace() {
                                    i += 1;
                                }
                                &src[value_start..i]
                            };
                            value = decode_html_entities(raw);
                        } else if i < b.len() && b[i] != b'>' && !b[i].is_ascii_alphanumeric() {
                            return Err(format!(
                                "Expected equal sign in declaration of an attribute of the tag \"{}\" at byte offset {begin}",
                                tag.name
                            ));
                        }
                        match (tag.name.as_str(), attr.as_str()) {
                            ("a", "href") => tag.href = Some(value),
                            ("span" | "code", "class") => tag.class = Some(value),
                            ("tg-emoji", "emoji-id") => tag.emoji_id = Some(value),
                            ("blockquote", "expandable") => tag.expandable = true,
                            _ => {}
                        }
                    }
                    if tag.name == "span" && tag.class.as_deref() != Some("tg-spoiler") {
                        return Err(format!(
                            "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
                        ));
                    }
                    if tag.name == "tg-emoji"
                        && tag
                            .emoji_id
                            .as_deref()
                            .is_none_or(|id| id.parse::<i64>().is_err())
                    {
                        return Err(
                            "Custom emoji entity must contain a valid custom emoji identifier"
                                .into(),
                        );
                    }
                    stack.push(tag);
                }
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                out16 += ch.len_utf16();
                i += ch.len_utf8();
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            open.name
        ));
    }
    entities.sort_by_key(|e| {
        (
            e["offset"].as_i64().unwrap_or(0),
            -e["length"].as_i64().unwrap_or(0),
        )
    });
    Ok((out, entities))
}

fn close_tag(
    open: OpenTag,
    end: usize,
    stack: &mut [OpenTag],
    entities: &mut Vec<Value>,
    users: &BTreeMap<i64, UserRec>,
) -> Result<(), String> {
    let length = end - open.start;
    let mut e = Map::new();
    let kind = match open.name.as_str() {
        "b" | "strong" => "bold",
        "i" | "em" => "italic",
        "u" | "ins" => "underline",
        "s" | "strike" | "del" => "strikethrough",
        "tg-spoiler" | "span" => "spoiler",
        "blockquote" if open.expandable => "expandable_blockquote",
        "blockquote" => "blockquote",
        "tg-emoji" => {
            e.insert(
                "custom_emoji_id".into(),
                json!(open.emoji_id.unwrap_or_default()),
            );
            "custom_emoji"
        }
        "pre" => {
            if let Some(lang) = open.language {
                e.insert("language".into(), json!(lang));
            }
            "pre"
        }
        "code" => {
            // <pre><code class="language-x"> is one pre entity with a language.
            if let Some(parent) = stack.last_mut()
                && parent.name == "pre"
            {
                if let Some(lang) = open
                    .class
                    .as_deref()
                    .and_then(|c| c.strip_prefix("language-"))
                {
                    parent.language = Some(lang.to_owned());
                }
                return Ok(());
            }
            "code"
        }
        "a" => {
            let href = open.href.unwrap_or_default();
            if href.is_empty() {
                return Ok(());
            }
            if let Some(id) = href
                .strip_prefix("tg://user?id=")
                .and_then(|id| id.parse::<i64>().ok())
            {
                let user = users
                    .get(&id)
                    .map(UserRec::json)
                    .unwrap_or_else(|| json!({ "id": id, "is_bot": false, "first_name": "" }));
                e.insert("user".into(), user);
                "text_mention"
            } else {
                e.insert("url".into(), json!(href));
                "text_link"
            }
        }
        _ => return Ok(()),
    };
    if length == 0 {
        return Ok(());
    }
    e.insert("type".into(), json!(kind));
    e.insert("offset".into(), json!(open.start));
    e.insert("length".into(), json!(length));
    entities.push(Value::Object(e));
    Ok(())
}

fn decode_html_entity(s: &str) -> Option<(char, usize)> {
    let end = s.find(';')?;
    if end > 12 {
        return None;
    }
    let name = &s[1..end];
    let ch = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let code =
                if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    name.strip_prefix('#')?.parse::<u32>().ok()?
                };
            char::from_u32(code)?
        }
    };
    Some((ch, end + 1))
}

fn decode_html_entities(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        match decode_html_entity(rest) {
            Some((c, used)) => {
                out.push(c);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The API strips leading and trailing white space from texts and captions
/// and moves the entities with the text.
fn trim_formatted(text: &str, entities: Vec<Value>) -> (String, Vec<Value>) {
    let trimmed = text.trim();
    let lead = utf16_len(&text[..text.len() - text.trim_start().len()]) as i64;
    let len = utf16_len(trimmed) as i64;
    let entities = entities
        .into_iter()
        .filter_map(|mut e| {
            let offset = e["offset"].as_i64()?;
            let end = offset + e["length"].as_i64()?;
            let (start, end) = ((offset - lead).clamp(0, len), (end - lead).clamp(0, len));
            if end <= start {
                return None;
            }
            e["offset"] = json!(start);
            e["length"] = json!(end - start);
            Some(e)
        })
        .collect();
    (trimmed.to_owned(), entities)
}

// ---------------------------------------------------------------------------
// Images: enough of each format to know its size, as Telegram checks photos.

fn image_size(b: &[u8]) -> Option<(i64, i64)> {
    let be16 = |i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]) as i64);
    let le16 = |i: usize| Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]) as i64);
    let le24 = |i: usize| {
        Some(
            i64::from(*b.get(i)?)
                | i64::from(*b.get(i + 1)?) << 8
                | i64::from(*b.get(i + 2)?) << 16,
        )
    };
    if b.starts_with(b"\x89PNG\r\n\x1a\n") && b.len() >= 24 {
        let w = u32::from_be_bytes(b[16..20].try_into().ok()?) as i64;
        let h = u32::from_be_bytes(b[20..24].try_into().ok()?) as i64;
        return Some((w, h));
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return match b.get(12..16)? {
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            b"VP8L" => {
                let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
                Some((
                    (bits & 0x3fff) as i64 + 1,
                    ((bits >> 14) & 0x3fff) as i64 + 1,
                ))
            }
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            _ => None,
        };
    }
    if b.starts_with(&[0xff, 0xd8]) {
        let mut i = 2;
        while i + 9 < b.len() {
            if b[i] != 0xff {
                return None;
            }
            let marker = b[i + 1];
            if marker == 0xff {
                i += 1;
                continue;
            }
            let len = be16(i + 2)? as usize;
            if (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker) {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + len;
        }
    }
    None
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid grey PNG of the given size, for tests that send or receive photos
/// (the fake refuses photos it cannot read the size of, like the real API).
pub fn tiny_png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0u8);
        raw.extend((0..width).map(|x| ((x + y) % 256) as u8));
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if raw.is_empty() {
        vec![&[][..]]
    } else {
        raw.chunks(65_535).collect()
    };
    for (n, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(n + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend(*block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &zlib);
    chunk(b"IEND", &[]);
    png
}

fn guess_mime(name: Option<&str>) -> Option<&'static str> {
    let ext = name?.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "json" => "application/json",
        "zip" => "application/zip",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Server state and the API's rules

impl State {
    fn new(bot_id: i64) -> Self {
        State {
            bot: UserRec {
                id: bot_id,
                is_bot: true,
                first_name: "Fake Bot".into(),
                last_name: None,
                username: Some("fake_test_bot".into()),
                photos: Vec::new(),
            },
            users: BTreeMap::new(),
            chats: BTreeMap::new(),
            files: BTreeMap::new(),
            file_seq: 0,
            updates: VecDeque::new(),
            next_update_id: FIRST_UPDATE_ID,
            confirmed_offset: 0,
            allowed: None,
            webhook: None,
            webhook_generation: 0,
            webhook_attempts: 0,
            webhook_retry: (Duration::from_millis(100), Duration::from_secs(2)),
            webhook_delay: Duration::from_millis(100),
            webhook_next_attempt: None,
            last_webhook_error: None,
            next_set_webhook_at: None,
            poll: PollState::default(),
            calls: Vec::new(),
            failures: HashMap::new(),
            dropped: Vec::new(),
            commands: json!([]),
            closed: false,
        }
    }

    /// The bot as getMe describes it: its User plus its capabilities.
    fn me_json(&self) -> Value {
        let mut me = self.bot.json();
        me["can_join_groups"] = json!(true);
        me["can_read_all_group_messages"] = json!(false);
        me["supports_inline_queries"] = json!(false);
        me["can_connect_to_business"] = json!(false);
        me["has_main_web_app"] = json!(false);
        me
    }

    fn user(&self, id: i64) -> Option<&UserRec> {
        if id == self.bot.id {
            Some(&self.bot)
        } else {
            self.users.get(&id)
        }
    }

    fn user_json(&self, id: i64) -> Value {
        match self.user(id) {
            Some(u) => u.json(),
            None if id == GROUP_ANONYMOUS_BOT_ID => {
                json!({ "id": id, "is_bot": true, "first_name": "Group", "username": "GroupAnonymousBot" })
            }
            None => panic!("telegram fake: user {id} is unknown; call add_user first"),
        }
    }

    fn chat(&self, id: i64) -> &ChatRec {
        self.chats
            .get(&id)
            .unwrap_or_else(|| panic!("telegram fake: chat {id} is unknown; call add_chat first"))
    }

    fn chat_mut(&mut self, id: i64) -> &mut ChatRec {
        self.chats
            .get_mut(&id)
            .unwrap_or_else(|| panic!("telegram fake: chat {id} is unknown; call add_chat first"))
    }

    fn chat_json(&self, id: i64) -> Value {
        let c = self.chat(id);
        let mut m = Map::new();
        m.insert("id".into(), json!(c.id));
        m.insert("type".into(), json!(c.kind.api_type()));
        if c.kind == ChatKind::Private {
            match self.users.get(&c.id) {
                Some(u) => {
                    m.insert("first_name".into(), json!(u.first_name));
                    if let Some(l) = &u.last_name {
                        m.insert("last_name".into(), json!(l));
                    }
                    if let Some(n) = &u.username {
                        m.insert("username".into(), json!(n));
                    }
                }
                None => {
                    m.insert("first_name".into(), json!(c.title));
                }
            }
        } else {
            m.insert("title".into(), json!(c.title));
            if let Some(n) = &c.username {
                m.insert("username".into(), json!(n));
            }
            if c.kind == ChatKind::SupergroupForum {
                m.insert("is_forum".into(), json!(true));
            }
        }
        Value::Object(m)
    }

    fn status(&self, chat_id: i64, user_id: i64) -> Option<&str> {
        self.chats
            .get(&chat_id)?
            .members
            .get(&user_id)
            .map(String::as_str)
    }

    fn bot_is_admin(&self, chat_id: i64) -> bool {
        matches!(
            self.status(chat_id, self.bot.id),
            Some("administrator" | "creator")
        )
    }

    fn bot_is_member(&self, chat_id: i64) -> bool {
        matches!(
            self.status(chat_id, self.bot.id),
            Some("administrator" | "creator" | "member" | "restricted")
        )
    }

    fn next_message_id(&mut self, chat_id: i64) -> i64 {
        let c = self.chat_mut(chat_id);
        let id = c.next_message_id;
        c.next_message_id += 1;
        id
    }

    fn store_message(&mut self, chat_id: i64, json: Value, by_bot: bool) {
        let id = json["message_id"].as_i64().expect("message_id");
        self.chat_mut(chat_id).messages.insert(
            id,
            MsgRec {
                json,
                by_bot,
                bot_reaction: Vec::new(),
                user_reactions: BTreeMap::new(),
            },
        );
    }

    fn message_json(&self, chat_id: i64, id: i64) -> Option<Value> {
        Some(self.chats.get(&chat_id)?.messages.get(&id)?.json.clone())
    }

    fn allows(&self, kind: &str) -> bool {
        match &self.allowed {
            None => !NOT_DEFAULT_UPDATES.contains(&kind),
            Some(list) => list.iter().any(|k| k == kind),
        }
    }

    /// Reads allowed_updates as the server does: absent or not a list keeps
    /// the previous setting; a list naming no known type means the default.
    fn update_allowed(&mut self, p: &Params) {
        let Some(Value::Array(list)) = p.values.get("allowed_updates") else {
            return;
        };
        let mut kinds: Vec<String> = list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .filter(|k| UPDATE_TYPES.contains(&k.as_str()))
            .collect();
        kinds.sort();
        kinds.dedup();
        self.allowed = if kinds.is_empty() { None } else { Some(kinds) };
    }

    /// Creates an update, or none when allowed_updates excludes its type: the
    /// server filters when it creates updates, not when it hands them out.
    fn push_update(&mut self, kind: &str, payload: Value) -> Option<i64> {
        if !self.allows(kind) {
            self.dropped.push(json!({
                "update": { kind: payload },
                "reason": format!("\"{kind}\" is not in allowed_updates"),
            }));
            return None;
        }
        let id = self.next_update_id;
        self.next_update_id += 1;
        self.updates
            .push_back(json!({ "update_id": id, kind: payload }));
        Some(id)
    }

    /// Creates an update about a chat if the bot would get it there.
    fn queue_chat_update(&mut self, chat_id: i64, kind: &str, payload: Value) -> Option<i64> {
        if !self.allows(kind) {
            return self.push_update(kind, payload);
        }
        let chat_kind = self.chat(chat_id).kind;
        let reason = if chat_kind == ChatKind::Private || kind == "my_chat_member" {
            None
        } else if matches!(
            kind,
            "chat_member"
                | "message_reaction"
                | "message_reaction_count"
                | "channel_post"
                | "edited_channel_post"
        ) {
            (!self.bot_is_admin(chat_id)).then_some("the bot is not an administrator of the chat")
        } else {
            (!self.bot_is_member(chat_id)).then_some("the bot is not a member of the chat")
        };
        if let Some(reason) = reason {
            self.dropped
                .push(json!({ "update": { kind: payload }, "reason": reason }));
            return None;
        }
        self.push_update(kind, payload)
    }

    /// Who performs a service action in a chat when a test does not say:
    /// its creator, else an administrator, else a member; a channel acts as
    /// itself.
    fn actor(&self, chat_id: i64) -> Option<i64> {
        let c = self.chat(chat_id);
        if c.kind == ChatKind::Channel {
            return None;
        }
        let pick = |wanted: &[&str]| {
            c.members
                .iter()
                .find(|(id, s)| {
                    **id != self.bot.id
                        && wanted.contains(&s.as_str())
                        && self.users.contains_key(id)
                })
                .map(|(id, _)| *id)
        };
        pick(&["creator"])
            .or_else(|| pick(&["administrator"]))
            .or_else(|| pick(&["member", "restricted"]))
    }

    /// A message from a user (or from the chat itself in a channel), stored
    /// and queued as the matching update.
    fn post_service(&mut self, chat_id: i64, actor: Option<i64>, fields: Value) -> i64 {
        let id = self.next_message_id(chat_id);
        let mut m = Map::new();
        m.insert("message_id".into(), json!(id));
        let channel = self.chat(chat_id).kind == ChatKind::Channel;
        match actor {
            Some(user) => {
                m.insert("from".into(), self.user_json(user));
            }
            None => {
                let chat = self.chat_json(chat_id);
                if !channel {
                    m.insert("from".into(), self.user_json(GROUP_ANONYMOUS_BOT_ID));
                }
                m.insert("sender_chat".into(), chat);
            }
        }
        m.insert("chat".into(), self.chat_json(chat_id));
        m.insert("date".into(), json!(now_unix()));
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        let msg = Value::Object(m);
        self.store_message(chat_id, msg.clone(), false);
        self.queue_chat_update(
            chat_id,
            if channel { "channel_post" } else { "message" },
            msg,
        );
        id
    }

    fn member_json(&self, chat_id: i64, user_id: i64, status: &str) -> Value {
        let kind = self.chat(chat_id).kind;
        let user = self.user_json(user_id);
        match status {
            "creator" => json!({ "status": "creator", "user": user, "is_anonymous": false }),
            "administrator" => {
                let mut m = json!({
                    "status": "administrator", "user": user, "can_be_edited": false, "is_anonymous": false,
                    "can_manage_chat": true, "can_delete_messages": true, "can_manage_video_chats": true,
                    "can_restrict_members": true, "can_promote_members": false, "can_change_info": true,
                    "can_invite_users": true, "can_post_stories": true, "can_edit_stories": true,
                    "can_delete_stories": true, "can_send_welcome_messages": true,
                });
                if kind == ChatKind::Channel {
                    m["can_post_messages"] = json!(true);
                    m["can_edit_messages"] = json!(true);
                } else {
                    m["can_pin_messages"] = json!(true);
                }
                if kind == ChatKind::SupergroupForum {
                    m["can_manage_topics"] = json!(true);
                }
                m
            }
            "restricted" => json!({
                "status": "restricted", "user": user, "is_member": true, "can_send_messages": false,
                "can_send_audios": false, "can_send_documents": false, "can_send_photos": false,
                "can_send_videos": false, "can_send_video_notes": false, "can_send_voice_notes": false,
                "can_send_polls": false, "can_send_other_messages": false, "can_add_web_page_previews": false,
                "can_react_to_messages": false, "can_edit_tag": false, "can_change_info": false, "can_invite_users": false, "can_pin_messages": false,
                "can_manage_topics": false, "until_date": 0,
            }),
            "kicked" => json!({ "status": "kicked", "user": user, "until_date": 0 }),
            other => json!({ "status": other, "user": user }),
        }
    }

    /// Changes a membership and queues chat_member (or my_chat_member for the
    /// bot) with the old and new state.
    fn change_member(
        &mut self,
        chat_id: i64,
        user_id: i64,
        status: &str,
        by: Option<i64>,
    ) -> Option<i64> {
        assert!(
            MEMBER_STATUSES.contains(&status),
            "telegram fake: unknown member status {status:?}"
        );
        let old = self.status(chat_id, user_id).unwrap_or("left").to_owned();
        let old_json = self.member_json(chat_id, user_id, &old);
        self.chat_mut(chat_id)
            .members
            .insert(user_id, status.to_owned());
        let new_json = self.member_json(chat_id, user_id, status);
        let from = by.or_else(|| self.actor(chat_id)).unwrap_or(user_id);
        let payload = json!({
            "chat": self.chat_json(chat_id),
            "from": self.user_json(from),
            "date": now_unix(),
            "old_chat_member": old_json,
            "new_chat_member": new_json,
        });
        let kind = if user_id == self.bot.id {
            "my_chat_member"
        } else {
            "chat_member"
        };
        self.queue_chat_update(chat_id, kind, payload)
    }

    fn register_file(
        &mut self,
        bytes: Vec<u8>,
        kind: FileKind,
        mime: Option<String>,
        name: Option<String>,
    ) -> String {
        self.file_seq += 1;
        let n = self.file_seq;
        let (width, height) = image_size(&bytes).unwrap_or((0, 0));
        let prefix = match kind {
            FileKind::Photo | FileKind::ProfilePhoto => "AgACAgI",
            FileKind::Document => "BQACAgI",
            FileKind::Audio => "CQACAgI",
            FileKind::Voice => "AwACAgI",
            FileKind::Video => "BAACAgI",
            FileKind::Animation => "CgACAgI",
            FileKind::VideoNote => "DQACAgI",
            FileKind::Sticker => "CAACAgI",
        };
        let file_id = format!(
            "{prefix}AAxkBAAI{n:06}-fake_{:08x}",
            crc32(&n.to_be_bytes())
        );
        let file_unique_id = format!("AgAD{n:05}fk");
        self.files.insert(
            file_id.clone(),
            FileRec {
                file_id: file_id.clone(),
                file_unique_id,
                bytes: Arc::new(bytes),
                mime,
                name,
                kind,
                width,
                height,
                file_path: None,
            },
        );
        file_id
    }

    fn resolve_chat_id(&self, p: &Params) -> Result<i64, ApiError> {
        let Some(raw) = p.values.get("chat_id").filter(|v| !v.is_null()) else {
            return Err(ApiError::bad("chat_id is empty"));
        };
        if let Some(n) = raw.as_i64() {
            return Ok(n);
        }
        let s = raw.as_str().unwrap_or("").trim();
        if s.is_empty() {
            return Err(ApiError::bad("chat_id is empty"));
        }
        if let Some(name) = s.strip_prefix('@') {
            return self
                .chats
                .values()
                .find(|c| {
                    c.username
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(name))
                })
                .map(|c| c.id)
                .ok_or_else(|| ApiError::bad("chat not found"));
        }
        s.parse().map_err(|_| ApiError::bad("chat not found"))
    }

    /// The chat of a request, which must exist for the bot.
    fn known_chat(&self, p: &Params) -> Result<i64, ApiError> {
        let id = self.resolve_chat_id(p)?;
        if self.chats.contains_key(&id) {
            Ok(id)
        } else if id > 0 && self.users.contains_key(&id) {
            Err(ApiError::forbidden(
                "bot can't initiate conversation with a user",
            ))
        } else {
            Err(ApiError::bad("chat not found"))
        }
    }

    fn check_not_migrated(&self, chat_id: i64) -> Result<(), ApiError> {
        match self.chat(chat_id).migrated_to {
            Some(to) => Err(ApiError {
                code: 400,
                description: "Bad Request: group chat was upgraded to a supergroup chat".into(),
                parameters: Some(json!({ "migrate_to_chat_id": to })),
            }),
            None => Ok(()),
        }
    }

    /// Whether the bot may post in a chat; `what` names the content in the
    /// error of a restricted bot ("text messages", "photos", ...).
    fn check_can_post(&self, chat_id: i64, what: &str) -> Result<(), ApiError> {
        self.check_not_migrated(chat_id)?;
        let c = self.chat(chat_id);
        let status = self.status(chat_id, self.bot.id).unwrap_or("left");
        if c.kind == ChatKind::Private {
            return match status {
                "kicked" => Err(ApiError::forbidden("bot was blocked by the user")),
                _ => Ok(()),
            };
        }
        let word = c.kind.api_type();
        match status {
            "left" => Err(ApiError::forbidden(format!(
                "bot is not a member of the {word} chat"
            ))),
            "kicked" => Err(ApiError::forbidden(format!(
                "bot was kicked from the {word} chat"
            ))),
            "member" | "restricted" if c.kind == ChatKind::Channel => Err(ApiError::bad(
                "need administrator rights in the channel chat",
            )),
            "restricted" => Err(ApiError::bad(format!(
                "not enough rights to send {what} to the chat"
            ))),
            _ => Ok(()),
        }
    }

    fn check_member_of(&self, chat_id: i64) -> Result<(), ApiError> {
        self.check_not_migrated(chat_id)?;
        let c = self.chat(chat_id);
        if c.kind == ChatKind::Private {
            return Ok(());
        }
        let word = c.kind.api_type();
        match self.status(chat_id, self.bot.id).unwrap_or("left") {
            "left" => Err(ApiError::forbidden(format!(
                "bot is not a member of the {word} chat"
            ))),
            "kicked" => Err(ApiError::forbidden(format!(
                "bot was kicked from the {word} chat"
            ))),
            _ => Ok(()),
        }
    }

    /// Text (or caption) with its entities, from `parse_mode` or an explicit
    /// entity list, trimmed and measured as the API does.
    fn formatted(
        &self,
        p: &Params,
        field: &str,
        entities_field: &str,
        max_len: usize,
        too_long: &str,
    ) -> Result<(String, Vec<Value>), ApiError> {
        let raw = p.str(field).unwrap_or_default();
        let explicit = match p.json(entities_field, "entities")? {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(ApiError::bad("can't parse entities JSON object")),
            None => Vec::new(),
        };
        let (text, entities) = if !explicit.is_empty() {
            (raw, explicit)
        } else {
            match p
                .str("parse_mode")
                .unwrap_or_default()
                .to_ascii_lowercase()
                .as_str()
            {
                "" | "markdown" | "markdownv2" => (raw, Vec::new()),
                "html" => parse_html(&raw, &self.users)
                    .map_err(|e| ApiError::bad(format!("can't parse entities: {e}")))?,
                _ => return Err(ApiError::bad("unsupported parse_mode")),
            }
        };
        let (text, entities) = trim_formatted(&text, entities);
        if utf16_len(&text) > max_len {
            return Err(ApiError::bad(too_long));
        }
        Ok((text, entities))
    }

    fn resolve_thread(&self, chat_id: i64, p: &Params) -> Result<Option<i64>, ApiError> {
        let c = self.chat(chat_id);
        if c.kind != ChatKind::SupergroupForum {
            return Ok(None);
        }
        match p.int("message_thread_id") {
            None | Some(0) => Ok(None),
            Some(t) if c.topics.contains_key(&t) => Ok(Some(t)),
            Some(_) => Err(ApiError::bad("message thread not found")),
        }
    }

    /// The message a new one replies to, from reply_parameters or the older
    /// reply_to_message_id; `Ok(None)` when there is none or it may be skipped.
    fn resolve_reply(&self, chat_id: i64, p: &Params) -> Result<Option<(i64, Value)>, ApiError> {
        let (target_chat, message_id, allow_without) =
            match p.json("reply_parameters", "reply parameters")? {
                Some(rp) => {
                    let Some(id) = rp.get("message_id").and_then(Value::as_i64) else {
                        return Err(ApiError::bad("message to be replied not found"));
                    };
                    let target = rp.get("chat_id").and_then(Value::as_i64).unwrap_or(chat_id);
                    let allow = rp
                        .get("allow_sending_without_reply")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    (target, id, allow)
                }
                None => match p.int("reply_to_message_id") {
                    Some(id) if id > 0 => (chat_id, id, p.bool("allow_sending_without_reply")),
                    _ => return Ok(None),
                },
            };
        match self.message_json(target_chat, message_id) {
            Some(m) => Ok(Some((target_chat, m))),
            None if allow_without => Ok(None),
            None => Err(ApiError::bad("message to be replied not found")),
        }
    }

    /// Stores a message sent by the bot and returns it as the API does.
    fn post_from_bot(
        &mut self,
        chat_id: i64,
        p: &Params,
        what: &str,
        content: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        self.check_can_post(chat_id, what)?;
        let mut thread = self.resolve_thread(chat_id, p)?;
        let reply = self.resolve_reply(chat_id, p)?;
        let forum = self.chat(chat_id).kind == ChatKind::SupergroupForum;
        if let Some((reply_chat, r)) = &reply
            && *reply_chat == chat_id
            && forum
            && thread.is_none()
        {
            // A reply goes to the topic of the message it answers.
            thread = r.get("message_thread_id").and_then(Value::as_i64);
        }
        let id = self.next_message_id(chat_id);
        let mut m = Map::new();
        m.insert("message_id".into(), json!(id));
        if self.chat(chat_id).kind == ChatKind::Channel {
            m.insert("sender_chat".into(), self.chat_json(chat_id));
        } else {
            m.insert("from".into(), self.bot.json());
        }
        m.insert("chat".into(), self.chat_json(chat_id));
        m.insert("date".into(), json!(now_unix()));
        if let Some(t) = thread {
            m.insert("message_thread_id".into(), json!(t));
            m.insert("is_topic_message".into(), json!(true));
        }
        match reply {
            Some((reply_chat, r)) if reply_chat == chat_id => {
                m.insert("reply_to_message".into(), strip_reply(r));
            }
            Some((reply_chat, r)) => {
                m.insert(
                    "external_reply".into(),
                    external_reply(&r, reply_chat, self),
                );
            }
            None => {
                if let Some(t) = thread
                    && let Some(root) = self.message_json(chat_id, t)
                {
                    // Telegram's quirk: a topic message that replies to nothing
                    // carries the topic's creation message as reply_to_message.
                    m.insert("reply_to_message".into(), strip_reply(root));
                }
            }
        }
        if p.bool("protect_content") {
            m.insert("has_protected_content".into(), json!(true));
        }
        m.extend(content);
        if let Some(markup) = p.json("reply_markup", "reply markup")?
            && markup.get("inline_keyboard").is_some()
        {
            m.insert("reply_markup".into(), markup);
        }
        let msg = Value::Object(m);
        self.store_message(chat_id, msg.clone(), true);
        Ok(msg)
    }

    /// An InputFile parameter: an uploaded part, a known file_id, or a URL.
    fn input_file(&mut self, p: &Params, field: &str, kind: FileKind) -> Result<String, ApiError> {
        let upload = match p.files.get(field) {
            Some(u) => Some(u),
            None => match p.str(field) {
                None => return Err(ApiError::bad(format!("there is no {field} in the request"))),
                Some(s) if s.starts_with("attach://") => match p.files.get(&s["attach://".len()..])
                {
                    Some(u) => Some(u),
                    None => {
                        return Err(ApiError::bad(format!("there is no {field} in the request")));
                    }
                },
                Some(s) if s.starts_with("http://") || s.starts_with("https://") => {
                    return Err(ApiError::bad("failed to get HTTP URL content"));
                }
                Some(s) => {
                    let f = self
                        .files
                        .get(s.trim())
                        .ok_or_else(|| ApiError::bad("wrong file identifier/HTTP URL specified"))?;
                    let same = f.kind == kind
                        || (kind == FileKind::Photo && f.kind == FileKind::ProfilePhoto);
                    if !same {
                        return Err(ApiError::bad(format!(
                            "can't use file of type {} as {}",
                            f.kind.type_name(),
                            kind.type_name()
                        )));
                    }
                    return Ok(f.file_id.clone());
                }
            },
        };
        let u = upload.expect("upload");
        if u.bytes.is_empty() {
            return Err(ApiError::bad("file must be non-empty"));
        }
        if u.bytes.len() > MAX_UPLOAD {
            return Err(ApiError::too_large());
        }
        if kind == FileKind::Photo {
            if u.bytes.len() > MAX_PHOTO_UPLOAD {
                return Err(ApiError::bad("PHOTO_SAVE_FILE_INVALID"));
            }
            let Some((w, h)) = image_size(&u.bytes) else {
                return Err(ApiError::bad("IMAGE_PROCESS_FAILED"));
            };
            if w == 0 || h == 0 || w + h > 10_000 || w.max(h) > 20 * w.min(h) {
                return Err(ApiError::bad("PHOTO_INVALID_DIMENSIONS"));
            }
        }
        let mime = u
            .content_type
            .clone()
            .filter(|c| c != "application/octet-stream")
            .or_else(|| guess_mime(u.filename.as_deref()).map(str::to_owned));
        Ok(self.register_file(u.bytes.clone(), kind, mime, u.filename.clone()))
    }

    fn media_object(&self, file_id: &str, kind: FileKind, p: &Params) -> (&'static str, Value) {
        let f = &self.files[file_id];
        let mut m = f.base_json();
        let int = |k: &str| json!(p.int(k).unwrap_or(0));
        let mime = |default: &str| json!(f.mime.clone().unwrap_or_else(|| default.to_owned()));
        match kind {
            FileKind::Photo | FileKind::ProfilePhoto => return ("photo", json!([f.photo_size()])),
            FileKind::Document => {
                if let Some(n) = &f.name {
                    m.insert("file_name".into(), json!(n));
                }
                m.insert("mime_type".into(), mime("application/octet-stream"));
            }
            FileKind::Audio => {
                m.insert("duration".into(), int("duration"));
                for k in ["performer", "title"] {
                    if let Some(v) = p.str(k) {
                        m.insert(k.into(), json!(v));
                    }
                }
                if let Some(n) = &f.name {
                    m.insert("file_name".into(), json!(n));
                }
                m.insert("mime_type".into(), mime("audio/mpeg"));
            }
            FileKind::Voice => {
                m.insert("duration".into(), int("duration"));
                m.insert("mime_type".into(), mime("audio/ogg"));
            }
            FileKind::Video | FileKind::Animation => {
                m.insert(
                    "width".into(),
                    p.int("width").map_or(json!(f.width), |w| json!(w)),
                );
                m.insert(
                    "height".into(),
                    p.int("height").map_or(json!(f.height), |h| json!(h)),
                );
                m.insert("duration".into(), int("duration"));
                if let Some(n) = &f.name {
                    m.insert("file_name".into(), json!(n));
                }
                m.insert("mime_type".into(), mime("video/mp4"));
            }
            FileKind::VideoNote => {
                m.insert("length".into(), int("length"));
                m.insert("duration".into(), int("duration"));
            }
            FileKind::Sticker => {
                m.insert("type".into(), json!("regular"));
                m.insert("width".into(), json!(f.width));
                m.insert("height".into(), json!(f.height));
                m.insert("is_animated".into(), json!(false));
                m.insert("is_video".into(), json!(false));
            }
        }
        let field = match kind {
            FileKind::Document => "document",
            FileKind::Audio => "audio",
            FileKind::Voice => "voice",
            FileKind::Video => "video",
            FileKind::Animation => "animation",
            FileKind::VideoNote => "video_note",
            FileKind::Sticker => "sticker",
            FileKind::Photo | FileKind::ProfilePhoto => unreachable!(),
        };
        (field, Value::Object(m))
    }

    /// Hands out updates as getUpdates does; `offset` is the request's, and
    /// the returned offset is the one a waiting request re-reads with.
    fn take_updates(&mut self, offset: i64, limit: usize) -> (Vec<Value>, i64) {
        let tail = self.next_update_id;
        let created = tail > FIRST_UPDATE_ID;
        let id_of = |u: &Value| u["update_id"].as_i64().unwrap_or(0);
        let head = self.updates.front().map(id_of).unwrap_or(tail);
        let mut offset = offset;
        if offset <= 0 {
            if created && offset < 0 {
                // A negative offset counts from the end of the queue.
                offset += tail;
            }
            if offset < head {
                offset = head;
            }
        }
        if offset <= 0 || !created {
            return (Vec::new(), offset);
        }
        // An offset beyond the queue is ignored rather than confirming
        // updates that do not exist yet.
        let from = if offset > tail { head } else { offset };
        while self.updates.front().is_some_and(|u| id_of(u) < from) {
            self.updates.pop_front();
        }
        self.confirmed_offset = self.confirmed_offset.max(from);
        let batch = self.updates.iter().take(limit).cloned().collect();
        (batch, offset)
    }

    fn conflict_delay(&mut self) -> Option<Duration> {
        // The server answers at most one 409 every 3 seconds; later ones wait.
        let now = Instant::now();
        match self.poll.next_conflict_at {
            Some(t) if now < t => Some(Duration::from_secs(3)),
            _ => {
                self.poll.next_conflict_at = Some(now + Duration::from_secs(3));
                None
            }
        }
    }

    fn webhook_info(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "url".into(),
            json!(
                self.webhook
                    .as_ref()
                    .map(|w| w.url.clone())
                    .unwrap_or_default()
            ),
        );
        m.insert("has_custom_certificate".into(), json!(false));
        m.insert("pending_update_count".into(), json!(self.updates.len()));
        if let Some(w) = &self.webhook {
            m.insert("max_connections".into(), json!(w.max_connections));
            m.insert("ip_address".into(), json!("127.0.0.1"));
            if let Some((date, message)) = &self.last_webhook_error {
                m.insert("last_error_date".into(), json!(date));
                m.insert("last_error_message".into(), json!(message));
            }
        }
        if let Some(a) = &self.allowed {
            m.insert("allowed_updates".into(), json!(a));
        }
        Value::Object(m)
    }
}

fn external_reply(r: &Value, chat_id: i64, s: &State) -> Value {
    let origin = match r.get("from") {
        Some(user) if r.get("sender_chat").is_none() => {
            json!({ "type": "user", "date": r["date"], "sender_user": user })
        }
        _ => {
            json!({ "type": "channel", "date": r["date"], "chat": s.chat_json(chat_id), "message_id": r["message_id"] })
        }
    };
    json!({ "origin": origin, "chat": s.chat_json(chat_id), "message_id": r["message_id"] })
}

// ---------------------------------------------------------------------------
// Methods

fn canonical_method(name: &str) -> Option<&'static str> {
    METHODS
        .iter()
        .copied()
        .find(|m| m.eq_ignore_ascii_case(name))
}

fn message_id_param(p: &Params) -> Result<i64, ApiError> {
    p.int("message_id")
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad("message identifier is not specified"))
}

fn call_sync(s: &mut State, method: &str, p: &Params) -> ApiResult {
    match method {
        "getMe" => Ok(s.me_json().into()),
        "logOut" | "close" => Ok(json!(true).into()),
        "getWebhookInfo" => Ok(s.webhook_info().into()),
        "sendMessage" => {
            let (text, entities) =
                s.formatted(p, "text", "entities", MAX_TEXT_LEN, "message is too long")?;
            if text.is_empty() {
                return Err(ApiError::bad("message text is empty"));
            }
            let chat = s.known_chat(p)?;
            let mut content = Map::new();
            content.insert("text".into(), json!(text));
            if !entities.is_empty() {
                content.insert("entities".into(), json!(entities));
            }
            if let Some(lp) = p.json("link_preview_options", "link preview options")? {
                content.insert("link_preview_options".into(), lp);
            }
            Ok(s.post_from_bot(chat, p, "text messages", content)?.into())
        }
        "sendPhoto" | "sendDocument" | "sendAudio" | "sendVoice" | "sendVideo"
        | "sendAnimation" | "sendVideoNote" | "sendSticker" => {
            let (field, kind, what) = match method {
                "sendPhoto" => ("photo", FileKind::Photo, "photos"),
                "sendDocument" => ("document", FileKind::Document, "documents"),
                "sendAudio" => ("audio", FileKind::Audio, "music"),
                "sendVoice" => ("voice", FileKind::Voice, "voice notes"),
                "sendVideo" => ("video", FileKind::Video, "videos"),
                "sendAnimation" => ("animation", FileKind::Animation, "animations"),
                "sendVideoNote" => ("video_note", FileKind::VideoNote, "video notes"),
                _ => ("sticker", FileKind::Sticker, "stickers"),
            };
            let (caption, caption_entities) =
                if matches!(kind, FileKind::VideoNote | FileKind::Sticker) {
                    (String::new(), Vec::new())
                } else {
                    s.formatted(
                        p,
                        "caption",
                        "caption_entities",
                        MAX_CAPTION_LEN,
                        "message caption is too long",
                    )?
                };
            let chat = s.known_chat(p)?;
            // Rights first, so that a refused upload leaves no file behind.
            s.check_can_post(chat, what)?;
            s.resolve_thread(chat, p)?;
            s.resolve_reply(chat, p)?;
            let file_id = s.input_file(p, field, kind)?;
            let (key, media) = s.media_object(&file_id, kind, p);
            let mut content = Map::new();
            content.insert(key.into(), media);
            if !caption.is_empty() {
                content.insert("caption".into(), json!(caption));
                if !caption_entities.is_empty() {
                    content.insert("caption_entities".into(), json!(caption_entities));
                }
            }
            if p.bool("has_spoiler") {
                content.insert("has_media_spoiler".into(), json!(true));
            }
            if p.bool("show_caption_above_media") {
                content.insert("show_caption_above_media".into(), json!(true));
            }
            Ok(s.post_from_bot(chat, p, what, content)?.into())
        }
        "sendChatAction" => {
            let chat = s.known_chat(p)?;
            s.check_can_post(chat, "text messages")?;
            if p.str("action").unwrap_or_default().is_empty() {
                return Err(ApiError::bad("wrong parameter action in request"));
            }
            Ok(json!(true).into())
        }
        "editMessageText" | "editMessageCaption" => edit_message(s, method == "editMessageText", p),
        "deleteMessage" => {
            let chat = s.known_chat(p)?;
            let id = message_id_param(p)?;
            delete_one(s, chat, id)?;
            Ok(json!(true).into())
        }
        "deleteMessages" => {
            let chat = s.known_chat(p)?;
            let ids = match p.json("message_ids", "message identifiers")? {
                Some(Value::Array(ids)) if (1..=100).contains(&ids.len()) => ids,
                _ => return Err(ApiError::bad("message identifiers are not specified")),
            };
            for id in ids.iter().filter_map(Value::as_i64) {
                let _ = delete_one(s, chat, id);
            }
            Ok(json!(true).into())
        }
        "setMessageReaction" => set_reaction(s, p),
        "getFile" => {
            let id = p.str("file_id").unwrap_or_default();
            let seq = s.files.len();
            let f = s
                .files
                .get_mut(id.trim())
                .ok_or_else(|| ApiError::bad("invalid file_id"))?;
            if f.bytes.len() > MAX_DOWNLOAD {
                return Err(ApiError::bad("file is too big"));
            }
            if f.file_path.is_none() {
                let (dir, default_ext) = f.kind.dir_and_ext();
                let ext = f
                    .name
                    .as_deref()
                    .and_then(|n| n.rsplit_once('.'))
                    .map(|(_, e)| e.to_owned())
                    .filter(|_| f.kind == FileKind::Document)
                    .unwrap_or_else(|| default_ext.to_owned());
                let dot = if ext.is_empty() { "" } else { "." };
                f.file_path = Some(format!("{dir}/file_{seq}_{}{dot}{ext}", f.file_unique_id));
            }
            let mut m = f.base_json();
            m.insert("file_path".into(), json!(f.file_path));
            Ok(Value::Object(m).into())
        }
        "getChat" => get_chat(s, p),
        "getChatMember" => {
            let chat = s.known_chat(p)?;
            let user = p
                .int("user_id")
                .ok_or_else(|| ApiError::bad("invalid user_id specified"))?;
            if s.user(user).is_none() {
                return Err(ApiError::bad("user not found"));
            }
            let status = match s.status(chat, user) {
                Some(st) => st.to_owned(),
                None if s.chat(chat).kind == ChatKind::Private
                    && (user == chat || user == s.bot.id) =>
                {
                    "member".into()
                }
                None => "left".into(),
            };
            Ok(s.member_json(chat, user, &status).into())
        }
        "getChatAdministrators" => {
            let chat = s.known_chat(p)?;
            if s.chat(chat).kind == ChatKind::Private {
                return Err(ApiError::bad(
                    "there are no administrators in the private chat",
                ));
            }
            let admins: Vec<Value> = s
                .chat(chat)
                .members
                .iter()
                .filter(|(_, st)| matches!(st.as_str(), "creator" | "administrator"))
                .map(|(id, st)| s.member_json(chat, *id, st))
                .collect();
            Ok(json!(admins).into())
        }
        "getChatMemberCount" | "getChatMembersCount" => {
            let chat = s.known_chat(p)?;
            let c = s.chat(chat);
            let count = if c.kind == ChatKind::Private {
                2
            } else {
                c.members
                    .values()
                    .filter(|st| !matches!(st.as_str(), "left" | "kicked"))
                    .count()
            };
            Ok(json!(count).into())
        }
        "getUserProfilePhotos" => {
            let user = p
                .int("user_id")
                .ok_or_else(|| ApiError::bad("invalid user_id specified"))?;
            let u = s
                .user(user)
                .ok_or_else(|| ApiError::bad("user not found"))?;
            let offset = p.int("offset").unwrap_or(0).max(0) as usize;
            let limit = p.int("limit").unwrap_or(100).clamp(1, 100) as usize;
            let photos: Vec<Value> = u
                .photos
                .iter()
                .skip(offset)
                .take(limit)
                .map(|id| json!([s.files[id].photo_size()]))
                .collect();
            Ok(json!({ "total_count": u.photos.len(), "photos": photos }).into())
        }
        "pinChatMessage" | "unpinChatMessage" => {
            let chat = s.known_chat(p)?;
            s.check_member_of(chat)?;
            if s.chat(chat).kind != ChatKind::Private && !s.bot_is_admin(chat) {
                return Err(ApiError::bad(
                    "not enough rights to manage pinned messages in the chat",
                ));
            }
            if method == "unpinChatMessage" {
                let c = s.chat_mut(chat);
                match p.int("message_id") {
                    Some(id) => c.pinned.retain(|m| *m != id),
                    None => {
                        c.pinned.pop();
                    }
                }
                return Ok(json!(true).into());
            }
            let id = message_id_param(p)?;
            let Some(msg) = s.message_json(chat, id) else {
                return Err(ApiError::bad("message to pin not found"));
            };
            s.chat_mut(chat).pinned.push(id);
            let service = json!({ "pinned_message": strip_reply(msg) });
            bot_service_message(s, chat, service);
            Ok(json!(true).into())
        }
        "setChatTitle" | "setChatDescription" => {
            let chat = s.known_chat(p)?;
            s.check_member_of(chat)?;
            let title = method == "setChatTitle";
            if s.chat(chat).kind == ChatKind::Private {
                return Err(ApiError::bad(if title {
                    "chat title can't be changed in private chats"
                } else {
                    "chat description can't be changed in private chats"
                }));
            }
            if !s.bot_is_admin(chat) {
                return Err(ApiError::bad(if title {
                    "not enough rights to change chat title"
                } else {
                    "not enough rights to change chat description"
                }));
            }
            let value = p
                .str(if title { "title" } else { "description" })
                .unwrap_or_default();
            if title {
                if value.trim().is_empty() {
                    return Err(ApiError::bad("chat title is empty"));
                }
                s.chat_mut(chat).title = value.clone();
                bot_service_message(s, chat, json!({ "new_chat_title": value }));
            } else {
                if s.chat(chat).description.as_deref().unwrap_or("") == value {
                    return Err(ApiError::bad("chat description is not modified"));
                }
                s.chat_mut(chat).description = Some(value).filter(|v| !v.is_empty());
            }
            Ok(json!(true).into())
        }
        "leaveChat" => {
            let chat = s.known_chat(p)?;
            s.check_member_of(chat)?;
            let bot = s.bot.id;
            s.change_member(chat, bot, "left", Some(bot));
            Ok(json!(true).into())
        }
        "createForumTopic" => {
            let chat = s.known_chat(p)?;
            s.check_member_of(chat)?;
            if s.chat(chat).kind != ChatKind::SupergroupForum {
                return Err(ApiError::bad("the chat is not a forum"));
            }
            if !s.bot_is_admin(chat) {
                return Err(ApiError::bad("not enough rights to create a topic"));
            }
            let name = p.str("name").unwrap_or_default();
            if name.is_empty() || name.chars().count() > 128 {
                return Err(ApiError::bad("topic name is empty or too long"));
            }
            let color = p.int("icon_color").unwrap_or(7_322_096);
            let id = bot_service_message(
                s,
                chat,
                json!({ "forum_topic_created": { "name": name, "icon_color": color } }),
            );
            s.chat_mut(chat).topics.insert(id, name.clone());
            Ok(json!({ "message_thread_id": id, "name": name, "icon_color": color }).into())
        }
        "setMyCommands" => {
            s.commands = p
                .json("commands", "bot commands")?
                .unwrap_or_else(|| json!([]));
            Ok(json!(true).into())
        }
        "getMyCommands" => Ok(s.commands.clone().into()),
        "deleteMyCommands" => {
            s.commands = json!([]);
            Ok(json!(true).into())
        }
        _ => Err(ApiError::not_found()),
    }
}

/// A service message the bot's own action leaves in a chat; like everything
/// the bot sends, it does not come back as an update.
fn bot_service_message(s: &mut State, chat: i64, fields: Value) -> i64 {
    let id = s.next_message_id(chat);
    let mut m = Map::new();
    m.insert("message_id".into(), json!(id));
    if s.chat(chat).kind == ChatKind::Channel {
        m.insert("sender_chat".into(), s.chat_json(chat));
    } else {
        m.insert("from".into(), s.bot.json());
    }
    m.insert("chat".into(), s.chat_json(chat));
    m.insert("date".into(), json!(now_unix()));
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    s.store_message(chat, Value::Object(m), true);
    id
}

fn edit_message(s: &mut State, text: bool, p: &Params) -> ApiResult {
    if p.has("inline_message_id") {
        return Err(ApiError::bad("message to edit not found"));
    }
    let chat = s.known_chat(p)?;
    let id = message_id_param(p)?;
    let (field, entities_field) = if text {
        ("text", "entities")
    } else {
        ("caption", "caption_entities")
    };
    let (value, entities) = if text {
        s.formatted(
            p,
            field,
            entities_field,
            MAX_TEXT_LEN,
            "message is too long",
        )?
    } else {
        s.formatted(
            p,
            field,
            entities_field,
            MAX_CAPTION_LEN,
            "message caption is too long",
        )?
    };
    if text && value.is_empty() {
        return Err(ApiError::bad("message text is empty"));
    }
    s.check_member_of(chat)?;
    let markup = p.json("reply_markup", "reply markup")?;
    let Some(rec) = s.chats.get_mut(&chat).and_then(|c| c.messages.get_mut(&id)) else {
        return Err(ApiError::bad("message to edit not found"));
    };
    if !rec.by_bot {
        return Err(ApiError::bad("message can't be edited"));
    }
    let m = rec.json.as_object_mut().expect("message object");
    let has_text = m.contains_key("text");
    const MEDIA: &[&str] = &["photo", "document", "audio", "voice", "video", "animation"];
    if text && !has_text {
        return Err(ApiError::bad("there is no text in the message to edit"));
    }
    if !text && !MEDIA.iter().any(|k| m.contains_key(*k)) {
        return Err(ApiError::bad("there is no caption in the message to edit"));
    }
    let old_value = m.get(field).and_then(Value::as_str).unwrap_or("");
    let old_entities = m.get(entities_field).cloned().unwrap_or_else(|| json!([]));
    let old_markup = m.get("reply_markup").cloned();
    let new_markup = markup
        .clone()
        .filter(|mk| mk.get("inline_keyboard").is_some());
    if old_value == value && old_entities == json!(entities) && old_markup == new_markup {
        return Err(ApiError::bad(
            "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        ));
    }
    if value.is_empty() {
        m.remove(field);
    } else {
        m.insert(field.into(), json!(value));
    }
    if entities.is_empty() {
        m.remove(entities_field);
    } else {
        m.insert(entities_field.into(), json!(entities));
    }
    match new_markup {
        Some(mk) => m.insert("reply_markup".into(), mk),
        None => m.remove("reply_markup"),
    };
    m.insert("edit_date".into(), json!(now_unix()));
    Ok(rec.json.clone().into())
}

fn delete_one(s: &mut State, chat: i64, id: i64) -> Result<(), ApiError> {
    s.check_member_of(chat)?;
    let kind = s.chat(chat).kind;
    let admin = s.bot_is_admin(chat);
    let Some(rec) = s.chat(chat).messages.get(&id) else {
        return Err(ApiError::bad("message to delete not found"));
    };
    if !(rec.by_bot || kind == ChatKind::Private || admin) {
        return Err(ApiError::bad("message can't be deleted"));
    }
    let c = s.chat_mut(chat);
    c.messages.remove(&id);
    c.pinned.retain(|m| *m != id);
    Ok(())
}

fn set_reaction(s: &mut State, p: &Params) -> ApiResult {
    let chat = s.known_chat(p)?;
    let id = message_id_param(p)?;
    let reaction = match p.json("reaction", "reaction types")? {
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ApiError::bad("can't parse reaction types JSON object")),
        None => Vec::new(),
    };
    s.check_member_of(chat)?;
    if !s.chat(chat).messages.contains_key(&id) {
        return Err(ApiError::bad("message to react not found"));
    }
    // Bots, like users without Premium, set at most one reaction.
    if reaction.len() > 1 {
        return Err(ApiError::bad("REACTIONS_TOO_MANY"));
    }
    let allowed_here = s.chat(chat).available_reactions.clone();
    for r in &reaction {
        let emoji = match (
            r.get("type").and_then(Value::as_str),
            r.get("emoji").and_then(Value::as_str),
        ) {
            (Some("emoji"), Some(e)) => e,
            _ => return Err(ApiError::bad("REACTION_INVALID")),
        };
        if !REACTION_EMOJI.contains(&emoji)
            || allowed_here
                .as_ref()
                .is_some_and(|a| !a.iter().any(|x| x == emoji))
        {
            return Err(ApiError::bad("REACTION_INVALID"));
        }
    }
    let rec = s.chat_mut(chat).messages.get_mut(&id).expect("message");
    rec.bot_reaction = reaction
        .into_iter()
        .map(|r| json!({ "type": "emoji", "emoji": r["emoji"] }))
        .collect();
    Ok(json!(true).into())
}

/// Required in ChatFullInfo since Bot API 9.0; the fake has no gifts.
fn accepted_gift_types() -> Value {
    json!({
        "unlimited_gifts": false,
        "limited_gifts": false,
        "unique_gifts": false,
        "premium_subscription": false,
        "gifts_from_channels": false,
    })
}

fn get_chat(s: &State, p: &Params) -> ApiResult {
    let id = s.resolve_chat_id(p)?;
    let Some(c) = s.chats.get(&id) else {
        if let Some(u) = s.users.get(&id) {
            let mut m = u.json();
            m.as_object_mut().expect("user object").remove("is_bot");
            m["type"] = json!("private");
            m["accent_color_id"] = json!(0);
            m["max_reaction_count"] = json!(11);
            m["accepted_gift_types"] = accepted_gift_types();
            return Ok(m.into());
        }
        return Err(ApiError::bad("chat not found"));
    };
    let mut m = s.chat_json(id);
    m["accent_color_id"] = json!(0);
    m["max_reaction_count"] = json!(11);
    m["accepted_gift_types"] = accepted_gift_types();
    if let Some(d) = &c.description {
        m["description"] = json!(d);
    }
    let photo = if c.kind == ChatKind::Private {
        s.users.get(&id).and_then(|u| u.photos.first())
    } else {
        c.photo.as_ref()
    };
    if let Some(f) = photo.and_then(|f| s.files.get(f)) {
        m["photo"] = json!({
            "small_file_id": f.file_id, "small_file_unique_id": f.file_unique_id,
            "big_file_id": f.file_id, "big_file_unique_id": f.file_unique_id,
        });
    }
    if let Some(pinned) = c.pinned.last().and_then(|pid| s.message_json(id, *pid)) {
        m["pinned_message"] = strip_reply(pinned);
    }
    if let Some(a) = &c.available_reactions {
        m["available_reactions"] = json!(
            a.iter()
                .map(|e| json!({ "type": "emoji", "emoji": e }))
                .collect::<Vec<_>>()
        );
    }
    if let Some(to) = c.migrated_to {
        // A migrated basic group still answers; the API points at its successor.
        m["migrate_to_chat_id"] = json!(to);
    }
    Ok(m.into())
}

enum PollStep {
    Answer(ApiResult),
    Conflict(&'static str, Option<Duration>),
    Wait {
        offset: i64,
        limit: usize,
        seq: u64,
        deadline: tokio::time::Instant,
    },
}

async fn conflict(description: &'static str, delay: Option<Duration>) -> ApiResult {
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    Err(ApiError::conflict(description))
}

/// The first look of a getUpdates request at the queue.
fn start_poll(s: &mut State, p: &Params) -> PollStep {
    if s.webhook.is_some() {
        let delay = s.conflict_delay();
        return PollStep::Conflict(
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            delay,
        );
    }
    let offset = p.int("offset").unwrap_or(0);
    let limit = p.int("limit").unwrap_or(100).clamp(1, 100) as usize;
    let mut timeout = p
        .int("timeout")
        .unwrap_or(0)
        .clamp(0, LONG_POLL_MAX_TIMEOUT);
    s.update_allowed(p);
    let now = Instant::now();
    // The server makes a client that repeats a short poll within 3 s with
    // the same offset wait 3 s, to stop busy loops.
    if let Some((prev, at)) = s.poll.previous
        && prev == offset
        && timeout < 3
        && now < at + Duration::from_secs(3)
    {
        timeout = 3;
    }
    s.poll.previous = Some((offset, now));
    let (batch, offset) = s.take_updates(offset, limit);
    if !batch.is_empty() || timeout == 0 {
        return PollStep::Answer(Ok(json!(batch).into()));
    }
    // Only one request may wait; a newer one ends the older with 409.
    if let Some(old) = s.poll.active.take() {
        s.poll.aborted.insert(
            old,
            "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        );
    }
    s.poll.next_seq += 1;
    let seq = s.poll.next_seq;
    s.poll.active = Some(seq);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout as u64);
    PollStep::Wait {
        offset,
        limit,
        seq,
        deadline,
    }
}

/// A later look of a waiting getUpdates request at the queue.
fn recheck_poll(
    s: &mut State,
    offset: i64,
    limit: usize,
    seq: u64,
    deadline: tokio::time::Instant,
) -> Option<PollStep> {
    if let Some(reason) = s.poll.aborted.remove(&seq) {
        return Some(PollStep::Conflict(reason, s.conflict_delay()));
    }
    let (batch, _) = s.take_updates(offset, limit);
    if !batch.is_empty() || s.closed || tokio::time::Instant::now() >= deadline {
        return Some(PollStep::Answer(Ok(json!(batch).into())));
    }
    None
}

async fn get_updates(shared: &Shared, p: &Params) -> ApiResult {
    let step = start_poll(&mut shared.lock(), p);
    let (offset, limit, seq, deadline) = match step {
        PollStep::Answer(r) => return r,
        PollStep::Conflict(description, delay) => return conflict(description, delay).await,
        PollStep::Wait {
            offset,
            limit,
            seq,
            deadline,
        } => (offset, limit, seq, deadline),
    };
    shared.bump();
    let _guard = PollGuard { shared, seq };
    loop {
        let mut changed = shared.changed.subscribe();
        let step = recheck_poll(&mut shared.lock(), offset, limit, seq, deadline);
        match step {
            Some(PollStep::Answer(r)) => return r,
            Some(PollStep::Conflict(description, delay)) => {
                return conflict(description, delay).await;
            }
            _ => {}
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Forgets a waiting getUpdates when it ends, however it ends (the client
/// may hang up mid-wait).
struct PollGuard<'a> {
    shared: &'a Shared,
    seq: u64,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        if s.poll.active == Some(self.seq) {
            s.poll.active = None;
        }
        s.poll.aborted.remove(&self.seq);
    }
}

async fn set_webhook(shared: &Shared, method: &str, p: &Params) -> ApiResult {
    let url = if method == "setWebhook" {
        p.str("url").unwrap_or_default()
    } else {
        String::new()
    };
    let drop_pending = p.bool("drop_pending_updates");
    let secret = p.str("secret_token").filter(|t| !t.is_empty());
    let max_connections = p.int("max_connections").unwrap_or(40).clamp(1, 100);
    {
        let mut s = shared.lock();
        if !url.is_empty() {
            let now = Instant::now();
            if s.next_set_webhook_at.is_some_and(|t| now < t) {
                return Err(ApiError::retry_after(1));
            }
            s.next_set_webhook_at = Some(now + Duration::from_secs(1));
        }
        if let Some(t) = &secret
            && (t.len() > 256
                || !t
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
        {
            return Err(ApiError::bad("secret token contains unallowed characters"));
        }
        let current = s
            .webhook
            .as_ref()
            .map(|w| (w.url.clone(), w.secret.clone(), w.max_connections));
        let unchanged = match &current {
            None => url.is_empty(),
            Some((u, sec, mc)) => *u == url && *sec == secret && *mc == max_connections,
        };
        if unchanged && !drop_pending {
            s.update_allowed(p);
            return Ok(Reply {
                result: json!(true),
                description: Some(if url.is_empty() {
                    "Webhook is already deleted"
                } else {
                    "Webhook is already set"
                }),
            });
        }
        if url.is_empty() {
            let was_set = s.webhook.take().is_some();
            s.webhook_generation += 1;
            if drop_pending {
                s.updates.clear();
            }
            s.last_webhook_error = None;
            drop(s);
            shared.bump();
            return Ok(Reply {
                result: json!(true),
                description: Some(if was_set {
                    "Webhook was deleted"
                } else {
                    "Webhook is already deleted"
                }),
            });
        }
    }
    if url.starts_with("https://") {
        return Err(ApiError::bad(
            "bad webhook: the fake delivers webhooks over plain HTTP only; use an http:// URL",
        ));
    }
    let Some((host, port, _)) = parse_http_url(&url) else {
        return Err(ApiError::bad("invalid webhook URL specified"));
    };
    // The server checks that the webhook can be reached before accepting it.
    match tokio::time::timeout(
        WEBHOOK_CONNECT_TIMEOUT,
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(ApiError::bad(format!("bad webhook: {}", connect_error(&e)))),
        Err(_) => return Err(ApiError::bad("bad webhook: Connection timed out")),
    }
    {
        let mut s = shared.lock();
        if let Some(old) = s.poll.active.take() {
            s.poll
                .aborted
                .insert(old, "Conflict: terminated by setWebhook request");
        }
        s.webhook_generation += 1;
        let generation = s.webhook_generation;
        s.webhook = Some(Webhook {
            url,
            secret,
            max_connections,
            generation,
        });
        if drop_pending {
            s.updates.clear();
        }
        s.update_allowed(p);
        s.last_webhook_error = None;
        s.webhook_delay = s.webhook_retry.0;
        s.webhook_next_attempt = None;
    }
    shared.bump();
    Ok(Reply {
        result: json!(true),
        description: Some("Webhook was set"),
    })
}

fn connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        _ => format!("Connection error: {e}"),
    }
}

// ---------------------------------------------------------------------------
// HTTP

async fn handle(AxumState(shared): AxumState<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/file/bot") {
        return download(&shared, rest);
    }
    let Some((token, method)) = path.strip_prefix("/bot").and_then(|r| r.split_once('/')) else {
        return json_response(404, &ApiError::not_found().body());
    };
    if token != shared.token {
        return json_response(401, &ApiError::new(401, "Unauthorized").body());
    }
    if method.is_empty() || method.contains('/') {
        return json_response(404, &ApiError::not_found().body());
    }
    let params = match read_params(req).await {
        Ok(p) => p,
        Err(e) => return json_response(e.code, &e.body()),
    };
    let canonical = canonical_method(method);
    let name = canonical.unwrap_or(method).to_owned();
    let recorded = params.recorded();
    let is_async = matches!(
        canonical,
        Some("getUpdates" | "setWebhook" | "deleteWebhook")
    );
    let (index, early) = {
        let mut s = shared.lock();
        let failure = s
            .failures
            .get_mut(&name.to_ascii_lowercase())
            .and_then(VecDeque::pop_front);
        let early: Option<ApiResult> = match (failure, canonical) {
            (Some(e), _) => Some(Err(e)),
            (None, None) => Some(Err(ApiError::not_found())),
            (None, Some(m)) if !is_async => Some(call_sync(&mut s, m, &params)),
            _ => None,
        };
        let response = early.as_ref().map(reply_body);
        s.calls.push(CallRec {
            method: name.clone(),
            params: recorded,
            response,
        });
        (s.calls.len() - 1, early)
    };
    shared.bump();
    let result = match early {
        Some(r) => r,
        None if name == "getUpdates" => get_updates(&shared, &params).await,
        None => set_webhook(&shared, &name, &params).await,
    };
    let body = reply_body(&result);
    if is_async {
        shared.lock().calls[index].response = Some(body.clone());
        shared.bump();
    }
    let status = result.as_ref().map(|_| 200).unwrap_or_else(|e| e.code);
    json_response(status, &body)
}

fn download(shared: &Shared, rest: &str) -> Response {
    let Some((token, file_path)) = rest.split_once('/') else {
        return json_response(404, &ApiError::not_found().body());
    };
    if token != shared.token {
        return json_response(401, &ApiError::new(401, "Unauthorized").body());
    }
    let s = shared.lock();
    match s
        .files
        .values()
        .find(|f| f.file_path.as_deref() == Some(file_path))
    {
        Some(f) => {
            let mime = f
                .mime
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into());
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, mime)],
                f.bytes.as_ref().clone(),
            )
                .into_response()
        }
        None => json_response(404, &ApiError::not_found().body()),
    }
}

// ---------------------------------------------------------------------------
// Webhook delivery

fn parse_http_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (
            h.to_owned(),
            after
                .strip_prefix(':')
                .map_or(Some(80), |p| p.parse().ok())?,
        )
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (authority.to_owned(), 80),
        }
    };
    (!host.is_empty()).then_some((host, port, path))
}

/// POSTs one update and returns the status code and reason phrase.
async fn post_update(
    url: &str,
    secret: Option<&str>,
    body: &[u8],
) -> Result<(u16, String), String> {
    let (host, port, path) = parse_http_url(url).ok_or("invalid webhook URL")?;
    let mut stream = match tokio::time::timeout(
        WEBHOOK_CONNECT_TIMEOUT,
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(connect_error(&e)),
        Err(_) => return Err("Connection timed out".into()),
    };
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(secret) = secret {
        head.push_str(&format!("X-Telegram-Bot-Api-Secret-Token: {secret}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("Connection error: {e}"))?;
    let read_status_line = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(String::from_utf8_lossy(&buf[..end]).into_owned());
            }
            match stream.read(&mut chunk).await {
                Ok(0) => return Err("Connection closed by the webhook".to_string()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("Connection error: {e}")),
            }
        }
    };
    let line = tokio::time::timeout(WEBHOOK_READ_TIMEOUT, read_status_line)
        .await
        .map_err(|_| "Read timeout expired".to_string())??;
    let mut parts = line.splitn(3, ' ');
    let _version = parts.next();
    let code = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or("Wrong response from the webhook")?;
    Ok((code, parts.next().unwrap_or("").to_owned()))
}

enum WebhookJob {
    Idle,
    WaitUntil(Instant),
    Deliver {
        url: String,
        secret: Option<String>,
        update_id: i64,
        body: Vec<u8>,
        generation: u64,
    },
}

/// Delivers the queue to the webhook one update at a time, in order,
/// retrying the head of the queue with a growing delay until it gets a 2xx.
async fn webhook_loop(shared: Arc<Shared>) {
    loop {
        let mut changed = shared.changed.subscribe();
        let job = {
            let s = shared.lock();
            match (&s.webhook, s.updates.front()) {
                (Some(w), Some(u)) => match s.webhook_next_attempt {
                    Some(t) if t > Instant::now() => WebhookJob::WaitUntil(t),
                    _ => WebhookJob::Deliver {
                        url: w.url.clone(),
                        secret: w.secret.clone(),
                        update_id: u["update_id"].as_i64().unwrap_or(0),
                        body: u.to_string().into_bytes(),
                        generation: w.generation,
                    },
                },
                _ => WebhookJob::Idle,
            }
        };
        match job {
            WebhookJob::Idle => {
                if changed.changed().await.is_err() {
                    return;
                }
            }
            WebhookJob::WaitUntil(t) => {
                tokio::select! {
                    _ = changed.changed() => {}
                    _ = tokio::time::sleep_until(t.into()) => {}
                }
            }
            WebhookJob::Deliver {
                url,
                secret,
                update_id,
                body,
                generation,
            } => {
                let result = post_update(&url, secret.as_deref(), &body).await;
                {
                    let mut s = shared.lock();
                    s.webhook_attempts += 1;
                    let current = s
                        .webhook
                        .as_ref()
                        .is_some_and(|w| w.generation == generation);
                    if current {
                        let failure = match result {
                            Ok((code, _)) if (200..300).contains(&code) => None,
                            Ok((code, reason)) => {
                                Some(format!("Wrong response from the webhook: {code} {reason}"))
                            }
                            Err(e) => Some(e),
                        };
                        match failure {
                            None => {
                                s.updates
                                    .retain(|u| u["update_id"].as_i64() != Some(update_id));
                                s.confirmed_offset = s.confirmed_offset.max(update_id + 1);
                                s.webhook_delay = s.webhook_retry.0;
                                s.webhook_next_attempt = None;
                            }
                            Some(message) => {
                                s.last_webhook_error =
                                    Some((now_unix(), message.trim().to_owned()));
                                let delay = s.webhook_delay;
                                s.webhook_next_attempt = Some(Instant::now() + delay);
                                s.webhook_delay = (delay * 2).min(s.webhook_retry.1);
                            }
                        }
                    }
                }
                shared.bump();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The test-side handle

/// A running fake Bot API server for one bot token. Dropping it stops the
/// server and the webhook delivery.
pub struct FakeTelegram {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    webhook: JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.bump();
        self.server.abort();
        self.webhook.abort();
    }
}

impl FakeTelegram {
    /// Starts the server on 127.0.0.1 with an ephemeral port. The bot's id is
    /// the numeric part of the token before ':' (as for real tokens).
    pub async fn start(token: &str) -> FakeTelegram {
        let bot_id = token
            .split(':')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_BOT_ID);
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Mutex::new(State::new(bot_id)),
            changed,
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("telegram fake: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("telegram fake: local address");
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(HTTP_BODY_LIMIT))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let webhook = tokio::spawn(webhook_loop(shared.clone()));
        FakeTelegram {
            shared,
            addr,
            server,
            webhook,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.shared.lock());
        self.shared.bump();
        r
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.lock())
    }

    /// `http://127.0.0.1:<port>`; methods are at `{api_url}/bot{token}/{method}`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> String {
        self.shared.token.clone()
    }

    pub fn bot_id(&self) -> i64 {
        self.read(|s| s.bot.id)
    }

    /// getMe's answer: the bot's User with its capabilities
    /// (`can_join_groups`, ...); messages carry the User fields only.
    pub fn bot_user(&self) -> Value {
        self.read(|s| s.me_json())
    }

    pub fn set_bot_name(&self, first_name: &str, username: &str) {
        self.with(|s| {
            s.bot.first_name = first_name.to_owned();
            s.bot.username = Some(username.to_owned());
        });
    }

    pub fn add_user(
        &self,
        id: i64,
        first_name: &str,
        last_name: Option<&str>,
        username: Option<&str>,
    ) {
        self.with(|s| {
            let photos = s.users.remove(&id).map(|u| u.photos).unwrap_or_default();
            s.users.insert(
                id,
                UserRec {
                    id,
                    is_bot: false,
                    first_name: first_name.to_owned(),
                    last_name: last_name.map(str::to_owned),
                    username: username.map(str::to_owned),
                    photos,
                },
            );
        });
    }

    /// Adds a chat the bot is in: a member of groups and supergroups, an
    /// administrator of channels, in a private chat with user `id` (a user
    /// named `title` is added if `id` is unknown). Change it with `set_member`.
    pub fn add_chat(&self, id: i64, kind: ChatKind, title: &str) {
        self.with(|s| {
            let mut members = BTreeMap::new();
            let bot_status = if kind == ChatKind::Channel {
                "administrator"
            } else {
                "member"
            };
            members.insert(s.bot.id, bot_status.to_owned());
            if kind == ChatKind::Private {
                assert!(
                    id > 0,
                    "telegram fake: a private chat's id is its user's id, which is positive"
                );
                s.users.entry(id).or_insert_with(|| UserRec {
                    id,
                    is_bot: false,
                    first_name: title.to_owned(),
                    last_name: None,
                    username: None,
                    photos: Vec::new(),
                });
                members.insert(id, "member".to_owned());
            }
            s.chats.insert(
                id,
                ChatRec {
                    id,
                    kind,
                    title: title.to_owned(),
                    username: None,
                    description: None,
                    photo: None,
                    members,
                    messages: BTreeMap::new(),
                    next_message_id: 1,
                    topics: BTreeMap::new(),
                    available_reactions: None,
                    pinned: Vec::new(),
                    migrated_to: None,
                },
            );
        });
    }

    /// Makes the chat reachable as `@username` (public groups and channels).
    pub fn set_chat_username(&self, chat_id: i64, username: &str) {
        self.with(|s| s.chat_mut(chat_id).username = Some(username.to_owned()));
    }

    /// Sets a membership without any update (test set-up). Status is one of
    /// creator, administrator, member, restricted, left, kicked; for the bot
    /// in a private chat, "kicked" means the user blocked it.
    pub fn set_member(&self, chat_id: i64, user_id: i64, status: &str) {
        assert!(
            MEMBER_STATUSES.contains(&status),
            "telegram fake: unknown member status {status:?}"
        );
        self.with(|s| {
            assert!(
                s.user(user_id).is_some(),
                "telegram fake: user {user_id} is unknown; call add_user first"
            );
            s.chat_mut(chat_id)
                .members
                .insert(user_id, status.to_owned());
        });
    }

    /// Changes a membership as an administrator would, queueing chat_member
    /// (my_chat_member for the bot). Returns the update id, 0 if none was made.
    pub fn change_member(&self, chat_id: i64, user_id: i64, status: &str) -> i64 {
        self.with(|s| s.change_member(chat_id, user_id, status, None).unwrap_or(0))
    }

    /// Restricts the reactions of a chat (ChatFullInfo.available_reactions).
    pub fn set_available_reactions(&self, chat_id: i64, emoji: Option<&[&str]>) {
        self.with(|s| {
            s.chat_mut(chat_id).available_reactions =
                emoji.map(|e| e.iter().map(|x| (*x).to_owned()).collect());
        });
    }

    /// Sets the update types the server keeps, as a previous getUpdates or
    /// setWebhook of the bot would have; `None` is the default.
    pub fn set_allowed_updates(&self, kinds: Option<&[&str]>) {
        self.with(|s| s.allowed = kinds.map(|k| k.iter().map(|x| (*x).to_owned()).collect()));
    }

    /// Adds a profile photo (the newest first), for getUserProfilePhotos.
    pub fn set_profile_photo(&self, user_id: i64, bytes: Vec<u8>) {
        self.with(|s| {
            let id = s.register_file(
                bytes,
                FileKind::ProfilePhoto,
                Some("image/jpeg".into()),
                None,
            );
            let user = if user_id == s.bot.id {
                &mut s.bot
            } else {
                s.users
                    .get_mut(&user_id)
                    .unwrap_or_else(|| panic!("telegram fake: user {user_id} is unknown"))
            };
            user.photos.insert(0, id);
        });
    }

    /// Registers a file on the "Telegram side" and returns
    /// `{file_id, file_unique_id, file_size}` to put in a message given to
    /// `user_sends_with` (as `photo`, `document`, `voice`, ...).
    pub fn add_file(&self, bytes: Vec<u8>, mime: Option<&str>, name: Option<&str>) -> Value {
        self.with(|s| {
            let mime = mime
                .map(str::to_owned)
                .or_else(|| guess_mime(name).map(str::to_owned));
            let id = s.register_file(bytes, FileKind::Document, mime, name.map(str::to_owned));
            Value::Object(s.files[&id].base_json())
        })
    }

    /// The bytes of a file, whoever sent it.
    pub fn file_bytes(&self, file_id: &str) -> Option<Vec<u8>> {
        self.read(|s| s.files.get(file_id).map(|f| f.bytes.as_ref().clone()))
    }

    pub fn user_sends(&self, chat_id: i64, user_id: i64, text: &str) -> i64 {
        self.user_sends_with(chat_id, user_id, json!({ "text": text }))
    }

    /// A message from a user: `msg` holds Message fields merged over the
    /// defaults (`from`, `chat`, `date`, `message_id`). `reply_to_message_id`
    /// becomes the full `reply_to_message`; `message_thread_id` in a forum
    /// marks a topic message; files from `add_file` get their details filled.
    /// Returns the message id.
    pub fn user_sends_with(&self, chat_id: i64, user_id: i64, msg: Value) -> i64 {
        let Value::Object(mut extra) = msg else {
            panic!("telegram fake: user_sends_with takes a JSON object")
        };
        self.with(|s| {
            if !s.chats.contains_key(&chat_id)
                && chat_id == user_id
                && s.users.contains_key(&user_id)
            {
                open_private_chat(s, user_id);
            }
            let kind = s.chat(chat_id).kind;
            assert!(
                kind != ChatKind::Channel,
                "telegram fake: users do not post in channels; use channel_posts"
            );
            let from = s.user_json(user_id);
            if kind != ChatKind::Private {
                match s.status(chat_id, user_id) {
                    None => {
                        s.chat_mut(chat_id).members.insert(user_id, "member".into());
                    }
                    Some("left" | "kicked") => {
                        panic!("telegram fake: user {user_id} is not in chat {chat_id}")
                    }
                    _ => {}
                }
            }
            let id = s.next_message_id(chat_id);
            let mut m = Map::new();
            m.insert("message_id".into(), json!(id));
            m.insert("from".into(), from);
            m.insert("chat".into(), s.chat_json(chat_id));
            m.insert("date".into(), json!(now_unix()));
            if let Some(reply_id) = extra.remove("reply_to_message_id").and_then(|v| v.as_i64()) {
                let replied = s.message_json(chat_id, reply_id).unwrap_or_else(|| {
                    panic!("telegram fake: no message {reply_id} in chat {chat_id} to reply to")
                });
                m.insert("reply_to_message".into(), strip_reply(replied));
            }
            if kind == ChatKind::SupergroupForum
                && let Some(t) = extra.get("message_thread_id").and_then(Value::as_i64)
            {
                assert!(
                    s.chat(chat_id).topics.contains_key(&t),
                    "telegram fake: no topic {t} in chat {chat_id}"
                );
                m.insert("is_topic_message".into(), json!(true));
                if !m.contains_key("reply_to_message")
                    && let Some(root) = s.message_json(chat_id, t)
                {
                    m.insert("reply_to_message".into(), strip_reply(root));
                }
            }
            enrich_media(s, &mut extra);
            m.extend(extra);
            let msg = Value::Object(m);
            s.store_message(chat_id, msg.clone(), false);
            s.queue_chat_update(chat_id, "message", msg);
            id
        })
    }

    /// A user edits their message (text, or caption of a media message).
    pub fn user_edits(&self, chat_id: i64, message_id: i64, new_text: &str) {
        self.with(|s| {
            let channel = s.chat(chat_id).kind == ChatKind::Channel;
            let rec = s
                .chat_mut(chat_id)
                .messages
                .get_mut(&message_id)
                .unwrap_or_else(|| {
                    panic!("telegram fake: no message {message_id} in chat {chat_id}")
                });
            assert!(
                !rec.by_bot,
                "telegram fake: users cannot edit the bot's message {message_id}"
            );
            let m = rec.json.as_object_mut().expect("message object");
            if m.contains_key("text") {
                m.insert("text".into(), json!(new_text));
                m.remove("entities");
            } else {
                m.insert("caption".into(), json!(new_text));
                m.remove("caption_entities");
            }
            m.insert("edit_date".into(), json!(now_unix()));
            let edited = rec.json.clone();
            s.queue_chat_update(
                chat_id,
                if channel {
                    "edited_channel_post"
                } else {
                    "edited_message"
                },
                edited,
            );
        });
    }

    /// A user sets their reactions on a message (an empty list removes
    /// them). Queues message_reaction with the old and new lists; in a
    /// channel, where reactions are anonymous, message_reaction_count.
    pub fn user_reacts(&self, chat_id: i64, message_id: i64, user_id: i64, emoji: &[&str]) {
        self.with(|s| {
            let user = s.user_json(user_id);
            let chat = s.chat_json(chat_id);
            let channel = s.chat(chat_id).kind == ChatKind::Channel;
            let rec = s
                .chat_mut(chat_id)
                .messages
                .get_mut(&message_id)
                .unwrap_or_else(|| panic!("telegram fake: no message {message_id} in chat {chat_id}"));
            let new: Vec<Value> = emoji.iter().map(|e| json!({ "type": "emoji", "emoji": e })).collect();
            let old = rec.user_reactions.insert(user_id, new.clone()).unwrap_or_default();
            if channel {
                let mut counts: BTreeMap<String, i64> = BTreeMap::new();
                for r in rec.user_reactions.values().flatten() {
                    *counts.entry(r["emoji"].as_str().unwrap_or("").to_owned()).or_default() += 1;
                }
                let reactions: Vec<Value> = counts
                    .into_iter()
                    .map(|(e, n)| json!({ "type": { "type": "emoji", "emoji": e }, "total_count": n }))
                    .collect();
                let payload =
                    json!({ "chat": chat, "message_id": message_id, "date": now_unix(), "reactions": reactions });
                s.queue_chat_update(chat_id, "message_reaction_count", payload);
            } else {
                let payload = json!({
                    "chat": chat, "message_id": message_id, "user": user, "date": now_unix(),
                    "old_reaction": old, "new_reaction": new,
                });
                s.queue_chat_update(chat_id, "message_reaction", payload);
            }
        });
    }

    pub fn channel_posts(&self, chat_id: i64, text: &str) -> i64 {
        self.channel_posts_with(chat_id, json!({ "text": text }))
    }

    /// A post in a channel (`sender_chat` is the channel, no `from`).
    pub fn channel_posts_with(&self, chat_id: i64, msg: Value) -> i64 {
        let Value::Object(mut extra) = msg else {
            panic!("telegram fake: channel_posts_with takes a JSON object")
        };
        self.with(|s| {
            assert!(
                s.chat(chat_id).kind == ChatKind::Channel,
                "telegram fake: chat {chat_id} is not a channel"
            );
            enrich_media(s, &mut extra);
            s.post_service(chat_id, None, Value::Object(extra))
        })
    }

    /// A user joins by themselves: chat_member (my_chat_member for the bot)
    /// and, outside channels, a `new_chat_members` service message.
    pub fn member_joins(&self, chat_id: i64, user_id: i64) {
        self.with(|s| {
            s.change_member(chat_id, user_id, "member", Some(user_id));
            if s.chat(chat_id).kind != ChatKind::Channel {
                let user = s.user_json(user_id);
                s.post_service(
                    chat_id,
                    Some(user_id),
                    json!({ "new_chat_members": [user] }),
                );
            }
        });
    }

    /// A user leaves by themselves: chat_member and, outside channels, a
    /// `left_chat_member` service message.
    pub fn member_leaves(&self, chat_id: i64, user_id: i64) {
        self.with(|s| {
            s.change_member(chat_id, user_id, "left", Some(user_id));
            if s.chat(chat_id).kind != ChatKind::Channel {
                let user = s.user_json(user_id);
                s.post_service(chat_id, Some(user_id), json!({ "left_chat_member": user }));
            }
        });
    }

    /// Renames the chat (by its creator or an admin, or as the channel).
    pub fn set_title(&self, chat_id: i64, title: &str) {
        self.with(|s| {
            let actor = s.actor(chat_id);
            s.chat_mut(chat_id).title = title.to_owned();
            s.post_service(chat_id, actor, json!({ "new_chat_title": title }));
        });
    }

    /// Sets the chat photo with a `new_chat_photo` service message; returns its id.
    pub fn set_chat_photo(&self, chat_id: i64, bytes: Vec<u8>) -> i64 {
        self.with(|s| {
            let actor = s.actor(chat_id);
            let id = s.register_file(bytes, FileKind::Photo, Some("image/jpeg".into()), None);
            s.chat_mut(chat_id).photo = Some(id.clone());
            let size = s.files[&id].photo_size();
            s.post_service(chat_id, actor, json!({ "new_chat_photo": [size] }))
        })
    }

    /// Pins a message (by its creator or an admin, or as the channel).
    pub fn pin(&self, chat_id: i64, message_id: i64) {
        self.with(|s| {
            let pinned = s.message_json(chat_id, message_id).unwrap_or_else(|| {
                panic!("telegram fake: no message {message_id} in chat {chat_id}")
            });
            let actor = s.actor(chat_id);
            s.chat_mut(chat_id).pinned.push(message_id);
            s.post_service(
                chat_id,
                actor,
                json!({ "pinned_message": strip_reply(pinned) }),
            );
        });
    }

    /// Opens a topic in a forum; returns its message_thread_id (the id of
    /// its `forum_topic_created` service message).
    pub fn add_topic(&self, chat_id: i64, name: &str) -> i64 {
        self.with(|s| {
            assert!(
                s.chat(chat_id).kind == ChatKind::SupergroupForum,
                "telegram fake: chat {chat_id} is not a forum"
            );
            let actor = s.actor(chat_id);
            let id = s.post_service(
                chat_id,
                actor,
                json!({ "forum_topic_created": { "name": name, "icon_color": 7_322_096 } }),
            );
            s.chat_mut(chat_id).topics.insert(id, name.to_owned());
            id
        })
    }

    /// Upgrades a basic group to a supergroup with a new id, with the two
    /// service messages; the bot's requests to the old id then fail with
    /// `migrate_to_chat_id`.
    pub fn migrate_to_supergroup(&self, group_id: i64, supergroup_id: i64) {
        self.with(|s| {
            assert!(
                s.chat(group_id).kind == ChatKind::Group,
                "telegram fake: chat {group_id} is not a basic group"
            );
            let actor = s.actor(group_id);
            let (title, members) = {
                let c = s.chat(group_id);
                (c.title.clone(), c.members.clone())
            };
            s.chats.insert(
                supergroup_id,
                ChatRec {
                    id: supergroup_id,
                    kind: ChatKind::Supergroup,
                    title,
                    username: None,
                    description: None,
                    photo: None,
                    members,
                    messages: BTreeMap::new(),
                    next_message_id: 1,
                    topics: BTreeMap::new(),
                    available_reactions: None,
                    pinned: Vec::new(),
                    migrated_to: None,
                },
            );
            s.post_service(
                group_id,
                actor,
                json!({ "migrate_to_chat_id": supergroup_id }),
            );
            s.chat_mut(group_id).migrated_to = Some(supergroup_id);
            s.post_service(
                supergroup_id,
                actor,
                json!({ "migrate_from_chat_id": group_id }),
            );
        });
    }

    /// Queues a raw update (one field besides `update_id`, which is
    /// assigned). Returns its id, or 0 when allowed_updates excludes it.
    pub fn push_update(&self, update: Value) -> i64 {
        let Value::Object(mut m) = update else {
            panic!("telegram fake: an update is a JSON object")
        };
        m.remove("update_id");
        assert!(
            m.len() == 1,
            "telegram fake: an update has exactly one field besides update_id"
        );
        let (kind, payload) = m.into_iter().next().expect("one field");
        self.with(|s| s.push_update(&kind, payload).unwrap_or(0))
    }

    /// The parameters of every call of a method (any case), in order,
    /// including failed ones. Numbers, booleans and JSON sent as form strings
    /// are normalised; uploaded files appear as
    /// `{"file_bytes_len", "filename", "content_type"}`.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.read(|s| {
            s.calls
                .iter()
                .filter(|c| c.method.eq_ignore_ascii_case(method))
                .map(|c| c.params.clone())
                .collect()
        })
    }

    /// The answers to the calls of a method (`Value::Null` while pending).
    pub fn responses(&self, method: &str) -> Vec<Value> {
        self.read(|s| {
            s.calls
                .iter()
                .filter(|c| c.method.eq_ignore_ascii_case(method))
                .map(|c| c.response.clone().unwrap_or(Value::Null))
                .collect()
        })
    }

    /// Waits until a method was called at least `n` times; panics on timeout.
    pub async fn wait_call(&self, method: &str, n: usize, timeout: Duration) -> Vec<Value> {
        self.wait_until(&format!("{n} call(s) of {method}"), timeout, |f| {
            f.calls(method).len() >= n
        })
        .await;
        self.calls(method)
    }

    /// Waits until `done` holds, re-checking on every change of the fake's
    /// state; panics naming `what` on timeout.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&FakeTelegram) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut changed = self.shared.changed.subscribe();
            if done(self) {
                return;
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    if done(self) {
                        return;
                    }
                    let recent: Vec<String> = self.read(|s| {
                        s.calls.iter().rev().take(10).map(|c| c.method.clone()).collect()
                    });
                    panic!("telegram fake: timed out after {timeout:?} waiting for {what}; latest calls: {recent:?}");
                }
            }
        }
    }

    /// The messages of a chat as they are now (after edits, without deleted
    /// ones), from users and from the bot, by id.
    pub fn messages(&self, chat_id: i64) -> Vec<Value> {
        self.read(|s| {
            s.chats
                .get(&chat_id)
                .map(|c| c.messages.values().map(|m| m.json.clone()).collect())
                .unwrap_or_default()
        })
    }

    pub fn message(&self, chat_id: i64, message_id: i64) -> Option<Value> {
        self.read(|s| s.message_json(chat_id, message_id))
    }

    /// The bot's current reactions on a message (emoji).
    pub fn reactions(&self, chat_id: i64, message_id: i64) -> Vec<String> {
        self.read(|s| {
            s.chats
                .get(&chat_id)
                .and_then(|c| c.messages.get(&message_id))
                .map(|m| {
                    m.bot_reaction
                        .iter()
                        .filter_map(|r| r["emoji"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Updates not yet confirmed (by a getUpdates offset or webhook delivery).
    pub fn pending_updates(&self) -> usize {
        self.read(|s| s.updates.len())
    }

    /// Every update with a smaller id has been confirmed and forgotten.
    pub fn confirmed_offset(&self) -> i64 {
        self.read(|s| s.confirmed_offset)
    }

    /// The id the next update will get.
    pub fn next_update_id(&self) -> i64 {
        self.read(|s| s.next_update_id)
    }

    /// Updates that were never created, each `{"update", "reason"}`: excluded
    /// by allowed_updates, or in a chat where the bot would not get them.
    pub fn dropped_updates(&self) -> Vec<Value> {
        self.read(|s| s.dropped.clone())
    }

    /// The next `times` calls of `method` fail with 429 and `retry_after`.
    pub fn fail_next(&self, method: &str, times: usize, retry_after: u64) {
        self.fail_next_with_error(method, times, ApiError::retry_after(retry_after));
    }

    /// The next `times` calls of `method` fail with this code and description.
    pub fn fail_next_with(&self, method: &str, times: usize, error_code: u16, description: &str) {
        self.fail_next_with_error(method, times, ApiError::new(error_code, description));
    }

    fn fail_next_with_error(&self, method: &str, times: usize, error: ApiError) {
        self.with(|s| {
            let queue = s.failures.entry(method.to_ascii_lowercase()).or_default();
            queue.extend(std::iter::repeat_n(error, times));
        });
    }

    /// Webhook deliveries tried so far, successful or not.
    pub fn webhook_attempts(&self) -> usize {
        self.read(|s| s.webhook_attempts)
    }

    /// What getWebhookInfo would answer.
    pub fn webhook_info(&self) -> Value {
        self.read(|s| s.webhook_info())
    }

    /// Delay before the first webhook retry, doubling up to `max`
    /// (default 100 ms to 2 s; the real server waits far longer).
    pub fn set_webhook_retry(&self, first: Duration, max: Duration) {
        self.with(|s| {
            s.webhook_retry = (first, max);
            s.webhook_delay = first;
        });
    }
}

fn open_private_chat(s: &mut State, user_id: i64) {
    // A user writing to the bot opens the private chat.
    let title = s.users[&user_id].first_name.clone();
    let mut members = BTreeMap::new();
    members.insert(s.bot.id, "member".to_owned());
    members.insert(user_id, "member".to_owned());
    s.chats.insert(
        user_id,
        ChatRec {
            id: user_id,
            kind: ChatKind::Private,
            title,
            username: None,
            description: None,
            photo: None,
            members,
            messages: BTreeMap::new(),
            next_message_id: 1,
            topics: BTreeMap::new(),
            available_reactions: None,
            pinned: Vec::new(),
            migrated_to: None,
        },
    );
}

/// Fills what Telegram adds to file objects that a test built from
/// `add_file` (sizes, names, MIME types), marking the file with its kind.
fn enrich_media(s: &mut State, extra: &mut Map<String, Value>) {
    let kinds = [
        ("photo", FileKind::Photo),
        ("document", FileKind::Document),
        ("audio", FileKind::Audio),
        ("voice", FileKind::Voice),
        ("video", FileKind::Video),
        ("animation", FileKind::Animation),
        ("video_note", FileKind::VideoNote),
        ("sticker", FileKind::Sticker),
    ];
    for (field, kind) in kinds {
        let Some(v) = extra.get_mut(field) else {
            continue;
        };
        let is_single = v.is_object();
        let objects: Vec<&mut Value> = match v {
            Value::Array(items) => items.iter_mut().collect(),
            Value::Object(_) => vec![&mut *v],
            _ => continue,
        };
        let mut single_photo = None;
        for obj in objects {
            let Some(f) = obj["file_id"].as_str().and_then(|id| s.files.get_mut(id)) else {
                continue;
            };
            f.kind = kind;
            let m = obj.as_object_mut().expect("file object");
            let mut put = |k: &str, v: Value| {
                m.entry(k.to_owned()).or_insert(v);
            };
            match kind {
                FileKind::Photo | FileKind::Sticker | FileKind::Video | FileKind::Animation => {
                    put("width", json!(f.width));
                    put("height", json!(f.height));
                }
                _ => {}
            }
            if matches!(
                kind,
                FileKind::Audio
                    | FileKind::Voice
                    | FileKind::Video
                    | FileKind::Animation
                    | FileKind::VideoNote
            ) {
                put("duration", json!(0));
            }
            if matches!(
                kind,
                FileKind::Document | FileKind::Audio | FileKind::Video | FileKind::Animation
            ) && let Some(n) = &f.name
            {
                put("file_name", json!(n));
            }
            if !matches!(
                kind,
                FileKind::Photo | FileKind::Sticker | FileKind::VideoNote
            ) && let Some(mime) = &f.mime
            {
                put("mime_type", json!(mime));
            }
            if kind == FileKind::VideoNote {
                put("length", json!(f.width));
            }
            if kind == FileKind::Sticker {
                put("type", json!("regular"));
                put("is_animated", json!(false));
                put("is_video", json!(false));
            }
            if kind == FileKind::Photo {
                single_photo = Some(obj.clone());
            }
        }
        // A photo is a list of sizes; a single object is one size.
        if kind == FileKind::Photo
            && is_single
            && let Some(p) = single_photo
        {
            *v = json!([p]);
        }
    }
}
