//! [`TelegramModule`]: the bot's updates into portals (long polling with a
//! persisted offset, or a webhook), Matrix events out through the bot.
//!
//! Loss and duplicates: an update's offset is confirmed (and stored) only
//! once every event it produced has reached Matrix. After a crash Telegram
//! hands the same updates again; messages already in the message map are
//! skipped, edits reuse their transaction id, reactions are in the reaction
//! map, membership is idempotent.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use frankenstein::types::{ChatMember, ChatType, File, User, UserProfilePhotos};
use frankenstein::updates::Update;
use passerelle_api::command::{CommandContext, CommandSpec, PermissionLevel};
use passerelle_api::{
    BridgeError, Capabilities, Delivered, MatrixEvent, Network, NetworkId, NetworkInfo, PortalInfo,
    PortalKey, PortalKind, RemoteEvent, RemoteUserId, Runtime, Sender,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{Api, ApiError};
use crate::config::{Mode, TelegramConfig};
use crate::ids::{self, MediaRef};
use crate::outbound::Outbound;
use crate::updates::{self, Context, MAX_DOWNLOAD};

/// The update kinds the bridge asks for. `chat_member` and
/// `message_reaction` are only sent when asked for explicitly.
pub(crate) const ALLOWED_UPDATES: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "message_reaction",
    "my_chat_member",
    "chat_member",
];

/// How long a `link` code waits for a chat admin to send it.
const LINK_CODE_TTL: Duration = Duration::from_secs(600);

pub struct TelegramModule {
    inner: Arc<Inner>,
}

struct PendingLink {
    room_id: String,
    chat: i64,
    mxid: String,
    expires: Instant,
}

pub(crate) struct Inner {
    pub(crate) config: TelegramConfig,
    pub(crate) api: Api,
    runtime: OnceLock<Arc<dyn Runtime>>,
    me: OnceLock<User>,
    pub(crate) shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Chats known to have a portal (positive answers only).
    bridged: Mutex<HashSet<i64>>,
    /// user id -> (looked up at, avatar reference).
    profiles: Mutex<HashMap<i64, (Instant, Option<String>)>>,
    /// One-time codes of `link telegram <chat>` by non-admins.
    pending_links: Mutex<HashMap<String, PendingLink>>,
}

impl TelegramModule {
    pub fn new(config: TelegramConfig) -> Self {
        let api = Api::new(&config);
        Self {
            inner: Arc::new(Inner {
                config,
                api,
                runtime: OnceLock::new(),
                me: OnceLock::new(),
                shutdown: watch::channel(false).0,
                tasks: Mutex::new(Vec::new()),
                bridged: Mutex::new(HashSet::new()),
                profiles: Mutex::new(HashMap::new()),
                pending_links: Mutex::new(HashMap::new()),
            }),
        }
    }
}

fn network_id() -> NetworkId {
    NetworkId::new(ids::NETWORK)
}

impl Inner {
    fn runtime(&self) -> Result<&Arc<dyn Runtime>, BridgeError> {
        self.runtime
            .get()
            .ok_or_else(|| BridgeError::retryable("the Telegram module is starting"))
    }

    fn bot_id(&self) -> u64 {
        self.me.get().map(|u| u.id).unwrap_or(0)
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps unless shutdown comes first; returns false on shutdown.
    async fn pause(&self, d: Duration) -> bool {
        let mut rx = self.shutdown.subscribe();
        let stopped = tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = rx.wait_for(|s| *s) => true,
        };
        !stopped && !self.stopping()
    }

    async fn is_bridged(&self, chat: i64) -> Result<bool, BridgeError> {
        if self.bridged.lock().expect("lock").contains(&chat) {
            return Ok(true);
        }
        let found = self
            .runtime()?
            .portal_room(&ids::portal_key(chat))
            .await?
            .is_some();
        if found {
            self.bridged.lock().expect("lock").insert(chat);
        }
        Ok(found)
    }

    /// The avatar reference of a user's current profile photo, looked up at
    /// most once per `profile_refresh`.
    async fn avatar_of(&self, user: i64) -> Option<String> {
        if user <= 0 {
            return None;
        }
        if let Some((at, avatar)) = self.profiles.lock().expect("lock").get(&user)
            && at.elapsed() < self.config.profile_refresh
        {
            return avatar.clone();
        }
        let photos: Result<UserProfilePhotos, _> = self
            .api
            .call("getUserProfilePhotos", json!({"user_id": user, "limit": 1}))
            .await;
        let avatar = match photos {
            Ok(p) => p.photos.first().and_then(|sizes| {
                let largest = sizes.iter().max_by_key(|p| p.width * p.height)?;
                Some(
                    MediaRef::Profile {
                        user,
                        unique_id: largest.file_unique_id.clone(),
                    }
                    .to_ref(),
                )
            }),
            Err(e) => {
                tracing::debug!(user, error = %e, "no profile photo");
                None
            }
        };
        self.profiles
            .lock()
            .expect("lock")
            .insert(user, (Instant::now(), avatar.clone()));
        avatar
    }

    /// Maps one update and queues its events; resolves when all reached
    /// Matrix. `Err` with a retryable error means: do not confirm it.
    pub(crate) async fn process(&self, raw: Value) -> Result<(), BridgeError> {
        let update_id = raw.get("update_id").and_then(Value::as_i64).unwrap_or(-1);
        let update: Update = match serde_json::from_value(raw) {
            Ok(u) => u,
            Err(e) => {
                // An update kind or field this version does not know: skip
                // it (never its content in logs) rather than stall the bot.
                tracing::warn!(update_id, error = %e, "could not read a Telegram update; skipped");
                metrics_skip();
                return Ok(());
            }
        };
        let Some(chat) = updates::chat_of(&update) else {
            return Ok(());
        };
        if self.link_code(&update).await? {
            return Ok(());
        }
        if let frankenstein::updates::UpdateContent::MyChatMember(c) = &update.content {
            let now_in = !matches!(
                c.new_chat_member,
                ChatMember::Left(_) | ChatMember::Kicked(_)
            );
            tracing::info!(chat = c.chat.id, member = now_in, "bot membership changed");
            if !now_in && self.is_bridged(c.chat.id).await? {
                self.runtime()?
                    .portal_notice(
                        &ids::portal_key(c.chat.id),
                        "The bridge bot was removed from the Telegram chat: nothing is bridged until it is added back.",
                    )
                    .await;
            }
            return Ok(());
        }
        let bridged = self.is_bridged(chat.id).await?;
        let auto = self.config.auto_portals && chat.type_field != ChatType::Private;
        if !bridged && !auto {
            return Ok(());
        }
        let runtime = self.runtime()?.clone();
        let mut events = {
            let link = |user: i64| {
                Some(format!(
                    "https://matrix.to/#/{}",
                    runtime.ghost_mxid(&ids::user_id(user))
                ))
            };
            let cx = Context {
                bot_id: self.bot_id(),
                user_link: &link,
            };
            updates::map_update(&update, &cx)
        };
        for event in &mut events {
            if let Some(user) = ids::parse_user(&event.sender.id) {
                event.sender.avatar = self.avatar_of(user).await;
            }
        }
        self.deliver(&runtime, events).await?;
        if !bridged {
            self.bridged.lock().expect("lock").insert(chat.id);
        }
        Ok(())
    }

    async fn deliver(
        &self,
        runtime: &Arc<dyn Runtime>,
        events: Vec<RemoteEvent>,
    ) -> Result<(), BridgeError> {
        let pending: Vec<_> = events
            .into_iter()
            .map(|e| {
                let kind = e.kind_name();
                (kind, runtime.enqueue(e))
            })
            .collect();
        for (kind, wait) in pending {
            match wait.await {
                Ok(_) => {}
                Err(e) if e.is_retryable() => return Err(e),
                // Permanent: an edit of a message never bridged, say. It
                // will not work on a second try either.
                Err(e) => tracing::warn!(kind, error = %e, "a Telegram event was not bridged"),
            }
        }
        Ok(())
    }

    /// A chat admin sending `/link <code>` in a Telegram chat finishes a
    /// `link telegram <chat>` started in Matrix. Returns whether the update
    /// was such a code.
    async fn link_code(&self, update: &Update) -> Result<bool, BridgeError> {
        let frankenstein::updates::UpdateContent::Message(m) = &update.content else {
            return Ok(false);
        };
        let (Some(text), Some(from)) = (&m.text, &m.from) else {
            return Ok(false);
        };
        let mut words = text.split_whitespace();
        let command = words.next().unwrap_or("");
        let command = command.split('@').next().unwrap_or("");
        if command != "/link" {
            return Ok(false);
        }
        let Some(code) = words.next() else {
            return Ok(false);
        };
        let pending = {
            let mut links = self.pending_links.lock().expect("lock");
            links.retain(|_, p| p.expires > Instant::now());
            links
                .get(code)
                .filter(|p| p.chat == m.chat.id)
                .map(|p| (p.room_id.clone(), p.mxid.clone()))
        };
        let Some((room_id, mxid)) = pending else {
            return Ok(false);
        };
        let member: Result<MemberStatus, _> = self
            .api
            .call(
                "getChatMember",
                json!({"chat_id": m.chat.id, "user_id": from.id}),
            )
            .await;
        let reply = |text: &str| {
            json!({"chat_id": m.chat.id, "text": text,
                   "reply_parameters": {"message_id": m.message_id, "allow_sending_without_reply": true}})
        };
        if !matches!(&member, Ok(m) if m.status == "creator" || m.status == "administrator") {
            let _ = self
                .api
                .call::<Value>(
                    "sendMessage",
                    reply("Only an admin of this chat can link it."),
                )
                .await;
            return Ok(true);
        }
        // Only now is the code used up: a plain member's attempt leaves it.
        self.pending_links.lock().expect("lock").remove(code);
        let info = self.portal_info(m.chat.id).await?;
        let runtime = self.runtime()?;
        match runtime.link_portal(&room_id, info).await {
            Ok(()) => {
                self.bridged.lock().expect("lock").insert(m.chat.id);
                tracing::info!(chat = m.chat.id, "linked by a chat admin");
                let _ = self
                    .api
                    .call::<Value>("sendMessage", reply("This chat is now bridged to Matrix."))
                    .await;
                runtime
                    .portal_notice(
                        &ids::portal_key(m.chat.id),
                        &format!(
                            "This room is now bridged to the Telegram chat {} (confirmed by a chat admin for {}).",
                            m.chat.id, mxid
                        ),
                    )
                    .await;
            }
            Err(e) => {
                let _ = self
                    .api
                    .call::<Value>(
                        "sendMessage",
                        reply(&format!("Could not link: {}", e.message)),
                    )
                    .await;
            }
        }
        Ok(true)
    }

    async fn portal_info(&self, chat: i64) -> Result<PortalInfo, BridgeError> {
        let info: ChatSummary = self
            .api
            .call("getChat", json!({"chat_id": chat}))
            .await
            .map_err(|e| e.into_bridge("show the chat"))?;
        let kind = match info.kind.as_str() {
            "channel" => PortalKind::Broadcast,
            "private" => PortalKind::Dm,
            _ => PortalKind::Group,
        };
        let mut portal = PortalInfo::new(ids::portal_key(chat), kind);
        portal.name = info.title.clone().or_else(|| info.first_name.clone());
        portal.topic = info.description.clone();
        Ok(portal)
    }

    async fn poll(self: Arc<Self>) {
        let runtime = match self.runtime() {
            Ok(r) => r.clone(),
            Err(_) => return,
        };
        let mut offset = match runtime.get_state(&network_id(), "offset").await {
            Ok(Some(v)) => v.as_i64().unwrap_or(0),
            _ => 0,
        };
        // getUpdates fails while a webhook is set.
        if let Err(e) = self
            .api
            .call::<bool>("deleteWebhook", json!({"drop_pending_updates": false}))
            .await
        {
            tracing::warn!(error = %e, "deleteWebhook failed");
        }
        let mut failures = 0u32;
        let mut told_admins = false;
        while !self.stopping() {
            let params = json!({
                "offset": offset,
                "timeout": self.config.poll_timeout.as_secs(),
                "allowed_updates": ALLOWED_UPDATES,
            });
            let mut rx = self.shutdown.subscribe();
            let batch = tokio::select! {
                r = self.api.call::<Vec<Value>>("getUpdates", params) => r,
                _ = rx.wait_for(|s| *s) => break,
            };
            let batch = match batch {
                Ok(b) => {
                    failures = 0;
                    told_admins = false;
                    b
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = e.retry_after().unwrap_or_else(|| backoff(failures));
                    if e.is_unauthorized() && !told_admins {
                        told_admins = true;
                        runtime
                            .notify_admins("Telegram refused the bot token (401 Unauthorized): check bridges.telegram.bot_token. Retrying.")
                            .await;
                    }
                    if e.is_conflict() {
                        tracing::warn!("another getUpdates or a webhook is active for this bot");
                    } else {
                        tracing::warn!(error = %e, "getUpdates failed");
                    }
                    if !self.pause(wait).await {
                        break;
                    }
                    continue;
                }
            };
            let mut next = offset;
            for raw in batch {
                let id = raw
                    .get("update_id")
                    .and_then(Value::as_i64)
                    .unwrap_or(next - 1);
                match self.process(raw).await {
                    Ok(()) => next = next.max(id + 1),
                    Err(e) => {
                        tracing::warn!(update_id = id, error = %e, "update not delivered; will be fetched again");
                        break;
                    }
                }
            }
            if next != offset {
                offset = next;
                if let Err(e) = runtime
                    .set_state(&network_id(), "offset", json!(offset))
                    .await
                {
                    tracing::warn!(error = %e, "could not store the update offset");
                }
            } else if !self.pause(Duration::from_millis(200)).await {
                break;
            }
        }
        tracing::debug!("Telegram polling stopped");
    }
}

/// The part of getChat's ChatFullInfo the bridge uses. Read leniently: the
/// full object grows with every Bot API version.
#[derive(Deserialize)]
struct ChatSummary {
    #[serde(rename = "type")]
    kind: String,
    title: Option<String>,
    first_name: Option<String>,
    description: Option<String>,
}

/// getChatMember's status, read leniently for the same reason.
#[derive(Deserialize)]
struct MemberStatus {
    status: String,
}

fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << failures.min(7));
    let capped = base.min(Duration::from_secs(60));
    capped.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

fn metrics_skip() {}

fn mime_of(path: &str) -> Option<String> {
    let ext = path.rsplit('.').next()?.to_ascii_lowercase();
    let mime = match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "oga" | "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "pdf" => "application/pdf",
        "tgs" => "application/x-tgsticker",
        _ => return None,
    };
    Some(mime.to_owned())
}

#[async_trait]
impl Network for TelegramModule {
    fn info(&self) -> NetworkInfo {
        NetworkInfo {
            id: network_id(),
            display_name: "Telegram".to_owned(),
            namespace_prefix: ids::GHOST_PREFIX.to_owned(),
            capabilities: Capabilities {
                edits: true,
                redactions: true,
                reactions: true,
                replies: true,
                threads: true,
                media: true,
                typing: false,
                logins: false,
            },
        }
    }

    async fn start(&self, runtime: Arc<dyn Runtime>) -> Result<(), BridgeError> {
        let _ = self.inner.runtime.set(runtime.clone());
        let me: User = match self.inner.api.call("getMe", json!({})).await {
            Ok(me) => me,
            Err(e) => {
                let text = format!("The Telegram bot could not start: {}", e.description());
                runtime.notify_admins(&text).await;
                return Err(e.into_bridge("start the bot"));
            }
        };
        tracing::info!(
            bot = me.username.as_deref().unwrap_or(""),
            "Telegram bot ready"
        );
        let _ = self.inner.me.set(me);
        let task = match self.inner.config.mode {
            Mode::Polling => tokio::spawn(self.inner.clone().poll()),
            Mode::Webhook => crate::webhook::start(self.inner.clone()).await?,
        };
        self.inner.tasks.lock().expect("lock").push(task);
        Ok(())
    }

    async fn stop(&self) {
        let _ = self.inner.shutdown.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock().expect("lock"));
        for task in tasks {
            let _ = task.await;
        }
    }

    async fn handle_matrix(&self, event: MatrixEvent) -> Result<Delivered, BridgeError> {
        let runtime = self.inner.runtime()?;
        Outbound {
            api: &self.inner.api,
            config: &self.inner.config,
            runtime: runtime.as_ref(),
        }
        .deliver(event)
        .await
    }

    async fn portal_info(&self, key: &PortalKey) -> Result<Option<PortalInfo>, BridgeError> {
        let Some(chat) = ids::parse_portal(key) else {
            return Ok(None);
        };
        Ok(Some(self.inner.portal_info(chat).await?))
    }

    fn parse_ghost_localpart(&self, localpart: &str) -> Option<RemoteUserId> {
        ids::parse_ghost_localpart(localpart)
    }

    async fn resolve_user(&self, localpart: &str) -> Result<Option<Sender>, BridgeError> {
        Ok(ids::parse_ghost_localpart(localpart).map(Sender::new))
    }

    fn commands(&self) -> Vec<CommandSpec> {
        vec![CommandSpec {
            name: "link",
            usage: "link telegram <chat id>",
            description: "Bridge this room to a Telegram group, supergroup or channel the bot is in (bridge admins directly; chat admins confirm with a code).",
            level: PermissionLevel::User,
        }]
    }

    async fn run_command(
        &self,
        ctx: CommandContext,
        name: &str,
        args: &[String],
    ) -> Result<String, BridgeError> {
        let usage =
            || BridgeError::permanent("usage: link telegram <chat id> (e.g. -1001234567890)");
        if name != "link" {
            return Err(BridgeError::not_found(format!("unknown command {name}")));
        }
        let [chat] = args else { return Err(usage()) };
        let chat: i64 = chat.parse().map_err(|_| usage())?;
        let info = self.inner.portal_info(chat).await?;
        if info.kind == PortalKind::Dm {
            return Err(BridgeError::permanent(
                "private chats with the bot cannot be linked",
            ));
        }
        let runtime = self.inner.runtime()?;
        if ctx.level >= PermissionLevel::Admin {
            runtime.link_portal(&ctx.room_id, info.clone()).await?;
            self.inner.bridged.lock().expect("lock").insert(chat);
            let what = if info.kind == PortalKind::Broadcast {
                "channel"
            } else {
                "chat"
            };
            return Ok(format!(
                "This room is now bridged to the Telegram {what} {}.",
                info.name.as_deref().unwrap_or("")
            ));
        }
        let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
        self.inner.pending_links.lock().expect("lock").insert(
            code.clone(),
            PendingLink {
                room_id: ctx.room_id.clone(),
                chat,
                mxid: ctx.sender.clone(),
                expires: Instant::now() + LINK_CODE_TTL,
            },
        );
        let bot = self
            .inner
            .me
            .get()
            .and_then(|u| u.username.clone())
            .unwrap_or_default();
        Ok(format!(
            "To confirm that you may link it, an admin of the Telegram chat sends `/link {code}` there (to @{bot}) within 10 minutes."
        ))
    }

    async fn fetch_media(
        &self,
        remote_ref: &str,
    ) -> Result<(Vec<u8>, Option<String>), BridgeError> {
        let file_id = match MediaRef::parse(remote_ref) {
            Some(MediaRef::File(id)) => id,
            Some(MediaRef::Profile { user, .. }) => {
                let photos: UserProfilePhotos = self
                    .inner
                    .api
                    .call("getUserProfilePhotos", json!({"user_id": user, "limit": 1}))
                    .await
                    .map_err(|e| e.into_bridge("give the profile photo"))?;
                let largest = photos
                    .photos
                    .first()
                    .and_then(|s| s.iter().max_by_key(|p| p.width * p.height))
                    .ok_or_else(|| BridgeError::not_found("no profile photo"))?;
                largest.file_id.clone()
            }
            None => return Err(BridgeError::not_found("not a Telegram media reference")),
        };
        let file: File = self
            .inner
            .api
            .call("getFile", json!({"file_id": file_id}))
            .await
            .map_err(|e| e.into_bridge("give the file"))?;
        let path = file
            .file_path
            .ok_or_else(|| BridgeError::permanent("Telegram gave no download path"))?;
        let bytes = self
            .inner
            .api
            .download(&path, MAX_DOWNLOAD)
            .await
            .map_err(|e: ApiError| e.into_bridge("give the file"))?;
        Ok((bytes, mime_of(&path)))
    }
}
