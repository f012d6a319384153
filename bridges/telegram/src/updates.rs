//! One Telegram `Update` -> the runtime's remote events. Pure: profile
//! photos and portal checks are the module's business.

use frankenstein::types::{
    Chat, ChatMember, MaybeInaccessibleMessage, Message, MessageEntity, MessageEntityType,
    ReactionType, User,
};
use frankenstein::updates::{Update, UpdateContent};
use passerelle_api::{
    MessageContent, MessageKind, RemoteEvent, RemoteEventKind, RemoteMedia, Sender,
};

use crate::format::{self, Entity, EntityKind};
use crate::ids::{self, MediaRef};

/// Bot API downloads stop at 20 MB (`getFile`).
pub const MAX_DOWNLOAD: u64 = 20 * 1024 * 1024;

/// What mapping needs to know.
pub struct Context<'a> {
    /// The bot's own user id: its messages are echoes.
    pub bot_id: u64,
    /// The Matrix link (matrix.to) of a Telegram user's ghost.
    pub user_link: &'a dyn Fn(i64) -> Option<String>,
}

/// The chat an update belongs to, if any.
pub fn chat_of(update: &Update) -> Option<&Chat> {
    match &update.content {
        UpdateContent::Message(m)
        | UpdateContent::EditedMessage(m)
        | UpdateContent::ChannelPost(m)
        | UpdateContent::EditedChannelPost(m) => Some(&m.chat),
        UpdateContent::MessageReaction(r) => Some(&r.chat),
        UpdateContent::ChatMember(c) | UpdateContent::MyChatMember(c) => Some(&c.chat),
        _ => None,
    }
}

pub fn map_update(update: &Update, cx: &Context<'_>) -> Vec<RemoteEvent> {
    match &update.content {
        UpdateContent::Message(m) | UpdateContent::ChannelPost(m) => map_message(m, cx),
        UpdateContent::EditedMessage(m) | UpdateContent::EditedChannelPost(m) => {
            if is_echo(m, cx) {
                return Vec::new();
            }
            let Some(content) = content_of(m, cx) else {
                return Vec::new();
            };
            let target = ids::message_id(i64::from(m.message_id));
            let remote_id = ids::edit_id(i64::from(m.message_id), m.edit_date.unwrap_or(m.date));
            vec![
                RemoteEvent::new(
                    ids::portal_key(m.chat.id),
                    sender_of(m),
                    m.edit_date.unwrap_or(m.date) * 1000,
                    RemoteEventKind::Edit { target, content },
                )
                .with_remote_id(remote_id),
            ]
        }
        UpdateContent::MessageReaction(r) => {
            let sender = match (&r.user, &r.actor_chat) {
                (Some(user), _) => user_sender(user),
                (None, Some(chat)) => chat_sender(chat),
                (None, None) => return Vec::new(),
            };
            if r.user.as_ref().is_some_and(|u| u.id == cx.bot_id) {
                return Vec::new();
            }
            let keys = |list: &[ReactionType]| -> Vec<String> {
                list.iter()
                    .filter_map(|r| match r {
                        ReactionType::Emoji(e) => Some(e.emoji.clone()),
                        _ => None,
                    })
                    .collect()
            };
            let old = keys(&r.old_reaction);
            let new = keys(&r.new_reaction);
            let target = ids::message_id(i64::from(r.message_id));
            let portal = ids::portal_key(r.chat.id);
            let mut events = Vec::new();
            for key in old.iter().filter(|k| !new.contains(k)) {
                events.push(RemoteEvent::new(
                    portal.clone(),
                    sender.clone(),
                    r.date * 1000,
                    RemoteEventKind::ReactionRemove {
                        target: target.clone(),
                        key: key.clone(),
                    },
                ));
            }
            for key in new.iter().filter(|k| !old.contains(k)) {
                events.push(RemoteEvent::new(
                    portal.clone(),
                    sender.clone(),
                    r.date * 1000,
                    RemoteEventKind::Reaction {
                        target: target.clone(),
                        key: key.clone(),
                    },
                ));
            }
            events
        }
        UpdateContent::ChatMember(c) => {
            let user = member_user(&c.new_chat_member);
            if user.id == cx.bot_id {
                return Vec::new();
            }
            let portal = ids::portal_key(c.chat.id);
            let ts = c.date * 1000;
            let was_in = is_in(&c.old_chat_member);
            let now_in = is_in(&c.new_chat_member);
            let mut events = Vec::new();
            match (was_in, now_in) {
                (false, true) => events.push(RemoteEvent::new(
                    portal.clone(),
                    user_sender(user),
                    ts,
                    RemoteEventKind::Join,
                )),
                (true, false)
                    if matches!(c.new_chat_member, ChatMember::Kicked(_))
                        && c.from.id != user.id =>
                {
                    events.push(RemoteEvent::new(
                        portal.clone(),
                        user_sender(&c.from),
                        ts,
                        RemoteEventKind::Kick {
                            target: ids::user_id(user.id as i64),
                            reason: None,
                        },
                    ))
                }
                (true, false) => events.push(RemoteEvent::new(
                    portal.clone(),
                    user_sender(user),
                    ts,
                    RemoteEventKind::Leave { reason: None },
                )),
                _ => {}
            }
            let (old_level, new_level) = (level(&c.old_chat_member), level(&c.new_chat_member));
            if now_in && old_level != new_level {
                events.push(RemoteEvent::new(
                    portal,
                    user_sender(&c.from),
                    ts,
                    RemoteEventKind::PowerLevel {
                        target: ids::user_id(user.id as i64),
                        level: new_level,
                    },
                ));
            }
            events
        }
        _ => Vec::new(),
    }
}

/// The Matrix power level for a Telegram rank.
pub fn level(member: &ChatMember) -> i64 {
    match member {
        ChatMember::Creator(_) => 100,
        ChatMember::Administrator(_) => 50,
        _ => 0,
    }
}

fn member_user(member: &ChatMember) -> &User {
    match member {
        ChatMember::Creator(m) => &m.user,
        ChatMember::Administrator(m) => &m.user,
        ChatMember::Member(m) => &m.user,
        ChatMember::Restricted(m) => &m.user,
        ChatMember::Left(m) => &m.user,
        ChatMember::Kicked(m) => &m.user,
    }
}

fn is_in(member: &ChatMember) -> bool {
    match member {
        ChatMember::Creator(_) | ChatMember::Administrator(_) | ChatMember::Member(_) => true,
        ChatMember::Restricted(m) => m.is_member,
        ChatMember::Left(_) | ChatMember::Kicked(_) => false,
    }
}

fn is_echo(m: &Message, cx: &Context<'_>) -> bool {
    m.from.as_ref().is_some_and(|u| u.id == cx.bot_id) && m.sender_chat.is_none()
}

pub fn display_name(user: &User) -> String {
    match &user.last_name {
        Some(last) if !last.is_empty() => format!("{} {last}", user.first_name),
        _ => user.first_name.clone(),
    }
}

pub fn user_sender(user: &User) -> Sender {
    Sender::new(ids::user_id(user.id as i64)).with_display_name(display_name(user))
}

fn chat_sender(chat: &Chat) -> Sender {
    let name = chat
        .title
        .clone()
        .or_else(|| chat.first_name.clone())
        .unwrap_or_else(|| chat.id.to_string());
    Sender::new(ids::user_id(chat.id)).with_display_name(name)
}

/// A channel (or an anonymous admin) posts as the chat; everyone else as
/// themselves.
fn sender_of(m: &Message) -> Sender {
    match (&m.sender_chat, &m.from) {
        (Some(chat), _) => chat_sender(chat),
        (None, Some(user)) => user_sender(user),
        (None, None) => chat_sender(&m.chat),
    }
}

fn map_message(m: &Message, cx: &Context<'_>) -> Vec<RemoteEvent> {
    if is_echo(m, cx) {
        return Vec::new();
    }
    let portal = ids::portal_key(m.chat.id);
    let ts = m.date * 1000;
    let event = |sender: Sender, kind| RemoteEvent::new(portal.clone(), sender, ts, kind);
    if let Some(members) = &m.new_chat_members {
        return members
            .iter()
            .filter(|u| u.id != cx.bot_id)
            .map(|u| event(user_sender(u), RemoteEventKind::Join))
            .collect();
    }
    if let Some(user) = &m.left_chat_member {
        if user.id == cx.bot_id {
            return Vec::new();
        }
        let removed_by_other = m.from.as_ref().is_some_and(|f| f.id != user.id);
        return vec![match (removed_by_other, &m.from) {
            (true, Some(by)) => event(
                user_sender(by),
                RemoteEventKind::Kick {
                    target: ids::user_id(user.id as i64),
                    reason: None,
                },
            ),
            _ => event(user_sender(user), RemoteEventKind::Leave { reason: None }),
        }];
    }
    if let Some(title) = &m.new_chat_title {
        return vec![event(
            sender_of(m),
            RemoteEventKind::Rename {
                name: title.clone(),
            },
        )];
    }
    if let Some(photo) = &m.new_chat_photo {
        let largest = photo.iter().max_by_key(|p| p.width * p.height);
        return vec![event(
            sender_of(m),
            RemoteEventKind::RoomAvatar {
                remote_ref: largest.map(|p| MediaRef::File(p.file_id.clone()).to_ref()),
            },
        )];
    }
    if m.delete_chat_photo == Some(true) {
        return vec![event(
            sender_of(m),
            RemoteEventKind::RoomAvatar { remote_ref: None },
        )];
    }
    if let Some(pinned) = &m.pinned_message {
        let id = match pinned.as_ref() {
            MaybeInaccessibleMessage::Message(p) => p.message_id,
            MaybeInaccessibleMessage::InaccessibleMessage(p) => p.message_id,
        };
        return vec![event(
            sender_of(m),
            RemoteEventKind::Pin {
                target: ids::message_id(i64::from(id)),
                pinned: true,
            },
        )];
    }
    if let Some(topic) = &m.forum_topic_created {
        // The topic's first message: the root of its Matrix thread.
        let content = MessageContent::text(format!("Topic created: {}", topic.name))
            .with_kind(MessageKind::Notice);
        return vec![
            event(sender_of(m), RemoteEventKind::Message(content))
                .with_remote_id(ids::message_id(i64::from(m.message_id))),
        ];
    }
    let Some(content) = content_of(m, cx) else {
        return Vec::new();
    };
    vec![
        event(sender_of(m), RemoteEventKind::Message(content))
            .with_remote_id(ids::message_id(i64::from(m.message_id))),
    ]
}

/// The message content of a text or media message; `None` for service
/// messages this bridge does not show.
fn content_of(m: &Message, cx: &Context<'_>) -> Option<MessageContent> {
    let (text, entities) = match (&m.text, &m.caption) {
        (Some(text), _) => (text.as_str(), m.entities.as_deref().unwrap_or_default()),
        (None, Some(caption)) => (
            caption.as_str(),
            m.caption_entities.as_deref().unwrap_or_default(),
        ),
        (None, None) => ("", &[][..]),
    };
    let converted = format::telegram_to_matrix(text, &entities_of(entities), cx.user_link);
    let mut content = MessageContent::text(converted.body);
    content.html = converted.html;
    content.media = media_of(m);
    if content.media.is_none() && text.is_empty() {
        // Polls, locations, contacts, dice…: say what it was rather than drop it.
        let what = unsupported_kind(m)?;
        content = MessageContent::text(what).with_kind(MessageKind::Notice);
    }
    if let Some(media) = &content.media
        && media.size.is_some_and(|s| s > MAX_DOWNLOAD)
    {
        // The Bot API cannot download it: bridge the caption and say so.
        let note = format!(
            "[{} is too large for a bot to download ({} MB); open it in Telegram]",
            media.filename,
            media.size.unwrap_or(0) / (1024 * 1024)
        );
        content.body = if content.body.is_empty() {
            note
        } else {
            format!("{}\n{note}", content.body)
        };
        content.html = None;
        content.media = None;
    }
    let reply = m.reply_to_message.as_ref().map(|r| r.message_id);
    if m.is_topic_message == Some(true) {
        content.thread_root = m.message_thread_id.map(|t| ids::message_id(i64::from(t)));
        // In a topic, Telegram makes every message a "reply" to the topic's
        // first message: that is the thread, not a reply.
        if reply != m.message_thread_id {
            content.reply_to = reply.map(|r| ids::message_id(i64::from(r)));
        }
    } else {
        content.reply_to = reply.map(|r| ids::message_id(i64::from(r)));
    }
    Some(content)
}

fn unsupported_kind(m: &Message) -> Option<String> {
    if let Some(location) = &m.location {
        return Some(format!(
            "Location: geo:{},{}",
            location.latitude, location.longitude
        ));
    }
    if let Some(venue) = &m.venue {
        return Some(format!(
            "Venue: {}, {} (geo:{},{})",
            venue.title, venue.address, venue.location.latitude, venue.location.longitude
        ));
    }
    if let Some(poll) = &m.poll {
        let options: Vec<&str> = poll.options.iter().map(|o| o.text.as_str()).collect();
        return Some(format!("Poll: {} ({})", poll.question, options.join(" / ")));
    }
    if let Some(contact) = &m.contact {
        return Some(format!("Contact: {}", contact.first_name));
    }
    if let Some(dice) = &m.dice {
        return Some(format!("{} rolled {}", dice.emoji, dice.value));
    }
    if m.story.is_some() || m.game.is_some() || m.paid_media.is_some() || m.checklist.is_some() {
        return Some("[a message type the bridge cannot show; open it in Telegram]".to_owned());
    }
    None
}

fn media(file_id: &str, filename: String, mime: Option<String>, size: Option<u64>) -> RemoteMedia {
    RemoteMedia {
        filename,
        mime_type: mime,
        size,
        mxc: None,
        remote_ref: Some(MediaRef::File(file_id.to_owned()).to_ref()),
    }
}

fn media_of(m: &Message) -> Option<RemoteMedia> {
    if let Some(photo) = &m.photo {
        let largest = photo.iter().max_by_key(|p| p.width * p.height)?;
        return Some(media(
            &largest.file_id,
            "photo.jpg".to_owned(),
            Some("image/jpeg".to_owned()),
            largest.file_size,
        ));
    }
    if let Some(d) = &m.document {
        return Some(media(
            &d.file_id,
            d.file_name.clone().unwrap_or_else(|| "file".to_owned()),
            d.mime_type.clone(),
            d.file_size,
        ));
    }
    if let Some(v) = &m.voice {
        return Some(media(
            &v.file_id,
            "voice.ogg".to_owned(),
            Some(
                v.mime_type
                    .clone()
                    .unwrap_or_else(|| "audio/ogg".to_owned()),
            ),
            v.file_size,
        ));
    }
    if let Some(a) = &m.audio {
        return Some(media(
            &a.file_id,
            a.file_name
                .clone()
                .unwrap_or_else(|| "audio.mp3".to_owned()),
            Some(
                a.mime_type
                    .clone()
                    .unwrap_or_else(|| "audio/mpeg".to_owned()),
            ),
            a.file_size,
        ));
    }
    if let Some(a) = &m.animation {
        return Some(media(
            &a.file_id,
            a.file_name
                .clone()
                .unwrap_or_else(|| "animation.mp4".to_owned()),
            Some(
                a.mime_type
                    .clone()
                    .unwrap_or_else(|| "video/mp4".to_owned()),
            ),
            a.file_size,
        ));
    }
    if let Some(v) = &m.video {
        return Some(media(
            &v.file_id,
            v.file_name
                .clone()
                .unwrap_or_else(|| "video.mp4".to_owned()),
            Some(
                v.mime_type
                    .clone()
                    .unwrap_or_else(|| "video/mp4".to_owned()),
            ),
            v.file_size,
        ));
    }
    if let Some(v) = &m.video_note {
        return Some(media(
            &v.file_id,
            "video_note.mp4".to_owned(),
            Some("video/mp4".to_owned()),
            v.file_size,
        ));
    }
    if let Some(s) = &m.sticker {
        let (name, mime) = if s.is_video {
            ("sticker.webm", "video/webm")
        } else if s.is_animated {
            ("sticker.tgs", "application/x-tgsticker")
        } else {
            ("sticker.webp", "image/webp")
        };
        return Some(media(
            &s.file_id,
            name.to_owned(),
            Some(mime.to_owned()),
            s.file_size,
        ));
    }
    None
}

/// frankenstein's entities -> the converter's.
pub fn entities_of(entities: &[MessageEntity]) -> Vec<Entity> {
    entities
        .iter()
        .map(|e| {
            let kind = match e.type_field {
                MessageEntityType::Bold => EntityKind::Bold,
                MessageEntityType::Italic => EntityKind::Italic,
                MessageEntityType::Underline => EntityKind::Underline,
                MessageEntityType::Strikethrough => EntityKind::Strikethrough,
                MessageEntityType::Spoiler => EntityKind::Spoiler,
                MessageEntityType::Code => EntityKind::Code,
                MessageEntityType::Pre => EntityKind::Pre {
                    language: e.language.clone(),
                },
                MessageEntityType::TextLink => match &e.url {
                    Some(url) => EntityKind::TextLink { url: url.clone() },
                    None => EntityKind::Other("text_link".to_owned()),
                },
                MessageEntityType::TextMention => match &e.user {
                    Some(user) => EntityKind::TextMention {
                        user_id: user.id as i64,
                    },
                    None => EntityKind::Other("text_mention".to_owned()),
                },
                MessageEntityType::Mention => EntityKind::Mention,
                MessageEntityType::Url => EntityKind::Url,
                MessageEntityType::Email => EntityKind::Email,
                MessageEntityType::PhoneNumber => EntityKind::PhoneNumber,
                MessageEntityType::Hashtag => EntityKind::Hashtag,
                MessageEntityType::Cashtag => EntityKind::Cashtag,
                MessageEntityType::BotCommand => EntityKind::BotCommand,
                MessageEntityType::Blockquote => EntityKind::Blockquote,
                MessageEntityType::ExpandableBlockquote => EntityKind::ExpandableBlockquote,
                MessageEntityType::CustomEmoji => EntityKind::CustomEmoji {
                    id: e.custom_emoji_id.clone().unwrap_or_default(),
                },
                MessageEntityType::DateTime => EntityKind::DateTime,
                MessageEntityType::Unknown => EntityKind::Other("unknown".to_owned()),
            };
            Entity {
                kind,
                offset: usize::from(e.offset),
                length: usize::from(e.length),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
