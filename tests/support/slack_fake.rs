//! An in-process fake of Slack for integration tests: the Web API, Socket
//! Mode and the Events API over HTTP, for one workspace and one app.
//!
//! It serves `/api/<method>` on 127.0.0.1 and keeps the state a bridge
//! depends on: users and their avatars, channels and their members, messages
//! (with threads, edits, deletions and reactions), files (the external upload
//! flow and `url_private` downloads behind a bearer token), tokens (bot, user
//! and app-level; revocation), every call made, and the events of the app.
//! Events are delivered as Socket Mode envelopes over the websocket that
//! `apps.connections.open` hands out, or signed and POSTed to a Request URL,
//! with acknowledgement timeouts and redelivery like Slack's.
//! Slack-side actions (`user_posts`, `user_reacts`, ...) create the events the
//! real workspace would send to the app, under the same conditions (the bot
//! only hears channels it is a member of).
//!
//! Where it differs from real Slack is listed in `docs/fakes/slack.md`.
//!
//! Include it in a test binary with
//! `#[path = "../support/slack_fake.rs"] mod slack_fake;`.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

pub const TEAM_ID: &str = "T0FAKE";
pub const TEAM_NAME: &str = "Fake Workspace";
const TEAM_DOMAIN: &str = "fakeworkspace";
pub const APP_ID: &str = "A0FAKEAPP";
pub const BOT_ID: &str = "B0FAKEBOT";
pub const BOT_USER_ID: &str = "U0FAKEBOT";
const BOT_NAME: &str = "passerelle";

/// chat.postMessage: "Provide no more than 40,000 characters".
const MAX_TEXT_LEN: usize = 40_000;
/// Slack allows ten Socket Mode connections per app at once.
const MAX_SOCKETS: usize = 10;
/// Unacknowledged envelopes and unanswered Request URL POSTs fail after 3 s.
const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// Slack retries a failed delivery immediately, after 1 minute and after 5
/// minutes; the fake keeps the shape in seconds (see `set_redelivery`).
const RETRY_DELAYS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(5),
];
/// A `warning` disconnect comes about 10 seconds before the socket closes.
const DISCONNECT_GRACE: Duration = Duration::from_secs(10);
const URL_VERIFICATION_RETRY: Duration = Duration::from_secs(1);
const HTTP_BODY_LIMIT: usize = 64 * 1024 * 1024;
const EVENTS_USER_AGENT: &str = "Slackbot 1.0 (+https://api.slack.com/robots)";
/// What `X-OAuth-Scopes` says for the bot token: everything the fake serves.
const BOT_SCOPES: &str = "app_mentions:read,channels:history,channels:join,channels:read,chat:write,\
chat:write.customize,files:read,files:write,groups:history,groups:read,im:history,im:read,\
mpim:history,reactions:read,reactions:write,team:read,users:read";

/// Web API methods the fake serves, with the rate a tier allows at least
/// (requests a minute, from each method's page: Tier 1 = 1, Tier 2 = 20,
/// Tier 3 = 50, Tier 4 = 100; chat.postMessage about one a second per
/// channel) and whether the method reads JSON bodies (the others read
/// only form and query arguments).
struct MethodSpec {
    name: &'static str,
    per_minute: usize,
    json: bool,
}

#[rustfmt::skip]
const METHODS: &[MethodSpec] = &[
    MethodSpec { name: "apps.connections.open", per_minute: 50, json: true },
    MethodSpec { name: "auth.test", per_minute: 100, json: true },
    MethodSpec { name: "chat.delete", per_minute: 50, json: true },
    MethodSpec { name: "chat.postMessage", per_minute: 60, json: true },
    MethodSpec { name: "chat.update", per_minute: 50, json: true },
    MethodSpec { name: "conversations.history", per_minute: 50, json: false },
    MethodSpec { name: "conversations.info", per_minute: 50, json: false },
    MethodSpec { name: "conversations.invite", per_minute: 50, json: true },
    MethodSpec { name: "conversations.join", per_minute: 50, json: true },
    MethodSpec { name: "conversations.leave", per_minute: 50, json: true },
    MethodSpec { name: "conversations.list", per_minute: 20, json: false },
    MethodSpec { name: "conversations.members", per_minute: 100, json: false },
    MethodSpec { name: "conversations.replies", per_minute: 50, json: false },
    MethodSpec { name: "files.completeUploadExternal", per_minute: 100, json: true },
    MethodSpec { name: "files.getUploadURLExternal", per_minute: 100, json: true },
    MethodSpec { name: "files.info", per_minute: 100, json: false },
    MethodSpec { name: "reactions.add", per_minute: 50, json: true },
    MethodSpec { name: "reactions.remove", per_minute: 20, json: true },
    MethodSpec { name: "team.info", per_minute: 50, json: false },
    MethodSpec { name: "users.info", per_minute: 100, json: false },
];

/// Form parameters the API reads as booleans, integers or JSON; they are
/// normalised so that recorded calls look the same whatever the encoding.
#[rustfmt::skip]
const BOOL_PARAMS: &[&str] = &[
    "reply_broadcast", "as_user", "mrkdwn", "unfurl_links", "unfurl_media", "link_names",
    "include_num_members", "include_locale", "exclude_archived", "inclusive",
    "include_all_metadata",
];
const INT_PARAMS: &[&str] = &["limit", "length"];
const JSON_PARAMS: &[&str] = &["blocks", "attachments", "files", "metadata"];

// ---------------------------------------------------------------------------
// Small helpers

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Non-cryptographic randomness for ids and tokens, seeded per fake.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(now_micros());
        Rng(h.finish() | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }

    fn upper(&mut self, n: usize) -> String {
        self.pick(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", n)
    }

    fn alnum(&mut self, n: usize) -> String {
        self.pick(
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            n,
        )
    }

    fn hex(&mut self, n: usize) -> String {
        self.pick(b"0123456789abcdef", n)
    }

    fn digits(&mut self, n: usize) -> String {
        let mut s = self.pick(b"123456789", 1);
        s.push_str(&self.pick(b"0123456789", n - 1));
        s
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(4),
            self.hex(12)
        )
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// `v0=` + hex(HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + body)),
/// the `X-Slack-Signature` of a request signed with `timestamp`.
pub fn slack_signature(signing_secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex_encode(&mac.finalize().into_bytes()))
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

/// A valid grey PNG of the given size, for avatars and uploads in tests; the
/// fake serves one as the default avatar.
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

/// MIME type and Slack `filetype` guessed from the file name (Slack also
/// looks at the bytes; the fake does not).
fn file_type(name: &str) -> (&'static str, &'static str) {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => ("image/png", "png"),
        "jpg" | "jpeg" => ("image/jpeg", "jpg"),
        "gif" => ("image/gif", "gif"),
        "webp" => ("image/webp", "webp"),
        "txt" => ("text/plain", "text"),
        "pdf" => ("application/pdf", "pdf"),
        "json" => ("application/json", "json"),
        "mp3" => ("audio/mpeg", "mp3"),
        "ogg" | "oga" => ("audio/ogg", "ogg"),
        "m4a" => ("audio/mp4", "m4a"),
        "mp4" => ("video/mp4", "mp4"),
        "webm" => ("video/webm", "webm"),
        "zip" => ("application/zip", "zip"),
        _ => ("application/octet-stream", "binary"),
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
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
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

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// A well-formed message timestamp: digits, a dot, digits.
fn valid_ts(ts: &str) -> bool {
    ts.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// Emoji names are lowercase words; a skin tone is appended with `::`.
fn valid_reaction_name(name: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_+-'".contains(&c))
    };
    match name.split_once("::") {
        Some((base, tone)) => word(base) && word(tone),
        None => word(name),
    }
}

fn json_response(status: u16, body: &Value, extra: &[(String, String)]) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response();
    for (k, v) in extra {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            header::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

// ---------------------------------------------------------------------------
// Records

struct UserRec {
    id: String,
    name: String,
    real_name: String,
    display_name: String,
    is_bot: bool,
    deleted: bool,
    avatar: Option<Arc<Vec<u8>>>,
    avatar_hash: String,
    updated: i64,
}

impl UserRec {
    fn image_url(&self, base: &str, size: u32) -> String {
        match &self.avatar {
            Some(_) => format!("{base}/avatars/{}/{}_{size}.png", self.id, self.avatar_hash),
            None => format!("{base}/avatars/default_{size}.png"),
        }
    }

    fn json(&self, base: &str) -> Value {
        let (first, last) = self
            .real_name
            .split_once(' ')
            .unwrap_or((self.real_name.as_str(), ""));
        let mut profile = obj(json!({
            "title": "",
            "phone": "",
            "skype": "",
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.display_name,
            "display_name_normalized": self.display_name,
            "fields": null,
            "status_text": "",
            "status_emoji": "",
            "status_emoji_display_info": [],
            "status_expiration": 0,
            "avatar_hash": self.avatar_hash,
            "is_custom_image": self.avatar.is_some(),
            "first_name": first,
            "last_name": last,
            "team": TEAM_ID,
        }));
        for size in [24, 32, 48, 72, 192, 512] {
            profile.insert(format!("image_{size}"), json!(self.image_url(base, size)));
        }
        if self.avatar.is_some() {
            profile.insert("image_original".into(), json!(self.image_url(base, 1024)));
        }
        if self.is_bot {
            profile.insert("bot_id".into(), json!(BOT_ID));
            profile.insert("api_app_id".into(), json!(APP_ID));
            profile.insert("always_active".into(), json!(true));
        }
        json!({
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": self.real_name,
            "tz": "Etc/UTC",
            "tz_label": "Coordinated Universal Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": false,
            "is_owner": false,
            "is_primary_owner": false,
            "is_restricted": false,
            "is_ultra_restricted": false,
            "is_bot": self.is_bot,
            "is_app_user": false,
            "updated": self.updated,
            "is_email_confirmed": !self.is_bot,
            "who_can_share_contact_card": "EVERYONE",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChannelKind {
    Public,
    Private,
    Im,
}

struct Topic {
    value: String,
    creator: String,
    last_set: i64,
}

impl Topic {
    fn empty() -> Topic {
        Topic {
            value: String::new(),
            creator: String::new(),
            last_set: 0,
        }
    }

    fn json(&self) -> Value {
        json!({ "value": self.value, "creator": self.creator, "last_set": self.last_set })
    }
}

struct MsgRec {
    json: Map<String, Value>,
    /// Emoji name and the users who reacted with it, in order.
    reactions: Vec<(String, Vec<String>)>,
    /// Timestamps of the thread replies, for a thread parent.
    replies: Vec<String>,
}

struct ChannelRec {
    id: String,
    name: String,
    kind: ChannelKind,
    created: i64,
    creator: String,
    topic: Topic,
    purpose: Topic,
    /// In the order they joined.
    members: Vec<String>,
    archived: bool,
    previous_names: Vec<String>,
    /// The other party of a DM.
    im_user: Option<String>,
    /// Top-level messages and thread replies, by ts.
    messages: BTreeMap<String, MsgRec>,
}

impl ChannelRec {
    /// `channel_type` of message events.
    fn channel_type(&self) -> &'static str {
        match self.kind {
            ChannelKind::Public => "channel",
            ChannelKind::Private => "group",
            ChannelKind::Im => "im",
        }
    }

    /// `channel_type` of member_joined_channel and member_left_channel.
    fn type_letter(&self) -> &'static str {
        match self.kind {
            ChannelKind::Public => "C",
            ChannelKind::Private => "G",
            ChannelKind::Im => "D",
        }
    }

    fn is_member(&self, user: &str) -> bool {
        self.members.iter().any(|m| m == user)
    }

    fn json(&self, viewer: &str, num_members: bool) -> Value {
        if self.kind == ChannelKind::Im {
            let mut m = obj(json!({
                "id": self.id,
                "created": self.created,
                "is_archived": false,
                "is_im": true,
                "is_org_shared": false,
                "context_team_id": TEAM_ID,
                "updated": self.created * 1000,
                "user": self
                    .members
                    .iter()
                    .find(|m| *m != viewer)
                    .or(self.im_user.as_ref()),
                "is_user_deleted": false,
                "priority": 0,
            }));
            if num_members {
                m.insert("num_members".into(), json!(self.members.len()));
            }
            return Value::Object(m);
        }
        let mut m = obj(json!({
            "id": self.id,
            "name": self.name,
            "is_channel": true,
            "is_group": self.id.starts_with('G'),
            "is_im": false,
            "is_mpim": false,
            "is_private": self.kind == ChannelKind::Private,
            "created": self.created,
            "is_archived": self.archived,
            "is_general": self.name == "general",
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": false,
            "is_org_shared": false,
            "is_ext_shared": false,
            "is_pending_ext_shared": false,
            "pending_shared": [],
            "context_team_id": TEAM_ID,
            "updated": self.created * 1000,
            "parent_conversation": null,
            "creator": self.creator,
            "is_member": self.is_member(viewer),
            "topic": self.topic.json(),
            "purpose": self.purpose.json(),
            "previous_names": self.previous_names,
        }));
        if num_members {
            m.insert("num_members".into(), json!(self.members.len()));
        }
        Value::Object(m)
    }

    /// A message as conversations.history shows it: with its reactions and,
    /// for a thread parent, the thread summary.
    fn render(&self, msg: &MsgRec) -> Value {
        let mut m = msg.json.clone();
        if !msg.reactions.is_empty() {
            let reactions: Vec<Value> = msg
                .reactions
                .iter()
                .map(|(name, users)| json!({ "name": name, "users": users, "count": users.len() }))
                .collect();
            m.insert("reactions".into(), json!(reactions));
        }
        if !msg.replies.is_empty() {
            let mut users: Vec<String> = Vec::new();
            for ts in &msg.replies {
                if let Some(u) = self
                    .messages
                    .get(ts)
                    .and_then(|r| r.json.get("user"))
                    .and_then(Value::as_str)
                    && !users.iter().any(|x| x == u)
                {
                    users.push(u.to_owned());
                }
            }
            m.insert("thread_ts".into(), m["ts"].clone());
            m.insert("reply_count".into(), json!(msg.replies.len()));
            m.insert("reply_users_count".into(), json!(users.len()));
            users.truncate(5);
            m.insert("reply_users".into(), json!(users));
            m.insert("latest_reply".into(), json!(msg.replies.last()));
            m.insert("is_locked".into(), json!(false));
            m.insert("subscribed".into(), json!(false));
        }
        Value::Object(m)
    }

    /// Top-level: not a reply (a parent's thread_ts is its own ts), or a
    /// reply also sent to the channel.
    fn is_top_level(msg: &MsgRec) -> bool {
        match msg.json.get("thread_ts").and_then(Value::as_str) {
            None => true,
            Some(t) => {
                msg.json.get("ts").and_then(Value::as_str) == Some(t)
                    || msg.json.get("subtype").and_then(Value::as_str) == Some("thread_broadcast")
            }
        }
    }
}

struct FileRec {
    id: String,
    name: String,
    title: String,
    mimetype: String,
    filetype: String,
    bytes: Option<Arc<Vec<u8>>>,
    declared_len: usize,
    user: String,
    created: i64,
    /// The secret part of the upload URL; None once the upload is complete.
    upload_key: Option<String>,
    completed: bool,
    /// Channel and message ts of each share.
    shares: Vec<(String, String)>,
    alt_txt: Option<String>,
}

impl FileRec {
    fn json(&self, base: &str, channels: &BTreeMap<String, ChannelRec>) -> Value {
        let private = format!("{base}/files-pri/{TEAM_ID}-{}/{}", self.id, self.name);
        let download = format!(
            "{base}/files-pri/{TEAM_ID}-{}/download/{}",
            self.id, self.name
        );
        let mut public_shares = Map::new();
        let mut private_shares = Map::new();
        let (mut in_channels, mut in_groups, mut in_ims) = (vec![], vec![], vec![]);
        for (channel, ts) in &self.shares {
            let Some(ch) = channels.get(channel) else {
                continue;
            };
            let share = json!({
                "reply_users": [],
                "reply_users_count": 0,
                "reply_count": 0,
                "ts": ts,
                "channel_name": ch.name,
                "team_id": TEAM_ID,
                "share_user_id": self.user,
                "source": "UNKNOWN",
            });
            let (map, list) = match ch.kind {
                ChannelKind::Public => (&mut public_shares, &mut in_channels),
                ChannelKind::Private => (&mut private_shares, &mut in_groups),
                ChannelKind::Im => (&mut private_shares, &mut in_ims),
            };
            map.entry(channel.clone())
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .expect("share list")
                .push(share);
            if !list.contains(channel) {
                list.push(channel.clone());
            }
        }
        let mut shares = Map::new();
        if !public_shares.is_empty() {
            shares.insert("public".into(), Value::Object(public_shares));
        }
        if !private_shares.is_empty() {
            shares.insert("private".into(), Value::Object(private_shares));
        }
        let mut m = obj(json!({
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.title,
            "mimetype": self.mimetype,
            "filetype": self.filetype,
            "pretty_type": self.filetype.to_ascii_uppercase(),
            "user": self.user,
            "user_team": TEAM_ID,
            "editable": false,
            "size": self.bytes.as_ref().map_or(self.declared_len, |b| b.len()),
            "mode": "hosted",
            "is_external": false,
            "external_type": "",
            "is_public": !in_channels.is_empty(),
            "public_url_shared": false,
            "display_as_bot": false,
            "username": "",
            "url_private": private,
            "url_private_download": download,
            "permalink": format!("{base}/files/{}/{}/{}", self.user, self.id, self.name),
            "permalink_public": format!("{base}/files-pub/{TEAM_ID}-{}-{}/{}", self.id, "0000000000", self.name),
            "has_rich_preview": false,
            "file_access": "visible",
            "channels": in_channels,
            "groups": in_groups,
            "ims": in_ims,
            "shares": shares,
        }));
        if self.mimetype.starts_with("image/") {
            for size in [64, 80, 160, 360, 480] {
                m.insert(format!("thumb_{size}"), json!(private));
            }
        }
        if let Some(alt) = &self.alt_txt {
            m.insert("alt_txt".into(), json!(alt));
        }
        Value::Object(m)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TokenKind {
    Bot,
    /// A user token acting as this user.
    User(String),
    App,
}

struct TokenRec {
    kind: TokenKind,
    revoked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventStatus {
    /// Waiting for its next delivery attempt.
    Pending(Instant),
    /// Sent; a socket envelope fails at the deadline, an HTTP attempt when
    /// its request does.
    InFlight {
        attempt: u64,
        deadline: Option<Instant>,
    },
    Acked,
    /// Given up after the last retry, or refused with X-Slack-No-Retry.
    Dropped,
}

struct EventRec {
    id: String,
    payload: Value,
    status: EventStatus,
    /// Failed attempts so far: the `retry_attempt` of the next one.
    failures: u32,
    retry_reason: &'static str,
    /// Attempts that reached a socket or the Request URL.
    deliveries: usize,
}

enum WsOut {
    Text(String),
    Close,
}

struct SocketRec {
    tx: mpsc::UnboundedSender<WsOut>,
    token: String,
    /// Got a `warning` or `refresh_requested` disconnect.
    warned: bool,
    /// When the fake closes it; `Some(past)` once the close was sent.
    close_at: Option<Instant>,
}

enum Mode {
    Socket,
    Http {
        url: String,
        verified: bool,
        /// When to send the next url_verification; None while one runs.
        verify_at: Option<Instant>,
    },
}

struct CallRec {
    method: String,
    params: Value,
    response: Value,
}

/// An error answer of the Web API: `{"ok":false,"error":…}`, HTTP 200 unless
/// said otherwise.
#[derive(Clone, Debug)]
struct ApiErr {
    error: String,
    status: u16,
    extra: Map<String, Value>,
    headers: Vec<(String, String)>,
}

impl ApiErr {
    fn new(error: &str) -> ApiErr {
        ApiErr {
            error: error.to_owned(),
            status: 200,
            extra: Map::new(),
            headers: Vec::new(),
        }
    }

    fn ratelimited(retry_after: u64) -> ApiErr {
        let mut e = ApiErr::new("ratelimited");
        e.status = 429;
        e.headers
            .push(("retry-after".into(), retry_after.to_string()));
        e
    }

    fn with(mut self, key: &str, value: Value) -> ApiErr {
        self.extra.insert(key.to_owned(), value);
        self
    }
}

type ApiResult = Result<Map<String, Value>, ApiErr>;

// ---------------------------------------------------------------------------
// The workspace

struct State {
    /// `http://127.0.0.1:<port>`, the origin of every URL the fake hands out.
    base: String,
    rng: Rng,
    /// Microseconds of the last ts handed out: ts strictly increase.
    last_ts: u128,
    bot_token: String,
    app_token: String,
    signing_secret: String,
    /// The deprecated `token` field of event payloads.
    verification_token: String,
    users: BTreeMap<String, UserRec>,
    channels: BTreeMap<String, ChannelRec>,
    files: BTreeMap<String, FileRec>,
    file_seq: u64,
    /// Files whose bytes came to an upload URL, in that order.
    uploaded: Vec<String>,
    tokens: HashMap<String, TokenRec>,
    /// Socket Mode tickets: the app token they were issued for, and whether
    /// one connection already used them.
    tickets: HashMap<String, (String, bool)>,
    sockets: BTreeMap<u64, SocketRec>,
    socket_seq: u64,
    round_robin: usize,
    mode: Mode,
    ack_timeout: Duration,
    retry_delays: Vec<Duration>,
    disconnect_grace: Duration,
    drop_acks: usize,
    ignored_acks: usize,
    /// Delivery attempts that found no open socket.
    missed: usize,
    url_verifications: usize,
    events: Vec<EventRec>,
    event_seq: u64,
    attempt_seq: u64,
    /// Envelope id -> index in `events`.
    envelopes: HashMap<String, usize>,
    calls: Vec<CallRec>,
    /// Injected failures: method -> the answers of its coming calls.
    injected: HashMap<String, VecDeque<ApiErr>>,
    enforce_tiers: bool,
    /// Sliding one-minute windows of calls, by method (and channel for
    /// chat.postMessage).
    windows: HashMap<String, VecDeque<Instant>>,
    closed: bool,
}

impl State {
    fn new(addr: SocketAddr) -> State {
        let mut rng = Rng::seeded();
        let bot_token = format!(
            "xoxb-{}-{}-{}",
            rng.digits(12),
            rng.digits(13),
            rng.alnum(24)
        );
        let app_token = format!("xapp-1-{APP_ID}-{}-{}", rng.digits(13), rng.hex(64));
        let signing_secret = rng.hex(32);
        let verification_token = rng.alnum(24);
        let mut tokens = HashMap::new();
        tokens.insert(
            bot_token.clone(),
            TokenRec {
                kind: TokenKind::Bot,
                revoked: false,
            },
        );
        tokens.insert(
            app_token.clone(),
            TokenRec {
                kind: TokenKind::App,
                revoked: false,
            },
        );
        let mut users = BTreeMap::new();
        users.insert(
            BOT_USER_ID.to_owned(),
            UserRec {
                id: BOT_USER_ID.to_owned(),
                name: BOT_NAME.to_owned(),
                real_name: "Passerelle".to_owned(),
                display_name: String::new(),
                is_bot: true,
                deleted: false,
                avatar: None,
                avatar_hash: format!("g{}", rng.hex(11)),
                updated: now_unix(),
            },
        );
        State {
            base: format!("http://{addr}"),
            rng,
            last_ts: 0,
            bot_token,
            app_token,
            signing_secret,
            verification_token,
            users,
            channels: BTreeMap::new(),
            files: BTreeMap::new(),
            file_seq: 0,
            uploaded: Vec::new(),
            tokens,
            tickets: HashMap::new(),
            sockets: BTreeMap::new(),
            socket_seq: 0,
            round_robin: 0,
            mode: Mode::Socket,
            ack_timeout: ACK_TIMEOUT,
            retry_delays: RETRY_DELAYS.to_vec(),
            disconnect_grace: DISCONNECT_GRACE,
            drop_acks: 0,
            ignored_acks: 0,
            missed: 0,
            url_verifications: 0,
            events: Vec::new(),
            event_seq: 0,
            attempt_seq: 0,
            envelopes: HashMap::new(),
            calls: Vec::new(),
            injected: HashMap::new(),
            enforce_tiers: false,
            windows: HashMap::new(),
            closed: false,
        }
    }

    /// A new message timestamp: unique and increasing across the workspace
    /// (so per channel too), seconds and six digits.
    fn next_ts(&mut self) -> String {
        let now = now_micros();
        self.last_ts = if now > self.last_ts {
            now
        } else {
            self.last_ts + 1
        };
        format!(
            "{}.{:06}",
            self.last_ts / 1_000_000,
            self.last_ts % 1_000_000
        )
    }

    fn is_member(&self, channel: &str, user: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|c| c.is_member(user))
    }

    /// Whose installation hears a channel's events: the bot as a member, or
    /// in a DM the bot is not in, a member who authorised the app with a
    /// user token (the manifest's `message.im` user event). Slack shows one
    /// authorisation per event.
    fn listener(&self, channel: &str) -> Option<String> {
        let ch = self.channels.get(channel)?;
        if ch.is_member(BOT_USER_ID) {
            return Some(BOT_USER_ID.to_owned());
        }
        if ch.kind != ChannelKind::Im {
            return None;
        }
        ch.members
            .iter()
            .find(|m| {
                self.tokens
                    .values()
                    .any(|t| !t.revoked && t.kind == TokenKind::User((*m).clone()))
            })
            .cloned()
    }

    // -- events --------------------------------------------------------------

    /// Wraps an event in its `event_callback` and queues it for delivery,
    /// when the app would get it at all (`heard`).
    fn emit(&mut self, event: Value, listener: Option<String>) {
        let Some(listener) = listener else {
            return;
        };
        self.event_seq += 1;
        let id = format!("Ev{}{:04}", self.rng.upper(6), self.event_seq % 10_000);
        let context = format!("4-{}", self.rng.alnum(48));
        let payload = json!({
            "token": self.verification_token,
            "team_id": TEAM_ID,
            "context_team_id": TEAM_ID,
            "context_enterprise_id": null,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": id,
            "event_time": now_unix(),
            "authorizations": [{
                "enterprise_id": null,
                "team_id": TEAM_ID,
                "is_bot": listener == BOT_USER_ID,
                "user_id": listener,
                "is_enterprise_install": false,
            }],
            "is_ext_shared_channel": false,
            "event_context": context,
        });
        self.events.push(EventRec {
            id,
            payload,
            status: EventStatus::Pending(Instant::now()),
            failures: 0,
            retry_reason: "",
            deliveries: 0,
        });
    }

    /// Stores a new message (a reply when `thread_ts` is given) and sends its
    /// `message` event; returns the stored message.
    fn insert_message(
        &mut self,
        channel: &str,
        mut m: Map<String, Value>,
        thread_ts: Option<&str>,
        broadcast: bool,
    ) -> Map<String, Value> {
        let ts = self.next_ts();
        let heard = self.listener(channel);
        m.insert("ts".into(), json!(ts));
        let ch = self.channels.get_mut(channel).expect("known channel");
        if let Some(t) = thread_ts {
            // A reply to a reply joins the parent's thread.
            let root = ch
                .messages
                .get(t)
                .and_then(|p| p.json.get("thread_ts").and_then(Value::as_str))
                .unwrap_or(t)
                .to_owned();
            m.insert("thread_ts".into(), json!(root));
            if let Some(parent) = ch.messages.get_mut(&root) {
                parent.replies.push(ts.clone());
                if let Some(u) = parent.json.get("user").cloned() {
                    m.insert("parent_user_id".into(), u);
                }
                if broadcast {
                    m.insert("subtype".into(), json!("thread_broadcast"));
                    m.insert("root".into(), Value::Object(parent.json.clone()));
                }
            }
        }
        let channel_type = ch.channel_type();
        ch.messages.insert(
            ts.clone(),
            MsgRec {
                json: m.clone(),
                reactions: Vec::new(),
                replies: Vec::new(),
            },
        );
        let mut event = m.clone();
        event.insert("channel".into(), json!(channel));
        event.insert("event_ts".into(), json!(ts));
        event.insert("channel_type".into(), json!(channel_type));
        self.emit(Value::Object(event), heard);
        m
    }

    /// Replaces a message's text (and blocks) and sends `message_changed`.
    fn edit_message(
        &mut self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Option<Value>,
        editor: &str,
    ) -> Option<Map<String, Value>> {
        let event_ts = self.next_ts();
        let heard = self.listener(channel);
        let ch = self.channels.get_mut(channel)?;
        let channel_type = ch.channel_type();
        let msg = ch.messages.get_mut(ts)?;
        let previous = msg.json.clone();
        msg.json.insert("text".into(), json!(text));
        match blocks {
            Some(b) => msg.json.insert("blocks".into(), b),
            None => msg.json.remove("blocks"),
        };
        msg.json
            .insert("edited".into(), json!({ "user": editor, "ts": event_ts }));
        let new = msg.json.clone();
        self.emit(
            json!({
                "type": "message",
                "subtype": "message_changed",
                "hidden": true,
                "channel": channel,
                "ts": event_ts,
                "event_ts": event_ts,
                "channel_type": channel_type,
                "message": new,
                "previous_message": previous,
            }),
            heard,
        );
        Some(new)
    }

    /// Removes a message and sends `message_deleted`.
    fn delete_message(&mut self, channel: &str, ts: &str) -> bool {
        let event_ts = self.next_ts();
        let heard = self.listener(channel);
        let Some(ch) = self.channels.get_mut(channel) else {
            return false;
        };
        let channel_type = ch.channel_type();
        let Some(msg) = ch.messages.remove(ts) else {
            return false;
        };
        if let Some(parent) = msg
            .json
            .get("thread_ts")
            .and_then(Value::as_str)
            .filter(|t| *t != ts)
            .and_then(|t| ch.messages.get_mut(t))
        {
            parent.replies.retain(|r| r != ts);
        }
        self.emit(
            json!({
                "type": "message",
                "subtype": "message_deleted",
                "hidden": true,
                "channel": channel,
                "ts": event_ts,
                "deleted_ts": ts,
                "event_ts": event_ts,
                "channel_type": channel_type,
                "previous_message": msg.json,
            }),
            heard,
        );
        true
    }

    /// Adds or removes one user's reaction and sends reaction_added or
    /// reaction_removed; errors are the Web API's.
    fn react(
        &mut self,
        channel: &str,
        ts: &str,
        user: &str,
        name: &str,
        add: bool,
    ) -> Result<(), &'static str> {
        let heard = self.listener(channel);
        let event_ts = self.next_ts();
        let ch = self.channels.get_mut(channel).ok_or("channel_not_found")?;
        let msg = ch.messages.get_mut(ts).ok_or("message_not_found")?;
        let pos = msg.reactions.iter().position(|(n, _)| n == name);
        if add {
            match pos {
                Some(i) if msg.reactions[i].1.iter().any(|u| u == user) => {
                    return Err("already_reacted");
                }
                Some(i) => msg.reactions[i].1.push(user.to_owned()),
                None => msg.reactions.push((name.to_owned(), vec![user.to_owned()])),
            }
        } else {
            let i = pos.ok_or("no_reaction")?;
            let before = msg.reactions[i].1.len();
            msg.reactions[i].1.retain(|u| u != user);
            if msg.reactions[i].1.len() == before {
                return Err("no_reaction");
            }
            if msg.reactions[i].1.is_empty() {
                msg.reactions.remove(i);
            }
        }
        let mut event = obj(json!({
            "type": if add { "reaction_added" } else { "reaction_removed" },
            "user": user,
            "reaction": name,
            "item": { "type": "message", "channel": channel, "ts": ts },
            "event_ts": event_ts,
        }));
        if let Some(author) = msg.json.get("user") {
            event.insert("item_user".into(), author.clone());
        }
        self.emit(Value::Object(event), heard);
        Ok(())
    }

    /// Adds a member; `announce` sends member_joined_channel and the
    /// channel_join message.
    fn add_member(&mut self, channel: &str, user: &str, announce: bool) {
        let ch = self.channels.get_mut(channel).expect("known channel");
        if ch.is_member(user) {
            return;
        }
        ch.members.push(user.to_owned());
        if !announce || ch.kind == ChannelKind::Im {
            return;
        }
        let letter = ch.type_letter();
        let event_ts = self.next_ts();
        let heard = self.listener(channel);
        self.emit(
            json!({
                "type": "member_joined_channel",
                "user": user,
                "channel": channel,
                "channel_type": letter,
                "team": TEAM_ID,
                "event_ts": event_ts,
            }),
            heard,
        );
        let m = obj(json!({
            "type": "message",
            "subtype": "channel_join",
            "user": user,
            "text": format!("<@{user}> has joined the channel"),
        }));
        self.insert_message(channel, m, None, false);
    }

    /// Removes a member; `announce` sends member_left_channel and the
    /// channel_leave message first, while the bot (even when it is the one
    /// leaving) still hears the channel.
    fn remove_member(&mut self, channel: &str, user: &str, announce: bool) {
        let ch = self.channels.get(channel).expect("known channel");
        if !ch.is_member(user) {
            return;
        }
        if announce && ch.kind != ChannelKind::Im {
            let letter = ch.type_letter();
            let event_ts = self.next_ts();
            let heard = self.listener(channel);
            self.emit(
                json!({
                    "type": "member_left_channel",
                    "user": user,
                    "channel": channel,
                    "channel_type": letter,
                    "team": TEAM_ID,
                    "event_ts": event_ts,
                }),
                heard,
            );
            let m = obj(json!({
                "type": "message",
                "subtype": "channel_leave",
                "user": user,
                "text": format!("<@{user}> has left the channel"),
            }));
            self.insert_message(channel, m, None, false);
        }
        let ch = self.channels.get_mut(channel).expect("known channel");
        ch.members.retain(|m| m != user);
    }

    /// Sends `user_change` with the user as it is now.
    fn user_changed(&mut self, user: &str) {
        let event_ts = self.next_ts();
        let u = self.users.get_mut(user).expect("known user");
        u.updated = now_unix();
        let json = u.json(&self.base);
        self.emit(
            json!({
                "type": "user_change",
                "user": json,
                "cache_ts": now_unix(),
                "event_ts": event_ts,
            }),
            Some(BOT_USER_ID.to_owned()),
        );
    }

    fn new_file_id(&mut self) -> String {
        self.file_seq += 1;
        format!("F0FAKE{:05}", self.file_seq)
    }

    fn file_json(&self, id: &str) -> Value {
        self.files[id].json(&self.base, &self.channels)
    }

    // -- tokens --------------------------------------------------------------

    /// The token's kind and acting user, or the Web API's auth error.
    fn authenticate(&self, token: Option<&str>) -> Result<(TokenKind, String), ApiErr> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(ApiErr::new("not_authed"))?;
        let rec = self.tokens.get(token).ok_or(ApiErr::new("invalid_auth"))?;
        if rec.revoked {
            return Err(ApiErr::new("token_revoked"));
        }
        let user = match &rec.kind {
            TokenKind::Bot => BOT_USER_ID.to_owned(),
            TokenKind::User(u) => u.clone(),
            TokenKind::App => String::new(),
        };
        if !user.is_empty() && self.users.get(&user).is_some_and(|u| u.deleted) {
            return Err(ApiErr::new("account_inactive"));
        }
        Ok((rec.kind.clone(), user))
    }

    /// Whether a `url_private` request with this Authorization header may
    /// read files: a live bot or user token of the workspace.
    fn may_download(&self, authorization: Option<&str>) -> bool {
        let token = authorization.and_then(|h| h.strip_prefix("Bearer "));
        matches!(
            self.authenticate(token.map(str::trim)),
            Ok((TokenKind::Bot | TokenKind::User(_), _))
        )
    }
}

// ---------------------------------------------------------------------------
// Web API: request parameters

struct Upload {
    bytes: Vec<u8>,
    filename: Option<String>,
}

#[derive(Default)]
struct Params {
    values: Map<String, Value>,
    /// The query string's arguments alone.
    query: Map<String, Value>,
    files: Vec<(String, Upload)>,
    /// The body was JSON: its `token` field is not a token.
    json_body: bool,
    /// A JSON body sent without a charset, which Slack warns about.
    missing_charset: bool,
}

impl Params {
    fn normalise(&mut self) {
        for (k, v) in self.values.iter_mut() {
            let Value::String(s) = v else { continue };
            let t = s.trim();
            if BOOL_PARAMS.contains(&k.as_str()) {
                match t.to_ascii_lowercase().as_str() {
                    "true" | "1" => *v = json!(true),
                    "false" | "0" | "" => *v = json!(false),
                    _ => {}
                }
            } else if INT_PARAMS.contains(&k.as_str()) {
                if let Ok(n) = t.parse::<i64>() {
                    *v = json!(n);
                }
            } else if JSON_PARAMS.contains(&k.as_str())
                && let Ok(parsed) = serde_json::from_str::<Value>(t)
                && (parsed.is_array() || parsed.is_object())
            {
                *v = parsed;
            }
        }
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

    /// A non-empty string argument.
    fn text(&self, k: &str) -> Option<String> {
        self.str(k).filter(|s| !s.trim().is_empty())
    }

    fn int(&self, k: &str) -> Option<i64> {
        match self.values.get(k)? {
            Value::Number(n) => n.as_i64(),
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

    /// Blocks or attachments that carry something.
    fn has_content(&self, k: &str) -> bool {
        match self.values.get(k) {
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::String(s)) => !s.trim().is_empty() && s.trim() != "[]",
            Some(Value::Object(_)) => true,
            _ => false,
        }
    }
}

async fn read_params(req: Request) -> Result<Params, ApiErr> {
    let mut p = Params::default();
    if let Some(q) = req.uri().query() {
        for (k, v) in query_pairs(q) {
            p.query.insert(k, Value::String(v));
        }
        p.values = p.query.clone();
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|_| ApiErr::new("invalid_form_data"))?;
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|_| ApiErr::new("invalid_form_data"))?
        {
            let name = field.name().unwrap_or("").to_owned();
            let filename = field.file_name().map(str::to_owned);
            let bytes = field
                .bytes()
                .await
                .map_err(|_| ApiErr::new("request_timeout"))?
                .to_vec();
            match (filename, String::from_utf8(bytes)) {
                (None, Ok(text)) => {
                    p.values.insert(name, Value::String(text));
                }
                (filename, Ok(text)) => p.files.push((
                    name,
                    Upload {
                        bytes: text.into_bytes(),
                        filename,
                    },
                )),
                (filename, Err(e)) => p.files.push((
                    name,
                    Upload {
                        bytes: e.into_bytes(),
                        filename,
                    },
                )),
            }
        }
    } else {
        let body = axum::body::to_bytes(req.into_body(), HTTP_BODY_LIMIT)
            .await
            .map_err(|_| ApiErr::new("request_timeout"))?;
        if content_type.starts_with("application/json") {
            p.json_body = true;
            p.missing_charset = !content_type.contains("charset");
            if !body.iter().all(u8::is_ascii_whitespace) {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(m)) => p.values.extend(m),
                    _ => return Err(ApiErr::new("invalid_json")),
                }
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded")
            || content_type.starts_with("text/plain")
        {
            for (k, v) in query_pairs(&String::from_utf8_lossy(&body)) {
                p.values.insert(k, Value::String(v));
            }
        } else if !body.is_empty() {
            return Err(ApiErr::new(if content_type.is_empty() {
                "missing_post_type"
            } else {
                "invalid_post_type"
            }));
        }
    }
    p.normalise();
    Ok(p)
}

// ---------------------------------------------------------------------------
// Web API: dispatch

/// Who is calling: the kind of token and the user it acts as (the bot user
/// for the bot token, nobody for the app-level token).
struct Actor {
    kind: TokenKind,
    user: String,
}

impl Actor {
    fn is_bot(&self) -> bool {
        self.kind == TokenKind::Bot
    }
}

struct ApiReply {
    status: u16,
    body: Value,
    headers: Vec<(String, String)>,
}

impl State {
    /// Answers one Web API request; records it first.
    fn api_call(
        &mut self,
        method: &str,
        http_method: &Method,
        headers: &HeaderMap,
        parsed: Result<Params, ApiErr>,
    ) -> ApiReply {
        let spec = METHODS.iter().find(|m| m.name == method);
        let header_token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        let (mut params, parse_error) = match parsed {
            Ok(p) => (p, None),
            Err(e) => (Params::default(), Some(e)),
        };
        // A JSON body is read only by methods that accept JSON; for the
        // others its arguments are absent. A token inside JSON never counts.
        let json_ignored = params.json_body && spec.is_some_and(|s| !s.json);
        let body_token = if params.json_body {
            None
        } else {
            params.str("token")
        };
        params.values.remove("token");
        let mut recorded = params.values.clone();
        for (name, f) in &params.files {
            recorded.insert(
                name.clone(),
                json!({ "file_bytes_len": f.bytes.len(), "filename": f.filename }),
            );
        }
        if json_ignored {
            recorded.insert("_json_ignored".into(), json!(true));
            params.values = std::mem::take(&mut params.query);
            params.normalise();
        }
        // apps.connections.open only reads the Authorization header.
        let token = match (&header_token, method) {
            (Some(t), _) => Some(t.clone()),
            (None, "apps.connections.open") => None,
            (None, _) => body_token,
        };
        recorded.insert("_token".into(), json!(token));

        let result = match (spec, parse_error) {
            (None, _) => Err(ApiErr::new("unknown_method").with("req_method", json!(method))),
            (Some(_), Some(e)) => Err(e),
            (Some(spec), None) => {
                self.authorised_call(spec, http_method, token.as_deref(), &params)
            }
        };
        let (status, mut body, mut headers) = match result {
            Ok(mut m) => {
                let mut body = Map::new();
                body.insert("ok".into(), json!(true));
                body.append(&mut m);
                (200, body, Vec::new())
            }
            Err(e) => {
                let mut body = Map::new();
                body.insert("ok".into(), json!(false));
                body.insert("error".into(), json!(e.error));
                body.extend(e.extra);
                let status = if spec.is_none() { 404 } else { e.status };
                (status, body, e.headers)
            }
        };
        if params.missing_charset && !json_ignored {
            body.insert("warning".into(), json!("missing_charset"));
            let meta = body.entry("response_metadata").or_insert_with(|| json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.insert("warnings".into(), json!(["missing_charset"]));
            }
        }
        if method == "auth.test" && body["ok"] == json!(true) && body.contains_key("bot_id") {
            headers.push(("x-oauth-scopes".into(), BOT_SCOPES.into()));
        }
        let body = Value::Object(body);
        self.calls.push(CallRec {
            method: method.to_owned(),
            params: Value::Object(recorded),
            response: body.clone(),
        });
        ApiReply {
            status,
            body,
            headers,
        }
    }

    fn authorised_call(
        &mut self,
        spec: &MethodSpec,
        http_method: &Method,
        token: Option<&str>,
        p: &Params,
    ) -> ApiResult {
        let (kind, user) = self.authenticate(token)?;
        let is_app = kind == TokenKind::App;
        if is_app != (spec.name == "apps.connections.open") {
            return Err(ApiErr::new("not_allowed_token_type"));
        }
        if spec.name == "apps.connections.open" && http_method != Method::POST {
            return Err(ApiErr::new("insecure_request"));
        }
        if let Some(queue) = self.injected.get_mut(spec.name)
            && let Some(error) = queue.pop_front()
        {
            return Err(error);
        }
        if self.enforce_tiers {
            let key = if spec.name == "chat.postMessage" {
                format!("{}:{}", spec.name, p.str("channel").unwrap_or_default())
            } else {
                spec.name.to_owned()
            };
            let now = Instant::now();
            let window = self.windows.entry(key).or_default();
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
            {
                window.pop_front();
            }
            if window.len() >= spec.per_minute {
                let oldest = *window.front().expect("a full window");
                let wait = Duration::from_secs(60).saturating_sub(now.duration_since(oldest));
                return Err(ApiErr::ratelimited(wait.as_secs().max(1)));
            }
            window.push_back(now);
        }
        let actor = Actor { kind, user };
        match spec.name {
            "apps.connections.open" => self.apps_connections_open(),
            "auth.test" => self.auth_test(&actor),
            "chat.postMessage" => self.chat_post_message(&actor, p),
            "chat.update" => self.chat_update(&actor, p),
            "chat.delete" => self.chat_delete(&actor, p),
            "reactions.add" => self.reactions_change(&actor, p, true),
            "reactions.remove" => self.reactions_change(&actor, p, false),
            "conversations.info" => self.conversations_info(&actor, p),
            "conversations.history" => self.conversations_history(&actor, p),
            "conversations.replies" => self.conversations_replies(&actor, p),
            "conversations.members" => self.conversations_members(&actor, p),
            "conversations.list" => self.conversations_list(&actor, p),
            "conversations.join" => self.conversations_join(&actor, p),
            "conversations.leave" => self.conversations_leave(&actor, p),
            "conversations.invite" => self.conversations_invite(&actor, p),
            "users.info" => self.users_info(p),
            "team.info" => Ok(self.team_info()),
            "files.getUploadURLExternal" => self.files_get_upload_url(&actor, p),
            "files.completeUploadExternal" => self.files_complete_upload(&actor, p),
            "files.info" => self.files_info(p),
            other => unreachable!("method {other} listed but not dispatched"),
        }
    }

    /// A conversation the actor can see: any public channel, private
    /// channels and DMs only as a member (others are "not found").
    /// chat.postMessage also takes a channel name, with or without `#`.
    fn visible_channel(&self, actor: &Actor, arg: Option<String>, by_name: bool) -> Option<String> {
        let arg = arg?;
        let id = if self.channels.contains_key(&arg) {
            arg
        } else if by_name {
            let name = arg.trim_start_matches('#');
            self.channels
                .values()
                .find(|c| c.kind != ChannelKind::Im && c.name == name)?
                .id
                .clone()
        } else {
            return None;
        };
        let ch = &self.channels[&id];
        (ch.kind == ChannelKind::Public || ch.is_member(&actor.user)).then_some(id)
    }

    /// Whether the actor wrote this message: the bot's messages carry our
    /// bot_id, a user's carry their user id and no bot_id.
    fn is_author(&self, actor: &Actor, msg: &MsgRec) -> bool {
        let bot_id = msg.json.get("bot_id").and_then(Value::as_str);
        if actor.is_bot() {
            bot_id == Some(BOT_ID)
        } else {
            bot_id.is_none()
                && msg.json.get("user").and_then(Value::as_str) == Some(actor.user.as_str())
        }
    }
}

// ---------------------------------------------------------------------------
// Web API: methods

/// Pagination cursors are opaque to clients; here they hex-encode a position.
fn encode_cursor(position: &str) -> String {
    hex_encode(position.as_bytes())
}

fn decode_cursor(cursor: Option<String>, prefix: &str) -> Result<Option<String>, ApiErr> {
    match cursor.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => hex_decode(&c)
            .and_then(|s| s.strip_prefix(prefix).map(str::to_owned))
            .map(Some)
            .ok_or(ApiErr::new("invalid_cursor")),
    }
}

/// `limit`: absent means `default`; at most `max`.
fn page_limit(p: &Params, default: usize, max: usize) -> Result<usize, ApiErr> {
    match p.values.get("limit") {
        None => Ok(default),
        Some(_) => match p.int("limit") {
            Some(0) => Ok(default),
            Some(n) if n > 0 => Ok((n as usize).min(max)),
            _ => Err(ApiErr::new("invalid_limit")),
        },
    }
}

fn offset_page<T: Clone>(
    items: &[T],
    p: &Params,
    default: usize,
    max: usize,
) -> Result<(Vec<T>, String), ApiErr> {
    let limit = page_limit(p, default, max)?;
    let start = match decode_cursor(p.str("cursor"), "offset:")? {
        None => 0,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| ApiErr::new("invalid_cursor"))?,
    };
    let end = (start + limit).min(items.len());
    let page = items.get(start..end).unwrap_or_default().to_vec();
    let next = if end < items.len() {
        encode_cursor(&format!("offset:{end}"))
    } else {
        String::new()
    };
    Ok((page, next))
}

impl State {
    fn apps_connections_open(&mut self) -> ApiResult {
        let ticket = self.rng.uuid();
        self.tickets
            .insert(ticket.clone(), (self.app_token.clone(), false));
        let host = self.base.trim_start_matches("http://");
        Ok(obj(json!({
            "url": format!("ws://{host}/link/?ticket={ticket}&app_id={APP_ID}"),
        })))
    }

    fn auth_test(&mut self, actor: &Actor) -> ApiResult {
        let name = self
            .users
            .get(&actor.user)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        let mut m = obj(json!({
            "url": format!("{}/", self.base),
            "team": TEAM_NAME,
            "user": name,
            "team_id": TEAM_ID,
            "user_id": actor.user,
        }));
        if actor.is_bot() {
            m.insert("bot_id".into(), json!(BOT_ID));
        }
        m.insert("is_enterprise_install".into(), json!(false));
        Ok(m)
    }

    fn chat_post_message(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let channel = self
            .visible_channel(actor, p.text("channel"), true)
            .ok_or(ApiErr::new("channel_not_found"))?;
        let ch = &self.channels[&channel];
        if !ch.is_member(&actor.user) {
            return Err(ApiErr::new("not_in_channel"));
        }
        if ch.archived {
            return Err(ApiErr::new("is_archived"));
        }
        let text = p.str("text").unwrap_or_default();
        if text.trim().is_empty() && !p.has_content("blocks") && !p.has_content("attachments") {
            return Err(ApiErr::new("no_text"));
        }
        if text.chars().count() > MAX_TEXT_LEN {
            return Err(ApiErr::new("msg_too_long"));
        }
        let thread_ts = p.text("thread_ts");
        if let Some(t) = &thread_ts
            && !valid_ts(t)
        {
            return Err(ApiErr::new("invalid_thread_ts").with(
                "response_metadata",
                json!({ "messages": [format!("[ERROR] {t} is not a valid thread_ts")] }),
            ));
        }
        let mut m = obj(json!({ "type": "message", "text": text }));
        if actor.is_bot() {
            let username = p.text("username");
            let icon_url = p.text("icon_url");
            let icon_emoji = p.text("icon_emoji");
            if username.is_some() || icon_url.is_some() || icon_emoji.is_some() {
                // chat:write.customize: the message is a bot_message with the
                // given name and icon rather than the bot user's.
                m.insert("subtype".into(), json!("bot_message"));
                m.insert(
                    "username".into(),
                    json!(username.unwrap_or_else(|| BOT_NAME.to_owned())),
                );
                let icons = match (icon_emoji, icon_url) {
                    (Some(e), _) => json!({ "emoji": e }),
                    (None, Some(u)) => json!({ "image_36": u, "image_48": u, "image_72": u }),
                    (None, None) => json!({}),
                };
                m.insert("icons".into(), icons);
            } else {
                m.insert("user".into(), json!(BOT_USER_ID));
            }
            m.insert("bot_id".into(), json!(BOT_ID));
            m.insert("app_id".into(), json!(APP_ID));
            m.insert("bot_profile".into(), self.bot_profile());
        } else {
            m.insert("user".into(), json!(actor.user));
        }
        m.insert("team".into(), json!(TEAM_ID));
        for k in ["blocks", "attachments", "metadata"] {
            if p.has_content(k)
                && let Some(v) = p.values.get(k)
            {
                m.insert(k.into(), v.clone());
            }
        }
        let broadcast = thread_ts.is_some() && p.bool("reply_broadcast");
        let stored = self.insert_message(&channel, m, thread_ts.as_deref(), broadcast);
        Ok(obj(json!({
            "channel": channel,
            "ts": stored["ts"],
            "message": stored,
        })))
    }

    fn bot_profile(&self) -> Value {
        let bot = &self.users[BOT_USER_ID];
        json!({
            "id": BOT_ID,
            "app_id": APP_ID,
            "user_id": BOT_USER_ID,
            "name": bot.real_name,
            "icons": {
                "image_36": bot.image_url(&self.base, 36),
                "image_48": bot.image_url(&self.base, 48),
                "image_72": bot.image_url(&self.base, 72),
            },
            "deleted": false,
            "updated": bot.updated,
            "team_id": TEAM_ID,
        })
    }

    /// The channel and message a chat.update or chat.delete names.
    fn own_message(
        &self,
        actor: &Actor,
        p: &Params,
        denied: &str,
    ) -> Result<(String, String), ApiErr> {
        let channel = self
            .visible_channel(actor, p.text("channel"), false)
            .ok_or(ApiErr::new("channel_not_found"))?;
        let ts = p.text("ts").ok_or(ApiErr::new("message_not_found"))?;
        let msg = self.channels[&channel]
            .messages
            .get(&ts)
            .ok_or(ApiErr::new("message_not_found"))?;
        if !self.is_author(actor, msg) {
            return Err(ApiErr::new(denied));
        }
        Ok((channel, ts))
    }

    fn chat_update(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let (channel, ts) = self.own_message(actor, p, "cant_update_message")?;
        if self.channels[&channel].archived {
            return Err(ApiErr::new("is_inactive"));
        }
        let text = p.str("text").unwrap_or_default();
        let blocks = p
            .has_content("blocks")
            .then(|| p.values.get("blocks").cloned())
            .flatten();
        if text.trim().is_empty() && blocks.is_none() && !p.has_content("attachments") {
            return Err(ApiErr::new("no_text"));
        }
        if text.chars().count() > MAX_TEXT_LEN {
            return Err(ApiErr::new("msg_too_long"));
        }
        let editor = actor.user.clone();
        let new = self
            .edit_message(&channel, &ts, &text, blocks, &editor)
            .ok_or(ApiErr::new("message_not_found"))?;
        Ok(obj(json!({
            "channel": channel,
            "ts": ts,
            "text": text,
            "message": new,
        })))
    }

    fn chat_delete(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let (channel, ts) = self.own_message(actor, p, "cant_delete_message")?;
        self.delete_message(&channel, &ts);
        Ok(obj(json!({ "channel": channel, "ts": ts })))
    }

    fn reactions_change(&mut self, actor: &Actor, p: &Params, add: bool) -> ApiResult {
        let name = p.text("name").ok_or(ApiErr::new("invalid_name"))?;
        let (Some(channel), Some(ts)) = (p.text("channel"), p.text("timestamp")) else {
            return Err(ApiErr::new("no_item_specified"));
        };
        let channel = self
            .visible_channel(actor, Some(channel), false)
            .ok_or(ApiErr::new("channel_not_found"))?;
        if !valid_ts(&ts) {
            return Err(ApiErr::new("bad_timestamp"));
        }
        if !self.channels[&channel].messages.contains_key(&ts) {
            return Err(ApiErr::new("message_not_found"));
        }
        if !valid_reaction_name(&name) {
            return Err(ApiErr::new("invalid_name"));
        }
        if add && self.channels[&channel].archived {
            return Err(ApiErr::new("is_archived"));
        }
        let user = actor.user.clone();
        self.react(&channel, &ts, &user, &name, add)
            .map_err(ApiErr::new)?;
        Ok(Map::new())
    }

    fn conversations_info(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let channel = self
            .visible_channel(actor, p.text("channel"), false)
            .ok_or(ApiErr::new("channel_not_found"))?;
        let mut json = self.channels[&channel].json(&actor.user, p.bool("include_num_members"));
        if p.bool("include_locale") {
            json["locale"] = json!("en-US");
        }
        Ok(obj(json!({ "channel": json })))
    }

    /// A channel whose messages the actor may read: a member, or
    /// `not_in_channel` for a public channel it is not in.
    fn readable_channel(&self, actor: &Actor, p: &Params) -> Result<String, ApiErr> {
        let channel = self
            .visible_channel(actor, p.text("channel"), false)
            .ok_or(ApiErr::new("channel_not_found"))?;
        if !self.channels[&channel].is_member(&actor.user) {
            return Err(ApiErr::new("not_in_channel"));
        }
        Ok(channel)
    }

    fn conversations_history(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let channel = self.readable_channel(actor, p)?;
        let bound = |k: &str, error: &str| -> Result<Option<String>, ApiErr> {
            match p.text(k) {
                None => Ok(None),
                Some(t) if valid_ts(&t) => Ok(Some(t)),
                Some(_) => Err(ApiErr::new(error)),
            }
        };
        let latest = bound("latest", "invalid_ts_latest")?;
        let oldest = bound("oldest", "invalid_ts_oldest")?;
        let inclusive = p.bool("inclusive");
        let limit = page_limit(p, 100, 999)?;
        let before = decode_cursor(p.str("cursor"), "next_ts:")?;
        let ch = &self.channels[&channel];
        let ts_num = |t: &str| t.parse::<f64>().unwrap_or(0.0);
        let mut page = Vec::new();
        let mut has_more = false;
        for (ts, msg) in ch.messages.iter().rev() {
            if !ChannelRec::is_top_level(msg) {
                continue;
            }
            let t = ts_num(ts);
            if let Some(l) = &latest
                && (t > ts_num(l) || (!inclusive && t == ts_num(l)))
            {
                continue;
            }
            if let Some(o) = &oldest
                && (t < ts_num(o) || (!inclusive && t == ts_num(o)))
            {
                continue;
            }
            if let Some(b) = &before
                && t >= ts_num(b)
            {
                continue;
            }
            if page.len() == limit {
                has_more = true;
                break;
            }
            page.push((ts.clone(), ch.render(msg)));
        }
        let mut m = obj(json!({
            "messages": page.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
            "has_more": has_more,
            "pin_count": 0,
        }));
        if has_more {
            let last = &page.last().expect("a full page").0;
            m.insert(
                "response_metadata".into(),
                json!({ "next_cursor": encode_cursor(&format!("next_ts:{last}")) }),
            );
        }
        Ok(m)
    }

    fn conversations_replies(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let channel = self.readable_channel(actor, p)?;
        let ts = p.text("ts").ok_or(ApiErr::new("thread_not_found"))?;
        let ch = &self.channels[&channel];
        let root = ch
            .messages
            .get(&ts)
            .and_then(|m| m.json.get("thread_ts").and_then(Value::as_str))
            .unwrap_or(&ts)
            .to_owned();
        let parent = ch
            .messages
            .get(&root)
            .ok_or(ApiErr::new("thread_not_found"))?;
        let mut all = vec![ch.render(parent)];
        all.extend(
            parent
                .replies
                .iter()
                .filter_map(|r| ch.messages.get(r))
                .map(|m| ch.render(m)),
        );
        let (page, next) = offset_page(&all, p, 1000, 1000)?;
        Ok(obj(json!({
            "messages": page,
            "has_more": !next.is_empty(),
            "response_metadata": { "next_cursor": next },
        })))
    }

    fn conversations_members(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let channel = self
            .visible_channel(actor, p.text("channel"), false)
            .ok_or(ApiErr::new("channel_not_found"))?;
        let members = self.channels[&channel].members.clone();
        let (page, next) = offset_page(&members, p, 100, 1000)?;
        Ok(obj(json!({
            "members": page,
            "response_metadata": { "next_cursor": next },
        })))
    }

    /// Public channels only; joining twice is fine (a warning, as Slack).
    fn conversations_join(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let channel = self
            .visible_channel(actor, p.text("channel"), false)
            .ok_or(ApiErr::new("channel_not_found"))?;
        if self.channels[&channel].kind != ChannelKind::Public {
            return Err(ApiErr::new("method_not_supported_for_channel_type"));
        }
        let already = self.is_member(&channel, &actor.user);
        self.add_member(&channel, &actor.user, true);
        let mut answer = obj(json!({
            "channel": self.channels[&channel].json(&actor.user, false),
        }));
        if already {
            answer.insert("warning".into(), json!("already_in_channel"));
        }
        Ok(answer)
    }

    fn conversations_leave(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let channel = self
            .visible_channel(actor, p.text("channel"), false)
            .ok_or(ApiErr::new("channel_not_found"))?;
        let ch = &self.channels[&channel];
        if ch.kind == ChannelKind::Im {
            return Err(ApiErr::new("method_not_supported_for_channel_type"));
        }
        if ch.name == "general" {
            return Err(ApiErr::new("cant_leave_general"));
        }
        if !ch.is_member(&actor.user) {
            return Ok(obj(json!({ "not_in_channel": true })));
        }
        self.remove_member(&channel, &actor.user, true);
        Ok(obj(json!({})))
    }

    /// `users`: comma-separated ids; the actor must be a member.
    fn conversations_invite(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let channel = self
            .visible_channel(actor, p.text("channel"), false)
            .ok_or(ApiErr::new("channel_not_found"))?;
        if self.channels[&channel].kind == ChannelKind::Im {
            return Err(ApiErr::new("method_not_supported_for_channel_type"));
        }
        if !self.is_member(&channel, &actor.user) {
            return Err(ApiErr::new("not_in_channel"));
        }
        let users = p.text("users").ok_or(ApiErr::new("no_user"))?;
        for user in users.split(',') {
            if !self.users.contains_key(user) {
                return Err(ApiErr::new("user_not_found"));
            }
            if self.is_member(&channel, user) {
                return Err(ApiErr::new("already_in_channel"));
            }
        }
        for user in users.split(',') {
            self.add_member(&channel, user, true);
        }
        Ok(obj(json!({
            "channel": self.channels[&channel].json(&actor.user, false),
        })))
    }

    fn conversations_list(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let types = p.text("types").unwrap_or_else(|| "public_channel".into());
        let mut wanted = Vec::new();
        for t in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match t {
                "public_channel" => wanted.push(ChannelKind::Public),
                "private_channel" => wanted.push(ChannelKind::Private),
                "im" => wanted.push(ChannelKind::Im),
                "mpim" => {}
                _ => return Err(ApiErr::new("invalid_types")),
            }
        }
        let exclude_archived = p.bool("exclude_archived");
        let listed: Vec<Value> = self
            .channels
            .values()
            .filter(|c| wanted.contains(&c.kind))
            .filter(|c| c.kind == ChannelKind::Public || c.is_member(&actor.user))
            .filter(|c| !(exclude_archived && c.archived))
            .map(|c| c.json(&actor.user, c.kind != ChannelKind::Im))
            .collect();
        let (page, next) = offset_page(&listed, p, 100, 1000)?;
        Ok(obj(json!({
            "channels": page,
            "response_metadata": { "next_cursor": next },
        })))
    }

    fn users_info(&mut self, p: &Params) -> ApiResult {
        let user = p
            .text("user")
            .and_then(|u| self.users.get(&u))
            .ok_or(ApiErr::new("user_not_found"))?;
        Ok(obj(json!({ "user": user.json(&self.base) })))
    }

    fn team_info(&self) -> Map<String, Value> {
        obj(json!({
            "team": {
                "id": TEAM_ID,
                "name": TEAM_NAME,
                "url": format!("{}/", self.base),
                "domain": TEAM_DOMAIN,
                "email_domain": "",
                "icon": {
                    "image_default": true,
                    "image_34": format!("{}/avatars/default_34.png", self.base),
                    "image_44": format!("{}/avatars/default_44.png", self.base),
                    "image_68": format!("{}/avatars/default_68.png", self.base),
                    "image_88": format!("{}/avatars/default_88.png", self.base),
                    "image_102": format!("{}/avatars/default_102.png", self.base),
                    "image_132": format!("{}/avatars/default_132.png", self.base),
                    "image_230": format!("{}/avatars/default_230.png", self.base),
                },
                "avatar_base_url": format!("{}/avatars/", self.base),
                "is_verified": false,
            }
        }))
    }

    fn files_get_upload_url(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let filename = p.text("filename").ok_or(ApiErr::new("invalid_arguments"))?;
        let length = match p.int("length") {
            None => return Err(ApiErr::new("invalid_arguments")),
            // "Typically only occurs when the length provided is 0."
            Some(n) if n <= 0 => return Err(ApiErr::new("missing_argument")),
            Some(n) => n as usize,
        };
        if p.text("alt_txt").is_some_and(|a| a.chars().count() > 1000) {
            return Err(ApiErr::new("alt_txt_too_large"));
        }
        let id = self.new_file_id();
        let key = self.rng.alnum(32);
        let (mimetype, filetype) = file_type(&filename);
        self.files.insert(
            id.clone(),
            FileRec {
                id: id.clone(),
                name: filename.clone(),
                title: filename,
                mimetype: mimetype.to_owned(),
                filetype: filetype.to_owned(),
                bytes: None,
                declared_len: length,
                user: actor.user.clone(),
                created: now_unix(),
                upload_key: Some(key.clone()),
                completed: false,
                shares: Vec::new(),
                alt_txt: p.text("alt_txt"),
            },
        );
        Ok(obj(json!({
            "upload_url": format!("{}/upload/v1/{key}", self.base),
            "file_id": id,
        })))
    }

    fn files_complete_upload(&mut self, actor: &Actor, p: &Params) -> ApiResult {
        let Some(Value::Array(list)) = p.values.get("files") else {
            return Err(ApiErr::new("invalid_arguments"));
        };
        let mut wanted = Vec::new();
        for item in list {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or(ApiErr::new("invalid_arguments"))?;
            let file = self.files.get(id).ok_or(ApiErr::new("file_not_found"))?;
            if file.user != actor.user || file.bytes.is_none() || file.completed {
                return Err(ApiErr::new("file_not_found"));
            }
            wanted.push((id.to_owned(), item.get("title").and_then(Value::as_str)));
        }
        if wanted.is_empty() {
            return Err(ApiErr::new("invalid_arguments"));
        }
        let channel_arg = p.text("channel_id").or_else(|| {
            p.text("channels")
                .and_then(|c| c.split(',').next().map(|s| s.trim().to_owned()))
        });
        let channel = match channel_arg {
            None => None,
            Some(c) => {
                let id = self
                    .visible_channel(actor, Some(c), false)
                    .ok_or(ApiErr::new("invalid_channel"))?;
                if !self.channels[&id].is_member(&actor.user) {
                    return Err(ApiErr::new("posting_to_channel_denied"));
                }
                Some(id)
            }
        };
        let thread_ts = p.text("thread_ts");
        if thread_ts.as_deref().is_some_and(|t| !valid_ts(t)) {
            return Err(ApiErr::new("invalid_arguments"));
        }
        for (id, title) in &wanted {
            let f = self.files.get_mut(id).expect("checked above");
            if let Some(t) = title {
                f.title = (*t).to_owned();
            }
            f.completed = true;
            f.upload_key = None;
        }
        // Sharing is asynchronous at Slack: the answer lists the files
        // before their shares exist, so it never carries the message ts.
        let answer: Vec<Value> = wanted.iter().map(|(id, _)| self.file_json(id)).collect();
        if let Some(channel) = channel {
            let files: Vec<Value> = wanted.iter().map(|(id, _)| self.file_json(id)).collect();
            let mut m = obj(json!({
                "type": "message",
                "subtype": "file_share",
                "text": p.str("initial_comment").unwrap_or_default(),
                "files": files,
                "upload": false,
                "user": actor.user,
                "display_as_bot": false,
                "team": TEAM_ID,
            }));
            if actor.is_bot() {
                m.insert("bot_id".into(), json!(BOT_ID));
                m.insert("app_id".into(), json!(APP_ID));
            }
            let stored = self.insert_message(&channel, m, thread_ts.as_deref(), false);
            let ts = stored["ts"].as_str().unwrap_or_default().to_owned();
            for (id, _) in &wanted {
                let f = self.files.get_mut(id).expect("checked above");
                f.shares.push((channel.clone(), ts.clone()));
            }
        }
        Ok(obj(json!({ "files": answer })))
    }

    fn files_info(&mut self, p: &Params) -> ApiResult {
        let id = p.text("file").ok_or(ApiErr::new("file_not_found"))?;
        match self.files.get(&id) {
            Some(f) if f.completed => Ok(obj(json!({
                "file": self.file_json(&id),
                "comments": [],
                "response_metadata": { "next_cursor": "" },
            }))),
            _ => Err(ApiErr::new("file_not_found")),
        }
    }
}

// ---------------------------------------------------------------------------
// Event delivery

/// A Request URL POST to make outside the lock.
enum HttpJob {
    Event {
        index: usize,
        attempt: u64,
        url: String,
        body: String,
        retry: Option<(u32, &'static str)>,
        secret: String,
        timeout: Duration,
    },
    Verify {
        url: String,
        body: String,
        challenge: String,
        secret: String,
    },
}

enum HttpOutcome {
    Success,
    /// A failure the app asked not to retry (`X-Slack-No-Retry: 1`).
    NoRetry,
    Failed(&'static str),
}

impl State {
    /// One pass of the delivery machinery: closes sockets whose grace ran
    /// out, fails envelopes not acknowledged in time, sends what is due.
    /// Returns when to run again and the HTTP requests to make.
    fn process_deliveries(&mut self, now: Instant) -> (Option<Instant>, Vec<HttpJob>) {
        let mut jobs = Vec::new();
        for sock in self.sockets.values_mut() {
            if let Some(at) = sock.close_at
                && at <= now
            {
                let _ = sock.tx.send(WsOut::Close);
            }
        }
        for i in 0..self.events.len() {
            if let EventStatus::InFlight {
                deadline: Some(d), ..
            } = self.events[i].status
                && d <= now
            {
                self.fail(i, "timeout", now);
            }
        }
        if let Mode::Http {
            url,
            verified: false,
            verify_at: Some(at),
        } = &mut self.mode
            && *at <= now
        {
            let url = url.clone();
            self.mode = Mode::Http {
                url: url.clone(),
                verified: false,
                verify_at: None,
            };
            let challenge = self.rng.alnum(48);
            let body = json!({
                "token": self.verification_token,
                "challenge": challenge,
                "type": "url_verification",
            })
            .to_string();
            jobs.push(HttpJob::Verify {
                url,
                body,
                challenge,
                secret: self.signing_secret.clone(),
            });
        }
        for i in 0..self.events.len() {
            if let EventStatus::Pending(at) = self.events[i].status
                && at <= now
            {
                self.attempt(i, now, &mut jobs);
            }
        }
        let mut wake: Option<Instant> = None;
        let mut soon = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for sock in self.sockets.values() {
            if let Some(at) = sock.close_at
                && at > now
            {
                soon(at);
            }
        }
        for ev in &self.events {
            match ev.status {
                EventStatus::Pending(at) if !self.waits_for_verification() => soon(at),
                EventStatus::InFlight {
                    deadline: Some(d), ..
                } => soon(d),
                _ => {}
            }
        }
        if let Mode::Http {
            verify_at: Some(at),
            verified: false,
            ..
        } = self.mode
        {
            soon(at);
        }
        (wake, jobs)
    }

    fn waits_for_verification(&self) -> bool {
        matches!(
            self.mode,
            Mode::Http {
                verified: false,
                ..
            }
        )
    }

    /// Sends event `i` once: to a socket (a `warning`-free one first, in
    /// turn) or to the Request URL.
    fn attempt(&mut self, i: usize, now: Instant, jobs: &mut Vec<HttpJob>) {
        if self.waits_for_verification() {
            return;
        }
        self.attempt_seq += 1;
        let attempt = self.attempt_seq;
        let (failures, reason) = (self.events[i].failures, self.events[i].retry_reason);
        if let Mode::Http { url, .. } = &self.mode {
            jobs.push(HttpJob::Event {
                index: i,
                attempt,
                url: url.clone(),
                body: self.events[i].payload.to_string(),
                retry: (failures > 0).then_some((failures, reason)),
                secret: self.signing_secret.clone(),
                timeout: self.ack_timeout,
            });
            self.events[i].deliveries += 1;
            self.events[i].status = EventStatus::InFlight {
                attempt,
                deadline: None,
            };
            return;
        }
        let open: Vec<(u64, bool)> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.close_at.is_none_or(|at| at > now) && !s.tx.is_closed())
            .map(|(id, s)| (*id, s.warned))
            .collect();
        let fresh: Vec<u64> = open.iter().filter(|(_, w)| !w).map(|(id, _)| *id).collect();
        let candidates: Vec<u64> = if fresh.is_empty() {
            open.iter().map(|(id, _)| *id).collect()
        } else {
            fresh
        };
        if candidates.is_empty() {
            self.missed += 1;
            self.fail(i, "timeout", now);
            return;
        }
        let socket = candidates[self.round_robin % candidates.len()];
        self.round_robin = self.round_robin.wrapping_add(1);
        let envelope_id = self.rng.uuid();
        let envelope = json!({
            "envelope_id": envelope_id,
            "payload": self.events[i].payload,
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": failures,
            "retry_reason": reason,
        });
        let _ = self.sockets[&socket]
            .tx
            .send(WsOut::Text(envelope.to_string()));
        self.envelopes.insert(envelope_id, i);
        self.events[i].deliveries += 1;
        self.events[i].status = EventStatus::InFlight {
            attempt,
            deadline: Some(now + self.ack_timeout),
        };
    }

    /// A failed attempt: retry after the next delay, or give up.
    fn fail(&mut self, i: usize, reason: &'static str, now: Instant) {
        let ev = &mut self.events[i];
        ev.failures += 1;
        ev.retry_reason = reason;
        ev.status = match self.retry_delays.get(ev.failures as usize - 1) {
            Some(delay) => EventStatus::Pending(now + *delay),
            None => EventStatus::Dropped,
        };
    }

    fn http_done(&mut self, i: usize, attempt: u64, outcome: HttpOutcome) {
        let current = matches!(
            self.events[i].status,
            EventStatus::InFlight { attempt: a, .. } if a == attempt
        );
        if !current {
            return;
        }
        match outcome {
            HttpOutcome::Success => self.events[i].status = EventStatus::Acked,
            HttpOutcome::NoRetry => self.events[i].status = EventStatus::Dropped,
            HttpOutcome::Failed(reason) => self.fail(i, reason, Instant::now()),
        }
    }

    /// A text frame from a Socket Mode client: an acknowledgement.
    fn socket_frame(&mut self, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(envelope_id) = v.get("envelope_id").and_then(Value::as_str) else {
            return;
        };
        let Some(&i) = self.envelopes.get(envelope_id) else {
            return;
        };
        if self.drop_acks > 0 {
            self.drop_acks -= 1;
            self.ignored_acks += 1;
            return;
        }
        self.envelopes.remove(envelope_id);
        // A late acknowledgement of an earlier attempt still counts.
        if matches!(
            self.events[i].status,
            EventStatus::InFlight { .. } | EventStatus::Pending(_)
        ) {
            self.events[i].status = EventStatus::Acked;
        }
    }

    /// Sends `{"type":"disconnect"}` to every socket; `warning` and
    /// `refresh_requested` leave it open for the grace period.
    fn disconnect_sockets(&mut self, reason: &str, now: Instant) {
        let frame = json!({
            "type": "disconnect",
            "reason": reason,
            "debug_info": { "host": "applink-fake" },
        })
        .to_string();
        let graceful = matches!(reason, "warning" | "refresh_requested");
        let grace = self.disconnect_grace;
        for sock in self.sockets.values_mut() {
            if sock.close_at.is_some_and(|at| at <= now) {
                continue;
            }
            let _ = sock.tx.send(WsOut::Text(frame.clone()));
            if graceful {
                sock.warned = true;
                sock.close_at = Some(sock.close_at.map_or(now + grace, |at| at.min(now + grace)));
            } else {
                let _ = sock.tx.send(WsOut::Close);
                sock.close_at = Some(now);
            }
        }
    }
}

struct HttpResp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 POST to an `http://` URL, one connection per request;
/// errors are Slack's retry reasons.
async fn http_post(
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<HttpResp, &'static str> {
    let rest = url.strip_prefix("http://").ok_or("ssl_error")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority)
        .await
        .map_err(|_| "connection_failed")?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream
        .write_all(&request)
        .await
        .map_err(|_| "connection_failed")?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|_| "unknown_error")?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("unknown_error")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("unknown_error")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut resp = HttpResp {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    if resp
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        resp.body = dechunk(&resp.body);
    }
    Ok(resp)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_owned();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

/// The headers Slack signs an Events API request with.
fn signed_headers(
    secret: &str,
    body: &str,
    retry: Option<(u32, &'static str)>,
) -> Vec<(String, String)> {
    let ts = now_unix();
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("User-Agent".to_owned(), EVENTS_USER_AGENT.to_owned()),
        ("X-Slack-Request-Timestamp".to_owned(), ts.to_string()),
        (
            "X-Slack-Signature".to_owned(),
            slack_signature(secret, ts, body.as_bytes()),
        ),
    ];
    if let Some((num, reason)) = retry {
        headers.push(("X-Slack-Retry-Num".to_owned(), num.to_string()));
        headers.push(("X-Slack-Retry-Reason".to_owned(), reason.to_owned()));
    }
    headers
}

/// Whether a url_verification answer echoes the challenge, as plain text,
/// a form or JSON.
fn echoes_challenge(resp: &HttpResp, challenge: &str) -> bool {
    if resp.status != 200 {
        return false;
    }
    let body = String::from_utf8_lossy(&resp.body);
    let body = body.trim();
    body == challenge
        || serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| {
                v.get("challenge")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .is_some_and(|c| c == challenge)
        || query_pairs(body)
            .iter()
            .any(|(k, v)| k == "challenge" && v == challenge)
}

async fn run_http_job(shared: Arc<Shared>, job: HttpJob) {
    match job {
        HttpJob::Event {
            index,
            attempt,
            url,
            body,
            retry,
            secret,
            timeout,
        } => {
            let headers = signed_headers(&secret, &body, retry);
            let outcome =
                match tokio::time::timeout(timeout, http_post(&url, &headers, body.as_bytes()))
                    .await
                {
                    Err(_) => HttpOutcome::Failed("http_timeout"),
                    Ok(Err(reason)) => HttpOutcome::Failed(reason),
                    Ok(Ok(resp)) if (200..300).contains(&resp.status) => HttpOutcome::Success,
                    Ok(Ok(resp)) if resp.header("x-slack-no-retry") == Some("1") => {
                        HttpOutcome::NoRetry
                    }
                    Ok(Ok(resp)) if (300..400).contains(&resp.status) => {
                        HttpOutcome::Failed("too_many_redirects")
                    }
                    Ok(Ok(_)) => HttpOutcome::Failed("http_error"),
                };
            shared.lock().http_done(index, attempt, outcome);
            shared.bump();
        }
        HttpJob::Verify {
            url,
            body,
            challenge,
            secret,
        } => {
            let headers = signed_headers(&secret, &body, None);
            let ok = matches!(
                tokio::time::timeout(ACK_TIMEOUT, http_post(&url, &headers, body.as_bytes())).await,
                Ok(Ok(resp)) if echoes_challenge(&resp, &challenge)
            );
            {
                let mut s = shared.lock();
                s.url_verifications += 1;
                if let Mode::Http {
                    url: current,
                    verified,
                    verify_at,
                } = &mut s.mode
                    && *current == url
                {
                    *verified = ok;
                    *verify_at = (!ok).then(|| Instant::now() + URL_VERIFICATION_RETRY);
                }
            }
            shared.bump();
        }
    }
}

async fn delivery_loop(shared: Arc<Shared>) {
    loop {
        let (wake, jobs) = {
            let mut s = shared.lock();
            if s.closed {
                return;
            }
            s.process_deliveries(Instant::now())
        };
        shared.touched();
        for job in jobs {
            tokio::spawn(run_http_job(shared.clone(), job));
        }
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.kick.notified() => {}
            _ = sleep => {}
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP and websocket endpoints

struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// Wakes the delivery loop.
    kick: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its own
        // failure behind a poisoned-mutex panic in the server.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a change that may create or settle deliveries.
    fn bump(&self) {
        self.touched();
        self.kick.notify_one();
    }

    /// After a change only waiters care about.
    fn touched(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

type SharedState = AxumState<Arc<Shared>>;

async fn handle_api(
    AxumState(shared): SharedState,
    Path(method): Path<String>,
    req: Request,
) -> Response {
    let http_method = req.method().clone();
    let headers = req.headers().clone();
    let parsed = read_params(req).await;
    let reply = shared
        .lock()
        .api_call(&method, &http_method, &headers, parsed);
    shared.bump();
    json_response(reply.status, &reply.body, &reply.headers)
}

async fn handle_link(AxumState(shared): SharedState, uri: Uri, ws: WebSocketUpgrade) -> Response {
    let ticket = query_pairs(uri.query().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let token = {
        let mut s = shared.lock();
        let token = match s.tickets.get_mut(&ticket) {
            Some((token, used)) if !*used => {
                *used = true;
                token.clone()
            }
            _ => return (StatusCode::UNAUTHORIZED, "invalid ticket").into_response(),
        };
        if s.authenticate(Some(&token)).is_err() {
            return (StatusCode::UNAUTHORIZED, "invalid ticket").into_response();
        }
        token
    };
    ws.on_upgrade(move |socket| run_socket(shared, socket, token))
}

async fn run_socket(shared: Arc<Shared>, mut ws: WebSocket, token: String) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut s = shared.lock();
        let open = s
            .sockets
            .values()
            .filter(|sock| sock.close_at.is_none_or(|at| at > Instant::now()))
            .count();
        if s.closed || open >= MAX_SOCKETS {
            None
        } else {
            s.socket_seq += 1;
            let id = s.socket_seq;
            let hello = json!({
                "type": "hello",
                "num_connections": open + 1,
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": { "app_id": APP_ID },
            });
            let _ = tx.send(WsOut::Text(hello.to_string()));
            s.sockets.insert(
                id,
                SocketRec {
                    tx,
                    token,
                    warned: false,
                    close_at: None,
                },
            );
            Some(id)
        }
    };
    let Some(id) = id else {
        let frame = json!({
            "type": "disconnect",
            "reason": "too_many_websockets",
            "debug_info": { "host": "applink-fake" },
        });
        let _ = ws.send(WsMessage::Text(frame.to_string().into())).await;
        let _ = ws.send(WsMessage::Close(None)).await;
        return;
    };
    shared.bump();
    loop {
        tokio::select! {
            incoming = ws.recv() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    shared.lock().socket_frame(text.as_str());
                    shared.bump();
                }
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(WsOut::Text(text)) => {
                    if ws.send(WsMessage::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(WsOut::Close) | None => {
                    let _ = ws.send(WsMessage::Close(None)).await;
                    break;
                }
            },
        }
    }
    shared.lock().sockets.remove(&id);
    shared.bump();
}

/// The upload URL of files.getUploadURLExternal: raw bytes or a multipart
/// form with one file.
async fn handle_upload(
    AxumState(shared): SharedState,
    Path(key): Path<String>,
    req: Request,
) -> Response {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"));
    let bytes = if is_multipart {
        let Ok(mut mp) = Multipart::from_request(req, &()).await else {
            return (StatusCode::BAD_REQUEST, "bad multipart body").into_response();
        };
        let mut found = None;
        while let Ok(Some(field)) = mp.next_field().await {
            let is_file = field.file_name().is_some() || field.name() == Some("file");
            let Ok(data) = field.bytes().await else {
                return (StatusCode::BAD_REQUEST, "bad multipart body").into_response();
            };
            if is_file && found.is_none() {
                found = Some(data.to_vec());
            }
        }
        match found {
            Some(b) => b,
            None => return (StatusCode::BAD_REQUEST, "no file part").into_response(),
        }
    } else {
        match axum::body::to_bytes(req.into_body(), HTTP_BODY_LIMIT).await {
            Ok(b) => b.to_vec(),
            Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        }
    };
    let len = bytes.len();
    {
        let mut s = shared.lock();
        let Some(id) = s
            .files
            .values()
            .find(|f| f.upload_key.as_deref() == Some(key.as_str()))
            .map(|f| f.id.clone())
        else {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        };
        s.files.get_mut(&id).expect("found above").bytes = Some(Arc::new(bytes));
        s.uploaded.retain(|f| *f != id);
        s.uploaded.push(id);
    }
    shared.bump();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("OK - {len}"),
    )
        .into_response()
}

/// `url_private` and `url_private_download`: only with a bearer token of the
/// workspace; anything else is sent to the sign-in page, as Slack does.
async fn handle_file(
    AxumState(shared): SharedState,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let parts: Vec<&str> = rest.split('/').collect();
    let (owner, download) = match parts.as_slice() {
        [owner, _name] => (*owner, false),
        [owner, "download", _name] => (*owner, true),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let file_id = owner
        .strip_prefix(&format!("{TEAM_ID}-"))
        .unwrap_or_default()
        .to_owned();
    let s = shared.lock();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !s.may_download(authorization) {
        let location = format!("/signin?redir=%2Ffiles-pri%2F{}", rest.replace('/', "%2F"));
        return (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    }
    let Some((bytes, mimetype, name)) = s
        .files
        .get(&file_id)
        .filter(|f| f.completed)
        .and_then(|f| Some((f.bytes.clone()?, f.mimetype.clone(), f.name.clone())))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    drop(s);
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, mimetype)],
        bytes.as_ref().clone(),
    )
        .into_response();
    if download
        && let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
    {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

async fn handle_signin() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<!DOCTYPE html><html><head><title>Slack</title></head><body><h1>Sign in to {TEAM_NAME}</h1></body></html>"),
    )
        .into_response()
}

/// Profile pictures, public like Slack's avatar CDN: the custom image at
/// every size, or the default one.
async fn handle_avatar(AxumState(shared): SharedState, Path(rest): Path<String>) -> Response {
    let png = |bytes: Vec<u8>| ([(header::CONTENT_TYPE, "image/png")], bytes).into_response();
    if rest.starts_with("default_") {
        return png(tiny_png(48, 48));
    }
    let Some((user, file)) = rest.split_once('/') else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let hash = file.split('_').next().unwrap_or_default();
    let s = shared.lock();
    match s.users.get(user) {
        Some(u) if u.avatar_hash == hash => match &u.avatar {
            Some(bytes) => png(bytes.as_ref().clone()),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

// ---------------------------------------------------------------------------
// The test-side handle

/// A running fake Slack: one workspace (`T0FAKE`), one app with its bot user,
/// its bot token, app-level token and signing secret. Dropping it stops the
/// server, closes the sockets and stops deliveries.
pub struct FakeSlack {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    delivery: JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        {
            let mut s = self.shared.lock();
            s.closed = true;
            for sock in s.sockets.values() {
                let _ = sock.tx.send(WsOut::Close);
            }
        }
        self.shared.bump();
        self.server.abort();
        self.delivery.abort();
    }
}

impl FakeSlack {
    /// Starts the server on 127.0.0.1 with an ephemeral port. Events go over
    /// Socket Mode until `events_via_http` is called.
    pub async fn start() -> FakeSlack {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("slack fake: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("slack fake: local address");
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(addr)),
            changed,
            kick: Notify::new(),
        });
        let app = Router::new()
            .route("/api/{method}", any(handle_api))
            .route("/link", get(handle_link))
            .route("/link/", get(handle_link))
            .route("/upload/v1/{key}", post(handle_upload))
            .route("/files-pri/{*rest}", get(handle_file))
            .route("/avatars/{*rest}", get(handle_avatar))
            .route("/signin", get(handle_signin))
            .layer(DefaultBodyLimit::max(HTTP_BODY_LIMIT))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let delivery = tokio::spawn(delivery_loop(shared.clone()));
        FakeSlack {
            shared,
            addr,
            server,
            delivery,
        }
    }

    /// Runs `f` on the state and wakes deliveries and waiters.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.shared.lock());
        self.shared.bump();
        r
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.lock())
    }

    // -- identity ------------------------------------------------------------

    /// `http://127.0.0.1:<port>/api`: methods are at `{api_url}/{method}`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// `http://127.0.0.1:<port>`, the origin of every URL the fake hands out.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn bot_token(&self) -> String {
        self.read(|s| s.bot_token.clone())
    }

    /// The app-level (`xapp-`) token that opens Socket Mode connections.
    pub fn app_token(&self) -> String {
        self.read(|s| s.app_token.clone())
    }

    pub fn signing_secret(&self) -> String {
        self.read(|s| s.signing_secret.clone())
    }

    /// The deprecated verification token carried in event payloads.
    pub fn verification_token(&self) -> String {
        self.read(|s| s.verification_token.clone())
    }

    pub fn team_id(&self) -> String {
        TEAM_ID.to_owned()
    }

    pub fn app_id(&self) -> String {
        APP_ID.to_owned()
    }

    pub fn bot_user_id(&self) -> String {
        BOT_USER_ID.to_owned()
    }

    /// The `bot_id` the bot's messages carry (bridges drop echoes by it).
    pub fn bot_id(&self) -> String {
        BOT_ID.to_owned()
    }

    // -- workspace set-up (no events) -----------------------------------------

    /// Adds (or replaces) a user. `name` is the handle; the profile's
    /// `real_name` is `display_name`, or `name` when that is empty. The
    /// avatar is served over HTTP at the profile's `image_*` URLs; without
    /// one they point to a default picture.
    pub fn add_user(&self, id: &str, name: &str, display_name: &str, avatar_png: Option<Vec<u8>>) {
        self.with(|s| {
            let hash = if avatar_png.is_some() {
                s.rng.hex(12)
            } else {
                format!("g{}", s.rng.hex(11))
            };
            let real_name = if display_name.is_empty() {
                name
            } else {
                display_name
            };
            s.users.insert(
                id.to_owned(),
                UserRec {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    real_name: real_name.to_owned(),
                    display_name: display_name.to_owned(),
                    is_bot: false,
                    deleted: false,
                    avatar: avatar_png.map(Arc::new),
                    avatar_hash: hash,
                    updated: now_unix(),
                },
            );
        });
    }

    /// Adds a public or private channel with no members; `join` puts users
    /// (and the bot) in it.
    pub fn add_channel(&self, id: &str, name: &str, private: bool) {
        self.with(|s| {
            s.channels.insert(
                id.to_owned(),
                ChannelRec {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    kind: if private {
                        ChannelKind::Private
                    } else {
                        ChannelKind::Public
                    },
                    created: now_unix(),
                    creator: "USLACKBOT".to_owned(),
                    topic: Topic::empty(),
                    purpose: Topic::empty(),
                    members: Vec::new(),
                    archived: false,
                    previous_names: Vec::new(),
                    im_user: None,
                    messages: BTreeMap::new(),
                },
            );
        });
    }

    /// Adds the DM between the bot and `user`.
    pub fn add_dm(&self, id: &str, user: &str) {
        self.with(|s| {
            assert!(
                s.users.contains_key(user),
                "slack fake: unknown user {user}"
            );
            s.channels.insert(
                id.to_owned(),
                ChannelRec {
                    id: id.to_owned(),
                    name: String::new(),
                    kind: ChannelKind::Im,
                    created: now_unix(),
                    creator: user.to_owned(),
                    topic: Topic::empty(),
                    purpose: Topic::empty(),
                    members: vec![BOT_USER_ID.to_owned(), user.to_owned()],
                    archived: false,
                    previous_names: Vec::new(),
                    im_user: Some(user.to_owned()),
                    messages: BTreeMap::new(),
                },
            );
        });
    }

    /// Adds a DM between two people (the bot is not in it): only a member
    /// with a user token hears it.
    pub fn add_user_dm(&self, id: &str, a: &str, b: &str) {
        self.with(|s| {
            check_user(s, a);
            check_user(s, b);
            s.channels.insert(
                id.to_owned(),
                ChannelRec {
                    id: id.to_owned(),
                    name: String::new(),
                    kind: ChannelKind::Im,
                    created: now_unix(),
                    creator: a.to_owned(),
                    topic: Topic::empty(),
                    purpose: Topic::empty(),
                    members: vec![a.to_owned(), b.to_owned()],
                    archived: false,
                    previous_names: Vec::new(),
                    im_user: Some(b.to_owned()),
                    messages: BTreeMap::new(),
                },
            );
        });
    }

    /// Makes `user` (the bot too) a member, without events; `user_joins`
    /// is the same with the events.
    pub fn join(&self, channel: &str, user: &str) {
        self.with(|s| {
            check_channel(s, channel);
            check_user(s, user);
            s.add_member(channel, user, false);
        });
    }

    pub fn set_archived(&self, channel: &str, archived: bool) {
        self.with(|s| {
            check_channel(s, channel);
            s.channels.get_mut(channel).expect("checked").archived = archived;
        });
    }

    /// A user (`xoxp-`) token acting as `user`.
    pub fn add_user_token(&self, user: &str) -> String {
        self.with(|s| {
            check_user(s, user);
            let token = format!(
                "xoxp-{}-{}-{}-{}",
                s.rng.digits(12),
                s.rng.digits(12),
                s.rng.digits(13),
                s.rng.hex(32)
            );
            s.tokens.insert(
                token.clone(),
                TokenRec {
                    kind: TokenKind::User(user.to_owned()),
                    revoked: false,
                },
            );
            token
        })
    }

    // -- Slack-side actions (each sends the events Slack would) --------------

    /// `user` posts `text`; returns the message ts.
    pub fn user_posts(&self, channel: &str, user: &str, text: &str) -> String {
        self.user_posts_with(channel, user, None, json!({ "text": text }))
    }

    /// `user` replies in the thread of `thread_ts`.
    pub fn user_posts_in_thread(
        &self,
        channel: &str,
        user: &str,
        thread_ts: &str,
        text: &str,
    ) -> String {
        self.user_posts_with(channel, user, Some(thread_ts), json!({ "text": text }))
    }

    /// `user` posts a message with these fields (`text`, `blocks`, ...)
    /// besides the ones Slack sets.
    pub fn user_posts_with(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        fields: Value,
    ) -> String {
        self.with(|s| {
            check_member(s, channel, user);
            let client_msg_id = s.rng.uuid();
            let mut m = obj(json!({
                "type": "message",
                "user": user,
                "text": "",
                "client_msg_id": client_msg_id,
                "team": TEAM_ID,
            }));
            m.extend(obj(fields));
            let stored = s.insert_message(channel, m, thread_ts, false);
            stored["ts"].as_str().expect("ts").to_owned()
        })
    }

    /// Another integration (not our app) posts a `bot_message`.
    pub fn bot_posts(&self, channel: &str, bot_id: &str, username: &str, text: &str) -> String {
        self.with(|s| {
            check_channel(s, channel);
            let m = obj(json!({
                "type": "message",
                "subtype": "bot_message",
                "text": text,
                "bot_id": bot_id,
                "username": username,
                "icons": {},
            }));
            let stored = s.insert_message(channel, m, None, false);
            stored["ts"].as_str().expect("ts").to_owned()
        })
    }

    /// The author edits a message (`message_changed`).
    pub fn user_edits(&self, channel: &str, ts: &str, text: &str) {
        self.with(|s| {
            let author = check_message(s, channel, ts)
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or(BOT_USER_ID)
                .to_owned();
            s.edit_message(channel, ts, text, None, &author);
        });
    }

    /// The author deletes a message (`message_deleted`).
    pub fn user_deletes(&self, channel: &str, ts: &str) {
        self.with(|s| {
            check_message(s, channel, ts);
            s.delete_message(channel, ts);
        });
    }

    /// `user` reacts with emoji `name` (no colons), `reaction_added`.
    pub fn user_reacts(&self, channel: &str, ts: &str, user: &str, name: &str) {
        self.with(|s| {
            check_message(s, channel, ts);
            check_user(s, user);
            if let Err(e) = s.react(channel, ts, user, name, true) {
                panic!("slack fake: {user} cannot react {name} on {channel}/{ts}: {e}");
            }
        });
    }

    pub fn user_unreacts(&self, channel: &str, ts: &str, user: &str, name: &str) {
        self.with(|s| {
            check_message(s, channel, ts);
            if let Err(e) = s.react(channel, ts, user, name, false) {
                panic!("slack fake: {user} cannot remove {name} on {channel}/{ts}: {e}");
            }
        });
    }

    /// `user` uploads a file into the channel with `text` as its comment:
    /// a `file_share` message whose file `url_private` serves `bytes`.
    /// Returns the message ts.
    pub fn user_uploads(
        &self,
        channel: &str,
        user: &str,
        bytes: Vec<u8>,
        name: &str,
        mime: &str,
        text: &str,
    ) -> String {
        self.with(|s| {
            check_member(s, channel, user);
            let id = s.new_file_id();
            let filetype = file_type(name).1;
            s.files.insert(
                id.clone(),
                FileRec {
                    id: id.clone(),
                    name: name.to_owned(),
                    title: name.to_owned(),
                    mimetype: mime.to_owned(),
                    filetype: filetype.to_owned(),
                    declared_len: bytes.len(),
                    bytes: Some(Arc::new(bytes)),
                    user: user.to_owned(),
                    created: now_unix(),
                    upload_key: None,
                    completed: true,
                    shares: Vec::new(),
                    alt_txt: None,
                },
            );
            let file = s.file_json(&id);
            let client_msg_id = s.rng.uuid();
            let m = obj(json!({
                "type": "message",
                "subtype": "file_share",
                "text": text,
                "files": [file],
                "upload": true,
                "user": user,
                "display_as_bot": false,
                "client_msg_id": client_msg_id,
                "team": TEAM_ID,
            }));
            let stored = s.insert_message(channel, m, None, false);
            let ts = stored["ts"].as_str().expect("ts").to_owned();
            let f = s.files.get_mut(&id).expect("just added");
            f.shares.push((channel.to_owned(), ts.clone()));
            ts
        })
    }

    /// `user` joins: member_joined_channel and a `channel_join` message.
    pub fn user_joins(&self, channel: &str, user: &str) {
        self.with(|s| {
            check_channel(s, channel);
            check_user(s, user);
            s.add_member(channel, user, true);
        });
    }

    /// `user` leaves: member_left_channel and a `channel_leave` message.
    pub fn user_leaves(&self, channel: &str, user: &str) {
        self.with(|s| {
            check_member(s, channel, user);
            s.remove_member(channel, user, true);
        });
    }

    /// `user` sets the topic: a `channel_topic` message.
    pub fn set_topic(&self, channel: &str, user: &str, topic: &str) {
        self.with(|s| {
            check_member(s, channel, user);
            let ch = s.channels.get_mut(channel).expect("checked");
            ch.topic = Topic {
                value: topic.to_owned(),
                creator: user.to_owned(),
                last_set: now_unix(),
            };
            let m = obj(json!({
                "type": "message",
                "subtype": "channel_topic",
                "user": user,
                "topic": topic,
                "text": format!("<@{user}> set the channel topic: {topic}"),
            }));
            s.insert_message(channel, m, None, false);
        });
    }

    /// `user` sets the description (purpose): a `channel_purpose` message.
    pub fn set_purpose(&self, channel: &str, user: &str, purpose: &str) {
        self.with(|s| {
            check_member(s, channel, user);
            let ch = s.channels.get_mut(channel).expect("checked");
            ch.purpose = Topic {
                value: purpose.to_owned(),
                creator: user.to_owned(),
                last_set: now_unix(),
            };
            let m = obj(json!({
                "type": "message",
                "subtype": "channel_purpose",
                "user": user,
                "purpose": purpose,
                "text": format!("<@{user}> set the channel description: {purpose}"),
            }));
            s.insert_message(channel, m, None, false);
        });
    }

    /// `user` renames the channel: `channel_rename` (`group_rename` for a
    /// private channel, only heard as a member) and a `channel_name` message.
    pub fn rename_channel(&self, channel: &str, user: &str, name: &str) {
        self.with(|s| {
            check_member(s, channel, user);
            let heard_private = s.listener(channel);
            let event_ts = s.next_ts();
            let ch = s.channels.get_mut(channel).expect("checked");
            let old = std::mem::replace(&mut ch.name, name.to_owned());
            ch.previous_names.insert(0, old.clone());
            let (kind, heard) = match ch.kind {
                ChannelKind::Public => ("channel_rename", Some(BOT_USER_ID.to_owned())),
                _ => ("group_rename", heard_private),
            };
            let created = ch.created;
            s.emit(
                json!({
                    "type": kind,
                    "channel": {
                        "id": channel,
                        "name": name,
                        "name_normalized": name,
                        "created": created,
                        "is_channel": true,
                        "is_mpim": false,
                    },
                    "event_ts": event_ts,
                }),
                heard,
            );
            let m = obj(json!({
                "type": "message",
                "subtype": "channel_name",
                "user": user,
                "old_name": old,
                "name": name,
                "text": format!("<@{user}> renamed the channel from \"{old}\" to \"{name}\""),
            }));
            s.insert_message(channel, m, None, false);
        });
    }

    /// `user` changes their display name: `user_change`.
    pub fn user_changes_name(&self, user: &str, display_name: &str) {
        self.with(|s| {
            check_user(s, user);
            let u = s.users.get_mut(user).expect("checked");
            u.display_name = display_name.to_owned();
            if !display_name.is_empty() {
                u.real_name = display_name.to_owned();
            }
            s.user_changed(user);
        });
    }

    /// `user` sets (or removes) their picture: `user_change` with a new
    /// `avatar_hash` and image URLs.
    pub fn set_avatar(&self, user: &str, avatar_png: Option<Vec<u8>>) {
        self.with(|s| {
            check_user(s, user);
            let hash = if avatar_png.is_some() {
                s.rng.hex(12)
            } else {
                format!("g{}", s.rng.hex(11))
            };
            let u = s.users.get_mut(user).expect("checked");
            u.avatar = avatar_png.map(Arc::new);
            u.avatar_hash = hash;
            s.user_changed(user);
        });
    }

    /// An admin deactivates `user`: `user_change` with `deleted: true`; the
    /// user's tokens then get `account_inactive`.
    pub fn deactivate_user(&self, user: &str) {
        self.with(|s| {
            check_user(s, user);
            s.users.get_mut(user).expect("checked").deleted = true;
            s.user_changed(user);
        });
    }

    /// Queues any event for the app, wrapped in its event_callback, as if
    /// Slack sent it; returns its event_id.
    pub fn push_event(&self, event: Value) -> String {
        self.with(|s| {
            s.emit(event, Some(BOT_USER_ID.to_owned()));
            s.events.last().expect("just pushed").id.clone()
        })
    }

    // -- delivery control ------------------------------------------------------

    /// Switches event delivery to the Events API: `url` gets a signed
    /// url_verification first (retried every second until the challenge
    /// comes back), then the events. Open sockets get a `link_disabled`
    /// disconnect and are closed.
    pub fn events_via_http(&self, url: &str) {
        self.with(|s| {
            s.mode = Mode::Http {
                url: url.to_owned(),
                verified: false,
                verify_at: Some(Instant::now()),
            };
            s.disconnect_sockets("link_disabled", Instant::now());
        });
    }

    /// Back to Socket Mode (the default).
    pub fn events_via_socket(&self) {
        self.with(|s| s.mode = Mode::Socket);
    }

    /// Sends `{"type":"disconnect","reason":reason}` to every socket.
    /// `warning` and `refresh_requested` close it after the grace period
    /// (10 s, see `set_disconnect_grace`), during which new envelopes go to
    /// other sockets when there are any; other reasons (`link_disabled`)
    /// close it at once.
    pub fn disconnect_all(&self, reason: &str) {
        self.with(|s| s.disconnect_sockets(reason, Instant::now()));
    }

    /// The next `n` acknowledgements are ignored: those envelopes time out
    /// and the event is sent again with `retry_attempt` + 1.
    pub fn drop_acks(&self, n: usize) {
        self.with(|s| s.drop_acks += n);
    }

    /// Further calls with `token` get `token_revoked`; sockets opened with an
    /// app token are closed (no disconnect message).
    pub fn revoke(&self, token: &str) {
        self.with(|s| {
            if let Some(t) = s.tokens.get_mut(token) {
                t.revoked = true;
            }
            for sock in s.sockets.values_mut() {
                if sock.token == token {
                    let _ = sock.tx.send(WsOut::Close);
                    sock.close_at = Some(Instant::now());
                }
            }
        });
    }

    /// The next `n` calls of `method` (with a valid token) get HTTP 429
    /// `{"ok":false,"error":"ratelimited"}` with `Retry-After`.
    pub fn rate_limit_next(&self, method: &str, n: usize, retry_after_secs: u64) {
        self.inject(method, n, ApiErr::ratelimited(retry_after_secs));
    }

    /// The next `n` calls of `method` (with a valid token) get
    /// `{"ok":false,"error":error}` with HTTP 200, whatever their arguments.
    pub fn fail_next(&self, method: &str, n: usize, error: &str) {
        self.inject(method, n, ApiErr::new(error));
    }

    fn inject(&self, method: &str, n: usize, error: ApiErr) {
        self.with(|s| {
            s.injected
                .entry(method.to_owned())
                .or_default()
                .extend(std::iter::repeat_n(error, n))
        });
    }

    /// Applies each method's tier as a one-minute sliding window (off by
    /// default): Tier 2 methods 20 calls, Tier 3 50, Tier 4 100,
    /// chat.postMessage 60 per channel.
    pub fn enforce_rate_limits(&self, on: bool) {
        self.with(|s| {
            s.enforce_tiers = on;
            s.windows.clear();
        });
    }

    /// How long an envelope or Request URL POST may stay unacknowledged
    /// (3 s), and the delays before each retry (Slack: immediately, 1 min,
    /// 5 min; the fake's default: immediately, 1 s, 5 s). After the last
    /// retry the event is dropped.
    pub fn set_redelivery(&self, ack_timeout: Duration, retry_delays: &[Duration]) {
        self.with(|s| {
            s.ack_timeout = ack_timeout;
            s.retry_delays = retry_delays.to_vec();
        });
    }

    /// How long a socket stays open after a `warning` or
    /// `refresh_requested` disconnect (10 s).
    pub fn set_disconnect_grace(&self, grace: Duration) {
        self.with(|s| s.disconnect_grace = grace);
    }

    /// The `X-Slack-Signature` Slack sends with `body` signed at `timestamp`.
    pub fn sign(&self, timestamp: i64, body: &str) -> String {
        slack_signature(&self.signing_secret(), timestamp, body.as_bytes())
    }

    /// POSTs `body` to the Request URL with the given timestamp and
    /// signature headers (to test how the app treats forged or stale
    /// requests); returns the HTTP status, or None without a Request URL or
    /// a connection.
    pub async fn post_event_raw(&self, body: &str, timestamp: i64, signature: &str) -> Option<u16> {
        let url = self.read(|s| match &s.mode {
            Mode::Http { url, .. } => Some(url.clone()),
            Mode::Socket => None,
        })?;
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (
                "X-Slack-Request-Timestamp".to_owned(),
                timestamp.to_string(),
            ),
            ("X-Slack-Signature".to_owned(), signature.to_owned()),
        ];
        http_post(&url, &headers, body.as_bytes())
            .await
            .ok()
            .map(|r| r.status)
    }

    // -- inspection ------------------------------------------------------------

    /// The parameters of every call of a method, in order, including failed
    /// ones, with the token used as `_token` (null without one). Booleans,
    /// integers and JSON sent as form strings are normalised; uploaded parts
    /// appear as `{"file_bytes_len", "filename"}`; a JSON body that the
    /// method does not read is marked `"_json_ignored": true`.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.read(|s| {
            s.calls
                .iter()
                .filter(|c| c.method == method)
                .map(|c| c.params.clone())
                .collect()
        })
    }

    /// The answers to the calls of a method, in order.
    pub fn responses(&self, method: &str) -> Vec<Value> {
        self.read(|s| {
            s.calls
                .iter()
                .filter(|c| c.method == method)
                .map(|c| c.response.clone())
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
        done: impl Fn(&FakeSlack) -> bool,
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
                    panic!("slack fake: timed out after {timeout:?} waiting for {what}; latest calls: {recent:?}");
                }
            }
        }
    }

    /// The messages of a channel as they are now (after edits, without
    /// deleted ones), top-level and thread replies, by ts, each with its
    /// reactions and thread summary as conversations.history shows them.
    pub fn messages(&self, channel: &str) -> Vec<Value> {
        self.read(|s| {
            s.channels
                .get(channel)
                .map(|c| c.messages.values().map(|m| c.render(m)).collect())
                .unwrap_or_default()
        })
    }

    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        self.read(|s| {
            let c = s.channels.get(channel)?;
            Some(c.render(c.messages.get(ts)?))
        })
    }

    /// The reactions on a message: emoji name and the users, in order.
    pub fn reactions(&self, channel: &str, ts: &str) -> Vec<(String, Vec<String>)> {
        self.read(|s| {
            s.channels
                .get(channel)
                .and_then(|c| c.messages.get(ts))
                .map(|m| m.reactions.clone())
                .unwrap_or_default()
        })
    }

    /// Files whose bytes reached an upload URL, in order: (name, bytes).
    pub fn uploaded_files(&self) -> Vec<(String, Vec<u8>)> {
        self.read(|s| {
            s.uploaded
                .iter()
                .filter_map(|id| s.files.get(id))
                .filter_map(|f| Some((f.name.clone(), f.bytes.as_ref()?.as_ref().clone())))
                .collect()
        })
    }

    /// A file object as files.info shows it.
    pub fn file(&self, file_id: &str) -> Option<Value> {
        self.read(|s| s.files.contains_key(file_id).then(|| s.file_json(file_id)))
    }

    pub fn members(&self, channel: &str) -> Vec<String> {
        self.read(|s| {
            s.channels
                .get(channel)
                .map(|c| c.members.clone())
                .unwrap_or_default()
        })
    }

    /// Every event_callback created for the app, in order.
    pub fn events(&self) -> Vec<Value> {
        self.read(|s| s.events.iter().map(|e| e.payload.clone()).collect())
    }

    pub fn last_event_id(&self) -> Option<String> {
        self.read(|s| s.events.last().map(|e| e.id.clone()))
    }

    /// Events not acknowledged yet and not given up.
    pub fn unacked(&self) -> usize {
        self.read(|s| {
            s.events
                .iter()
                .filter(|e| !matches!(e.status, EventStatus::Acked | EventStatus::Dropped))
                .count()
        })
    }

    /// How many times an event was sent (to a socket or the Request URL).
    pub fn deliveries(&self, event_id: &str) -> usize {
        self.read(|s| {
            s.events
                .iter()
                .find(|e| e.id == event_id)
                .map_or(0, |e| e.deliveries)
        })
    }

    /// Events given up after the last retry (or refused with
    /// `X-Slack-No-Retry`).
    pub fn dropped_events(&self) -> Vec<String> {
        self.read(|s| {
            s.events
                .iter()
                .filter(|e| e.status == EventStatus::Dropped)
                .map(|e| e.id.clone())
                .collect()
        })
    }

    /// Delivery attempts that found no open socket: a client that closes its
    /// old connection before the new one is up shows here.
    pub fn missed_deliveries(&self) -> usize {
        self.read(|s| s.missed)
    }

    /// Acknowledgements ignored because of `drop_acks`.
    pub fn ignored_acks(&self) -> usize {
        self.read(|s| s.ignored_acks)
    }

    /// Open Socket Mode connections (including ones in their disconnect grace).
    pub fn open_sockets(&self) -> usize {
        self.read(|s| {
            s.sockets
                .values()
                .filter(|sock| sock.close_at.is_none_or(|at| at > Instant::now()))
                .count()
        })
    }

    /// Whether the Request URL answered the url_verification challenge.
    pub fn http_url_verified(&self) -> bool {
        self.read(|s| matches!(s.mode, Mode::Http { verified: true, .. }))
    }

    /// url_verification requests made so far.
    pub fn url_verifications(&self) -> usize {
        self.read(|s| s.url_verifications)
    }
}

fn check_channel(s: &State, channel: &str) {
    assert!(
        s.channels.contains_key(channel),
        "slack fake: unknown channel {channel}"
    );
}

fn check_user(s: &State, user: &str) {
    assert!(
        s.users.contains_key(user),
        "slack fake: unknown user {user}"
    );
}

fn check_member(s: &State, channel: &str, user: &str) {
    check_channel(s, channel);
    check_user(s, user);
    assert!(
        s.is_member(channel, user),
        "slack fake: {user} is not a member of {channel} (join them first)"
    );
}

fn check_message<'a>(s: &'a State, channel: &str, ts: &str) -> &'a Map<String, Value> {
    check_channel(s, channel);
    &s.channels[channel]
        .messages
        .get(ts)
        .unwrap_or_else(|| panic!("slack fake: no message {ts} in {channel}"))
        .json
}
