//! Matrix -> remote: turns homeserver events into [`MatrixEvent`]s for
//! modules, after echo, permission, login/relay and capability checks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use passerelle_api::{
    ErrorKind, MatrixEvent, MatrixEventKind, MatrixSender, MessageContent, MessageKind,
    PermissionLevel, RemoteMedia, RemoteMessageId, Via,
};
use serde_json::Value;

use crate::bridge::{Bridge, now_ms};
use crate::portal::Job;
use crate::store::{MessageRow, PortalRow, ReactionRow};

/// What to record in the message map once the module delivered.
#[derive(Debug)]
pub(crate) enum Record {
    Message {
        reply_to_event: Option<String>,
        thread_root_event: Option<String>,
    },
    Reaction {
        target: RemoteMessageId,
        key: String,
    },
    RemoveMessage {
        target: RemoteMessageId,
    },
    RemoveReaction {
        reaction_event: String,
    },
    Nothing,
}

#[derive(Debug)]
pub(crate) struct MatrixJob {
    pub event: MatrixEvent,
    pub room_id: String,
    pub record: Record,
    /// Recorded as pending: finished once delivered or reported.
    pub pending: bool,
}

/// What a Matrix event becomes for its module.
enum Converted {
    Event(Box<(MatrixEventKind, Record)>),
    /// Not for modules (state we do not bridge, relations to nothing).
    Ignore,
    /// Cannot be bridged: the sender is told why.
    Refuse(String),
}

/// Where an event went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dispatched {
    /// Handled already (command, invite, ignored).
    Inline,
    /// On its portal queue, recorded as pending.
    Queued,
}

/// How long an encrypted event waits for its room key.
const KEY_PATIENCE: Duration = Duration::from_secs(30);

/// How often a retryable module failure is tried before the user is told.
const MODULE_ATTEMPTS: u32 = 3;

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Removes the reply fallback (`> <@user> …` lines) that older clients put
/// in front of a reply's body.
pub(crate) fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    let mut rest = body;
    while let Some(line_end) = rest.find('\n') {
        if rest.starts_with("> ") || rest.starts_with(">\n") {
            rest = &rest[line_end + 1..];
        } else {
            break;
        }
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

/// Removes `<mx-reply>…</mx-reply>` from formatted bodies.
pub(crate) fn strip_html_reply_fallback(html: &str) -> String {
    match (html.find("<mx-reply>"), html.find("</mx-reply>")) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{}", &html[..start], &html[end + "</mx-reply>".len()..])
        }
        _ => html.to_owned(),
    }
}

impl Bridge {
    /// Handles one event of a transaction (or a pending one, `replaying`).
    pub(crate) async fn dispatch_matrix_event(
        self: &Arc<Self>,
        event: Value,
        replaying: bool,
    ) -> anyhow::Result<Dispatched> {
        self.dispatch_event(event, replaying, false).await
    }

    /// [`Bridge::dispatch_matrix_event`]; `decrypted` when the event came
    /// out of an `m.room.encrypted` one.
    async fn dispatch_event(
        self: &Arc<Self>,
        event: Value,
        replaying: bool,
        decrypted: bool,
    ) -> anyhow::Result<Dispatched> {
        let (Some(event_type), Some(sender), Some(room_id)) = (
            str_at(&event, "/type"),
            str_at(&event, "/sender"),
            str_at(&event, "/room_id"),
        ) else {
            return Ok(Dispatched::Inline);
        };
        let (event_type, sender, room_id) =
            (event_type.to_owned(), sender.to_owned(), room_id.to_owned());
        if event_type == "m.room.member"
            && str_at(&event, "/state_key") == Some(&self.bot_user_id())
        {
            self.handle_bot_membership(&event, &sender, &room_id)
                .await?;
            return Ok(Dispatched::Inline);
        }
        if event_type == "m.room.member"
            && str_at(&event, "/content/membership") != Some("join")
            && let Some(member) = str_at(&event, "/state_key").filter(|m| self.is_our_user(m))
        {
            // A ghost left or was removed: its next message joins again.
            self.forget_joined(&room_id, member);
        }
        if event_type == "m.room.member"
            && let Some(member) = str_at(&event, "/state_key")
        {
            // A new display name (or a leave) makes the cached one stale.
            self.display_names
                .lock()
                .expect("name lock")
                .remove(&(room_id.clone(), member.to_owned()));
        }
        if event_type == "m.room.encryption"
            && str_at(&event, "/state_key") == Some("")
            && let (Some(crypto), Ok(room)) = (&self.crypto, ruma::RoomId::parse(&room_id))
            && let Some(content) = event.get("content")
        {
            crypto.room_encrypted(&room, content);
        }
        if self.is_our_user(&sender) {
            metrics::counter!("passerelle_echoes_dropped_total").increment(1);
            return Ok(Dispatched::Inline);
        }
        if event_type == "m.room.member"
            && str_at(&event, "/content/membership") == Some("invite")
            && let Some(ghost) = str_at(&event, "/state_key").filter(|g| self.is_our_user(g))
        {
            let ghost = ghost.to_owned();
            self.handle_ghost_invite(&event, &sender, &room_id, &ghost)
                .await?;
            return Ok(Dispatched::Inline);
        }
        let event_id = str_at(&event, "/event_id").unwrap_or_default().to_owned();
        if event_type == "m.room.message"
            && let Some(body) = str_at(&event, "/content/body")
            && let Some(command) = self.command_line(&room_id, &sender, body).await?
        {
            let reply = self
                .run_command(&room_id, &sender, &command, &event_id)
                .await;
            self.notice(&room_id, &reply, Some(&event_id)).await;
            return Ok(Dispatched::Inline);
        }
        let portal = self.store.portal_by_room(&room_id).await?;
        if event_type == "m.room.encrypted" {
            if let (Some(crypto), false) = (&self.crypto, decrypted) {
                return self
                    .handle_encrypted(crypto.clone(), event, replaying)
                    .await;
            }
            self.cannot_decrypt(&room_id, &sender, portal.is_some(), &event_id)
                .await?;
            return Ok(Dispatched::Inline);
        }
        let Some(portal) = portal else {
            return Ok(Dispatched::Inline);
        };
        let network_id = portal.key.network.as_str().to_owned();
        let level = self.permissions.level(&sender);
        let is_message = matches!(
            event_type.as_str(),
            "m.room.message" | "m.sticker" | "m.reaction" | "m.room.redaction"
        );
        let policy = self
            .config
            .portal_encryption(&network_id)
            .unwrap_or_default();
        if decrypted && !policy.allow {
            let text = format!(
                "This room is encrypted, and this bridge does not bridge encrypted {network_id} \
                 rooms (`bridges.{network_id}.encryption.allow` is off), so nothing sent here is bridged."
            );
            self.tell_once(&room_id, &event_id, &text).await;
            return Ok(Dispatched::Inline);
        }
        if !decrypted && policy.require && is_message && event_type != "m.room.redaction" {
            let text = "This bridge only bridges encrypted rooms: turn encryption on in this \
                        room's settings, then send your message again.";
            self.tell_once(&room_id, &event_id, text).await;
            return Ok(Dispatched::Inline);
        }
        if level < PermissionLevel::Relay {
            if is_message {
                self.notice(
                    &room_id,
                    "You are not allowed to use this bridge, so your message was not bridged.",
                    Some(&event_id),
                )
                .await;
            }
            return Ok(Dispatched::Inline);
        }
        let (kind, record) = match self.convert(&portal, &event_type, &event).await? {
            Converted::Event(event) => *event,
            Converted::Ignore => return Ok(Dispatched::Inline),
            Converted::Refuse(reason) => {
                self.notice(&room_id, &reason, Some(&event_id)).await;
                return Ok(Dispatched::Inline);
            }
        };
        let via = match self.store.login(&portal.key.network, &sender).await? {
            Some(login) => Via::Login {
                login_id: login.login_id,
            },
            None if portal.relay => Via::Relay,
            None => {
                if is_message {
                    let text = format!(
                        "Your message was not bridged: log in to {network_id} first (`login {network_id}`); this room has no relay."
                    );
                    self.notice(&room_id, &text, Some(&event_id)).await;
                }
                return Ok(Dispatched::Inline);
            }
        };
        if let Some(reason) = self.unsupported(&network_id, &kind) {
            self.notice(&room_id, &reason, Some(&event_id)).await;
            return Ok(Dispatched::Inline);
        }
        let display_name = self.display_name(&room_id, &sender).await;
        let job = MatrixJob {
            event: MatrixEvent {
                portal: portal.key.clone(),
                sender: MatrixSender {
                    mxid: sender.clone(),
                    display_name,
                    avatar_url: None,
                    level,
                },
                via,
                event_id,
                ts: event
                    .get("origin_server_ts")
                    .and_then(Value::as_u64)
                    .unwrap_or_default(),
                kind,
            },
            room_id,
            record,
            pending: true,
        };
        if !replaying {
            self.store
                .add_pending(&job.event.event_id, &job.room_id, now_ms())
                .await?;
        }
        if !self.push_job(portal.key.clone(), Job::Matrix { job: Box::new(job) }) {
            // It stays pending and is delivered at the next start.
            anyhow::bail!("shutting down");
        }
        Ok(Dispatched::Queued)
    }

    /// A decrypted event through [`Bridge::dispatch_event`], boxed: the
    /// two call each other.
    fn dispatch_boxed(
        self: &Arc<Self>,
        clear: Value,
        replaying: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Dispatched>> + Send + '_>>
    {
        Box::pin(self.dispatch_event(clear, replaying, true))
    }

    /// An `m.room.encrypted` event, with encryption on: decrypted and
    /// handled like any event. When its key has not come yet (keys travel
    /// in to-device events, often in the next transaction, which the
    /// homeserver sends only once this one is answered) it is recorded as
    /// pending and handled by a task once the key arrives; a restart in
    /// between replays it.
    async fn handle_encrypted(
        self: &Arc<Self>,
        crypto: Arc<crate::crypto::Crypto>,
        event: Value,
        replaying: bool,
    ) -> anyhow::Result<Dispatched> {
        use crate::crypto::Decryption;
        let room_id = str_at(&event, "/room_id").unwrap_or_default().to_owned();
        let event_id = str_at(&event, "/event_id").unwrap_or_default().to_owned();
        let room = ruma::RoomId::parse(&room_id)?;
        match crypto.decrypt(&event, &room).await {
            Decryption::Decrypted(clear) => {
                metrics::counter!("passerelle_events_decrypted_total").increment(1);
                self.dispatch_boxed(clear, replaying).await
            }
            Decryption::Failed(reason) => {
                self.undecryptable(&room_id, &event_id, &reason).await;
                Ok(Dispatched::Inline)
            }
            Decryption::MissingKey => {
                if !replaying {
                    self.store
                        .add_pending(&event_id, &room_id, now_ms())
                        .await?;
                }
                let Some(guard) = self.task_guard() else {
                    anyhow::bail!("shutting down");
                };
                let bridge = self.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let mut shutdown = bridge.shutdown.clone();
                    let outcome = tokio::select! {
                        outcome = crypto.decrypt_when_key_arrives(&event, &room, KEY_PATIENCE) => outcome,
                        // Stays pending: the next start tries again.
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    };
                    let dispatched = match outcome {
                        Decryption::Decrypted(clear) => {
                            metrics::counter!("passerelle_events_decrypted_total").increment(1);
                            bridge.dispatch_boxed(clear, true).await
                        }
                        Decryption::MissingKey => {
                            bridge
                                .undecryptable(
                                    &room_id,
                                    &event_id,
                                    "its key never reached the bridge",
                                )
                                .await;
                            Ok(Dispatched::Inline)
                        }
                        Decryption::Failed(reason) => {
                            bridge.undecryptable(&room_id, &event_id, &reason).await;
                            Ok(Dispatched::Inline)
                        }
                    };
                    match dispatched {
                        Ok(Dispatched::Inline) => {
                            if let Err(e) = bridge.store.finish_pending(&event_id, now_ms()).await {
                                tracing::warn!(event_id, error = %e, "could not finish a pending event");
                            }
                        }
                        Ok(Dispatched::Queued) => {}
                        Err(e) => {
                            tracing::warn!(event_id, error = %e, "a decrypted event stays pending until the next start");
                        }
                    }
                });
                Ok(Dispatched::Queued)
            }
        }
    }

    /// A message the bot could not decrypt: its sender is told.
    async fn undecryptable(&self, room_id: &str, event_id: &str, reason: &str) {
        metrics::counter!("passerelle_events_undecryptable_total").increment(1);
        tracing::info!(
            room_id,
            event_id,
            "an encrypted event could not be decrypted"
        );
        let text = format!("I could not decrypt this message ({reason}), so it was not handled.");
        self.notice(room_id, &text, Some(event_id)).await;
    }

    /// A notice about encryption, at most once per room every ten minutes.
    async fn tell_once(&self, room_id: &str, event_id: &str, text: &str) {
        let now = std::time::Instant::now();
        {
            let mut told = self.encryption_notices.lock().expect("notice lock");
            if told
                .get(room_id)
                .is_some_and(|at| now.duration_since(*at) < Duration::from_secs(600))
            {
                return;
            }
            told.insert(room_id.to_owned(), now);
        }
        metrics::counter!("passerelle_encrypted_events_refused_total").increment(1);
        self.notice(room_id, text, Some(event_id)).await;
    }

    /// An encrypted event in a portal or a management room: say plainly that
    /// the bridge cannot read it (at most once per room every ten minutes).
    async fn cannot_decrypt(
        &self,
        room_id: &str,
        sender: &str,
        is_portal: bool,
        event_id: &str,
    ) -> anyhow::Result<()> {
        let management = self
            .store
            .matrix_user(sender)
            .await?
            .and_then(|u| u.management_room)
            .is_some_and(|r| r == room_id);
        if !is_portal && !management {
            return Ok(());
        }
        self.tell_once(
            room_id,
            event_id,
            "This room is encrypted and encryption is off on this bridge, so I cannot read \
             anything sent here and nothing is bridged. Use an unencrypted room (encryption \
             cannot be turned off in an existing room), or ask the bridge admin to turn on \
             `encryption.allow`.",
        )
        .await;
        Ok(())
    }

    /// The sender's display name in the room, else the localpart.
    async fn display_name(&self, room_id: &str, user_id: &str) -> String {
        let key = (room_id.to_owned(), user_id.to_owned());
        if let Some(name) = self.display_names.lock().expect("name lock").get(&key) {
            return name.clone();
        }
        let name = self.fetch_display_name(room_id, user_id).await;
        self.display_names
            .lock()
            .expect("name lock")
            .insert(key, name.clone());
        name
    }

    /// Asks the homeserver (once per sender and room, see `display_name`).
    async fn fetch_display_name(&self, room_id: &str, user_id: &str) -> String {
        let fallback = crate::mxid::localpart_of(user_id)
            .unwrap_or(user_id)
            .to_owned();
        let Ok(room) = ruma::RoomId::parse(room_id) else {
            return fallback;
        };
        match self.bot.state_event(&room, "m.room.member", user_id).await {
            Ok(Some(member)) => member
                .get("displayname")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or(fallback),
            _ => fallback,
        }
    }

    /// A notice text when the network cannot do this at all.
    fn unsupported(&self, network_id: &str, kind: &MatrixEventKind) -> Option<String> {
        let info = self.info(network_id)?;
        let caps = &info.capabilities;
        let what = match kind {
            MatrixEventKind::Edit { .. } if !caps.edits => "edits",
            MatrixEventKind::Redaction { .. } if !caps.redactions => "deleting messages",
            MatrixEventKind::Reaction { .. } | MatrixEventKind::ReactionRedaction { .. }
                if !caps.reactions =>
            {
                "reactions"
            }
            MatrixEventKind::Message(c) if c.media.is_some() && !caps.media => "files",
            _ => return None,
        };
        Some(format!(
            "{} does not support {what}; it was not bridged.",
            info.display_name
        ))
    }

    /// The bridged message behind an event id, if it belongs to this portal
    /// (a relation must never reach into another chat).
    async fn bridged_message(
        &self,
        portal: &PortalRow,
        event_id: Option<&str>,
    ) -> anyhow::Result<Option<MessageRow>> {
        let Some(event_id) = event_id else {
            return Ok(None);
        };
        Ok(self
            .store
            .message_by_event(event_id)
            .await?
            .filter(|m| m.portal == portal.key))
    }

    async fn remote_id_of(
        &self,
        portal: &PortalRow,
        event_id: Option<&str>,
    ) -> anyhow::Result<Option<(RemoteMessageId, String)>> {
        Ok(self
            .bridged_message(portal, event_id)
            .await?
            .map(|m| (m.remote_id, m.event_id)))
    }

    /// Converts a Matrix event for its module.
    async fn convert(
        &self,
        portal: &PortalRow,
        event_type: &str,
        event: &Value,
    ) -> anyhow::Result<Converted> {
        let content = event.get("content").cloned().unwrap_or(Value::Null);
        let sender = str_at(event, "/sender").unwrap_or_default();
        let converted = match event_type {
            "m.sticker" => {
                let mut sticker = content.clone();
                sticker["msgtype"] = Value::from("m.image");
                match message_content(&sticker) {
                    Some(message) => Some((
                        MatrixEventKind::Message(message),
                        Record::Message {
                            reply_to_event: None,
                            thread_root_event: None,
                        },
                    )),
                    None => {
                        return Ok(Converted::Refuse(
                            "This sticker has no file to send.".to_owned(),
                        ));
                    }
                }
            }
            "m.room.message" => {
                let relates = content.get("m.relates_to");
                if relates
                    .and_then(|r| r.get("rel_type"))
                    .and_then(Value::as_str)
                    == Some("m.replace")
                {
                    let target = relates
                        .and_then(|r| r.get("event_id"))
                        .and_then(Value::as_str);
                    let Some(original) = self.bridged_message(portal, target).await? else {
                        return Ok(Converted::Refuse(
                            "The original message was not bridged (or is older than the \
                             retention period), so this edit was not sent."
                                .to_owned(),
                        ));
                    };
                    if original.sender_mxid != sender {
                        return Ok(Converted::Refuse(
                            "Only the author of a message can edit it.".to_owned(),
                        ));
                    }
                    let target = original.remote_id;
                    let new_content = content.get("m.new_content").unwrap_or(&content);
                    let Some(message) = message_content(new_content) else {
                        return Ok(Converted::Ignore);
                    };
                    Some((
                        MatrixEventKind::Edit {
                            target,
                            content: message,
                        },
                        Record::Nothing,
                    ))
                } else {
                    let Some(mut message) = message_content(&content) else {
                        let msgtype = str_at(&content, "/msgtype").unwrap_or("(none)");
                        return Ok(Converted::Refuse(format!(
                            "Messages of type {msgtype} cannot be bridged."
                        )));
                    };
                    let reply = relates
                        .and_then(|r| r.pointer("/m.in_reply_to/event_id"))
                        .and_then(Value::as_str);
                    let is_thread = relates
                        .and_then(|r| r.get("rel_type"))
                        .and_then(Value::as_str)
                        == Some("m.thread");
                    let thread_root = if is_thread {
                        relates
                            .and_then(|r| r.get("event_id"))
                            .and_then(Value::as_str)
                    } else {
                        None
                    };
                    let is_fallback = relates
                        .and_then(|r| r.get("is_falling_back"))
                        .and_then(Value::as_bool)
                        == Some(true);
                    let reply = if is_thread && is_fallback {
                        None
                    } else {
                        reply
                    };
                    let reply = self.remote_id_of(portal, reply).await?;
                    let thread = self.remote_id_of(portal, thread_root).await?;
                    message.reply_to = reply.as_ref().map(|(id, _)| id.clone());
                    message.thread_root = thread.as_ref().map(|(id, _)| id.clone());
                    Some((
                        MatrixEventKind::Message(message),
                        Record::Message {
                            reply_to_event: reply.map(|(_, e)| e),
                            thread_root_event: thread.map(|(_, e)| e),
                        },
                    ))
                }
            }
            "m.reaction" => {
                let target = str_at(&content, "/m.relates_to/event_id");
                let Some(key) = str_at(&content, "/m.relates_to/key").map(str::to_owned) else {
                    return Ok(Converted::Ignore);
                };
                let Some((target, _)) = self.remote_id_of(portal, target).await? else {
                    return Ok(Converted::Ignore);
                };
                Some((
                    MatrixEventKind::Reaction {
                        target: target.clone(),
                        key: key.clone(),
                    },
                    Record::Reaction { target, key },
                ))
            }
            "m.room.redaction" => {
                let redacts = event
                    .get("redacts")
                    .and_then(Value::as_str)
                    .or_else(|| str_at(&content, "/redacts"));
                let Some(redacts) = redacts else {
                    return Ok(Converted::Ignore);
                };
                if let Some(message) = self.bridged_message(portal, Some(redacts)).await? {
                    Some((
                        MatrixEventKind::Redaction {
                            target: message.remote_id.clone(),
                        },
                        Record::RemoveMessage {
                            target: message.remote_id,
                        },
                    ))
                } else if let Some(reaction) = self
                    .store
                    .reaction_by_event(redacts)
                    .await?
                    .filter(|r| r.portal == portal.key)
                {
                    Some((
                        MatrixEventKind::ReactionRedaction {
                            target: reaction.target_remote_id,
                            key: reaction.key,
                        },
                        Record::RemoveReaction {
                            reaction_event: reaction.event_id,
                        },
                    ))
                } else {
                    None
                }
            }
            "m.room.member" => {
                let state_key = str_at(event, "/state_key").unwrap_or_default();
                let sender = str_at(event, "/sender").unwrap_or_default();
                let membership = str_at(&content, "/membership").unwrap_or_default();
                match membership {
                    "join" if state_key == sender => Some((MatrixEventKind::Join, Record::Nothing)),
                    "leave" if state_key == sender => {
                        Some((MatrixEventKind::Leave, Record::Nothing))
                    }
                    "leave" | "ban" => {
                        let Some(ghost) = self.store.ghost_by_mxid(state_key).await? else {
                            return Ok(Converted::Ignore);
                        };
                        let target = ghost.remote_id;
                        let reason = str_at(&content, "/reason").map(str::to_owned);
                        let kind = if membership == "ban" {
                            MatrixEventKind::Ban { target, reason }
                        } else {
                            MatrixEventKind::Kick { target, reason }
                        };
                        Some((kind, Record::Nothing))
                    }
                    _ => None,
                }
            }
            "m.room.topic" => {
                let topic = str_at(&content, "/topic").unwrap_or_default().to_owned();
                Some((MatrixEventKind::Topic { topic }, Record::Nothing))
            }
            "m.room.power_levels" => {
                let level_of = |levels: Option<&Value>, user: &str| {
                    levels
                        .and_then(|l| l.get("users"))
                        .and_then(|u| u.get(user))
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                };
                let before = event.pointer("/unsigned/prev_content");
                let mut users: Vec<String> = Vec::new();
                for levels in [Some(&content), before] {
                    if let Some(map) = levels
                        .and_then(|l| l.get("users"))
                        .and_then(Value::as_object)
                    {
                        users.extend(map.keys().filter(|u| self.is_our_user(u)).cloned());
                    }
                }
                users.sort();
                users.dedup();
                let mut changes = Vec::new();
                for user in users {
                    let (old, new) = (level_of(before, &user), level_of(Some(&content), &user));
                    if old != new
                        && let Some(ghost) = self.store.ghost_by_mxid(&user).await?
                        && ghost.network == portal.key.network
                    {
                        changes.push((ghost.remote_id, new));
                    }
                }
                (!changes.is_empty())
                    .then_some((MatrixEventKind::PowerLevels { changes }, Record::Nothing))
            }
            _ => None,
        };
        Ok(match converted {
            Some(event) => Converted::Event(Box::new(event)),
            None => Converted::Ignore,
        })
    }

    /// Runs a queued Matrix event through its module, records the mapping,
    /// and tells the sender when it could not be delivered.
    pub(crate) async fn deliver_matrix(self: &Arc<Self>, job: MatrixJob) {
        let network_id = job.event.portal.network.as_str().to_owned();
        let Some(network) = self.network(&network_id).cloned() else {
            tracing::warn!(network = %network_id, "a portal of a network that is not enabled");
            self.notice(
                &job.room_id,
                &format!("⚠️ Not delivered: the {network_id} bridge is not enabled."),
                Some(&job.event.event_id),
            )
            .await;
            self.finish(&job).await;
            return;
        };
        let kind = job.event.kind.name();
        metrics::counter!("passerelle_events_in_total", "network" => network_id.clone(), "direction" => "matrix_to_remote")
            .increment(1);
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match network.handle_matrix(job.event.clone()).await {
                Err(e)
                    if e.kind == ErrorKind::Retryable
                        && attempt < MODULE_ATTEMPTS
                        && !self.is_shutting_down() =>
                {
                    let delay = e
                        .retry_after
                        .unwrap_or(Duration::from_millis(500 * 2u64.pow(attempt)));
                    tracing::info!(network = %network_id, kind, attempt, "module asked to retry");
                    tokio::time::sleep(delay.min(Duration::from_secs(30))).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(delivered) => {
                metrics::counter!("passerelle_events_out_total", "network" => network_id, "direction" => "matrix_to_remote")
                    .increment(1);
                if let Err(e) = self.record(&job, delivered.remote_id).await {
                    tracing::error!(error = %e, "could not record the message map");
                }
            }
            Err(e) if e.kind == ErrorKind::Retryable && self.is_shutting_down() => {
                // Still pending: delivered at the next start.
                tracing::info!(network = %network_id, kind, "left for the next start");
                return;
            }
            Err(e) => {
                metrics::counter!("passerelle_events_failed_total", "network" => network_id.clone(), "direction" => "matrix_to_remote")
                    .increment(1);
                tracing::warn!(network = %network_id, kind, error = %e, "Matrix event not delivered");
                let display = self
                    .info(&network_id)
                    .map(|i| i.display_name.clone())
                    .unwrap_or(network_id);
                let text = format!("⚠️ Not delivered to {display}: {}", e.message);
                self.notice(&job.room_id, &text, Some(&job.event.event_id))
                    .await;
            }
        }
        self.finish(&job).await;
    }

    /// Marks a pending job's event handled. A failure here only means the
    /// event is delivered again after a restart.
    async fn finish(&self, job: &MatrixJob) {
        if job.pending
            && let Err(e) = self
                .store
                .finish_pending(&job.event.event_id, now_ms())
                .await
        {
            tracing::error!(error = %e, "could not mark an event handled");
        }
    }

    async fn record(
        &self,
        job: &MatrixJob,
        remote_id: Option<RemoteMessageId>,
    ) -> anyhow::Result<()> {
        let portal = &job.event.portal;
        match &job.record {
            Record::Message {
                reply_to_event,
                thread_root_event,
            } => {
                if let Some(remote_id) = remote_id {
                    self.store
                        .insert_message(&MessageRow {
                            portal: portal.clone(),
                            remote_id,
                            part: 0,
                            room_id: job.room_id.clone(),
                            event_id: job.event.event_id.clone(),
                            sender_mxid: job.event.sender.mxid.clone(),
                            ts: job.event.ts as i64,
                            reply_to_event: reply_to_event.clone(),
                            thread_root_event: thread_root_event.clone(),
                        })
                        .await?;
                }
            }
            Record::Reaction { target, key } => {
                self.store
                    .insert_reaction(&ReactionRow {
                        portal: portal.clone(),
                        target_remote_id: target.clone(),
                        sender: job.event.sender.mxid.clone(),
                        key: key.clone(),
                        event_id: job.event.event_id.clone(),
                        remote_id: remote_id.map(|id| id.to_string()),
                        ts: job.event.ts as i64,
                    })
                    .await?;
            }
            Record::RemoveMessage { target } => self.store.delete_message(portal, target).await?,
            Record::RemoveReaction { reaction_event } => {
                self.store.delete_reaction_by_event(reaction_event).await?
            }
            Record::Nothing => {}
        }
        Ok(())
    }

    /// The bot was invited, or its membership changed.
    async fn handle_bot_membership(
        self: &Arc<Self>,
        event: &Value,
        sender: &str,
        room_id: &str,
    ) -> anyhow::Result<()> {
        if str_at(event, "/content/membership") != Some("invite") {
            return Ok(());
        }
        let room = ruma::RoomId::parse(room_id)?;
        if self.permissions.level(sender) < PermissionLevel::User {
            tracing::info!(
                room_id,
                "refusing an invite from a user without the user permission"
            );
            self.bot.leave(&room).await?;
            return Ok(());
        }
        self.bot.join(&ruma::RoomOrAliasId::parse(room_id)?).await?;
        let is_direct = event.pointer("/content/is_direct").and_then(Value::as_bool) == Some(true);
        if is_direct {
            let mut user = self.store.matrix_user(sender).await?.unwrap_or_else(|| {
                crate::store::MatrixUserRow {
                    mxid: sender.to_owned(),
                    management_room: None,
                    metadata: serde_json::json!({}),
                    created_ts: now_ms(),
                }
            });
            user.management_room = Some(room_id.to_owned());
            self.store.upsert_matrix_user(&user).await?;
            self.notice(
                room_id,
                "Hello! I am the Passerelle bridge bot. This is your management room: send `help` to see what I can do.",
                None,
            )
            .await;
        }
        Ok(())
    }

    /// A Matrix user invited one of our ghosts: in a portal the ghost just
    /// joins; elsewhere the module may turn the room into a private chat.
    async fn handle_ghost_invite(
        self: &Arc<Self>,
        event: &Value,
        sender: &str,
        room_id: &str,
        ghost: &str,
    ) -> anyhow::Result<()> {
        let intent = self.intent(ghost)?;
        let room = ruma::RoomId::parse(room_id)?;
        if self.store.portal_by_room(room_id).await?.is_some() {
            intent.join(&ruma::RoomOrAliasId::parse(room_id)?).await?;
            return Ok(());
        }
        let found = self.module_of_ghost(ghost);
        let info = match (
            &found,
            self.permissions.level(sender) >= PermissionLevel::User,
        ) {
            (Some((network, remote)), true) => network.private_chat(sender, remote).await?,
            _ => None,
        };
        let Some(mut info) = info else {
            tracing::info!(room_id, "declining a ghost invite");
            intent.leave(&room).await?;
            return Ok(());
        };
        let is_direct = event.pointer("/content/is_direct").and_then(Value::as_bool) == Some(true);
        info.kind = if is_direct {
            passerelle_api::PortalKind::Dm
        } else {
            info.kind
        };
        intent.join(&ruma::RoomOrAliasId::parse(room_id)?).await?;
        self.mark_joined(room_id, ghost);
        self.store
            .upsert_portal(&crate::portal::portal_row(
                &info,
                room_id,
                serde_json::json!({"private_chat_with": ghost}),
            ))
            .await?;
        tracing::info!(portal = %info.key, room_id, "private chat portal created from an invite");
        Ok(())
    }

    /// The module and remote user behind a ghost's user id.
    fn module_of_ghost(
        &self,
        ghost: &str,
    ) -> Option<(
        Arc<dyn passerelle_api::Network>,
        passerelle_api::RemoteUserId,
    )> {
        let local = crate::mxid::unescape_localpart(crate::mxid::localpart_of(ghost)?)?;
        let (id, _) = self.network_for_localpart(&local)?;
        let network = self.network(id)?.clone();
        let remote = network.parse_ghost_localpart(&local)?;
        Some((network, remote))
    }

    /// `m.typing` snapshots become started/stopped typing events for portals.
    pub(crate) fn handle_ephemeral(self: &Arc<Self>, event: Value) {
        if str_at(&event, "/type") != Some("m.typing") {
            return;
        }
        let Some(room_id) = str_at(&event, "/room_id").map(str::to_owned) else {
            return;
        };
        let now: HashSet<String> = event
            .pointer("/content/user_ids")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .filter(|u| !self.is_our_user(u))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let changes: Vec<(String, bool)> = {
            let mut typing = self.typing.lock().expect("typing lock");
            let before = typing.entry(room_id.clone()).or_default();
            let started = now.difference(before).map(|u| (u.clone(), true));
            let stopped = before.difference(&now).map(|u| (u.clone(), false));
            let changes = started.chain(stopped).collect();
            *before = now;
            changes
        };
        if changes.is_empty() {
            return;
        }
        let bridge = self.clone();
        tokio::spawn(async move {
            let Ok(Some(portal)) = bridge.store.portal_by_room(&room_id).await else {
                return;
            };
            let Some(info) = bridge.info(portal.key.network.as_str()) else {
                return;
            };
            if !info.capabilities.typing {
                return;
            }
            for (user, typing) in changes {
                let Ok(Some(login)) = bridge.store.login(&portal.key.network, &user).await else {
                    continue; // typing through the relay would show the bot typing
                };
                let job = MatrixJob {
                    event: MatrixEvent {
                        portal: portal.key.clone(),
                        sender: MatrixSender {
                            display_name: user.clone(),
                            level: bridge.permissions.level(&user),
                            mxid: user,
                            avatar_url: None,
                        },
                        via: Via::Login {
                            login_id: login.login_id,
                        },
                        event_id: String::new(),
                        ts: now_ms() as u64,
                        kind: MatrixEventKind::Typing { typing },
                    },
                    room_id: room_id.clone(),
                    record: Record::Nothing,
                    pending: false,
                };
                bridge.push_job(portal.key.clone(), Job::Matrix { job: Box::new(job) });
            }
        });
    }
}

/// `m.room.message` content to [`MessageContent`]; `None` for unknown types.
pub(crate) fn message_content(content: &Value) -> Option<MessageContent> {
    let msgtype = str_at(content, "/msgtype")?;
    let body = strip_reply_fallback(str_at(content, "/body").unwrap_or_default()).to_owned();
    let html = (str_at(content, "/format") == Some("org.matrix.custom.html"))
        .then(|| str_at(content, "/formatted_body").map(strip_html_reply_fallback))
        .flatten();
    let mut message = MessageContent {
        body,
        html,
        ..MessageContent::default()
    };
    match msgtype {
        "m.text" => {}
        "m.notice" => message.kind = MessageKind::Notice,
        "m.emote" => message.kind = MessageKind::Emote,
        "m.image" | "m.file" | "m.audio" | "m.video" => {
            let mimetype = str_at(content, "/info/mimetype");
            // In an encrypted room the file is encrypted: its reference
            // carries the key, and downloads through the runtime decrypt it.
            let url = match (str_at(content, "/url"), content.get("file")) {
                (Some(url), _) => url.to_owned(),
                (None, Some(file)) => crate::media::encrypted_ref(file, mimetype)?,
                (None, None) => return None,
            };
            message.media = Some(RemoteMedia {
                filename: str_at(content, "/filename")
                    .unwrap_or(&message.body)
                    .to_owned(),
                mime_type: mimetype.map(str::to_owned),
                size: content.pointer("/info/size").and_then(Value::as_u64),
                mxc: Some(url),
                remote_ref: None,
            });
        }
        _ => return None,
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reply_fallbacks_are_stripped() {
        assert_eq!(
            strip_reply_fallback("> <@a:b> hi\n> more\n\nanswer"),
            "answer"
        );
        assert_eq!(
            strip_reply_fallback("plain\n> not a fallback"),
            "plain\n> not a fallback"
        );
        assert_eq!(
            strip_html_reply_fallback(
                "<mx-reply><blockquote>x</blockquote></mx-reply><b>answer</b>"
            ),
            "<b>answer</b>"
        );
    }

    #[test]
    fn message_content_table() {
        let text = message_content(&json!({"msgtype": "m.text", "body": "hi"})).unwrap();
        assert_eq!(
            (text.kind, text.body.as_str(), text.html),
            (MessageKind::Text, "hi", None)
        );
        let emote = message_content(&json!({"msgtype": "m.emote", "body": "waves",
            "format": "org.matrix.custom.html", "formatted_body": "<i>waves</i>"}))
        .unwrap();
        assert_eq!(emote.kind, MessageKind::Emote);
        assert_eq!(emote.html.as_deref(), Some("<i>waves</i>"));
        let image = message_content(
            &json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://s/id",
            "info": {"mimetype": "image/png", "size": 12}}),
        )
        .unwrap();
        let media = image.media.unwrap();
        assert_eq!(
            (media.mxc.as_deref(), media.size, media.filename.as_str()),
            (Some("mxc://s/id"), Some(12), "cat.png")
        );
        assert!(message_content(&json!({"msgtype": "m.location", "body": "x"})).is_none());
        assert!(message_content(&json!({"body": "no msgtype"})).is_none());
    }

    #[test]
    fn a_file_of_an_encrypted_room_becomes_a_reference_with_its_key() {
        let (_, mut file) = crate::media::encrypt_file(b"minutes").unwrap();
        file["url"] = json!("mxc://s/enc");
        let content = json!({"msgtype": "m.file", "body": "minutes.txt",
                             "info": {"mimetype": "text/plain"}, "file": file});
        let media = message_content(&content).unwrap().media.unwrap();
        let reference = media.mxc.unwrap();
        assert!(reference.starts_with("mxc://s/enc#"), "{reference}");
        assert_eq!(media.mime_type.as_deref(), Some("text/plain"));
        // Neither a url nor a usable file: not a message we can bridge.
        let broken = json!({"msgtype": "m.file", "body": "x", "file": {"url": "mxc://s/enc"}});
        assert!(message_content(&broken).is_none());
    }
}
