//! Portals: one ordered queue per portal (both directions), portals in
//! parallel; creating portal rooms; bridging remote events into Matrix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use passerelle_api::{
    BridgeError, MessageContent, MessageKind, Pending, PortalInfo, PortalKey, PortalKind,
    RemoteEvent, RemoteEventKind,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::bridge::{Bridge, now_ms};
use crate::inbound::MatrixJob;
use crate::matrix::content;
use crate::store::{MessageRow, PortalRow, ReactionRow};

/// A worker with nothing to do for this long exits; the next job starts a new one.
const IDLE_WORKER: Duration = Duration::from_secs(300);

pub(crate) enum Job {
    Remote {
        event: Box<RemoteEvent>,
        done: oneshot::Sender<Result<Option<String>, BridgeError>>,
        /// Its row in the remote spool, deleted once delivery is over.
        spool: Option<i64>,
    },
    Matrix {
        job: Box<MatrixJob>,
    },
}

#[derive(Default)]
pub(crate) struct PortalQueues {
    senders: Mutex<HashMap<PortalKey, mpsc::UnboundedSender<Job>>>,
    depth: AtomicI64,
    /// Worker tasks alive; shutdown waits for them.
    active: AtomicI64,
    closed: AtomicBool,
    /// Serialises portal room creation so two events cannot create two rooms.
    pub(crate) create_lock: tokio::sync::Mutex<()>,
}

impl PortalQueues {
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed)
    }

    fn add_depth(&self, delta: i64) {
        let now = self.depth.fetch_add(delta, Ordering::Relaxed) + delta;
        metrics::gauge!("passerelle_queue_depth").set(now as f64);
    }

    pub fn active_workers(&self) -> i64 {
        self.active.load(Ordering::SeqCst)
    }

    /// Stops accepting jobs; workers finish what they hold and exit.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.senders.lock().expect("queue lock").clear();
    }
}

/// A plain 500 repeated this often is a problem with this event, not an
/// outage: give up on it instead of blocking its portal for ever.
const POISON_ATTEMPTS: u32 = 10;

/// A 500 from the homeserver (outages show as connection errors, 502-504, 429).
fn is_internal_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<crate::matrix::Error>()
            .is_some_and(|e| e.status() == Some(500))
    })
}

/// Whether an error is worth retrying (homeserver down or overloaded,
/// database connection lost) rather than reporting.
pub(crate) fn is_transient(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<crate::matrix::Error>() {
            return e.is_transient();
        }
        if let Some(e) = cause.downcast_ref::<crate::store::Error>() {
            return e.is_transient();
        }
        false
    })
}

impl Bridge {
    /// Queues a job on its portal's ordered queue. Returns false when the
    /// bridge is shutting down (the job's `done` is dropped).
    pub(crate) fn push_job(self: &Arc<Self>, key: PortalKey, job: Job) -> bool {
        if self.queues.closed.load(Ordering::SeqCst) {
            return false;
        }
        let mut senders = self.queues.senders.lock().expect("queue lock");
        self.queues.add_depth(1);
        let job = match senders.get(&key) {
            Some(tx) => match tx.send(job) {
                Ok(()) => return true,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(job).expect("fresh channel");
        senders.insert(key.clone(), tx);
        let guard = self.task_guard();
        self.queues.active.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(worker(self.clone(), key, rx, guard));
        true
    }

    /// Queues a remote event on its portal; the future resolves once it is in
    /// Matrix. `spool`: its row in the remote spool, if it has one.
    pub(crate) fn push_remote(self: &Arc<Self>, event: RemoteEvent, spool: Option<i64>) -> Pending {
        let (done, wait) = oneshot::channel();
        let queued = self.push_job(
            event.portal.clone(),
            Job::Remote {
                event: Box::new(event),
                done,
                spool,
            },
        );
        Box::pin(async move {
            if !queued {
                return Err(BridgeError::retryable("the bridge is shutting down"));
            }
            wait.await
                .unwrap_or_else(|_| Err(BridgeError::retryable("the bridge is shutting down")))
        })
    }

    /// Queues the events left in the remote spool at the last stop, before
    /// the modules start, so they come first in their portals.
    pub(crate) async fn replay_spool(self: &Arc<Self>) -> anyhow::Result<usize> {
        let rows = self.store.spooled().await?;
        let mut queued = 0;
        for row in rows {
            if self.network(row.network.as_str()).is_none() {
                tracing::warn!(network = %row.network, seq = row.seq, "a spooled event waits for its module to be enabled");
                continue;
            }
            match serde_json::from_str::<RemoteEvent>(&row.event) {
                Ok(event) => {
                    drop(self.push_remote(event, Some(row.seq)));
                    queued += 1;
                }
                Err(e) => {
                    tracing::warn!(seq = row.seq, error = %e, "dropping an unreadable spooled event");
                    self.store.spool_remove(row.seq).await?;
                }
            }
        }
        Ok(queued)
    }

    /// Remote -> Matrix with the portal queue's retry: a homeserver outage
    /// delays delivery, it does not lose it.
    async fn deliver_remote(
        self: &Arc<Self>,
        event: RemoteEvent,
    ) -> Result<Option<String>, BridgeError> {
        let network = event.portal.network.as_str().to_owned();
        let kind = event.kind_name();
        metrics::counter!("passerelle_events_in_total", "network" => network.clone(), "direction" => "remote_to_matrix")
            .increment(1);
        let mut delay = Duration::from_millis(500);
        let mut server_errors = 0;
        loop {
            match self.bridge_remote_event(&event).await {
                Ok(event_id) => {
                    metrics::counter!("passerelle_events_out_total", "network" => network, "direction" => "remote_to_matrix")
                        .increment(1);
                    return Ok(event_id);
                }
                Err(e)
                    if is_transient(&e)
                        && !self.is_shutting_down()
                        && !(is_internal_error(&e) && server_errors >= POISON_ATTEMPTS) =>
                {
                    if is_internal_error(&e) {
                        server_errors += 1;
                    }
                    tracing::warn!(portal = %event.portal, kind, error = %e, retry_in = ?delay, "homeserver or database unavailable, will retry");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
                Err(e) => {
                    metrics::counter!("passerelle_events_failed_total", "network" => network, "direction" => "remote_to_matrix")
                        .increment(1);
                    tracing::warn!(portal = %event.portal, kind, error = %e, "remote event not bridged");
                    return Err(match e.downcast::<BridgeError>() {
                        Ok(be) => be,
                        Err(e) if is_transient(&e) => {
                            BridgeError::retryable("homeserver unavailable")
                        }
                        Err(_) => BridgeError::permanent("could not bridge the event to Matrix"),
                    });
                }
            }
        }
    }

    /// The portal of a remote chat, creating its room when the module wants it
    /// bridged. `None`: not bridged.
    pub(crate) async fn ensure_portal(
        self: &Arc<Self>,
        key: &PortalKey,
    ) -> anyhow::Result<Option<PortalRow>> {
        if let Some(row) = self.store.portal(key).await?
            && row.room_id.is_some()
        {
            return Ok(Some(row));
        }
        let network = self
            .network(key.network.as_str())
            .with_context(|| format!("no module for network {}", key.network))?
            .clone();
        match network.portal_info(key).await? {
            Some(info) => self.ensure_portal_with(info).await,
            None => Ok(None),
        }
    }

    /// Creates the portal room for `info` unless it exists.
    pub(crate) async fn ensure_portal_with(
        self: &Arc<Self>,
        info: PortalInfo,
    ) -> anyhow::Result<Option<PortalRow>> {
        let _creating = self.queues.create_lock.lock().await;
        if let Some(row) = self.store.portal(&info.key).await?
            && row.room_id.is_some()
        {
            return Ok(Some(row));
        }
        let room_id = self.create_portal_room(&info).await?;
        let row = portal_row(&info, &room_id, json!({}));
        self.store.upsert_portal(&row).await?;
        tracing::info!(portal = %info.key, room_id, "portal created");
        Ok(Some(row))
    }

    /// Links an existing Matrix room to a remote chat (the `link` command).
    pub(crate) async fn link_room(
        self: &Arc<Self>,
        room_id: &str,
        info: PortalInfo,
    ) -> anyhow::Result<()> {
        let _creating = self.queues.create_lock.lock().await;
        if let Some(existing) = self.store.portal(&info.key).await?
            && let Some(room) = existing.room_id.filter(|r| r != room_id)
        {
            anyhow::bail!(BridgeError::permanent(format!(
                "{} is already bridged to another room ({room})",
                info.key.id
            )));
        }
        if let Some(existing) = self.store.portal_by_room(room_id).await?
            && existing.key != info.key
        {
            anyhow::bail!(BridgeError::permanent(format!(
                "this room is already bridged to {}; unlink it first",
                existing.key
            )));
        }
        let room = ruma::RoomId::parse(room_id).context("room id")?;
        let encrypted = self
            .bot
            .state_event(&room, "m.room.encryption", "")
            .await?
            .is_some();
        let network = info.key.network.as_str();
        let policy = self.config.portal_encryption(network).unwrap_or_default();
        if encrypted && (self.crypto.is_none() || !policy.allow) {
            anyhow::bail!(BridgeError::permanent(format!(
                "this room is encrypted, and this bridge does not bridge encrypted {network} rooms \
                 (bridges.{network}.encryption.allow)"
            )));
        }
        if !encrypted && policy.require {
            anyhow::bail!(BridgeError::permanent(
                "this bridge only bridges encrypted rooms: turn encryption on in this room first"
            ));
        }
        for (event_type, content) in self.bridge_state(&info) {
            let sent = self
                .bot
                .send_state(&room, event_type, &state_key(&info.key), &content, None)
                .await;
            if let Err(e) = sent {
                if e.errcode() == Some("M_FORBIDDEN") {
                    anyhow::bail!(BridgeError::permanent(
                        "I cannot set room state here: give the bridge bot power level 100 in this room first"
                    ));
                }
                return Err(e.into());
            }
        }
        if info.kind == PortalKind::Broadcast {
            self.make_read_only(&room).await?;
        }
        self.store
            .upsert_portal(&portal_row(&info, room_id, json!({"linked": true})))
            .await?;
        Ok(())
    }

    /// A linked broadcast chat: only users at the moderator level (the
    /// bridge, room admins, the ghosts that post) may send messages.
    async fn make_read_only(&self, room: &ruma::RoomId) -> anyhow::Result<()> {
        let mut power = self
            .bot
            .state_event(room, "m.room.power_levels", "")
            .await?
            .unwrap_or_else(|| json!({}));
        let users_default = power["users_default"].as_i64().unwrap_or(0);
        if power["events_default"].as_i64().unwrap_or(0) > users_default {
            return Ok(());
        }
        power["events_default"] = json!(users_default.max(0) + 50);
        self.bot
            .send_state(room, "m.room.power_levels", "", &power, None)
            .await?;
        Ok(())
    }

    /// Raises `ghost` to the level that may post in a read-only room.
    async fn let_post(&self, room: &ruma::RoomId, ghost: &str) -> anyhow::Result<()> {
        let mut power = self
            .bot
            .state_event(room, "m.room.power_levels", "")
            .await?
            .unwrap_or_else(|| json!({}));
        let needed = power["events_default"].as_i64().unwrap_or(0);
        let has = power["users"][ghost]
            .as_i64()
            .unwrap_or_else(|| power["users_default"].as_i64().unwrap_or(0));
        if has >= needed {
            return Ok(());
        }
        if !power["users"].is_object() {
            power["users"] = json!({});
        }
        power["users"][ghost] = json!(needed);
        self.bot
            .send_state(room, "m.room.power_levels", "", &power, None)
            .await?;
        Ok(())
    }

    /// `m.bridge` and `uk.half-shot.bridge` state for a portal.
    fn bridge_state(&self, info: &PortalInfo) -> Vec<(&'static str, Value)> {
        let display = self
            .info(info.key.network.as_str())
            .map(|i| i.display_name.clone())
            .unwrap_or_else(|| info.key.network.to_string());
        let bridge_info = content::BridgeInfo::new(
            self.bot.user_id().to_owned(),
            content::BridgeSection::new(info.key.network.as_str(), Some(display)),
            content::BridgeSection::new(info.key.id.clone(), info.name.clone()),
        );
        let state = bridge_info.to_content();
        content::BRIDGE_EVENT_TYPES
            .iter()
            .map(|t| (*t, state.clone()))
            .collect()
    }

    async fn create_portal_room(&self, info: &PortalInfo) -> anyhow::Result<String> {
        let version = self
            .matrix
            .default_room_version()
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut power = content::PortalPowerLevels::new(
            self.bot.user_id().to_owned(),
            content::creators_are_privileged(&version),
        );
        power.broadcast = info.kind == PortalKind::Broadcast;
        for admin in self.permissions.admins() {
            if let Ok(admin) = ruma::UserId::parse(admin) {
                // Bridge admins moderate the portals the bridge creates.
                power.users.insert(admin, 100);
            }
        }
        let mut options = crate::matrix::CreateRoom::new();
        options.name = info.name.clone();
        options.topic = info.topic.clone();
        options.alias_localpart = info.alias_localpart.clone();
        let mut invite: Vec<&str> = info.invite.iter().map(String::as_str).collect();
        if info.alias_localpart.is_none() && invite.is_empty() {
            // A room nobody can find by alias and nobody is invited to
            // (a Telegram group bridged automatically, say): the bridge
            // admins get an invitation so it is reachable at all.
            invite.extend(self.permissions.admins());
        }
        options.invite = invite
            .into_iter()
            .filter_map(|u| ruma::UserId::parse(u).ok())
            .collect();
        options.is_direct = info.kind == PortalKind::Dm;
        options.preset = Some(if info.alias_localpart.is_some() {
            crate::matrix::RoomPreset::PublicChat
        } else {
            crate::matrix::RoomPreset::PrivateChat
        });
        options.power_level_content_override = Some(power.to_content());
        options.initial_state = self
            .bridge_state(info)
            .into_iter()
            .map(|(event_type, state)| {
                crate::matrix::InitialStateEvent::new(event_type, state_key(&info.key), state)
            })
            .collect();
        let policy = self
            .config
            .portal_encryption(info.key.network.as_str())
            .unwrap_or_default();
        if policy.default || policy.require {
            options
                .initial_state
                .push(crate::matrix::InitialStateEvent::new(
                    "m.room.encryption",
                    "",
                    json!({"algorithm": "m.megolm.v1.aes-sha2"}),
                ));
        }
        let room = self
            .bot
            .create_room(&options)
            .await
            .context("creating the portal room")?;
        Ok(room.to_string())
    }

    /// Bridges one remote event; the Matrix event id for messages.
    async fn bridge_remote_event(
        self: &Arc<Self>,
        event: &RemoteEvent,
    ) -> anyhow::Result<Option<String>> {
        let Some(portal) = self.ensure_portal(&event.portal).await? else {
            anyhow::bail!(BridgeError::not_found(format!(
                "{} is not bridged",
                event.portal
            )));
        };
        let room_id = portal.room_id.clone().expect("ensured portal has a room");
        let room = ruma::RoomId::parse(&room_id).context("stored room id")?;
        let network = event.portal.network.as_str();
        let ghost = self.ensure_ghost(network, &event.sender).await?;
        let intent = self.intent(&ghost)?;
        let ts = Some(event.ts);
        match &event.kind {
            RemoteEventKind::Message(content) => {
                if let Some(remote_id) = &event.remote_id
                    && !self
                        .store
                        .message_by_remote(&event.portal, remote_id)
                        .await?
                        .is_empty()
                {
                    tracing::debug!(portal = %event.portal, "remote message already bridged");
                    return Ok(None);
                }
                self.ensure_joined(&room_id, &ghost).await?;
                let (body, reply_to, thread_root) = self
                    .message_json(&event.portal, content, &room, intent.user_id())
                    .await?;
                // One transaction id per remote message: if this whole event is
                // retried after the client gave up, the homeserver recognises it.
                let txn_id = match &event.remote_id {
                    Some(id) => remote_txn_id(&event.portal, id.as_str()),
                    None => format!("p{}", rand::random::<u64>()),
                };
                let send = || intent.send_with_txn_id(&room, "m.room.message", &body, ts, &txn_id);
                let event_id = match send().await {
                    Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
                        // In a read-only (broadcast) room a ghost that posts
                        // needs the posting level; otherwise the ghost was
                        // removed behind our back. Fix either, once.
                        if portal.kind == PortalKind::Broadcast {
                            self.let_post(&room, &ghost).await?;
                        }
                        self.forget_joined(&room_id, &ghost);
                        self.ensure_joined(&room_id, &ghost).await?;
                        send().await?
                    }
                    other => other?,
                }
                .to_string();
                if let Some(remote_id) = &event.remote_id {
                    self.store
                        .insert_message(&MessageRow {
                            portal: event.portal.clone(),
                            remote_id: remote_id.clone(),
                            part: 0,
                            room_id: room_id.clone(),
                            event_id: event_id.clone(),
                            sender_mxid: ghost.clone(),
                            ts: event.ts as i64,
                            reply_to_event: reply_to,
                            thread_root_event: thread_root,
                        })
                        .await?;
                }
                Ok(Some(event_id))
            }
            RemoteEventKind::Edit { target, content } => {
                let Some(original) = self
                    .store
                    .message_by_remote(&event.portal, target)
                    .await?
                    .into_iter()
                    .next()
                else {
                    tracing::debug!(portal = %event.portal, "edit of a message that was never bridged");
                    return Ok(None);
                };
                self.ensure_joined(&room_id, &ghost).await?;
                let (new_content, _, _) = self
                    .message_json(&event.portal, content, &room, intent.user_id())
                    .await?;
                let body = content::edit(new_content, &ruma::EventId::parse(&original.event_id)?);
                // An edit with its own remote id (Telegram's edit date, say) is
                // sent with a transaction id made from it, so a source that
                // replays after a crash does not edit twice.
                let txn_id = match &event.remote_id {
                    Some(id) => remote_txn_id(&event.portal, id.as_str()),
                    None => format!("p{}", rand::random::<u64>()),
                };
                Ok(Some(
                    intent
                        .send_with_txn_id(&room, "m.room.message", &body, ts, &txn_id)
                        .await?
                        .to_string(),
                ))
            }
            RemoteEventKind::Delete { target } => {
                let parts = self.store.message_by_remote(&event.portal, target).await?;
                for part in &parts {
                    let event_id =
                        ruma::EventId::parse(&part.event_id).context("stored event id")?;
                    // The sender may not be the author (a moderator deleting); the bot can always redact.
                    if intent.redact(&room, &event_id, None).await.is_err() {
                        self.bot.redact(&room, &event_id, None).await?;
                    }
                }
                self.store.delete_message(&event.portal, target).await?;
                Ok(None)
            }
            RemoteEventKind::Reaction { target, key } => {
                let Some(original) = self
                    .store
                    .message_by_remote(&event.portal, target)
                    .await?
                    .into_iter()
                    .next()
                else {
                    return Ok(None);
                };
                let sender = event.sender.id.as_str();
                if self
                    .store
                    .reaction(&event.portal, target, sender, key)
                    .await?
                    .is_some()
                {
                    return Ok(None);
                }
                self.ensure_joined(&room_id, &ghost).await?;
                let body = content::reaction(&ruma::EventId::parse(&original.event_id)?, key);
                let event_id = intent
                    .send(&room, "m.reaction", &body, ts)
                    .await?
                    .to_string();
                self.store
                    .insert_reaction(&ReactionRow {
                        portal: event.portal.clone(),
                        target_remote_id: target.clone(),
                        sender: sender.to_owned(),
                        key: key.clone(),
                        event_id: event_id.clone(),
                        remote_id: event.remote_id.as_ref().map(|id| id.to_string()),
                        ts: event.ts as i64,
                    })
                    .await?;
                Ok(Some(event_id))
            }
            RemoteEventKind::ReactionRemove { target, key } => {
                let sender = event.sender.id.as_str();
                if let Some(reaction) = self
                    .store
                    .reaction(&event.portal, target, sender, key)
                    .await?
                {
                    let event_id =
                        ruma::EventId::parse(&reaction.event_id).context("stored event id")?;
                    intent.redact(&room, &event_id, None).await?;
                    self.store
                        .delete_reaction_by_event(&reaction.event_id)
                        .await?;
                }
                Ok(None)
            }
            RemoteEventKind::Join | RemoteEventKind::Profile => {
                self.ensure_joined(&room_id, &ghost).await?;
                Ok(None)
            }
            RemoteEventKind::Leave { .. } => {
                intent.leave(&room).await?;
                self.forget_joined(&room_id, &ghost);
                Ok(None)
            }
            RemoteEventKind::Kick { target, reason } => {
                let network_module = self.network(network).context("module")?;
                let target_mxid =
                    crate::mxid::user_id(&network_module.ghost_localpart(target), self.domain());
                let target_id = ruma::UserId::parse(&target_mxid).context("ghost id")?;
                self.bot.kick(&room, &target_id, reason.as_deref()).await?;
                self.forget_joined(&room_id, &target_mxid);
                Ok(None)
            }
            RemoteEventKind::Topic { topic } => {
                let id = self
                    .bot
                    .send_state(&room, "m.room.topic", "", &json!({"topic": topic}), ts)
                    .await?;
                Ok(Some(id.to_string()))
            }
            RemoteEventKind::Rename { name } => {
                let id = self
                    .bot
                    .send_state(&room, "m.room.name", "", &json!({"name": name}), ts)
                    .await?;
                Ok(Some(id.to_string()))
            }
            RemoteEventKind::RoomAvatar { remote_ref } => {
                let url = match remote_ref {
                    Some(remote_ref) => {
                        let network_module = self.network(network).context("module")?.clone();
                        let (bytes, mime) = network_module.fetch_media(remote_ref).await?;
                        let mime = mime.unwrap_or_else(|| "image/jpeg".to_owned());
                        Some(
                            self.bot
                                .upload(bytes, &mime, Some("avatar"))
                                .await?
                                .to_string(),
                        )
                    }
                    None => None,
                };
                let content = match url {
                    Some(url) => json!({"url": url}),
                    None => json!({}),
                };
                let id = self
                    .bot
                    .send_state(&room, "m.room.avatar", "", &content, ts)
                    .await?;
                Ok(Some(id.to_string()))
            }
            RemoteEventKind::Pin { target, pinned } => {
                let Some(original) = self
                    .store
                    .message_by_remote(&event.portal, target)
                    .await?
                    .into_iter()
                    .next()
                else {
                    return Ok(None);
                };
                let current = self
                    .bot
                    .state_event(&room, "m.room.pinned_events", "")
                    .await?
                    .unwrap_or_else(|| json!({}));
                let mut pins: Vec<String> = current["pinned"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let present = pins.contains(&original.event_id);
                if present == *pinned {
                    return Ok(None);
                }
                if *pinned {
                    pins.push(original.event_id.clone());
                } else {
                    pins.retain(|e| e != &original.event_id);
                }
                let id = self
                    .bot
                    .send_state(
                        &room,
                        "m.room.pinned_events",
                        "",
                        &json!({"pinned": pins}),
                        ts,
                    )
                    .await?;
                Ok(Some(id.to_string()))
            }
            RemoteEventKind::PowerLevel { target, level } => {
                let network_module = self.network(network).context("module")?;
                let target_mxid =
                    crate::mxid::user_id(&network_module.ghost_localpart(target), self.domain());
                let mut power = self
                    .bot
                    .state_event(&room, "m.room.power_levels", "")
                    .await?
                    .unwrap_or_else(|| json!({}));
                let current = power.pointer(&format!(
                    "/users/{}",
                    target_mxid.replace('~', "~0").replace('/', "~1")
                ));
                if current.and_then(Value::as_i64).unwrap_or(0) == *level {
                    return Ok(None);
                }
                if !power["users"].is_object() {
                    power["users"] = json!({});
                }
                if *level == 0 {
                    power["users"]
                        .as_object_mut()
                        .expect("object")
                        .remove(&target_mxid);
                } else {
                    power["users"][&target_mxid] = json!(level);
                }
                let id = self
                    .bot
                    .send_state(&room, "m.room.power_levels", "", &power, ts)
                    .await?;
                Ok(Some(id.to_string()))
            }
            RemoteEventKind::Typing { typing } => {
                self.ensure_joined(&room_id, &ghost).await?;
                intent.typing(&room, *typing, 30_000).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Matrix content for a remote message, with reply and thread relations
    /// resolved through the message map. Also returns the reply and thread
    /// event ids for the map. A file for an encrypted `room` is uploaded
    /// encrypted.
    async fn message_json(
        self: &Arc<Self>,
        portal: &PortalKey,
        content: &MessageContent,
        room: &ruma::RoomId,
        sender: &ruma::UserId,
    ) -> anyhow::Result<(Value, Option<String>, Option<String>)> {
        let kind = match content.kind {
            MessageKind::Text => content::TextKind::Text,
            MessageKind::Notice => content::TextKind::Notice,
            MessageKind::Emote => content::TextKind::Emote,
        };
        let mut body = content::message(kind, &content.body, content.html.as_deref());
        if let Some(media) = &content.media {
            let mut encrypted_file = None;
            let mxc = match (&media.mxc, &media.remote_ref) {
                (Some(mxc), _) => mxc.clone(),
                (None, Some(remote_ref)) => {
                    let network = self
                        .network(portal.network.as_str())
                        .context("module")?
                        .clone();
                    let (bytes, mime) = network.fetch_media(remote_ref).await?;
                    let mime = mime
                        .or(media.mime_type.clone())
                        .unwrap_or_else(|| "application/octet-stream".to_owned());
                    let encrypted = match &self.crypto {
                        Some(crypto) => crypto.is_encrypted(room, sender).await?,
                        None => false,
                    };
                    if encrypted {
                        let (sealed, file) = crate::media::encrypt_file(&bytes)
                            .context("encrypting a file for an encrypted room")?;
                        let mxc = self
                            .bot
                            .upload(sealed, "application/octet-stream", None)
                            .await?
                            .to_string();
                        encrypted_file = Some(file);
                        mxc
                    } else {
                        self.bot
                            .upload(bytes, &mime, Some(&media.filename))
                            .await?
                            .to_string()
                    }
                }
                (None, None) => anyhow::bail!(BridgeError::permanent("media without a source")),
            };
            let mime = media.mime_type.clone().unwrap_or_default();
            let kind = match mime.split('/').next() {
                Some("image") => content::MediaKind::Image,
                Some("video") => content::MediaKind::Video,
                Some("audio") => content::MediaKind::Audio,
                _ => content::MediaKind::File,
            };
            let mut message =
                content::MediaMessage::new(kind, mxc.as_str().into(), media.filename.clone());
            message.mimetype = media.mime_type.clone();
            message.size = media.size;
            message.encrypted_file = encrypted_file;
            if !content.body.is_empty() && content.body != media.filename {
                message.caption = Some(content.body.clone());
                message.caption_html = content.html.clone();
            }
            body = message.to_content();
        }
        let lookup = |id: Option<&passerelle_api::RemoteMessageId>| {
            let id = id.cloned();
            async move {
                match id {
                    Some(id) => Ok::<_, anyhow::Error>(
                        self.store
                            .message_by_remote(portal, &id)
                            .await?
                            .into_iter()
                            .next()
                            .map(|m| m.event_id),
                    ),
                    None => Ok(None),
                }
            }
        };
        let reply_to = lookup(content.reply_to.as_ref()).await?;
        let thread_root = lookup(content.thread_root.as_ref()).await?;
        let parse = |id: &Option<String>| id.as_deref().and_then(|e| ruma::EventId::parse(e).ok());
        body = match (parse(&thread_root), parse(&reply_to)) {
            (Some(root), Some(reply)) => content::thread_reply(body, &root, &reply),
            (Some(root), None) => content::in_thread(body, &root, &root),
            (None, Some(reply)) => content::reply_to(body, &reply),
            (None, None) => body,
        };
        Ok((body, reply_to, thread_root))
    }
}

/// The stored row of a portal whose room is `room_id`.
pub(crate) fn portal_row(info: &PortalInfo, room_id: &str, metadata: Value) -> PortalRow {
    PortalRow {
        key: info.key.clone(),
        room_id: Some(room_id.to_owned()),
        kind: info.kind,
        name: info.name.clone(),
        relay: info.relay,
        disappear_after_ms: None,
        metadata,
        created_ts: now_ms(),
    }
}

/// A transaction id that is the same for every attempt to bridge one remote
/// message, and differs between messages and portals.
fn remote_txn_id(portal: &PortalKey, remote_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}\0{}\0{remote_id}", portal.network, portal.id));
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("r{hex}")
}

/// The state key of a portal's bridge state events.
fn state_key(key: &PortalKey) -> String {
    format!("passerelle://{}/{}", key.network, key.id)
}

async fn worker(
    bridge: Arc<Bridge>,
    key: PortalKey,
    mut rx: mpsc::UnboundedReceiver<Job>,
    _guard: Option<mpsc::Sender<()>>,
) {
    struct Active<'a>(&'a PortalQueues);
    impl Drop for Active<'_> {
        fn drop(&mut self) {
            self.0.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let bridge_for_count = bridge.clone();
    let _active = Active(&bridge_for_count.queues);
    loop {
        let job = match tokio::time::timeout(IDLE_WORKER, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(_idle) => {
                let mut senders = bridge.queues.senders.lock().expect("queue lock");
                if rx.is_empty() {
                    senders.remove(&key);
                    break;
                }
                continue;
            }
        };
        bridge.queues.add_depth(-1);
        match job {
            Job::Remote { event, done, spool } => {
                let result = bridge.deliver_remote(*event).await;
                // Interrupted by the shutdown: the spooled copy is delivered
                // at the next start. Otherwise it is done with, either way.
                if let Some(seq) = spool
                    && (result.is_ok() || !bridge.is_shutting_down())
                    && let Err(e) = bridge.store.spool_remove(seq).await
                {
                    tracing::warn!(seq, error = %e, "could not clear a spooled event; it is delivered again at the next start");
                }
                let _ = done.send(result);
            }
            Job::Matrix { job } => bridge.deliver_matrix(*job).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_transaction_ids_are_stable_per_message() {
        let a = PortalKey::new("irc", "libera/#rust");
        let b = PortalKey::new("irc", "libera/#rust-offtopic");
        assert_eq!(remote_txn_id(&a, "m1"), remote_txn_id(&a, "m1"));
        assert_ne!(remote_txn_id(&a, "m1"), remote_txn_id(&a, "m2"));
        assert_ne!(remote_txn_id(&a, "m1"), remote_txn_id(&b, "m1"));
        assert!(
            remote_txn_id(&a, "m1")
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
    }
}
