//! Pure builders for event content JSON: messages, relations (reply,
//! thread, edit, reaction), bridge info state and portal power levels.
//!
//! No I/O and no state: each function maps its arguments to the exact JSON
//! the spec asks for, and the tests below pin that JSON.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use ruma::{EventId, OwnedMxcUri, OwnedUserId, UserId};

use super::client::encode;

/// `format` of HTML bodies.
pub const HTML_FORMAT: &str = "org.matrix.custom.html";

/// State event types carrying [`BridgeInfo`]: the spec's name and the older
/// one most clients still read. Send the same content under both.
pub const BRIDGE_EVENT_TYPES: [&str; 2] = ["m.bridge", "uk.half-shot.bridge"];

/// The text message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Text,
    Notice,
    Emote,
}

impl TextKind {
    pub fn msgtype(self) -> &'static str {
        match self {
            Self::Text => "m.text",
            Self::Notice => "m.notice",
            Self::Emote => "m.emote",
        }
    }
}

/// An `m.room.message` text content, with an HTML body when given.
pub fn message(kind: TextKind, body: &str, html: Option<&str>) -> Value {
    let mut content = json!({ "msgtype": kind.msgtype(), "body": body });
    if let Some(html) = html {
        content["format"] = json!(HTML_FORMAT);
        content["formatted_body"] = json!(html);
    }
    content
}

/// `m.text` content.
pub fn text(body: &str, html: Option<&str>) -> Value {
    message(TextKind::Text, body, html)
}

/// A plain `m.notice` from the bot (errors, command answers): notices are
/// what other bots are expected not to answer. For an HTML notice use
/// [`message`] with [`TextKind::Notice`].
pub fn notice(body: &str) -> Value {
    message(TextKind::Notice, body, None)
}

/// `m.emote` content (`/me`).
pub fn emote(body: &str, html: Option<&str>) -> Value {
    message(TextKind::Emote, body, html)
}

/// The `m.relates_to` object of `content`, created if missing. Content that
/// is not a JSON object (never the case for this module's builders) is
/// replaced by an empty object rather than panicking.
fn relates_to(content: &mut Value) -> &mut Map<String, Value> {
    if !content.is_object() {
        *content = json!({});
    }
    let relates_to = content
        .as_object_mut()
        .expect("made an object above")
        .entry("m.relates_to")
        .or_insert_with(|| json!({}));
    if !relates_to.is_object() {
        *relates_to = json!({});
    }
    relates_to.as_object_mut().expect("made an object above")
}

/// Makes `content` a reply to `event_id`. Reply fallbacks (`> quoted`
/// bodies) were removed from the spec in v1.13, so none is added.
pub fn reply_to(mut content: Value, event_id: &EventId) -> Value {
    relates_to(&mut content).insert("m.in_reply_to".into(), json!({ "event_id": event_id }));
    content
}

/// Puts `content` in the thread rooted at `root`, as a plain thread message:
/// `latest` (the thread's latest event) is the reply fallback for clients
/// without threads, flagged by `is_falling_back`.
pub fn in_thread(mut content: Value, root: &EventId, latest: &EventId) -> Value {
    let relation = relates_to(&mut content);
    relation.insert("rel_type".into(), json!("m.thread"));
    relation.insert("event_id".into(), json!(root));
    relation.insert("is_falling_back".into(), json!(true));
    relation.insert("m.in_reply_to".into(), json!({ "event_id": latest }));
    content
}

/// Puts `content` in the thread rooted at `root` as a real reply to
/// `reply_to` (`is_falling_back: false`).
pub fn thread_reply(mut content: Value, root: &EventId, reply_to: &EventId) -> Value {
    let relation = relates_to(&mut content);
    relation.insert("rel_type".into(), json!("m.thread"));
    relation.insert("event_id".into(), json!(root));
    relation.insert("is_falling_back".into(), json!(false));
    relation.insert("m.in_reply_to".into(), json!({ "event_id": reply_to }));
    content
}

/// An edit of `original`: `new_content` goes in `m.new_content` (without its
/// own relations, which an edit cannot change), and the top level holds a
/// `* `-prefixed fallback for clients that do not understand edits.
pub fn edit(mut new_content: Value, original: &EventId) -> Value {
    if let Some(object) = new_content.as_object_mut() {
        object.remove("m.relates_to");
    }
    let mut content = new_content.clone();
    for key in ["body", "formatted_body"] {
        if let Some(Value::String(text)) = content.get_mut(key) {
            *text = format!("* {text}");
        }
    }
    if let Some(object) = content.as_object_mut() {
        object.insert("m.new_content".into(), new_content);
    }
    relates_to(&mut content).extend([
        ("rel_type".to_owned(), json!("m.replace")),
        ("event_id".to_owned(), json!(original)),
    ]);
    content
}

/// `m.reaction` content: `key` (usually an emoji) on `event_id`.
pub fn reaction(event_id: &EventId, key: &str) -> Value {
    json!({
        "m.relates_to": {
            "rel_type": "m.annotation",
            "event_id": event_id,
            "key": key,
        }
    })
}

/// One section (`protocol`, `network`, `channel`) of [`BridgeInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeSection {
    pub id: String,
    pub displayname: Option<String>,
    pub avatar_url: Option<OwnedMxcUri>,
    pub external_url: Option<String>,
}

impl BridgeSection {
    pub fn new(id: impl Into<String>, displayname: Option<String>) -> Self {
        Self {
            id: id.into(),
            displayname,
            avatar_url: None,
            external_url: None,
        }
    }

    fn to_json(&self) -> Value {
        let mut section = json!({ "id": self.id });
        if let Some(name) = &self.displayname {
            section["displayname"] = json!(name);
        }
        if let Some(avatar) = &self.avatar_url {
            section["avatar_url"] = json!(avatar);
        }
        if let Some(url) = &self.external_url {
            section["external_url"] = json!(url);
        }
        section
    }
}

/// What a portal bridges to (MSC2346 `m.bridge` state).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeInfo {
    pub bridgebot: OwnedUserId,
    /// The Matrix user who made the link, if one did.
    pub creator: Option<OwnedUserId>,
    /// The network: `irc`, `slack`, `telegram`.
    pub protocol: BridgeSection,
    /// The account within the network: an IRC network, a Slack workspace.
    pub network: Option<BridgeSection>,
    /// The remote chat.
    pub channel: BridgeSection,
}

impl BridgeInfo {
    pub fn new(bridgebot: OwnedUserId, protocol: BridgeSection, channel: BridgeSection) -> Self {
        Self {
            bridgebot,
            creator: None,
            protocol,
            network: None,
            channel,
        }
    }

    /// The state event content.
    pub fn to_content(&self) -> Value {
        let mut content = json!({
            "bridgebot": self.bridgebot,
            "protocol": self.protocol.to_json(),
            "channel": self.channel.to_json(),
        });
        if let Some(creator) = &self.creator {
            content["creator"] = json!(creator);
        }
        if let Some(network) = &self.network {
            content["network"] = network.to_json();
        }
        content
    }

    /// The state key: one per bridged chat, so that a room bridged twice
    /// keeps both. `passerelle://<protocol>/<network>/<channel>` with each id
    /// percent-encoded, the network part omitted when there is none.
    pub fn state_key(&self) -> String {
        let escape = encode;
        match &self.network {
            Some(network) => format!(
                "passerelle://{}/{}/{}",
                escape(&self.protocol.id),
                escape(&network.id),
                escape(&self.channel.id)
            ),
            None => format!(
                "passerelle://{}/{}",
                escape(&self.protocol.id),
                escape(&self.channel.id)
            ),
        }
    }
}

/// Whether room creators have infinite power in `room_version` (12 and
/// later, MSC4289). In those rooms the creators must not appear in
/// `m.room.power_levels` `users`: the homeserver rejects such an event.
pub fn creators_are_privileged(room_version: &str) -> bool {
    match room_version.parse::<u32>() {
        Ok(version) => version >= 12,
        Err(_) => room_version == "org.matrix.hydra.11",
    }
}

/// The `m.room.power_levels` of a portal the bot created.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortalPowerLevels {
    pub bot: OwnedUserId,
    /// The bot created the room and the room version privileges creators
    /// ([`creators_are_privileged`]): the bot is then left out of `users`.
    pub bot_is_privileged_creator: bool,
    /// Other users with a level: Matrix admins of the portal, and in
    /// broadcast mode the ghosts that post (they need 50).
    pub users: BTreeMap<OwnedUserId, i64>,
    /// Only the bridge and admins post: `events_default` is 50.
    pub broadcast: bool,
}

impl PortalPowerLevels {
    pub fn new(bot: OwnedUserId, bot_is_privileged_creator: bool) -> Self {
        Self {
            bot,
            bot_is_privileged_creator,
            users: BTreeMap::new(),
            broadcast: false,
        }
    }

    /// The content, usable as `power_level_content_override` or as the
    /// state event itself. Room settings that change what the bridge relies
    /// on (power levels, history visibility, encryption, bridge info) need
    /// 100; name, topic and avatar 50, as they are bridged both ways.
    pub fn to_content(&self) -> Value {
        let mut users: BTreeMap<&UserId, i64> = self
            .users
            .iter()
            .map(|(user, level)| (&**user, *level))
            .collect();
        if self.bot_is_privileged_creator {
            users.remove(&*self.bot);
        } else {
            users.insert(&self.bot, 100);
        }
        json!({
            "users": users,
            "users_default": 0,
            "events_default": if self.broadcast { 50 } else { 0 },
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 50,
            "events": {
                "m.room.name": 50,
                "m.room.topic": 50,
                "m.room.avatar": 50,
                "m.room.canonical_alias": 50,
                "m.room.power_levels": 100,
                "m.room.history_visibility": 100,
                "m.room.encryption": 100,
                "m.room.server_acl": 100,
                "m.room.tombstone": 100,
                "m.bridge": 100,
                "uk.half-shot.bridge": 100,
            },
            "notifications": { "room": 50 },
        })
    }
}

/// The media message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    File,
}

impl MediaKind {
    pub fn msgtype(self) -> &'static str {
        match self {
            Self::Image => "m.image",
            Self::Video => "m.video",
            Self::Audio => "m.audio",
            Self::File => "m.file",
        }
    }
}

/// An uploaded file to post as a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaMessage {
    pub kind: MediaKind,
    pub url: OwnedMxcUri,
    pub filename: String,
    /// Plain-text caption; without one the body is the file name.
    pub caption: Option<String>,
    /// HTML version of the caption.
    pub caption_html: Option<String>,
    pub mimetype: Option<String>,
    pub size: Option<u64>,
    /// Pixels, for images and videos.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Milliseconds, for audio and video.
    pub duration_ms: Option<u64>,
    /// For a file uploaded encrypted: its key, iv and hashes (the `file`
    /// object without `url`), sent instead of a plain `url`.
    pub encrypted_file: Option<Value>,
}

impl MediaMessage {
    pub fn new(kind: MediaKind, url: OwnedMxcUri, filename: impl Into<String>) -> Self {
        Self {
            kind,
            url,
            filename: filename.into(),
            caption: None,
            caption_html: None,
            mimetype: None,
            size: None,
            width: None,
            height: None,
            duration_ms: None,
            encrypted_file: None,
        }
    }

    /// The `m.room.message` content. With a caption, `body` is the caption
    /// and `filename` the name (spec v1.10 media captions).
    pub fn to_content(&self) -> Value {
        let mut info = Map::new();
        if let Some(mimetype) = &self.mimetype {
            info.insert("mimetype".into(), json!(mimetype));
        }
        if let Some(size) = self.size {
            info.insert("size".into(), json!(size));
        }
        if let Some(width) = self.width {
            info.insert("w".into(), json!(width));
        }
        if let Some(height) = self.height {
            info.insert("h".into(), json!(height));
        }
        if let Some(duration) = self.duration_ms {
            info.insert("duration".into(), json!(duration));
        }
        let mut content = json!({
            "msgtype": self.kind.msgtype(),
            "body": self.caption.as_deref().unwrap_or(&self.filename),
            "filename": self.filename,
            "info": info,
        });
        match &self.encrypted_file {
            Some(file) => {
                let mut file = file.clone();
                file["url"] = json!(self.url);
                content["file"] = file;
            }
            None => content["url"] = json!(self.url),
        }
        if let (Some(_), Some(html)) = (&self.caption, &self.caption_html) {
            content["format"] = json!(HTML_FORMAT);
            content["formatted_body"] = json!(html);
        }
        content
    }
}

#[cfg(test)]
mod tests {
    use ruma::{OwnedEventId, owned_user_id};

    use super::*;

    fn ev(id: &str) -> OwnedEventId {
        OwnedEventId::try_from(id).unwrap()
    }

    #[test]
    fn text_messages() {
        let cases = [
            (
                text("hi", None),
                json!({ "msgtype": "m.text", "body": "hi" }),
            ),
            (
                text("*hi*", Some("<em>hi</em>")),
                json!({
                    "msgtype": "m.text",
                    "body": "*hi*",
                    "format": "org.matrix.custom.html",
                    "formatted_body": "<em>hi</em>",
                }),
            ),
            (
                notice("Unknown command"),
                json!({ "msgtype": "m.notice", "body": "Unknown command" }),
            ),
            (
                message(TextKind::Notice, "**no**", Some("<b>no</b>")),
                json!({
                    "msgtype": "m.notice",
                    "body": "**no**",
                    "format": "org.matrix.custom.html",
                    "formatted_body": "<b>no</b>",
                }),
            ),
            (
                emote("waves", Some("<b>waves</b>")),
                json!({
                    "msgtype": "m.emote",
                    "body": "waves",
                    "format": "org.matrix.custom.html",
                    "formatted_body": "<b>waves</b>",
                }),
            ),
        ];
        for (built, expected) in cases {
            assert_eq!(built, expected);
        }
    }

    #[test]
    fn relations() {
        let root = ev("$root");
        let latest = ev("$latest");
        let target = ev("$target");
        let cases = [
            (
                "reply",
                reply_to(text("yes", None), &target),
                json!({
                    "msgtype": "m.text",
                    "body": "yes",
                    "m.relates_to": { "m.in_reply_to": { "event_id": "$target" } },
                }),
            ),
            (
                "thread message",
                in_thread(text("in thread", None), &root, &latest),
                json!({
                    "msgtype": "m.text",
                    "body": "in thread",
                    "m.relates_to": {
                        "rel_type": "m.thread",
                        "event_id": "$root",
                        "is_falling_back": true,
                        "m.in_reply_to": { "event_id": "$latest" },
                    },
                }),
            ),
            (
                "thread reply",
                thread_reply(text("answer", None), &root, &target),
                json!({
                    "msgtype": "m.text",
                    "body": "answer",
                    "m.relates_to": {
                        "rel_type": "m.thread",
                        "event_id": "$root",
                        "is_falling_back": false,
                        "m.in_reply_to": { "event_id": "$target" },
                    },
                }),
            ),
            (
                "reaction",
                reaction(&target, "👍"),
                json!({
                    "m.relates_to": {
                        "rel_type": "m.annotation",
                        "event_id": "$target",
                        "key": "👍",
                    },
                }),
            ),
            (
                "relation on non-object content",
                reply_to(json!("oops"), &target),
                json!({ "m.relates_to": { "m.in_reply_to": { "event_id": "$target" } } }),
            ),
        ];
        for (name, built, expected) in cases {
            assert_eq!(built, expected, "{name}");
        }
    }

    #[test]
    fn edits() {
        let original = ev("$orig");
        let cases = [
            (
                "plain",
                edit(text("fixed", None), &original),
                json!({
                    "msgtype": "m.text",
                    "body": "* fixed",
                    "m.new_content": { "msgtype": "m.text", "body": "fixed" },
                    "m.relates_to": { "rel_type": "m.replace", "event_id": "$orig" },
                }),
            ),
            (
                "html",
                edit(text("fixed", Some("<b>fixed</b>")), &original),
                json!({
                    "msgtype": "m.text",
                    "body": "* fixed",
                    "format": "org.matrix.custom.html",
                    "formatted_body": "* <b>fixed</b>",
                    "m.new_content": {
                        "msgtype": "m.text",
                        "body": "fixed",
                        "format": "org.matrix.custom.html",
                        "formatted_body": "<b>fixed</b>",
                    },
                    "m.relates_to": { "rel_type": "m.replace", "event_id": "$orig" },
                }),
            ),
            (
                "reply relation dropped from new content",
                edit(reply_to(text("fixed", None), &ev("$other")), &original),
                json!({
                    "msgtype": "m.text",
                    "body": "* fixed",
                    "m.new_content": { "msgtype": "m.text", "body": "fixed" },
                    "m.relates_to": { "rel_type": "m.replace", "event_id": "$orig" },
                }),
            ),
        ];
        for (name, built, expected) in cases {
            assert_eq!(built, expected, "{name}");
        }
    }

    #[test]
    fn bridge_info() {
        let bot = owned_user_id!("@passerelle:example.org");
        let minimal = BridgeInfo::new(
            bot.clone(),
            BridgeSection::new("telegram", Some("Telegram".into())),
            BridgeSection::new("-100123", None),
        );
        let mut full = BridgeInfo::new(
            bot,
            BridgeSection::new("irc", Some("IRC".into())),
            BridgeSection::new("#rust", Some("#rust".into())),
        );
        full.creator = Some(owned_user_id!("@admin:example.org"));
        full.network = Some(BridgeSection::new("libera", Some("Libera.Chat".into())));
        full.channel.external_url = Some("irc://irc.libera.chat/rust".into());

        let cases = [
            (
                &minimal,
                json!({
                    "bridgebot": "@passerelle:example.org",
                    "protocol": { "id": "telegram", "displayname": "Telegram" },
                    "channel": { "id": "-100123" },
                }),
                "passerelle://telegram/-100123",
            ),
            (
                &full,
                json!({
                    "bridgebot": "@passerelle:example.org",
                    "creator": "@admin:example.org",
                    "protocol": { "id": "irc", "displayname": "IRC" },
                    "network": { "id": "libera", "displayname": "Libera.Chat" },
                    "channel": {
                        "id": "#rust",
                        "displayname": "#rust",
                        "external_url": "irc://irc.libera.chat/rust",
                    },
                }),
                "passerelle://irc/libera/%23rust",
            ),
        ];
        for (info, content, state_key) in cases {
            assert_eq!(info.to_content(), content);
            assert_eq!(info.state_key(), state_key);
        }
        assert_eq!(BRIDGE_EVENT_TYPES, ["m.bridge", "uk.half-shot.bridge"]);
    }

    #[test]
    fn privileged_creators_by_room_version() {
        let cases = [
            ("1", false),
            ("10", false),
            ("11", false),
            ("12", true),
            ("13", true),
            ("org.matrix.hydra.11", true),
            ("org.matrix.msc1234", false),
        ];
        for (version, privileged) in cases {
            assert_eq!(creators_are_privileged(version), privileged, "{version}");
        }
    }

    #[test]
    fn portal_power_levels() {
        let bot = owned_user_id!("@passerelle:example.org");
        let admin = owned_user_id!("@admin:example.org");
        let ghost = owned_user_id!("@_telegram_42:example.org");
        let events = json!({
            "m.room.name": 50,
            "m.room.topic": 50,
            "m.room.avatar": 50,
            "m.room.canonical_alias": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.encryption": 100,
            "m.room.server_acl": 100,
            "m.room.tombstone": 100,
            "m.bridge": 100,
            "uk.half-shot.bridge": 100,
        });
        let expected = |users: Value, events_default: i64| {
            json!({
                "users": users,
                "users_default": 0,
                "events_default": events_default,
                "state_default": 50,
                "ban": 50,
                "kick": 50,
                "redact": 50,
                "invite": 50,
                "events": events,
                "notifications": { "room": 50 },
            })
        };

        let plain = PortalPowerLevels::new(bot.clone(), false);
        let mut v12 = PortalPowerLevels::new(bot.clone(), true);
        v12.users.insert(admin.clone(), 100);
        v12.users.insert(bot.clone(), 100);
        let mut broadcast = PortalPowerLevels::new(bot.clone(), false);
        broadcast.broadcast = true;
        broadcast.users.insert(admin, 100);
        broadcast.users.insert(ghost, 50);

        let cases = [
            (
                "plain",
                plain,
                expected(json!({ "@passerelle:example.org": 100 }), 0),
            ),
            (
                "v12 creator left out",
                v12,
                expected(json!({ "@admin:example.org": 100 }), 0),
            ),
            (
                "broadcast",
                broadcast,
                expected(
                    json!({
                        "@passerelle:example.org": 100,
                        "@admin:example.org": 100,
                        "@_telegram_42:example.org": 50,
                    }),
                    50,
                ),
            ),
        ];
        for (name, levels, content) in cases {
            assert_eq!(levels.to_content(), content, "{name}");
        }
    }

    #[test]
    fn media_messages() {
        let url = OwnedMxcUri::from("mxc://example.org/abc");
        let plain_file = MediaMessage::new(MediaKind::File, url.clone(), "report.pdf");
        let mut image = MediaMessage::new(MediaKind::Image, url.clone(), "cat.png");
        image.mimetype = Some("image/png".into());
        image.size = Some(1234);
        image.width = Some(640);
        image.height = Some(480);
        let mut captioned = MediaMessage::new(MediaKind::Video, url, "clip.mp4");
        captioned.caption = Some("look".into());
        captioned.caption_html = Some("<i>look</i>".into());
        captioned.mimetype = Some("video/mp4".into());
        captioned.duration_ms = Some(3000);
        let mut encrypted = MediaMessage::new(
            MediaKind::File,
            "mxc://example.org/enc".into(),
            "minutes.txt",
        );
        encrypted.encrypted_file = Some(json!({"v": "v2", "key": {"k": "K"}, "iv": "I"}));

        let cases = [
            (
                plain_file,
                json!({
                    "msgtype": "m.file",
                    "body": "report.pdf",
                    "filename": "report.pdf",
                    "url": "mxc://example.org/abc",
                    "info": {},
                }),
            ),
            (
                image,
                json!({
                    "msgtype": "m.image",
                    "body": "cat.png",
                    "filename": "cat.png",
                    "url": "mxc://example.org/abc",
                    "info": { "mimetype": "image/png", "size": 1234, "w": 640, "h": 480 },
                }),
            ),
            (
                captioned,
                json!({
                    "msgtype": "m.video",
                    "body": "look",
                    "filename": "clip.mp4",
                    "url": "mxc://example.org/abc",
                    "info": { "mimetype": "video/mp4", "duration": 3000 },
                    "format": "org.matrix.custom.html",
                    "formatted_body": "<i>look</i>",
                }),
            ),
            (
                encrypted,
                json!({
                    "msgtype": "m.file",
                    "body": "minutes.txt",
                    "filename": "minutes.txt",
                    "file": {"v": "v2", "key": {"k": "K"}, "iv": "I",
                             "url": "mxc://example.org/enc"},
                    "info": {},
                }),
            ),
        ];
        for (message, content) in cases {
            assert_eq!(message.to_content(), content, "{:?}", message.kind);
        }
    }
}
