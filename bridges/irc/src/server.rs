//! One configured IRC network: the bot connection (it watches the bridged
//! channels and relays), the Matrix users' puppet connections, and what
//! happens on IRC turned into events for Matrix.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use passerelle_api::{
    BridgeError, Login, LoginState, MessageContent, MessageKind, PortalKey, RemoteEvent,
    RemoteEventKind, RemoteMessageId, Runtime, Sender,
};
use tokio::sync::{mpsc, watch};

use crate::autoreply::{self, AutoReply};
use crate::config::NetworkConfig;
use crate::conn::{ConnectionConfig, Engine, Event, FloodConfig, Handle, IrcMessage, Sasl};
use crate::format::irc_to_matrix;
use crate::ids::{self, PortalTarget};
use crate::msgids::RecentMsgids;
use crate::nick::casefold;

/// How long a message waits for a new puppet to finish registering.
const PUPPET_READY: Duration = Duration::from_secs(30);
/// How often a puppet's last activity is written to its login.
const ACTIVITY_WRITE: Duration = Duration::from_secs(600);
/// How long the nick of a puppet we disconnected stays ours, waiting for the
/// bot to see its QUIT (it sees none when they share no channel).
const DEPARTING: Duration = Duration::from_secs(30);

/// The two servers of a netsplit QUIT reason (`irc.a.net irc.b.net`).
pub fn netsplit_servers(reason: &str) -> Option<(String, String)> {
    let mut words = reason.split(' ');
    let (a, b) = (words.next()?, words.next()?);
    let host = |w: &str| {
        w.contains('.')
            && !w.starts_with('.')
            && !w.ends_with('.')
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_*".contains(c))
    };
    (words.next().is_none() && host(a) && host(b)).then(|| (a.to_owned(), b.to_owned()))
}

/// A netsplit being collected: its servers and, per channel, who left.
type Netsplit = ((String, String), HashMap<String, Vec<String>>);

/// One notice for a netsplit, however many users it took.
pub fn netsplit_summary(servers: &(String, String), nicks: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut names: Vec<&str> = nicks.iter().take(SHOWN).map(String::as_str).collect();
    if nicks.len() > SHOWN {
        names.push("…");
    }
    format!(
        "Netsplit between {} and {}: {} user(s) left ({}). They come back when the servers reconnect.",
        servers.0,
        servers.1,
        nicks.len(),
        names.join(", ")
    )
}

/// The server's `msgid` inside one of our remote ids, if it has one.
pub fn server_msgid(remote_id: &str) -> Option<&str> {
    remote_id
        .rsplit_once('|')
        .map(|(id, _)| id)
        .filter(|id| !id.starts_with('~') && !id.is_empty())
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A Matrix user's own IRC connection.
pub struct Puppet {
    pub mxid: String,
    pub handle: Handle,
    ready: watch::Receiver<bool>,
    last_active: Mutex<Instant>,
    last_written: Mutex<Option<Instant>>,
}

impl Puppet {
    pub fn nick(&self) -> String {
        self.handle.state().nick
    }

    /// Waits until the connection is registered (or gives up).
    pub async fn ready(&self) -> Result<(), BridgeError> {
        let mut ready = self.ready.clone();
        match tokio::time::timeout(PUPPET_READY, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BridgeError::retryable(
                "your IRC connection is not ready yet (the server did not accept it in time)",
            )),
        }
    }

    pub fn touch(&self) {
        *self.last_active.lock().expect("puppet lock") = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_active.lock().expect("puppet lock").elapsed()
    }
}

/// Members of one channel: casefolded nick -> (nick as shown, mode prefixes).
#[derive(Default)]
struct Channel {
    members: HashMap<String, (String, String)>,
}

pub struct Server {
    pub name: String,
    pub config: NetworkConfig,
    engine: Engine,
    runtime: OnceLock<Arc<dyn Runtime>>,
    bot: OnceLock<Handle>,
    /// Channels with a portal: the bot is in them and bridges what it sees.
    bridged: Mutex<HashSet<String>>,
    channels: Mutex<HashMap<String, Channel>>,
    puppets: tokio::sync::Mutex<HashMap<String, Arc<Puppet>>>,
    /// Casefolded puppet nick -> Matrix user: their lines are echoes.
    puppet_nicks: Mutex<HashMap<String, String>>,
    seq: AtomicU64,
    /// Mode letter -> prefix symbol (`o` -> `@`) from ISUPPORT PREFIX.
    prefixes: Mutex<Vec<(char, char)>>,
    /// A netsplit being collected: its servers and, per channel, who left.
    netsplit: Arc<Mutex<Option<Netsplit>>>,
    /// Casefolded nicks of puppets we disconnected, until the bot sees
    /// their QUIT: it is ours, not an IRC user's leaving.
    departing: Mutex<HashMap<String, Instant>>,
    /// msgids of recent IRC messages, for replies and reactions to them.
    msgids: Mutex<RecentMsgids>,
    /// Who the bot answered privately, and when.
    autoreply: Mutex<AutoReply>,
}

impl Server {
    pub fn new(name: String, config: NetworkConfig, engine: Engine) -> Self {
        Self {
            name,
            config,
            engine,
            runtime: OnceLock::new(),
            bot: OnceLock::new(),
            bridged: Mutex::new(HashSet::new()),
            channels: Mutex::new(HashMap::new()),
            puppets: tokio::sync::Mutex::new(HashMap::new()),
            puppet_nicks: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            prefixes: Mutex::new(vec![('o', '@'), ('h', '%'), ('v', '+')]),
            netsplit: Arc::new(Mutex::new(None)),
            departing: Mutex::new(HashMap::new()),
            msgids: Mutex::new(RecentMsgids::default()),
            autoreply: Mutex::new(AutoReply::default()),
        }
    }

    pub fn runtime(&self) -> Arc<dyn Runtime> {
        self.runtime.get().expect("started").clone()
    }

    pub fn bot(&self) -> Result<&Handle, BridgeError> {
        self.bot
            .get()
            .ok_or_else(|| BridgeError::retryable("the IRC bot is not connected yet"))
    }

    /// A remote message id: unique per portal, and it carries the nick so a
    /// reply from Matrix can address the author.
    /// Ids of our own making start with `~`; others are the server's
    /// `msgid` tag, which IRCv3 replies and reactions can point at.
    pub fn next_message_id(&self, nick: &str, msgid: Option<&str>) -> String {
        match msgid {
            Some(msgid) => format!("{msgid}|{nick}"),
            None => {
                let n = self.seq.fetch_add(1, Ordering::Relaxed);
                format!("~{}.{n}|{nick}", now_ms())
            }
        }
    }

    fn connection_config(&self, nick: &str) -> ConnectionConfig {
        let mut config = ConnectionConfig::new(self.config.host.clone(), self.config.port, nick);
        config.tls = self.config.tls;
        config.server_password = self.config.password.clone();
        config.flood = FloodConfig {
            burst: self.config.flood_burst,
            interval: self.config.flood_interval,
        };
        if let Some(encoding) =
            encoding_rs::Encoding::for_label(self.config.fallback_encoding.as_bytes())
        {
            config.fallback_encoding = encoding;
        }
        config
    }

    /// Connects the bot and starts its event loop.
    pub fn start(self: &Arc<Self>, runtime: Arc<dyn Runtime>) -> Result<(), BridgeError> {
        let _ = self.runtime.set(runtime);
        let mut config = self.connection_config(&self.config.bot_nick);
        config.realname = "Passerelle Matrix bridge".to_owned();
        config.sasl = self.config.sasl.as_ref().map(|s| match s {
            crate::config::SaslConfig::Plain { username, password } => Sasl::Plain {
                username: username.clone(),
                password: password.clone(),
            },
            crate::config::SaslConfig::External => Sasl::External,
        });
        config.nickserv_password = self.config.nickserv_password.clone();
        let (handle, events) = self
            .engine
            .connect(config)
            .map_err(|e| BridgeError::permanent(format!("IRC settings: {e:?}")))?;
        let _ = self.bot.set(handle);
        tokio::spawn(self.clone().bot_events(events));
        tokio::spawn(self.clone().reconnect_puppets());
        tokio::spawn(self.clone().idle_sweep());
        Ok(())
    }

    pub async fn stop(&self) {
        for puppet in self.puppets.lock().await.values() {
            puppet.handle.disconnect(Some("Bridge shutting down"));
        }
        if let Some(bot) = self.bot.get() {
            bot.disconnect(Some("Bridge shutting down"));
        }
    }

    /// Marks a channel bridged and joins it with the bot.
    pub async fn bridge_channel(&self, channel: &str) -> Result<(), BridgeError> {
        let channel = casefold(channel);
        self.bridged
            .lock()
            .expect("bridged lock")
            .insert(channel.clone());
        if let Some(bot) = self.bot.get().cloned() {
            // Joined now if connected, else at registration (bot_events);
            // retried meanwhile so a registration racing this is not missed.
            tokio::spawn(async move {
                for _ in 0..120 {
                    if bot.state().channels.iter().any(|c| casefold(c) == channel) {
                        return;
                    }
                    if bot.join(&channel).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        Ok(())
    }

    fn is_bridged(&self, channel: &str) -> bool {
        self.bridged
            .lock()
            .expect("bridged lock")
            .contains(&casefold(channel))
    }

    /// Whether a nick is the bot or one of our puppets (its lines are echoes).
    fn is_ours(&self, nick: &str) -> bool {
        let folded = casefold(nick);
        self.bot
            .get()
            .is_some_and(|b| casefold(&b.state().nick) == folded)
            || self
                .puppet_nicks
                .lock()
                .expect("nick lock")
                .contains_key(&folded)
            || self
                .departing
                .lock()
                .expect("departing lock")
                .contains_key(&folded)
    }

    /// The Matrix user behind a puppet nick.
    pub fn puppet_owner(&self, nick: &str) -> Option<String> {
        self.puppet_nicks
            .lock()
            .expect("nick lock")
            .get(&casefold(nick))
            .cloned()
    }

    /// The current nick of a Matrix user's puppet.
    pub fn puppet_owner_nick(&self, mxid: &str) -> Option<String> {
        self.puppet_nicks
            .lock()
            .expect("nick lock")
            .iter()
            .find(|(_, owner)| *owner == mxid)
            .map(|(nick, _)| self.display_nick(nick))
    }

    fn sender(&self, nick: &str) -> Sender {
        Sender::new(ids::make_user(&self.name, nick)).with_display_name(nick)
    }

    /// Queues an event for Matrix; failures are logged (the portal queue
    /// keeps the order, so this does not wait).
    fn emit(
        &self,
        portal: PortalKey,
        nick: &str,
        ts: u64,
        kind: RemoteEventKind,
        id: Option<String>,
    ) {
        let mut event = RemoteEvent::new(portal, self.sender(nick), ts, kind);
        event.remote_id = id.map(Into::into);
        let pending = self.runtime().enqueue(event);
        tokio::spawn(async move {
            if let Err(e) = pending.await {
                tracing::debug!(error = %e, "IRC event not bridged");
            }
        });
    }

    fn channel_portal(&self, channel: &str) -> PortalKey {
        ids::make_channel_portal(&self.name, channel)
    }

    async fn bot_events(self: Arc<Self>, mut events: mpsc::Receiver<Event>) {
        while let Some(event) = events.recv().await {
            match event {
                Event::Registered { nick, isupport, .. } => {
                    tracing::info!(network = %self.name, nick, "IRC bot connected");
                    *self.prefixes.lock().expect("prefix lock") = isupport.prefix();
                    self.channels.lock().expect("channel lock").clear();
                    let channels: Vec<String> = self
                        .bridged
                        .lock()
                        .expect("bridged lock")
                        .iter()
                        .cloned()
                        .collect();
                    // Not awaited in this loop: the connection waits for
                    // this loop to take its events (the server's answers to
                    // the rejoin) while a join waits for room in the
                    // connection's send queue; past a few dozen channels
                    // both queues fill and the bot goes deaf for good.
                    if let Some(bot) = self.bot.get().cloned() {
                        tokio::spawn(async move {
                            for channel in channels {
                                let _ = bot.join(&channel).await;
                            }
                        });
                    }
                }
                Event::Message(message) => {
                    self.on_bot_message(&message);
                    // Not awaited here either, for the same reason as the
                    // rejoin: a full send queue would stop this loop (each
                    // nick gets one answer, so their order does not matter).
                    if let Some((nick, answer)) = self.private_answer(&message)
                        && let Some(bot) = self.bot.get().cloned()
                    {
                        tokio::spawn(async move {
                            if let Err(e) = bot.notice(&nick, &answer).await {
                                tracing::debug!(error = ?e, "the bot could not answer a private message");
                            }
                        });
                    }
                }
                Event::Disconnected { reason } => {
                    // One line, whatever the number of users behind it.
                    tracing::warn!(network = %self.name, ?reason, "IRC bot disconnected");
                }
                _ => {}
            }
        }
    }

    fn on_bot_message(&self, m: &IrcMessage) {
        let ts = m.server_time_ms.map(|t| t as u64).unwrap_or_else(now_ms);
        let nick = m.source_nick().unwrap_or_default().to_owned();
        match m.command.as_str() {
            "PRIVMSG" | "NOTICE" => {
                let (Some(target), Some(text)) = (m.param(0), m.param(1)) else {
                    return;
                };
                if self.is_ours(&nick) || nick.is_empty() {
                    return;
                }
                if !self.is_bridged(target) {
                    return; // private messages to the bot: `private_answer`
                }
                let Some(mut content) = self.message_content(&m.command, text) else {
                    return;
                };
                content.reply_to = self.reply_target(m);
                let id = self.message_id(&nick, m);
                let portal = self.channel_portal(target);
                self.emit(
                    portal,
                    &nick,
                    ts,
                    RemoteEventKind::Message(content),
                    Some(id),
                );
            }
            "TAGMSG" => {
                // An IRCv3 reaction: `+draft/react` on the message that
                // `+draft/reply` points at.
                let Some(target) = m.param(0) else { return };
                if !self.is_bridged(target) || self.is_ours(&nick) || nick.is_empty() {
                    return;
                }
                let (Some(key), Some(reacted)) = (m.tag("+draft/react"), self.reply_target(m))
                else {
                    return;
                };
                if key.is_empty() {
                    return;
                }
                let kind = RemoteEventKind::Reaction {
                    target: reacted,
                    key: key.to_owned(),
                };
                let id = m.tag("msgid").map(|msgid| format!("{msgid}|{nick}"));
                self.emit(self.channel_portal(target), &nick, ts, kind, id);
            }
            "JOIN" => {
                let Some(channel) = m.param(0) else { return };
                self.add_member(channel, &nick, "");
                if self.is_bridged(channel) && !self.is_ours(&nick) {
                    self.emit(
                        self.channel_portal(channel),
                        &nick,
                        ts,
                        RemoteEventKind::Join,
                        None,
                    );
                }
            }
            "PART" => {
                let Some(channel) = m.param(0) else { return };
                self.remove_member(channel, &nick);
                if self.is_bridged(channel) && !self.is_ours(&nick) {
                    let reason = m.param(1).map(str::to_owned);
                    self.emit(
                        self.channel_portal(channel),
                        &nick,
                        ts,
                        RemoteEventKind::Leave { reason },
                        None,
                    );
                }
            }
            "QUIT" => {
                if self
                    .departing
                    .lock()
                    .expect("departing lock")
                    .remove(&casefold(&nick))
                    .is_some()
                {
                    // A puppet we disconnected: gone from our member lists too.
                    for channel in self.channels_of(&nick) {
                        self.remove_member(&channel, &nick);
                    }
                    return;
                }
                if self.is_ours(&nick) {
                    return;
                }
                let reason = m.param(0).map(str::to_owned);
                if let Some(servers) = reason.as_deref().and_then(netsplit_servers) {
                    self.note_netsplit(&nick, servers);
                }
                for channel in self.channels_of(&nick) {
                    self.remove_member(&channel, &nick);
                    if self.is_bridged(&channel) {
                        let kind = RemoteEventKind::Leave {
                            reason: reason.clone(),
                        };
                        self.emit(self.channel_portal(&channel), &nick, ts, kind, None);
                    }
                }
            }
            "KICK" => {
                let (Some(channel), Some(target)) = (m.param(0), m.param(1)) else {
                    return;
                };
                self.remove_member(channel, target);
                if self.is_bridged(channel) && !self.is_ours(target) {
                    let kind = RemoteEventKind::Kick {
                        target: ids::make_user(&self.name, target),
                        reason: m.param(2).map(str::to_owned),
                    };
                    self.emit(self.channel_portal(channel), &nick, ts, kind, None);
                }
            }
            "NICK" => {
                let Some(new) = m.param(0) else { return };
                if self.is_ours(&nick) || self.is_ours(new) {
                    return;
                }
                // Rule: a ghost is one nick. On a nick change the old ghost
                // leaves with "now known as …" and the new one joins, so the
                // history stays with the name it was said under.
                for channel in self.channels_of(&nick) {
                    let modes = self.remove_member(&channel, &nick);
                    self.add_member(&channel, new, &modes);
                    if self.is_bridged(&channel) {
                        let portal = self.channel_portal(&channel);
                        let reason = Some(format!("now known as {new}"));
                        self.emit(
                            portal.clone(),
                            &nick,
                            ts,
                            RemoteEventKind::Leave { reason },
                            None,
                        );
                        self.emit(portal, new, ts, RemoteEventKind::Join, None);
                    }
                }
            }
            "TOPIC" => {
                let (Some(channel), Some(topic)) = (m.param(0), m.param(1)) else {
                    return;
                };
                if self.is_bridged(channel) && !self.is_ours(&nick) {
                    let topic = irc_to_matrix(topic).body;
                    self.emit(
                        self.channel_portal(channel),
                        &nick,
                        ts,
                        RemoteEventKind::Topic { topic },
                        None,
                    );
                }
            }
            "MODE" => self.on_mode(m, &nick, ts),
            "353" => self.on_names(m, ts),
            _ => {}
        }
    }

    /// Collects a netsplit's QUITs for a few seconds, then posts one
    /// summary per bridged channel instead of a notice per user.
    fn note_netsplit(&self, nick: &str, servers: (String, String)) {
        let channels = self.channels_of(nick);
        let mut split = self.netsplit.lock().expect("netsplit lock");
        let first = split.is_none();
        let (_, per_channel) = split.get_or_insert_with(|| (servers, HashMap::new()));
        for channel in channels.into_iter().filter(|c| self.is_bridged(c)) {
            per_channel
                .entry(channel)
                .or_default()
                .push(nick.to_owned());
        }
        if !first {
            return;
        }
        let runtime = self.runtime();
        let name = self.name.clone();
        let collected = self.netsplit.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let Some((servers, per_channel)) = collected.lock().expect("netsplit lock").take()
            else {
                return;
            };
            for (channel, nicks) in per_channel {
                let portal = ids::make_channel_portal(&name, &channel);
                runtime
                    .portal_notice(&portal, &netsplit_summary(&servers, &nicks))
                    .await;
            }
        });
    }

    /// `PRIVMSG`/`NOTICE` text -> Matrix content; `None` for CTCP queries.
    pub fn message_content(&self, command: &str, text: &str) -> Option<MessageContent> {
        let (kind, text) = match text.strip_prefix('\u{1}') {
            Some(ctcp) => {
                let ctcp = ctcp.trim_end_matches('\u{1}');
                let action = ctcp.strip_prefix("ACTION ")?;
                (MessageKind::Emote, action)
            }
            None if command == "NOTICE" => (MessageKind::Notice, text),
            None => (MessageKind::Text, text),
        };
        let formatted = irc_to_matrix(text);
        let mut content = MessageContent::text(formatted.body).with_kind(kind);
        content.html = formatted.html;
        Some(content)
    }

    /// The remote id of an IRC message, remembered by its server msgid
    /// (when it has one) for the replies and reactions that point at it.
    fn message_id(&self, nick: &str, m: &IrcMessage) -> String {
        let msgid = m.tag("msgid").filter(|id| !id.is_empty());
        let id = self.next_message_id(nick, msgid);
        if let Some(msgid) = msgid {
            self.msgids.lock().expect("msgid lock").insert(msgid, &id);
        }
        id
    }

    /// The message an IRCv3 `+draft/reply` tag points at, if remembered.
    fn reply_target(&self, m: &IrcMessage) -> Option<RemoteMessageId> {
        let msgid = m.tag("+draft/reply")?;
        self.msgids
            .lock()
            .expect("msgid lock")
            .get(msgid)
            .map(RemoteMessageId::from)
    }

    /// For a private message to the bot: who to answer, and with what,
    /// within the limits of [`crate::autoreply`].
    fn private_answer(&self, m: &IrcMessage) -> Option<(String, String)> {
        let (Some(target), Some(text), Some(nick)) = (m.param(0), m.param(1), m.source_nick())
        else {
            return None;
        };
        let bot = self.bot.get()?;
        if casefold(target) != casefold(&bot.state().nick)
            || self.is_ours(nick)
            || !autoreply::answers(&m.command, text)
        {
            return None;
        }
        let mut answered = self.autoreply.lock().expect("autoreply lock");
        answered
            .should_answer(&casefold(nick), Instant::now())
            .then(|| (nick.to_owned(), autoreply::text(&self.config)))
    }

    fn level_for(&self, modes: &str) -> i64 {
        let prefixes = self.prefixes.lock().expect("prefix lock").clone();
        modes
            .chars()
            .filter_map(|symbol| prefixes.iter().find(|(_, s)| *s == symbol).map(|(m, _)| *m))
            .filter_map(|mode| self.config.power_levels.get(&mode).copied())
            .max()
            .unwrap_or(0)
    }

    fn on_names(&self, m: &IrcMessage, ts: u64) {
        let (Some(channel), Some(names)) = (m.param(2), m.param(3)) else {
            return;
        };
        let symbols: Vec<char> = self
            .prefixes
            .lock()
            .expect("prefix lock")
            .iter()
            .map(|(_, s)| *s)
            .collect();
        for entry in names.split_whitespace() {
            let nick = entry.trim_start_matches(|c| symbols.contains(&c));
            let modes = &entry[..entry.len() - nick.len()];
            self.add_member(channel, nick, modes);
            if !self.config.names_sync || !self.is_bridged(channel) || self.is_ours(nick) {
                continue;
            }
            let portal = self.channel_portal(channel);
            self.emit(portal.clone(), nick, ts, RemoteEventKind::Join, None);
            let level = self.level_for(modes);
            if level > 0 {
                let kind = RemoteEventKind::PowerLevel {
                    target: ids::make_user(&self.name, nick),
                    level,
                };
                self.emit(portal, nick, ts, kind, None);
            }
        }
    }

    fn on_mode(&self, m: &IrcMessage, nick: &str, ts: u64) {
        let (Some(channel), Some(modes)) = (m.param(0), m.param(1)) else {
            return;
        };
        if !self.is_bridged(channel) {
            return;
        }
        let prefixes = self.prefixes.lock().expect("prefix lock").clone();
        let mut args = m.params.iter().skip(2);
        let mut adding = true;
        for c in modes.chars() {
            match c {
                '+' => adding = true,
                '-' => adding = false,
                mode => {
                    let Some((_, symbol)) = prefixes.iter().find(|(m, _)| *m == mode) else {
                        // Other modes with an argument consume one; we only
                        // need ranks, so stop at the first we do not know.
                        if !matches!(mode, 'b' | 'e' | 'I' | 'k' | 'l') {
                            continue;
                        }
                        args.next();
                        continue;
                    };
                    let Some(target) = args.next() else { break };
                    let modes = self.set_mode(channel, target, *symbol, adding);
                    if self.is_ours(target) {
                        continue;
                    }
                    let kind = RemoteEventKind::PowerLevel {
                        target: ids::make_user(&self.name, target),
                        level: self.level_for(&modes),
                    };
                    self.emit(self.channel_portal(channel), nick, ts, kind, None);
                }
            }
        }
    }

    fn add_member(&self, channel: &str, nick: &str, modes: &str) {
        self.channels
            .lock()
            .expect("channel lock")
            .entry(casefold(channel))
            .or_default()
            .members
            .insert(casefold(nick), (nick.to_owned(), modes.to_owned()));
    }

    /// Removes a member; returns its mode prefixes.
    fn remove_member(&self, channel: &str, nick: &str) -> String {
        self.channels
            .lock()
            .expect("channel lock")
            .get_mut(&casefold(channel))
            .and_then(|c| c.members.remove(&casefold(nick)))
            .map(|(_, modes)| modes)
            .unwrap_or_default()
    }

    fn set_mode(&self, channel: &str, nick: &str, symbol: char, adding: bool) -> String {
        let mut channels = self.channels.lock().expect("channel lock");
        let entry = channels
            .entry(casefold(channel))
            .or_default()
            .members
            .entry(casefold(nick))
            .or_insert_with(|| (nick.to_owned(), String::new()));
        entry.1.retain(|c| c != symbol);
        if adding {
            entry.1.push(symbol);
        }
        entry.1.clone()
    }

    fn channels_of(&self, nick: &str) -> Vec<String> {
        let folded = casefold(nick);
        self.channels
            .lock()
            .expect("channel lock")
            .iter()
            .filter(|(_, c)| c.members.contains_key(&folded))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The nick shown for a member, from a casefolded one.
    pub fn display_nick(&self, folded: &str) -> String {
        self.channels
            .lock()
            .expect("channel lock")
            .values()
            .find_map(|c| c.members.get(folded).map(|(n, _)| n.clone()))
            .unwrap_or_else(|| folded.to_owned())
    }

    /// The puppet of a Matrix user, connected (and registered) on demand.
    pub async fn puppet(
        self: &Arc<Self>,
        mxid: &str,
        display_name: &str,
    ) -> Result<Arc<Puppet>, BridgeError> {
        let puppet = {
            let mut puppets = self.puppets.lock().await;
            if let Some(p) = puppets.get(mxid).filter(|p| !p.handle.is_closed()) {
                p.clone()
            } else {
                if puppets.len() >= self.config.max_puppets {
                    return Err(BridgeError::permanent(format!(
                        "the bridge already holds {} IRC connections on {}",
                        self.config.max_puppets, self.name
                    )));
                }
                let localpart = mxid
                    .trim_start_matches('@')
                    .split(':')
                    .next()
                    .unwrap_or(mxid);
                let nick = crate::nick::from_template(
                    &self.config.nick_template,
                    display_name,
                    localpart,
                    30,
                );
                let puppet = self.connect_puppet(mxid, &nick)?;
                puppets.insert(mxid.to_owned(), puppet.clone());
                puppet
            }
        };
        puppet.ready().await?;
        puppet.touch();
        self.record_activity(&puppet, None).await;
        Ok(puppet)
    }

    fn connect_puppet(
        self: &Arc<Self>,
        mxid: &str,
        nick: &str,
    ) -> Result<Arc<Puppet>, BridgeError> {
        let mut config = self.connection_config(nick);
        config.realname = format!("{mxid} (via Matrix)");
        // USER accepts fewer characters than NICK: letters and digits of
        // the localpart, or "matrix".
        let user: String = mxid
            .trim_start_matches('@')
            .chars()
            .take_while(|c| *c != ':')
            .filter(char::is_ascii_alphanumeric)
            .take(10)
            .collect();
        config.username = if user.is_empty() {
            "matrix".to_owned()
        } else {
            user
        };
        let (handle, events) = self
            .engine
            .connect(config)
            .map_err(|e| BridgeError::permanent(format!("IRC settings: {e:?}")))?;
        let (ready_tx, ready) = watch::channel(false);
        self.puppet_nicks
            .lock()
            .expect("nick lock")
            .insert(casefold(nick), mxid.to_owned());
        let puppet = Arc::new(Puppet {
            mxid: mxid.to_owned(),
            handle,
            ready,
            last_active: Mutex::new(Instant::now()),
            last_written: Mutex::new(None),
        });
        tokio::spawn(
            self.clone()
                .puppet_events(puppet.mxid.clone(), events, ready_tx),
        );
        Ok(puppet)
    }

    async fn puppet_events(
        self: Arc<Self>,
        mxid: String,
        mut events: mpsc::Receiver<Event>,
        ready: watch::Sender<bool>,
    ) {
        while let Some(event) = events.recv().await {
            match event {
                Event::Registered { nick, .. } => {
                    self.puppet_nicks
                        .lock()
                        .expect("nick lock")
                        .insert(casefold(&nick), mxid.clone());
                    let _ = ready.send(true);
                }
                Event::Disconnected { .. } => {
                    let _ = ready.send(false);
                }
                Event::Message(m) if m.command == "PRIVMSG" || m.command == "NOTICE" => {
                    self.on_private_message(&mxid, &m);
                }
                Event::Message(m) if m.command == "NICK" => {
                    // Only our own nick change: the puppet also sees everyone
                    // else's in the channels it shares with them.
                    let (Some(old), Some(new)) = (m.source_nick(), m.param(0)) else {
                        continue;
                    };
                    let mut nicks = self.puppet_nicks.lock().expect("nick lock");
                    if nicks.get(&casefold(old)) == Some(&mxid) {
                        nicks.remove(&casefold(old));
                        nicks.insert(casefold(new), mxid.clone());
                    }
                }
                _ => {}
            }
        }
        let _ = ready.send(false);
    }

    /// A private message to a puppet: goes to the private-chat portal of
    /// that IRC user and that Matrix user.
    fn on_private_message(&self, mxid: &str, m: &IrcMessage) {
        let (Some(target), Some(text), Some(nick)) = (m.param(0), m.param(1), m.source_nick())
        else {
            return;
        };
        let state_nick = self
            .puppet_nicks
            .lock()
            .expect("nick lock")
            .get(&casefold(target))
            .cloned();
        if state_nick.as_deref() != Some(mxid) || self.is_ours(nick) {
            return; // a channel message (the bot bridges those) or an echo
        }
        let Some(mut content) = self.message_content(&m.command, text) else {
            return;
        };
        content.reply_to = self.reply_target(m);
        let ts = m.server_time_ms.map(|t| t as u64).unwrap_or_else(now_ms);
        let id = self.message_id(nick, m);
        let portal = ids::make_private_portal(&self.name, nick, mxid);
        self.emit(
            portal,
            nick,
            ts,
            RemoteEventKind::Message(content),
            Some(id),
        );
    }

    /// Writes the puppet's login with its last activity (at most every ten
    /// minutes), so recently active puppets are reconnected at start.
    pub async fn record_activity(&self, puppet: &Puppet, channels: Option<Vec<String>>) {
        {
            let mut written = puppet.last_written.lock().expect("puppet lock");
            if channels.is_none() && written.is_some_and(|w| w.elapsed() < ACTIVITY_WRITE) {
                return;
            }
            *written = Some(Instant::now());
        }
        let nick = puppet.nick();
        // The channels to rejoin at the next start: the bridged ones it is in.
        let mut channels = channels.unwrap_or_else(|| puppet.handle.state().channels);
        channels.retain(|c| self.is_bridged(c));
        let login = Login {
            mxid: puppet.mxid.clone(),
            login_id: self.name.clone(),
            remote_user: ids::make_user(&self.name, &nick),
            state: LoginState::Connected,
            secret: None,
            metadata: serde_json::json!({
                "nick": nick,
                "last_active_ms": now_ms(),
                "channels": channels,
            }),
        };
        if let Err(e) = self.runtime().save_login(login).await {
            tracing::warn!(error = %e, "could not record an IRC puppet");
        }
    }

    /// At start: reconnect the puppets of users active recently.
    async fn reconnect_puppets(self: Arc<Self>) {
        let Ok(logins) = self.runtime().logins().await else {
            return;
        };
        let cutoff =
            now_ms().saturating_sub(self.config.reconnect_active_within.as_millis() as u64);
        for login in logins.into_iter().filter(|l| l.login_id == self.name) {
            let active = login.metadata["last_active_ms"].as_u64().unwrap_or(0);
            let Some(nick) = login.metadata["nick"].as_str() else {
                continue;
            };
            if active < cutoff || !self.config.puppets {
                continue;
            }
            let mut puppets = self.puppets.lock().await;
            if puppets.contains_key(&login.mxid) {
                continue;
            }
            match self.connect_puppet(&login.mxid, nick) {
                Ok(puppet) => {
                    let channels: Vec<String> = login.metadata["channels"]
                        .as_array()
                        .map(|c| {
                            c.iter()
                                .filter_map(|c| c.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    let rejoin = puppet.clone();
                    tokio::spawn(async move {
                        if rejoin.ready().await.is_ok() {
                            for channel in channels {
                                let _ = rejoin.handle.join(&channel).await;
                            }
                        }
                    });
                    puppets.insert(login.mxid.clone(), puppet);
                }
                Err(e) => tracing::warn!(error = %e, "could not reconnect a puppet"),
            }
        }
    }

    /// `forget-me`: the user's puppet quits now (its stored login is
    /// deleted by the runtime right after).
    pub async fn forget(&self, mxid: &str) {
        let mut puppets = self.puppets.lock().await;
        if let Some(p) = puppets.remove(mxid) {
            self.puppet_nicks
                .lock()
                .expect("nick lock")
                .retain(|_, owner| owner != mxid);
            self.departing
                .lock()
                .expect("departing lock")
                .insert(casefold(&p.nick()), Instant::now());
            p.handle.disconnect(None);
        }
    }

    /// Disconnects puppets idle for longer than `idle_timeout`.
    async fn idle_sweep(self: Arc<Self>) {
        let every =
            (self.config.idle_timeout / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::time::sleep(every).await;
            let mut puppets = self.puppets.lock().await;
            let idle: Vec<String> = puppets
                .iter()
                .filter(|(_, p)| p.idle_for() > self.config.idle_timeout)
                .map(|(m, _)| m.clone())
                .collect();
            let mut departing = self.departing.lock().expect("departing lock");
            departing.retain(|_, since| since.elapsed() < DEPARTING);
            for mxid in idle {
                if let Some(p) = puppets.remove(&mxid) {
                    tracing::info!(network = %self.name, "disconnecting an idle puppet");
                    self.puppet_nicks
                        .lock()
                        .expect("nick lock")
                        .retain(|_, owner| *owner != mxid);
                    departing.insert(casefold(&p.nick()), Instant::now());
                    p.handle.disconnect(Some("Idle"));
                }
            }
        }
    }

    /// The portal target of a key, if it is one of this network's.
    pub fn target(&self, key: &PortalKey) -> Option<PortalTarget> {
        ids::parse_portal(key).filter(|t| match t {
            PortalTarget::Channel { network, .. } | PortalTarget::Private { network, .. } => {
                *network == self.name
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netsplits_are_recognised() {
        assert_eq!(
            netsplit_servers("irc.a.net irc.b.net"),
            Some(("irc.a.net".to_owned(), "irc.b.net".to_owned()))
        );
        assert_eq!(
            netsplit_servers("*.net *.split"),
            Some(("*.net".to_owned(), "*.split".to_owned()))
        );
        for reason in [
            "Quit: bye",
            "Ping timeout: 240 seconds",
            "irc.a.net",
            "a.net b.net c.net",
            "see you.net later.x",
        ] {
            assert_eq!(netsplit_servers(reason), None, "{reason}");
        }
    }

    #[test]
    fn one_summary_for_many_users() {
        let servers = ("irc.a.net".to_owned(), "irc.b.net".to_owned());
        let nicks: Vec<String> = (0..25).map(|i| format!("user{i}")).collect();
        let text = netsplit_summary(&servers, &nicks);
        assert!(
            text.starts_with("Netsplit between irc.a.net and irc.b.net: 25 user(s) left (user0, "),
            "{text}"
        );
        assert!(text.contains("user9, …)"), "{text}");
        assert!(!text.contains("user10"), "{text}");
    }
}
