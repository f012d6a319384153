//! One Events API `event_callback` -> the runtime's remote events. Pure:
//! names for mentions come from a [`Resolver`] the module fills from its
//! cache beforehand.

use passerelle_api::{
    MessageContent, MessageKind, RemoteEvent, RemoteEventKind, RemoteMedia, RemoteMessageId, Sender,
};
use serde_json::Value;

use crate::emoji;
use crate::ids;
use crate::mrkdwn::{self, Resolver};

/// What mapping needs to know about the workspace.
pub struct Context<'a> {
    pub team: &'a str,
    /// The bot user (`U…`) and bot id (`B…`) of our app: its messages are
    /// echoes of what the bridge relayed.
    pub bot_user: &'a str,
    pub bot_id: &'a str,
    pub resolver: &'a dyn Resolver,
    /// Display name of a Slack user, if known.
    pub name_of: &'a dyn Fn(&str) -> Option<String>,
}

/// `1700000000.000100` -> milliseconds.
pub fn ts_ms(ts: &str) -> u64 {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let secs: u64 = secs.parse().unwrap_or(0);
    let millis: u64 = format!("{:0<3}", &frac[..frac.len().min(3)])
        .parse()
        .unwrap_or(0);
    secs * 1000 + millis
}

/// A media reference `fetch_media` resolves: the workspace and the private
/// URL (downloaded with that workspace's bot token).
pub fn file_ref(team: &str, url: &str) -> String {
    format!("{team}|{url}")
}

pub fn parse_file_ref(r: &str) -> Option<(&str, &str)> {
    r.split_once('|')
}

fn sender(cx: &Context<'_>, user: &str) -> Sender {
    let mut s = Sender::new(ids::user_id(cx.team, user));
    s.display_name = (cx.name_of)(user);
    s
}

fn is_echo(cx: &Context<'_>, e: &Value) -> bool {
    e["bot_id"].as_str() == Some(cx.bot_id) || e["user"].as_str() == Some(cx.bot_user)
}

fn content(cx: &Context<'_>, m: &Value) -> MessageContent {
    let text = m["text"].as_str().unwrap_or("");
    let formatted = mrkdwn::slack_to_matrix(text, cx.resolver);
    let mut content = MessageContent::text(formatted.body);
    content.html = formatted.html;
    if m["subtype"] == "me_message" {
        content.kind = MessageKind::Emote;
    }
    let ts = m["ts"].as_str().unwrap_or("");
    if let Some(thread) = m["thread_ts"].as_str()
        && thread != ts
    {
        content.thread_root = Some(ids::message_id(thread));
    }
    content
}

fn media_of(cx: &Context<'_>, file: &Value) -> Option<RemoteMedia> {
    let url = file["url_private_download"]
        .as_str()
        .or(file["url_private"].as_str())?;
    Some(RemoteMedia {
        filename: file["name"].as_str().unwrap_or("file").to_owned(),
        mime_type: file["mimetype"].as_str().map(str::to_owned),
        size: file["size"].as_u64(),
        mxc: None,
        remote_ref: Some(file_ref(cx.team, url)),
    })
}

/// The remote id of the `n`th file of a message after the first.
pub fn file_part_id(ts: &str, n: usize) -> RemoteMessageId {
    RemoteMessageId::new(format!("{ts}#{n}"))
}

pub fn map_event(event: &Value, cx: &Context<'_>) -> Vec<RemoteEvent> {
    let Some(kind) = event["type"].as_str() else {
        return Vec::new();
    };
    let channel = event["channel"]
        .as_str()
        .or(event["item"]["channel"].as_str());
    match kind {
        "message" => map_message(event, cx),
        "reaction_added" | "reaction_removed" => {
            let (Some(user), Some(channel), Some(ts), Some(name)) = (
                event["user"].as_str(),
                event["item"]["channel"].as_str(),
                event["item"]["ts"].as_str(),
                event["reaction"].as_str(),
            ) else {
                return Vec::new();
            };
            if user == cx.bot_user {
                return Vec::new();
            }
            let key = emoji::shortcode_to_unicode(name).unwrap_or_else(|| format!(":{name}:"));
            let target = ids::message_id(ts);
            let kind = if kind == "reaction_added" {
                RemoteEventKind::Reaction { target, key }
            } else {
                RemoteEventKind::ReactionRemove { target, key }
            };
            let ts = event["event_ts"].as_str().unwrap_or(ts);
            vec![RemoteEvent::new(
                ids::portal_key(cx.team, channel),
                sender(cx, user),
                ts_ms(ts),
                kind,
            )]
        }
        "member_joined_channel" | "member_left_channel" => {
            let (Some(user), Some(channel)) = (event["user"].as_str(), channel) else {
                return Vec::new();
            };
            if user == cx.bot_user {
                return Vec::new();
            }
            let kind = if kind == "member_joined_channel" {
                RemoteEventKind::Join
            } else {
                RemoteEventKind::Leave { reason: None }
            };
            let ts = event["event_ts"].as_str().unwrap_or("0");
            vec![RemoteEvent::new(
                ids::portal_key(cx.team, channel),
                sender(cx, user),
                ts_ms(ts),
                kind,
            )]
        }
        "channel_rename" => {
            let (Some(channel), Some(name)) = (
                event["channel"]["id"].as_str(),
                event["channel"]["name"].as_str(),
            ) else {
                return Vec::new();
            };
            let ts = event["event_ts"].as_str().unwrap_or("0");
            vec![RemoteEvent::new(
                ids::portal_key(cx.team, channel),
                Sender::new(ids::user_id(cx.team, cx.bot_user)),
                ts_ms(ts),
                RemoteEventKind::Rename {
                    name: format!("#{name}"),
                },
            )]
        }
        _ => Vec::new(),
    }
}

fn map_message(m: &Value, cx: &Context<'_>) -> Vec<RemoteEvent> {
    let Some(channel) = m["channel"].as_str() else {
        return Vec::new();
    };
    let portal = ids::portal_key(cx.team, channel);
    let subtype = m["subtype"].as_str().unwrap_or("");
    match subtype {
        "message_changed" => {
            let new = &m["message"];
            let (Some(ts), Some(user)) = (new["ts"].as_str(), new["user"].as_str()) else {
                return Vec::new();
            };
            if is_echo(cx, new) {
                return Vec::new();
            }
            // Unfurls and thread metadata also change a message: only a new
            // text is an edit.
            if new["text"] == m["previous_message"]["text"] {
                return Vec::new();
            }
            let edited = new["edited"]["ts"]
                .as_str()
                .or(m["event_ts"].as_str())
                .unwrap_or(ts);
            let mut content = content(cx, new);
            content.thread_root = None;
            vec![
                RemoteEvent::new(
                    portal,
                    sender(cx, user),
                    ts_ms(edited),
                    RemoteEventKind::Edit {
                        target: ids::message_id(ts),
                        content,
                    },
                )
                .with_remote_id(format!("{ts}@{edited}")),
            ]
        }
        "message_deleted" => {
            let Some(deleted) = m["deleted_ts"].as_str() else {
                return Vec::new();
            };
            let by = m["previous_message"]["user"]
                .as_str()
                .unwrap_or(cx.bot_user);
            let ts = m["event_ts"]
                .as_str()
                .or(m["ts"].as_str())
                .unwrap_or(deleted);
            let files = m["previous_message"]["files"]
                .as_array()
                .map_or(0, Vec::len);
            let mut events = vec![RemoteEvent::new(
                portal.clone(),
                sender(cx, by),
                ts_ms(ts),
                RemoteEventKind::Delete {
                    target: ids::message_id(deleted),
                },
            )];
            for n in 1..files {
                events.push(RemoteEvent::new(
                    portal.clone(),
                    sender(cx, by),
                    ts_ms(ts),
                    RemoteEventKind::Delete {
                        target: file_part_id(deleted, n),
                    },
                ));
            }
            events
        }
        "channel_join" | "channel_leave" => {
            // member_joined_channel / member_left_channel carry the same.
            Vec::new()
        }
        "channel_topic" | "channel_purpose" => {
            let Some(user) = m["user"].as_str() else {
                return Vec::new();
            };
            let topic = m["topic"].as_str().or(m["purpose"].as_str()).unwrap_or("");
            let ts = m["ts"].as_str().unwrap_or("0");
            vec![RemoteEvent::new(
                portal,
                sender(cx, user),
                ts_ms(ts),
                RemoteEventKind::Topic {
                    topic: topic.to_owned(),
                },
            )]
        }
        "" | "thread_broadcast" | "file_share" | "me_message" | "bot_message" => {
            if is_echo(cx, m) {
                return Vec::new();
            }
            let Some(ts) = m["ts"].as_str() else {
                return Vec::new();
            };
            let author = m["user"]
                .as_str()
                .or(m["bot_id"].as_str())
                .unwrap_or("USLACKBOT");
            let mut sender = sender(cx, author);
            if sender.display_name.is_none() {
                sender.display_name = m["username"].as_str().map(str::to_owned);
            }
            let base = content(cx, m);
            let files: Vec<RemoteMedia> = m["files"]
                .as_array()
                .map(|f| f.iter().filter_map(|f| media_of(cx, f)).collect())
                .unwrap_or_default();
            let mut events = Vec::new();
            if files.is_empty() {
                events.push(
                    RemoteEvent::new(portal, sender, ts_ms(ts), RemoteEventKind::Message(base))
                        .with_remote_id(ids::message_id(ts)),
                );
                return events;
            }
            // The first file carries the text as its caption and the
            // message's ts; further files are parts of it.
            for (n, media) in files.into_iter().enumerate() {
                let mut c = if n == 0 {
                    base.clone()
                } else {
                    MessageContent {
                        thread_root: base.thread_root.clone(),
                        ..MessageContent::default()
                    }
                };
                if c.body.is_empty() {
                    c.body = media.filename.clone();
                }
                c.media = Some(media);
                let id = if n == 0 {
                    ids::message_id(ts)
                } else {
                    file_part_id(ts, n)
                };
                events.push(
                    RemoteEvent::new(
                        portal.clone(),
                        sender.clone(),
                        ts_ms(ts),
                        RemoteEventKind::Message(c),
                    )
                    .with_remote_id(id),
                );
            }
            events
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
