//! [`SlackModule`]: workspaces' events into portals (Socket Mode or the
//! Events API), Matrix events out through the bot or a user's own token.
//!
//! Each event is handed to the runtime's spool (`enqueue_durable`) and
//! acknowledged once stored there (Slack wants an ack within three seconds
//! and never sends an acknowledged event again): a crash before it reached
//! Matrix delivers it at the next start. Redeliveries are dropped by event
//! id, and messages by the message map, so an event is bridged once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use passerelle_api::command::{CommandContext, CommandSpec, PermissionLevel};
use passerelle_api::{
    BridgeError, Capabilities, Delivered, Login, LoginState, MatrixEvent, Network, NetworkId,
    NetworkInfo, PortalInfo, PortalKey, PortalKind, RemoteUserId, Runtime, Sender, Via,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{SlackError, WebApi};
use crate::config::{EventMode, SlackConfig, WorkspaceConfig};
use crate::events::{self, Context};
use crate::ids;
use crate::mrkdwn::{Mention, Resolver};
use crate::outbound::{Outbound, is_dm};
use crate::socket::{self, Envelope, Handler, Stopped};

/// Event ids remembered to drop redeliveries.
const SEEN_EVENTS: usize = 10_000;
/// Profiles are looked up again after this long.
const PROFILE_TTL: Duration = Duration::from_secs(3600);
/// Files larger than this are not downloaded from Slack.
const MAX_DOWNLOAD: u64 = 100 * 1024 * 1024;

pub struct SlackModule {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Profile {
    name: String,
    avatar: Option<String>,
    at: Instant,
}

pub(crate) struct Workspace {
    pub name: String,
    pub config: WorkspaceConfig,
    pub team: OnceLock<String>,
    pub bot_user: OnceLock<String>,
    pub bot_id: OnceLock<String>,
    /// The workspace's name in Slack (its space's name in Matrix).
    pub team_name: OnceLock<String>,
    broken: Mutex<bool>,
}

pub(crate) struct Inner {
    pub config: SlackConfig,
    pub api: Arc<WebApi>,
    pub workspaces: Vec<Arc<Workspace>>,
    runtime: OnceLock<Arc<dyn Runtime>>,
    pub shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
    profiles: Mutex<HashMap<String, Profile>>,
    /// (mxid, workspace name) -> user token, from the logins.
    user_tokens: Mutex<HashMap<(String, String), UserToken>>,
    /// DM portal key -> the Matrix user whose login hears it.
    dm_owners: Mutex<HashMap<String, String>>,
}

/// A login: the user's token and who they are in Slack.
#[derive(Clone)]
struct UserToken {
    token: String,
    user: String,
}

fn network_id() -> NetworkId {
    NetworkId::new(ids::NETWORK)
}

impl SlackModule {
    pub fn new(config: SlackConfig) -> Self {
        let api = Arc::new(WebApi::new(&config.api_url));
        let workspaces = config
            .workspaces
            .iter()
            .map(|(name, ws)| {
                Arc::new(Workspace {
                    name: name.clone(),
                    config: ws.clone(),
                    team: OnceLock::new(),
                    bot_user: OnceLock::new(),
                    bot_id: OnceLock::new(),
                    team_name: OnceLock::new(),
                    broken: Mutex::new(false),
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                config,
                api,
                workspaces,
                runtime: OnceLock::new(),
                shutdown: watch::channel(false).0,
                tasks: Mutex::new(Vec::new()),
                seen: Mutex::new((HashSet::new(), VecDeque::new())),
                profiles: Mutex::new(HashMap::new()),
                user_tokens: Mutex::new(HashMap::new()),
                dm_owners: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Inner {
    fn runtime(&self) -> Result<&Arc<dyn Runtime>, BridgeError> {
        self.runtime
            .get()
            .ok_or_else(|| BridgeError::retryable("the Slack module is starting"))
    }

    fn workspace_by_team(&self, team: &str) -> Option<&Arc<Workspace>> {
        self.workspaces
            .iter()
            .find(|w| w.team.get().map(String::as_str) == Some(team))
    }

    fn workspace_by_name(&self, name: &str) -> Option<&Arc<Workspace>> {
        self.workspaces.iter().find(|w| w.name == name)
    }

    /// First sight of an event id: true. Redeliveries: false.
    fn first_sight(&self, event_id: &str) -> bool {
        let mut seen = self.seen.lock().expect("lock");
        if seen.0.contains(event_id) {
            return false;
        }
        seen.0.insert(event_id.to_owned());
        seen.1.push_back(event_id.to_owned());
        if seen.1.len() > SEEN_EVENTS
            && let Some(old) = seen.1.pop_front()
        {
            seen.0.remove(&old);
        }
        true
    }

    /// A dead token: the workspace stops and the admins hear about it once.
    async fn token_refused(&self, ws: &Workspace, code: &str) {
        {
            let mut broken = ws.broken.lock().expect("lock");
            if *broken {
                return;
            }
            *broken = true;
        }
        tracing::error!(workspace = %ws.name, code, "Slack refused the workspace's token");
        if let Ok(runtime) = self.runtime() {
            runtime
                .notify_admins(&format!(
                    "Slack refused the token of workspace {} ({code}). Bridging stopped for it: put a new token in bridges.slack.workspaces.{}, then restart.",
                    ws.name, ws.name
                ))
                .await;
        }
    }

    async fn profile(&self, ws: &Workspace, user: &str) -> Option<Profile> {
        if let Some(p) = self.profiles.lock().expect("lock").get(user)
            && p.at.elapsed() < PROFILE_TTL
        {
            return Some(p.clone());
        }
        let answer = self
            .api
            .call("users.info", &ws.config.bot_token, json!({"user": user}))
            .await
            .ok()?;
        let u = &answer["user"];
        let profile = &u["profile"];
        let name = [
            &profile["display_name"],
            &profile["real_name"],
            &u["real_name"],
            &u["name"],
        ]
        .iter()
        .filter_map(|v| v.as_str())
        .find(|s| !s.is_empty())
        .unwrap_or(user)
        .to_owned();
        let avatar = ["image_192", "image_512", "image_72"]
            .iter()
            .find_map(|k| profile[*k].as_str())
            .map(str::to_owned);
        let p = Profile {
            name,
            avatar,
            at: Instant::now(),
        };
        self.profiles
            .lock()
            .expect("lock")
            .insert(user.to_owned(), p.clone());
        Some(p)
    }

    /// Whether a DM's event was heard through a user's login (Slack names the
    /// installation in `authorizations`); remembers that user as the DM
    /// portal's owner.
    fn claim_dm(&self, ws: &Workspace, callback: &Value, portal: &PortalKey) -> bool {
        let Some(auth) = callback["authorizations"]
            .as_array()
            .and_then(|a| a.first())
        else {
            return false;
        };
        if auth["is_bot"] != false {
            return false;
        }
        let Some(user) = auth["user_id"].as_str() else {
            return false;
        };
        let owner = self
            .user_tokens
            .lock()
            .expect("lock")
            .iter()
            .find(|((_, w), t)| *w == ws.name && t.user == user)
            .map(|((mxid, _), _)| mxid.clone());
        let Some(owner) = owner else {
            return false;
        };
        self.dm_owners
            .lock()
            .expect("lock")
            .insert(portal.id.clone(), owner);
        true
    }

    /// A `user_change`: the ghost (if there is one) takes the new name and
    /// avatar now, not at the user's next message. Returns whether to ack.
    async fn refresh_ghost(&self, ws: &Workspace, user: &str) -> bool {
        let (Some(team), Ok(runtime)) = (ws.team.get(), self.runtime()) else {
            return true;
        };
        let Some(p) = self.profile(ws, user).await else {
            return true;
        };
        let mut sender = Sender::new(ids::user_id(team, user)).with_display_name(p.name);
        sender.avatar = p.avatar;
        match runtime.update_ghost(sender).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "a Slack profile change could not be applied yet");
                !e.is_retryable()
            }
        }
    }

    async fn is_bridged(&self, portal: &PortalKey) -> Result<bool, BridgeError> {
        Ok(self.runtime()?.portal_room(portal).await?.is_some())
    }

    /// One `event_callback`. Returns whether to acknowledge it.
    pub(crate) async fn handle_callback(self: &Arc<Self>, callback: &Value) -> bool {
        if callback["type"] != "event_callback" {
            return true;
        }
        let Some(ws) = callback["team_id"]
            .as_str()
            .and_then(|t| self.workspace_by_team(t))
            .cloned()
        else {
            return true;
        };
        if let Some(id) = callback["event_id"].as_str()
            && !self.first_sight(id)
        {
            tracing::debug!(event_id = id, "Slack redelivered an event already handled");
            return true;
        }
        let event = &callback["event"];
        if event["type"] == "user_change"
            && let Some(user) = event["user"]["id"].as_str()
        {
            self.profiles.lock().expect("lock").remove(user);
            return self.refresh_ghost(&ws, user).await;
        }
        let channel = event["channel"]
            .as_str()
            .or(event["item"]["channel"].as_str())
            .or(event["channel"]["id"].as_str());
        let (Some(team), Some(channel)) = (ws.team.get(), channel) else {
            return true;
        };
        let portal = ids::portal_key(team, channel);
        let new_portal = match self.is_bridged(&portal).await {
            Ok(true) => false,
            // A DM of someone who logged in: their portal, made now.
            Ok(false) if is_dm(channel) => {
                if !self.claim_dm(&ws, callback, &portal) {
                    return true;
                }
                false
            }
            Ok(false) if ws.config.auto_bridge => true,
            Ok(false) => return true,
            Err(_) => return false,
        };
        // Names of the sender and of everyone mentioned, looked up first:
        // the converter does no I/O.
        let mut users: Vec<String> =
            crate::mrkdwn::mentioned_users(event["text"].as_str().unwrap_or(""));
        for key in ["user"] {
            if let Some(u) = event[key].as_str().or(event["message"][key].as_str()) {
                users.push(u.to_owned());
            }
        }
        let mut known = HashMap::new();
        for user in users {
            if let Some(p) = self.profile(&ws, &user).await {
                known.insert(user, p);
            }
        }
        let Ok(runtime) = self.runtime().cloned() else {
            return false;
        };
        let mut mapped = {
            let resolver = Names {
                team,
                known: &known,
                runtime: runtime.as_ref(),
            };
            let name_of = |u: &str| known.get(u).map(|p| p.name.clone());
            let cx = Context {
                team,
                bot_user: ws.bot_user.get().map(String::as_str).unwrap_or(""),
                bot_id: ws.bot_id.get().map(String::as_str).unwrap_or(""),
                resolver: &resolver,
                name_of: &name_of,
            };
            events::map_event(event, &cx)
        };
        for e in &mut mapped {
            if let Some((_, user)) = ids::parse_user(&e.sender.id)
                && let Some(p) = known.get(user)
            {
                e.sender.avatar = p.avatar.clone();
            }
        }
        // Stored before the ack: Slack does not send an acknowledged event
        // again, so from here the runtime's spool answers for it.
        let event_id = callback["event_id"].as_str();
        let mut pending = Vec::new();
        for (i, e) in mapped.into_iter().enumerate() {
            let queued = match event_id {
                Some(id) => runtime.enqueue_durable(&format!("{id}/{i}"), e).await,
                None => Ok(Some(runtime.enqueue(e))),
            };
            match queued {
                Ok(Some(p)) => pending.push(p),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a Slack event could not be queued; Slack will send it again");
                    return false;
                }
            }
        }
        if new_portal {
            // The portal's room exists once its first event is in Matrix.
            let inner = self.clone();
            tokio::spawn(async move {
                for p in pending {
                    let _ = p.await;
                }
                inner.add_to_workspace_space(&ws, &portal).await;
            });
        }
        true
    }

    async fn start_workspace(self: &Arc<Self>, ws: Arc<Workspace>) -> Result<(), BridgeError> {
        let auth = match self
            .api
            .call("auth.test", &ws.config.bot_token, json!({}))
            .await
        {
            Ok(a) => a,
            Err(e) if e.is_auth_failure() => {
                self.token_refused(&ws, e.code()).await;
                return Ok(());
            }
            Err(e) => return Err(e.into_bridge("check the bot token")),
        };
        let _ = ws
            .team
            .set(auth["team_id"].as_str().unwrap_or_default().to_owned());
        let _ = ws
            .bot_user
            .set(auth["user_id"].as_str().unwrap_or_default().to_owned());
        let _ = ws
            .bot_id
            .set(auth["bot_id"].as_str().unwrap_or_default().to_owned());
        let _ = ws
            .team_name
            .set(auth["team"].as_str().unwrap_or(&ws.name).to_owned());
        tracing::info!(workspace = %ws.name, "Slack workspace ready");
        if ws.config.mode == EventMode::SocketMode {
            let inner = self.clone();
            let handler: Handler = Arc::new(move |envelope: Envelope| {
                let inner = inner.clone();
                Box::pin(async move {
                    if envelope.kind != "events_api" {
                        return true;
                    }
                    inner.handle_callback(&envelope.payload).await
                })
            });
            let inner = self.clone();
            let task = tokio::spawn(async move {
                let stopped = socket::run(
                    inner.api.clone(),
                    ws.config.app_token.clone(),
                    handler,
                    inner.shutdown.subscribe(),
                )
                .await;
                if let Stopped::TokenRefused(code) = stopped {
                    inner.token_refused(&ws, &code).await;
                }
            });
            self.tasks.lock().expect("lock").push(task);
        }
        Ok(())
    }

    /// Puts a portal into its workspace's Matrix space (made on first use).
    async fn add_to_workspace_space(&self, ws: &Workspace, portal: &PortalKey) {
        let Ok(runtime) = self.runtime() else { return };
        let (Some(team), Some(name)) = (ws.team.get(), ws.team_name.get()) else {
            return;
        };
        let added = async {
            let space = runtime.space(team, &format!("{name} (Slack)")).await?;
            runtime.add_to_space(&space, portal).await
        };
        if let Err(e) = added.await {
            tracing::warn!(workspace = %ws.name, error = %e, "could not add a portal to the workspace's space");
        }
    }

    async fn portal_info(&self, ws: &Workspace, channel: &str) -> Result<PortalInfo, BridgeError> {
        let team = ws
            .team
            .get()
            .ok_or_else(|| BridgeError::retryable("the workspace is not connected"))?;
        let key = ids::portal_key(team, channel);
        if is_dm(channel) {
            return self.dm_info(ws, key, channel).await;
        }
        let answer = self
            .api
            .call(
                "conversations.info",
                &ws.config.bot_token,
                json!({"channel": channel}),
            )
            .await
            .map_err(|e| e.into_bridge("show the channel"))?;
        let c = &answer["channel"];
        let kind = if c["is_im"] == true {
            PortalKind::Dm
        } else {
            PortalKind::Group
        };
        let mut info = PortalInfo::new(key, kind);
        info.name = c["name"].as_str().map(|n| format!("#{n}"));
        let topic = c["topic"]["value"].as_str().filter(|t| !t.is_empty());
        let purpose = c["purpose"]["value"].as_str().filter(|t| !t.is_empty());
        info.topic = topic.or(purpose).map(str::to_owned);
        info.relay = ws.config.relay;
        Ok(info)
    }
}

impl Inner {
    /// A DM portal: the owner's login reads it, the owner is invited, the
    /// room is named after the other person; no relay.
    async fn dm_info(
        &self,
        ws: &Workspace,
        key: PortalKey,
        channel: &str,
    ) -> Result<PortalInfo, BridgeError> {
        let owner = self
            .dm_owners
            .lock()
            .expect("lock")
            .get(&key.id)
            .cloned()
            .ok_or_else(|| {
                BridgeError::permanent("a Slack DM is bridged only for a user who logged in")
            })?;
        let token = self
            .user_tokens
            .lock()
            .expect("lock")
            .get(&(owner.clone(), ws.name.clone()))
            .cloned()
            .ok_or_else(|| BridgeError::not_logged_in("log in to Slack to bridge your DMs"))?;
        let answer = self
            .api
            .call(
                "conversations.info",
                &token.token,
                json!({"channel": channel}),
            )
            .await
            .map_err(|e| e.into_bridge("show the DM"))?;
        let mut info = PortalInfo::new(key, PortalKind::Dm);
        if let Some(other) = answer["channel"]["user"].as_str() {
            info.name = self.profile(ws, other).await.map(|p| p.name);
        }
        info.relay = false;
        info.invite = vec![owner];
        Ok(info)
    }
}

/// Names for the converter, from what was looked up before converting.
struct Names<'a> {
    team: &'a str,
    known: &'a HashMap<String, Profile>,
    runtime: &'a dyn Runtime,
}

impl Resolver for Names<'_> {
    fn user(&self, user_id: &str) -> Option<Mention> {
        let p = self.known.get(user_id)?;
        Some(Mention {
            name: p.name.clone(),
            matrix_link: Some(format!(
                "https://matrix.to/#/{}",
                self.runtime.ghost_mxid(&ids::user_id(self.team, user_id))
            )),
        })
    }

    fn channel(&self, _channel_id: &str) -> Option<Mention> {
        None
    }
}

#[async_trait]
impl Network for SlackModule {
    fn info(&self) -> NetworkInfo {
        NetworkInfo {
            id: network_id(),
            display_name: "Slack".to_owned(),
            namespace_prefix: ids::GHOST_PREFIX.to_owned(),
            capabilities: Capabilities {
                edits: true,
                redactions: true,
                reactions: true,
                replies: true,
                threads: true,
                media: true,
                typing: false,
                logins: true,
            },
        }
    }

    async fn start(&self, runtime: Arc<dyn Runtime>) -> Result<(), BridgeError> {
        let _ = self.inner.runtime.set(runtime.clone());
        for login in runtime.logins().await? {
            if let (Some(token), Some((_, user))) =
                (&login.secret, ids::parse_user(&login.remote_user))
            {
                let token = UserToken {
                    token: token.clone(),
                    user: user.to_owned(),
                };
                self.inner
                    .user_tokens
                    .lock()
                    .expect("lock")
                    .insert((login.mxid.clone(), login.login_id.clone()), token);
            }
        }
        for ws in &self.inner.workspaces {
            self.inner.start_workspace(ws.clone()).await?;
        }
        if self.inner.config.events_listen.is_some() {
            let task = crate::http::start(self.inner.clone()).await?;
            self.inner.tasks.lock().expect("lock").push(task);
        }
        Ok(())
    }

    async fn stop(&self) {
        let _ = self.inner.shutdown.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock().expect("lock"));
        for task in tasks {
            let _ = task.await;
        }
    }

    async fn forget_user(&self, mxid: &str) {
        self.inner
            .user_tokens
            .lock()
            .expect("lock")
            .retain(|(m, _), _| m != mxid);
    }

    async fn handle_matrix(&self, event: MatrixEvent) -> Result<Delivered, BridgeError> {
        let (team, _) = ids::parse_portal(&event.portal)
            .ok_or_else(|| BridgeError::not_found("not a Slack portal"))?;
        let ws = self
            .inner
            .workspace_by_team(team)
            .ok_or_else(|| BridgeError::not_found("this Slack workspace is not configured"))?
            .clone();
        if *ws.broken.lock().expect("lock") {
            return Err(BridgeError::permanent(
                "Slack refused this workspace's token; the bridge admins were told",
            ));
        }
        let runtime = self.inner.runtime()?.clone();
        let (token, user, relay) = match &event.via {
            Via::Login { login_id } => {
                let token = self
                    .inner
                    .user_tokens
                    .lock()
                    .expect("lock")
                    .get(&(event.sender.mxid.clone(), login_id.clone()))
                    .cloned();
                match token {
                    Some(t) => (t.token, Some(t.user), false),
                    None => (ws.config.bot_token.clone(), None, true),
                }
            }
            Via::Relay => (ws.config.bot_token.clone(), None, true),
        };
        let result = Outbound {
            api: &self.inner.api,
            runtime: runtime.as_ref(),
            token: &token,
            relay,
            bot_token: &ws.config.bot_token,
            user: user.as_deref(),
        }
        .deliver(event.clone())
        .await;
        if let Err(e) = &result
            && e.message.contains("refused the token")
        {
            if relay {
                self.inner.token_refused(&ws, "token refused").await;
            } else if let Via::Login { login_id } = &event.via {
                // The user's own token died: mark the login broken.
                self.inner
                    .user_tokens
                    .lock()
                    .expect("lock")
                    .remove(&(event.sender.mxid.clone(), login_id.clone()));
                if let Some(mut login) = runtime
                    .logins()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .find(|l| l.mxid == event.sender.mxid && &l.login_id == login_id)
                {
                    login.state = LoginState::Broken;
                    let _ = runtime.save_login(login).await;
                }
            }
        }
        result
    }

    async fn portal_info(&self, key: &PortalKey) -> Result<Option<PortalInfo>, BridgeError> {
        let Some((team, channel)) = ids::parse_portal(key) else {
            return Ok(None);
        };
        let Some(ws) = self.inner.workspace_by_team(team).cloned() else {
            return Ok(None);
        };
        Ok(Some(self.inner.portal_info(&ws, channel).await?))
    }

    fn parse_ghost_localpart(&self, localpart: &str) -> Option<RemoteUserId> {
        ids::parse_ghost_localpart(localpart)
    }

    fn ghost_localpart(&self, user: &RemoteUserId) -> String {
        ids::ghost_localpart(user)
    }

    async fn resolve_user(&self, localpart: &str) -> Result<Option<Sender>, BridgeError> {
        Ok(ids::parse_ghost_localpart(localpart).map(Sender::new))
    }

    fn commands(&self) -> Vec<CommandSpec> {
        vec![
            CommandSpec {
                name: "link",
                usage: "link slack <channel id> [workspace]",
                description: "Bridge this room to a Slack channel the bot is a member of.",
                level: PermissionLevel::Admin,
            },
            CommandSpec {
                name: "login",
                usage: "login slack <workspace> <xoxp- user token>",
                description: "Send your messages in that workspace as yourself.",
                level: PermissionLevel::User,
            },
            CommandSpec {
                name: "logout",
                usage: "logout slack <workspace>",
                description: "Forget your Slack token; your messages go through the relay again.",
                level: PermissionLevel::User,
            },
        ]
    }

    async fn run_command(
        &self,
        ctx: CommandContext,
        name: &str,
        args: &[String],
    ) -> Result<String, BridgeError> {
        let names = || {
            self.inner
                .workspaces
                .iter()
                .map(|w| w.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let pick = |name: Option<&String>| -> Result<Arc<Workspace>, BridgeError> {
            match name {
                Some(n) => self.inner.workspace_by_name(n).cloned().ok_or_else(|| {
                    BridgeError::permanent(format!("no workspace {n} (configured: {})", names()))
                }),
                None if self.inner.workspaces.len() == 1 => Ok(self.inner.workspaces[0].clone()),
                None => Err(BridgeError::permanent(format!(
                    "name the workspace: {}",
                    names()
                ))),
            }
        };
        match name {
            "link" => {
                let channel = args.first().ok_or_else(|| {
                    BridgeError::permanent("usage: link slack <channel id> [workspace]")
                })?;
                let ws = pick(args.get(1))?;
                let info = self.inner.portal_info(&ws, channel).await?;
                self.inner
                    .runtime()?
                    .link_portal(&ctx.room_id, info.clone())
                    .await?;
                self.inner.add_to_workspace_space(&ws, &info.key).await;
                Ok(format!(
                    "This room is now bridged to {} in the Slack workspace {}.",
                    info.name.as_deref().unwrap_or(channel),
                    ws.name
                ))
            }
            "login" => {
                let [workspace, token] = args else {
                    return Err(BridgeError::permanent(
                        "usage: login slack <workspace> <xoxp- user token>",
                    ));
                };
                let ws = pick(Some(workspace))?;
                let auth = self
                    .inner
                    .api
                    .call("auth.test", token, json!({}))
                    .await
                    .map_err(|e: SlackError| e.into_bridge("accept that token"))?;
                let team = auth["team_id"].as_str().unwrap_or_default();
                if Some(team) != ws.team.get().map(String::as_str) {
                    return Err(BridgeError::permanent(format!(
                        "that token belongs to another workspace than {}",
                        ws.name
                    )));
                }
                let user = auth["user_id"].as_str().unwrap_or_default();
                let login = Login {
                    mxid: ctx.sender.clone(),
                    login_id: ws.name.clone(),
                    remote_user: ids::user_id(team, user),
                    state: LoginState::Connected,
                    secret: Some(token.clone()),
                    metadata: json!({}),
                };
                self.inner.runtime()?.save_login(login).await?;
                let token = UserToken {
                    token: token.clone(),
                    user: user.to_owned(),
                };
                self.inner
                    .user_tokens
                    .lock()
                    .expect("lock")
                    .insert((ctx.sender.clone(), ws.name.clone()), token);
                Ok(format!(
                    "Logged in to {} as {}: your messages there now come from your own account.",
                    ws.name,
                    auth["user"].as_str().unwrap_or(user)
                ))
            }
            "logout" => {
                let ws = pick(args.first())?;
                self.inner
                    .runtime()?
                    .remove_login(&ctx.sender, &ws.name)
                    .await?;
                self.inner
                    .user_tokens
                    .lock()
                    .expect("lock")
                    .remove(&(ctx.sender.clone(), ws.name.clone()));
                Ok(format!("Logged out of {}.", ws.name))
            }
            _ => Err(BridgeError::not_found(format!("unknown command {name}"))),
        }
    }

    async fn fetch_media(
        &self,
        remote_ref: &str,
    ) -> Result<(Vec<u8>, Option<String>), BridgeError> {
        match events::parse_file_ref(remote_ref) {
            Some((team, url)) => {
                let ws = self
                    .inner
                    .workspace_by_team(team)
                    .ok_or_else(|| BridgeError::not_found("unknown workspace"))?;
                self.inner
                    .api
                    .download(url, &ws.config.bot_token, MAX_DOWNLOAD)
                    .await
                    .map_err(|e| e.into_bridge("give the file"))
            }
            // Avatars: public URLs.
            None if remote_ref.starts_with("https://") || remote_ref.starts_with("http://") => {
                let response = self
                    .inner
                    .api
                    .http()
                    .get(remote_ref)
                    .send()
                    .await
                    .map_err(|_| BridgeError::retryable("could not fetch the avatar"))?;
                let mime = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|_| BridgeError::retryable("could not fetch the avatar"))?;
                Ok((bytes.to_vec(), mime))
            }
            None => Err(BridgeError::not_found("not a Slack media reference")),
        }
    }
}
