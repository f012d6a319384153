//! Matrix events -> Bot API calls. Everything goes through the bot (relay):
//! the sender's name is shown with the configured template.

use frankenstein::types::Message;
use passerelle_api::{
    BridgeError, Delivered, MatrixEvent, MatrixEventKind, MessageContent, MessageKind,
    RemoteMessageId, Runtime,
};
use serde_json::{Value, json};

use crate::api::{Api, ApiError, Upload};
use crate::config::TelegramConfig;
use crate::format;
use crate::ids;

/// Telegram's limits, in UTF-16 code units after entity parsing.
const MAX_TEXT: usize = 4096;
const MAX_CAPTION: usize = 1024;
/// Photos over 10 MB must go as documents.
const MAX_PHOTO: usize = 10 * 1024 * 1024;

/// The emoji a bot may react with (Bot API, ReactionTypeEmoji), without
/// variation selectors.
pub const REACTIONS: &[&str] = &[
    "👍",
    "👎",
    "❤",
    "🔥",
    "🥰",
    "👏",
    "😁",
    "🤔",
    "🤯",
    "😱",
    "🤬",
    "😢",
    "🎉",
    "🤩",
    "🤮",
    "💩",
    "🙏",
    "👌",
    "🕊",
    "🤡",
    "🥱",
    "🥴",
    "😍",
    "🐳",
    "❤‍🔥",
    "🌚",
    "🌭",
    "💯",
    "🤣",
    "⚡",
    "🍌",
    "🏆",
    "💔",
    "🤨",
    "😐",
    "🍓",
    "🍾",
    "💋",
    "🖕",
    "😈",
    "😴",
    "😭",
    "🤓",
    "👻",
    "👨‍💻",
    "👀",
    "🎃",
    "🙈",
    "😇",
    "😨",
    "🤝",
    "✍",
    "🤗",
    "🫡",
    "🎅",
    "🎄",
    "☃",
    "💅",
    "🤪",
    "🗿",
    "🆒",
    "💘",
    "🙉",
    "🦄",
    "😘",
    "💊",
    "🙊",
    "😎",
    "👾",
    "🤷‍♂",
    "🤷",
    "🤷‍♀",
    "😡",
];

/// The reaction Telegram accepts for a Matrix reaction key, if any.
pub fn telegram_reaction(key: &str) -> Option<&'static str> {
    let bare: String = key.chars().filter(|c| *c != '\u{FE0F}').collect();
    REACTIONS.iter().copied().find(|r| *r == bare)
}

pub struct Outbound<'a> {
    pub api: &'a Api,
    pub config: &'a TelegramConfig,
    pub runtime: &'a dyn Runtime,
}

fn message_id(id: &RemoteMessageId) -> Result<i64, BridgeError> {
    ids::parse_message(id)
        .ok_or_else(|| BridgeError::not_found("that message is not a Telegram message"))
}

impl Outbound<'_> {
    pub async fn deliver(&self, event: MatrixEvent) -> Result<Delivered, BridgeError> {
        let chat = ids::parse_portal(&event.portal)
            .ok_or_else(|| BridgeError::not_found("not a Telegram portal"))?;
        match &event.kind {
            MatrixEventKind::Message(content) => self.send(chat, &event, content).await,
            MatrixEventKind::Edit { target, content } => {
                let id = message_id(target)?;
                let text = self.relay_text(&event, content);
                let params =
                    json!({"chat_id": chat, "message_id": id, "text": text, "parse_mode": "HTML"});
                match self.api.call::<Value>("editMessageText", params).await {
                    Ok(_) => Ok(Delivered::none()),
                    Err(e) if e.description().contains("not modified") => Ok(Delivered::none()),
                    Err(e) if e.description().contains("no text in the message") => {
                        let params = json!({"chat_id": chat, "message_id": id, "caption": text, "parse_mode": "HTML"});
                        self.api
                            .call::<Value>("editMessageCaption", params)
                            .await
                            .map_err(|e| e.into_bridge("edit the message"))?;
                        Ok(Delivered::none())
                    }
                    Err(e) => Err(e.into_bridge("edit the message")),
                }
            }
            MatrixEventKind::Redaction { target } => {
                let id = message_id(target)?;
                self.api
                    .call::<bool>("deleteMessage", json!({"chat_id": chat, "message_id": id}))
                    .await
                    .map_err(|e| {
                        let mut error = e.into_bridge("delete the message");
                        error.message.push_str(
                            " (a bot can delete its own messages only within 48 hours, \
                             and others' only as a chat admin)",
                        );
                        error
                    })?;
                Ok(Delivered::none())
            }
            MatrixEventKind::Reaction { target, key } => {
                let id = message_id(target)?;
                let Some(emoji) = telegram_reaction(key) else {
                    return Err(BridgeError::unsupported(format!(
                        "Telegram bots can only react with: {}",
                        REACTIONS.join(" ")
                    )));
                };
                let params = json!({
                    "chat_id": chat, "message_id": id,
                    "reaction": [{"type": "emoji", "emoji": emoji}],
                });
                self.api
                    .call::<bool>("setMessageReaction", params)
                    .await
                    .map_err(|e| e.into_bridge("react"))?;
                Ok(Delivered::none())
            }
            MatrixEventKind::ReactionRedaction { target, .. } => {
                let id = message_id(target)?;
                let params = json!({"chat_id": chat, "message_id": id, "reaction": []});
                self.api
                    .call::<bool>("setMessageReaction", params)
                    .await
                    .map_err(|e| e.into_bridge("remove the reaction"))?;
                Ok(Delivered::none())
            }
            MatrixEventKind::Kick { target, .. } | MatrixEventKind::Ban { target, .. } => {
                let user = ids::parse_user(target)
                    .ok_or_else(|| BridgeError::not_found("not a Telegram user"))?;
                self.api
                    .call::<bool>("banChatMember", json!({"chat_id": chat, "user_id": user}))
                    .await
                    .map_err(|e| e.into_bridge("remove the user"))?;
                if matches!(event.kind, MatrixEventKind::Kick { .. }) {
                    self.api
                        .call::<bool>(
                            "unbanChatMember",
                            json!({"chat_id": chat, "user_id": user, "only_if_banned": true}),
                        )
                        .await
                        .map_err(|e| e.into_bridge("let the user rejoin"))?;
                }
                Ok(Delivered::none())
            }
            MatrixEventKind::Topic { topic } => {
                self.api
                    .call::<bool>(
                        "setChatDescription",
                        json!({"chat_id": chat, "description": topic}),
                    )
                    .await
                    .map_err(|e| e.into_bridge("change the description"))?;
                Ok(Delivered::none())
            }
            // Membership of Matrix users and typing have no bot equivalent.
            MatrixEventKind::Join
            | MatrixEventKind::Leave
            | MatrixEventKind::Typing { .. }
            | MatrixEventKind::PowerLevels { .. } => Ok(Delivered::none()),
            other => Err(BridgeError::unsupported(format!(
                "Telegram cannot bridge a {}",
                other.name()
            ))),
        }
    }

    /// The message as the relay shows it: template with the sender's name.
    fn relay_text(&self, event: &MatrixEvent, content: &MessageContent) -> String {
        let pill = |mxid: &str| -> Option<i64> {
            let localpart = mxid.strip_prefix('@')?.split(':').next()?;
            let user = ids::parse_ghost_localpart(localpart)?;
            ids::parse_user(&user)
        };
        let mut message = format::matrix_to_telegram(&content.body, content.html.as_deref(), &pill);
        let name = format::escape_telegram(&event.sender.display_name);
        if content.kind == MessageKind::Emote {
            message = format!("* {name} {message}");
        }
        self.config
            .relay_template
            .replace("{displayname}", &name)
            .replace("{mxid}", &format::escape_telegram(&event.sender.mxid))
            .replace("{message}", &message)
    }

    fn targets(&self, content: &MessageContent) -> (Option<i64>, Option<i64>) {
        let reply = content.reply_to.as_ref().and_then(ids::parse_message);
        let thread = content.thread_root.as_ref().and_then(ids::parse_message);
        (reply, thread)
    }

    fn base_params(&self, chat: i64, content: &MessageContent) -> Value {
        let (reply, thread) = self.targets(content);
        let mut params = json!({"chat_id": chat, "parse_mode": "HTML"});
        // A Matrix thread is a forum topic where the chat has topics; in a
        // plain group the best Telegram has is a reply to the thread root.
        if let Some(thread) = thread {
            params["message_thread_id"] = json!(thread);
        }
        if let Some(reply) = reply.or(thread) {
            params["reply_parameters"] =
                json!({"message_id": reply, "allow_sending_without_reply": true});
        }
        params
    }

    async fn send(
        &self,
        chat: i64,
        event: &MatrixEvent,
        content: &MessageContent,
    ) -> Result<Delivered, BridgeError> {
        if let Some(media) = &content.media {
            return self.send_media(chat, event, content, media).await;
        }
        let text = self.relay_text(event, content);
        let mut params = self.base_params(chat, content);
        let message = if format::utf16_len(&text) <= MAX_TEXT {
            params["text"] = json!(text);
            self.post(chat, "sendMessage", params).await?
        } else {
            // Too long for one message: plain chunks, the first one replying.
            let plain = format!("{}: {}", event.sender.display_name, content.body);
            let mut first = None;
            for chunk in chunks(&plain, MAX_TEXT - 16) {
                let mut p = params.clone();
                p["text"] = json!(format::escape_telegram(&chunk));
                let sent = self.post(chat, "sendMessage", p).await?;
                first.get_or_insert(sent);
                params
                    .as_object_mut()
                    .expect("object")
                    .remove("reply_parameters");
            }
            first.expect("at least one chunk")
        };
        Ok(Delivered::with_id(ids::message_id(i64::from(
            message.message_id,
        ))))
    }

    async fn post(&self, chat: i64, method: &str, params: Value) -> Result<Message, BridgeError> {
        match self.api.call::<Message>(method, params.clone()).await {
            // A group that became a supergroup has a new id; the portal's key
            // is stale. Say so rather than fail silently.
            Err(ApiError::Telegram {
                migrate_to: Some(new),
                ..
            }) => Err(BridgeError::permanent(format!(
                "this Telegram group was upgraded to a supergroup ({new}); an admin must run `unlink` and `link telegram {new}`"
            ))),
            Err(e) => {
                tracing::debug!(chat, method, error = %e, "send failed");
                Err(e.into_bridge("deliver the message"))
            }
            Ok(m) => Ok(m),
        }
    }

    async fn send_media(
        &self,
        chat: i64,
        event: &MatrixEvent,
        content: &MessageContent,
        media: &passerelle_api::RemoteMedia,
    ) -> Result<Delivered, BridgeError> {
        let max = self.config.max_upload_bytes;
        if media.size.is_some_and(|s| s > max) {
            return Err(BridgeError::permanent(format!(
                "{} is too large for Telegram ({} MB; the limit is {} MB)",
                media.filename,
                media.size.unwrap_or(0) / (1024 * 1024),
                max / (1024 * 1024)
            )));
        }
        let mxc = media
            .mxc
            .as_deref()
            .ok_or_else(|| BridgeError::permanent("media without a Matrix URL"))?;
        let (bytes, mime) = self.runtime.download_media(mxc, max).await?;
        let mime = media
            .mime_type
            .clone()
            .or(mime)
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let (method, field) = match mime.as_str() {
            "image/jpeg" | "image/png" | "image/webp" if bytes.len() <= MAX_PHOTO => {
                ("sendPhoto", "photo")
            }
            "audio/ogg" => ("sendVoice", "voice"),
            m if m.starts_with("audio/") => ("sendAudio", "audio"),
            "video/mp4" => ("sendVideo", "video"),
            _ => ("sendDocument", "document"),
        };
        let has_caption = !content.body.is_empty() && content.body != media.filename;
        let caption_content = if has_caption {
            content.clone()
        } else {
            MessageContent {
                body: String::new(),
                html: None,
                ..content.clone()
            }
        };
        let caption = self.relay_text(event, &caption_content);
        let mut params = self.base_params(chat, content);
        let caption_fits = format::utf16_len(&caption) <= MAX_CAPTION;
        if caption_fits {
            params["caption"] = json!(caption);
        }
        let upload = Upload {
            field,
            bytes,
            filename: media.filename.clone(),
            mime,
        };
        let message: Message = match self.api.call_upload(method, params, upload).await {
            Ok(m) => m,
            Err(ApiError::Telegram { code: 413, .. }) => {
                return Err(BridgeError::permanent(format!(
                    "{} is too large for Telegram",
                    media.filename
                )));
            }
            Err(e) => return Err(e.into_bridge("deliver the file")),
        };
        if !caption_fits {
            let mut p = json!({"chat_id": chat, "parse_mode": "HTML",
                "reply_parameters": {"message_id": message.message_id, "allow_sending_without_reply": true}});
            p["text"] = json!(format::escape_telegram(&format!(
                "{}: {}",
                event.sender.display_name, content.body
            )));
            self.post(chat, "sendMessage", p).await?;
        }
        Ok(Delivered::with_id(ids::message_id(i64::from(
            message.message_id,
        ))))
    }
}

/// Splits text into pieces of at most `max` UTF-16 units, at line or word
/// boundaries where possible.
pub fn chunks(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut len = 0;
    for word in text.split_inclusive(['\n', ' ']) {
        let wlen = format::utf16_len(word);
        if len + wlen > max && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            len = 0;
        }
        if wlen > max {
            for c in word.chars() {
                if len + c.len_utf16() > max {
                    out.push(std::mem::take(&mut current));
                    len = 0;
                }
                current.push(c);
                len += c.len_utf16();
            }
        } else {
            current.push_str(word);
            len += wlen;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_ignore_variation_selectors() {
        assert_eq!(telegram_reaction("❤️"), Some("❤"));
        assert_eq!(telegram_reaction("👍"), Some("👍"));
        assert_eq!(telegram_reaction("🦀"), None);
    }

    #[test]
    fn chunks_respect_the_limit_and_keep_everything() {
        let text = "word ".repeat(3000) + &"x".repeat(5000) + "\nend 😀😀";
        let pieces = chunks(&text, 4000);
        assert!(pieces.iter().all(|p| format::utf16_len(p) <= 4000));
        assert_eq!(pieces.concat(), text);
        assert_eq!(chunks("", 10), Vec::<String>::new());
        assert_eq!(chunks("😀😀😀", 4), vec!["😀😀", "😀"]);
    }
}
