//! The IRC [`Network`]: routes portals to their configured IRC network and
//! turns Matrix events into IRC lines.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use passerelle_api::{
    BridgeError, Capabilities, CommandContext, CommandSpec, Delivered, MatrixEvent,
    MatrixEventKind, MessageContent, MessageKind, Network, NetworkInfo, PermissionLevel,
    PortalInfo, PortalKey, PortalKind, RemoteUserId, Runtime, Sender, Via,
};

use crate::config::IrcConfig;
use crate::conn::{Engine, EngineConfig, Handle, Outgoing, Tag, TlsRoots};
use crate::format::matrix_to_irc_with;
use crate::ids::{self, PortalTarget};
use crate::server::Server;
use crate::split::{split_lines, text_budget};

/// The IRC module.
pub struct IrcModule {
    servers: BTreeMap<String, Arc<Server>>,
}

impl IrcModule {
    /// Builds the module from its validated config section.
    pub fn new(config: IrcConfig) -> Self {
        let engine = Engine::new(EngineConfig {
            max_concurrent_connects: config.max_concurrent_connects,
            tls_roots: TlsRoots::Native,
        });
        let servers = config
            .networks
            .into_iter()
            .map(|(name, net)| {
                let server = Arc::new(Server::new(name.clone(), net, engine.clone()));
                (name, server)
            })
            .collect();
        Self { servers }
    }

    fn server(&self, name: &str) -> Result<&Arc<Server>, BridgeError> {
        self.servers
            .get(name)
            .ok_or_else(|| BridgeError::not_found(format!("no IRC network named {name}")))
    }

    fn server_of(&self, key: &PortalKey) -> Result<(&Arc<Server>, PortalTarget), BridgeError> {
        let target = ids::parse_portal(key)
            .ok_or_else(|| BridgeError::not_found(format!("{key} is not an IRC portal")))?;
        let name = match &target {
            PortalTarget::Channel { network, .. } | PortalTarget::Private { network, .. } => {
                network
            }
        };
        Ok((self.server(name)?, target))
    }

    fn channel_info(&self, server: &Server, channel: &str) -> PortalInfo {
        let mut info = PortalInfo::new(
            ids::make_channel_portal(&server.name, channel),
            PortalKind::Group,
        );
        info.name = Some(channel.to_owned());
        info.topic = Some(format!("{channel} on {}", server.name));
        info.relay = server.config.relay;
        // Whichever comes first (an IRC event or a Matrix user joining the
        // alias), the room is made public with its alias.
        info.alias_localpart = Some(ids::make_alias_localpart(&server.name, channel));
        info
    }
}

/// How a Matrix event reaches IRC: the user's puppet, or the bot with the
/// sender's name in front.
enum Speaker {
    Puppet(Handle),
    Relay(Handle, String),
}

impl Speaker {
    fn handle(&self) -> &Handle {
        match self {
            Speaker::Puppet(h) | Speaker::Relay(h, _) => h,
        }
    }

    fn nick(&self) -> String {
        self.handle().state().nick
    }
}

fn send_error(e: crate::conn::SendError) -> BridgeError {
    use crate::conn::SendError;
    match e {
        SendError::NotConnected => BridgeError::retryable("the IRC connection is down; retrying"),
        SendError::Closed => BridgeError::retryable("the IRC connection was closed"),
        SendError::MissingCapability(cap) => {
            BridgeError::unsupported(format!("this IRC server lacks {cap}"))
        }
        other => BridgeError::permanent(format!("IRC refused the line: {other:?}")),
    }
}

#[async_trait]
impl Network for IrcModule {
    fn info(&self) -> NetworkInfo {
        NetworkInfo {
            id: ids::NETWORK.into(),
            display_name: "IRC".to_owned(),
            namespace_prefix: ids::PREFIX.to_owned(),
            capabilities: Capabilities {
                edits: true,
                redactions: false,
                reactions: true,
                replies: true,
                threads: false,
                media: true,
                typing: true,
                logins: true,
            },
        }
    }

    async fn start(&self, runtime: Arc<dyn Runtime>) -> Result<(), BridgeError> {
        for server in self.servers.values() {
            server.start(runtime.clone())?;
        }
        for key in runtime.portals().await? {
            if let Some(PortalTarget::Channel { network, channel }) = ids::parse_portal(&key)
                && let Some(server) = self.servers.get(&network)
            {
                server.bridge_channel(&channel).await?;
            }
        }
        for server in self.servers.values() {
            for (channel, room) in &server.config.channels {
                let info = self.channel_info(server, channel);
                match runtime.link_portal(room, info).await {
                    Ok(()) => server.bridge_channel(channel).await?,
                    Err(e) => {
                        tracing::warn!(channel, error = %e, "static channel mapping not linked")
                    }
                }
            }
        }
        Ok(())
    }

    async fn stop(&self) {
        for server in self.servers.values() {
            server.stop().await;
        }
    }

    async fn portal_info(&self, key: &PortalKey) -> Result<Option<PortalInfo>, BridgeError> {
        let Ok((server, target)) = self.server_of(key) else {
            return Ok(None);
        };
        Ok(Some(match target {
            PortalTarget::Channel { channel, .. } => self.channel_info(server, &channel),
            PortalTarget::Private { nick, mxid, .. } => {
                let mut info = PortalInfo::new(key.clone(), PortalKind::Dm);
                info.name = Some(server.display_nick(&nick));
                info.invite = vec![mxid];
                info.relay = false;
                info
            }
        }))
    }

    async fn resolve_alias(
        &self,
        alias_localpart: &str,
    ) -> Result<Option<PortalInfo>, BridgeError> {
        let Some((network, channel)) = ids::parse_alias_localpart(alias_localpart) else {
            return Ok(None);
        };
        let Some(server) = self.servers.get(&network) else {
            return Ok(None);
        };
        server.bridge_channel(&channel).await?;
        Ok(Some(self.channel_info(server, &channel)))
    }

    async fn resolve_user(&self, localpart: &str) -> Result<Option<Sender>, BridgeError> {
        Ok(self.parse_ghost_localpart(localpart).map(|user| {
            let nick = ids::parse_user(&user)
                .map(|(_, n)| n.to_owned())
                .unwrap_or_default();
            Sender::new(user).with_display_name(nick)
        }))
    }

    fn parse_ghost_localpart(&self, localpart: &str) -> Option<RemoteUserId> {
        ids::parse_ghost_localpart(localpart, self.servers.keys().map(String::as_str))
    }

    fn ghost_localpart(&self, user: &RemoteUserId) -> String {
        ids::ghost_localpart(user)
    }

    async fn private_chat(
        &self,
        mxid: &str,
        with: &RemoteUserId,
    ) -> Result<Option<PortalInfo>, BridgeError> {
        let Some((network, nick)) = ids::parse_user(with) else {
            return Ok(None);
        };
        let Some(server) = self.servers.get(network) else {
            return Ok(None);
        };
        if !server.config.puppets {
            return Ok(None);
        }
        let mut info = PortalInfo::new(
            ids::make_private_portal(network, nick, mxid),
            PortalKind::Dm,
        );
        info.name = Some(server.display_nick(nick));
        info.relay = false;
        Ok(Some(info))
    }

    fn thirdparty_protocol(&self) -> serde_json::Value {
        let instances: Vec<serde_json::Value> = self
            .servers
            .values()
            .map(|s| {
                serde_json::json!({
                    "desc": format!("{} ({})", s.name, s.config.host),
                    "network_id": s.name,
                    "fields": {"network": s.name},
                })
            })
            .collect();
        serde_json::json!({
            "user_fields": ["network", "nick"],
            "location_fields": ["network", "channel"],
            "icon": "",
            "field_types": {
                "network": {"regexp": "[a-z0-9-]+", "placeholder": "libera"},
                "nick": {"regexp": "[^\\s#]+", "placeholder": "nick"},
                "channel": {"regexp": "[#&+!][^\\s,]+", "placeholder": "#channel"},
            },
            "instances": instances,
        })
    }

    fn thirdparty_locations(
        &self,
        fields: &std::collections::BTreeMap<String, String>,
    ) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
        let (Some(network), Some(channel)) = (fields.get("network"), fields.get("channel")) else {
            return Vec::new();
        };
        if !self.servers.contains_key(network) || !channel.starts_with(['#', '&', '+', '!']) {
            return Vec::new();
        }
        vec![(ids::make_alias_localpart(network, channel), fields.clone())]
    }

    fn thirdparty_users(
        &self,
        fields: &std::collections::BTreeMap<String, String>,
    ) -> Vec<(RemoteUserId, std::collections::BTreeMap<String, String>)> {
        let (Some(network), Some(nick)) = (fields.get("network"), fields.get("nick")) else {
            return Vec::new();
        };
        if !self.servers.contains_key(network) {
            return Vec::new();
        }
        vec![(ids::make_user(network, nick), fields.clone())]
    }

    fn commands(&self) -> Vec<CommandSpec> {
        vec![CommandSpec {
            name: "link",
            usage: "link irc <#channel> <network>",
            description: "bridge this room to an IRC channel",
            level: PermissionLevel::Admin,
        }]
    }

    async fn run_command(
        &self,
        ctx: CommandContext,
        name: &str,
        args: &[String],
    ) -> Result<String, BridgeError> {
        match (name, args) {
            ("link", [channel, network]) | ("link", [network, channel])
                if channel.starts_with('#') =>
            {
                let server = self.server(network)?;
                let info = self.channel_info(server, channel);
                server.runtime().link_portal(&ctx.room_id, info).await?;
                server.bridge_channel(channel).await?;
                Ok(format!(
                    "This room is now bridged to {channel} on {network}."
                ))
            }
            ("link", _) => Err(BridgeError::permanent(format!(
                "usage: link irc <#channel> <network> (networks: {})",
                self.servers.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
            _ => Err(BridgeError::not_found(format!("unknown command {name}"))),
        }
    }

    async fn forget_user(&self, mxid: &str) {
        for server in self.servers.values() {
            server.forget(mxid).await;
        }
    }

    async fn handle_matrix(&self, event: MatrixEvent) -> Result<Delivered, BridgeError> {
        let (server, target) = self.server_of(&event.portal)?;
        let irc_target = match &target {
            PortalTarget::Channel { channel, .. } => channel.clone(),
            PortalTarget::Private { nick, mxid, .. } => {
                if *mxid != event.sender.mxid {
                    return Err(BridgeError::permanent(
                        "this private chat belongs to another Matrix user",
                    ));
                }
                server.display_nick(nick)
            }
        };
        let is_channel = matches!(target, PortalTarget::Channel { .. });
        let may_puppet = server.config.puppets && event.sender.level >= PermissionLevel::User;
        let speaker = if may_puppet {
            let puppet = server
                .puppet(&event.sender.mxid, &event.sender.display_name)
                .await?;
            if is_channel
                && !puppet
                    .handle
                    .state()
                    .channels
                    .iter()
                    .any(|c| crate::nick::casefold(c) == irc_target)
            {
                puppet.handle.join(&irc_target).await.map_err(send_error)?;
                let mut channels = puppet.handle.state().channels;
                channels.push(irc_target.clone());
                server.record_activity(&puppet, Some(channels)).await;
            }
            Speaker::Puppet(puppet.handle.clone())
        } else if is_channel && server.config.relay && event.via == Via::Relay {
            Speaker::Relay(server.bot()?.clone(), event.sender.display_name.clone())
        } else {
            return Err(BridgeError::not_logged_in(
                "you need your own IRC connection here, and this bridge does not give you one",
            ));
        };

        let banned = matches!(event.kind, MatrixEventKind::Ban { .. });
        match event.kind {
            MatrixEventKind::Message(content) => {
                let nick = self
                    .say(server, &speaker, &irc_target, &content, None)
                    .await?;
                Ok(Delivered::with_id(server.next_message_id(&nick, None)))
            }
            MatrixEventKind::Edit { content, .. } => {
                let nick = self
                    .say(server, &speaker, &irc_target, &content, Some("[edit] "))
                    .await?;
                Ok(Delivered::with_id(server.next_message_id(&nick, None)))
            }
            MatrixEventKind::Reaction { target, key } => {
                let state = speaker.handle().state();
                let msgid = crate::server::server_msgid(target.as_str());
                match (state.caps.iter().any(|c| c == "message-tags"), msgid) {
                    (true, Some(msgid)) => {
                        let tags = vec![
                            Tag("+draft/react".to_owned(), Some(key)),
                            Tag("+draft/reply".to_owned(), Some(msgid.to_owned())),
                        ];
                        speaker
                            .handle()
                            .tagmsg(&irc_target, tags)
                            .await
                            .map_err(send_error)?;
                        Ok(Delivered::none())
                    }
                    _ => Err(BridgeError::unsupported(
                        "this IRC server cannot show reactions",
                    )),
                }
            }
            MatrixEventKind::Join => Ok(Delivered::none()),
            MatrixEventKind::Leave => {
                if let (Speaker::Puppet(handle), true) = (&speaker, is_channel) {
                    handle
                        .part(&irc_target, Some("Left the Matrix room"))
                        .await
                        .map_err(send_error)?;
                }
                Ok(Delivered::none())
            }
            MatrixEventKind::Kick { target, reason } | MatrixEventKind::Ban { target, reason }
                if is_channel =>
            {
                let Speaker::Puppet(handle) = &speaker else {
                    return Err(BridgeError::not_logged_in(
                        "kicks and bans need your own IRC connection",
                    ));
                };
                let nick = ids::parse_user(&target)
                    .map(|(_, n)| server.display_nick(n))
                    .unwrap_or_default();
                if banned {
                    let mask = format!("{nick}!*@*");
                    let line = Outgoing::new("MODE")
                        .param(irc_target.clone())
                        .param("+b")
                        .param(mask);
                    handle.send(line).await.map_err(send_error)?;
                }
                let mut line = Outgoing::new("KICK").param(irc_target.clone()).param(nick);
                if let Some(reason) = reason {
                    line = line.param(reason);
                }
                handle.send(line).await.map_err(send_error)?;
                Ok(Delivered::none())
            }
            MatrixEventKind::Topic { topic } => {
                let line = Outgoing::new("TOPIC")
                    .param(irc_target.clone())
                    .param(topic.replace('\n', " "));
                speaker.handle().send(line).await.map_err(send_error)?;
                Ok(Delivered::none())
            }
            MatrixEventKind::PowerLevels { changes } => {
                let Speaker::Puppet(handle) = &speaker else {
                    return Err(BridgeError::not_logged_in(
                        "ranks need your own IRC connection",
                    ));
                };
                // The highest mode whose level the new power level reaches.
                let mut modes: Vec<(char, i64)> = server
                    .config
                    .power_levels
                    .iter()
                    .map(|(m, l)| (*m, *l))
                    .collect();
                modes.sort_by_key(|(_, l)| -*l);
                for (user, level) in changes {
                    let Some((_, nick)) = ids::parse_user(&user) else {
                        continue;
                    };
                    let nick = server.display_nick(nick);
                    let wanted = modes.iter().find(|(_, l)| level >= *l).map(|(m, _)| *m);
                    for (mode, _) in &modes {
                        let sign = if Some(*mode) == wanted { '+' } else { '-' };
                        let line = Outgoing::new("MODE")
                            .param(irc_target.clone())
                            .param(format!("{sign}{mode}"))
                            .param(nick.clone());
                        handle.send(line).await.map_err(send_error)?;
                    }
                }
                Ok(Delivered::none())
            }
            MatrixEventKind::Typing { typing } => {
                let state = speaker.handle().state();
                if matches!(speaker, Speaker::Puppet(..))
                    && state.caps.iter().any(|c| c == "message-tags")
                {
                    let value = if typing { "active" } else { "done" };
                    let tags = vec![Tag("+typing".to_owned(), Some(value.to_owned()))];
                    let _ = speaker.handle().tagmsg(&irc_target, tags).await;
                }
                Ok(Delivered::none())
            }
            MatrixEventKind::Redaction { .. } | MatrixEventKind::ReactionRedaction { .. } => {
                Err(BridgeError::unsupported("IRC messages cannot be deleted"))
            }
            _ => Ok(Delivered::none()),
        }
    }
}

impl IrcModule {
    /// Sends a message as IRC lines; returns the nick it was sent as.
    async fn say(
        &self,
        server: &Server,
        speaker: &Speaker,
        target: &str,
        content: &MessageContent,
        marker: Option<&str>,
    ) -> Result<String, BridgeError> {
        let runtime = server.runtime();
        let nick_for = |mxid: &str| {
            server.puppet_owner_nick(mxid).or_else(|| {
                let local = mxid.strip_prefix('@')?.split(':').next()?;
                let local = passerelle_api::mxid::unescape_localpart(local)?;
                let user = self.parse_ghost_localpart(&local)?;
                ids::parse_user(&user).map(|(_, n)| server.display_nick(n))
            })
        };
        let mut text = match &content.media {
            Some(media) => {
                let mxc = media.mxc.as_deref().unwrap_or_default();
                let link = runtime.media_link(mxc, &media.filename).ok_or_else(|| {
                    BridgeError::unsupported(
                        "files cannot be linked on IRC: the bridge has no media.public_url",
                    )
                })?;
                if content.body.is_empty() || content.body == media.filename {
                    format!("{} <{link}>", media.filename)
                } else {
                    format!("{} <{link}>", content.body)
                }
            }
            None => matrix_to_irc_with(content.html.as_deref(), &content.body, &nick_for),
        };
        if let Some(reply_to) = &content.reply_to
            && let Some((_, nick)) = reply_to.as_str().rsplit_once('|')
        {
            let nick = server.display_nick(nick);
            if !text.starts_with(&nick) {
                text = format!("{nick}: {text}");
            }
        }
        if let Some(marker) = marker {
            text = format!("{marker}{text}");
        }
        let nick = speaker.nick();
        let linelen = speaker.handle().state().isupport.linelen();
        let (command, prefix) = match (content.kind, speaker) {
            (MessageKind::Notice, Speaker::Puppet(..)) => ("NOTICE", String::new()),
            (MessageKind::Emote, Speaker::Relay(_, name)) => ("PRIVMSG", format!("* {name} ")),
            (_, Speaker::Relay(_, name)) => ("PRIVMSG", format!("<{name}> ")),
            _ => ("PRIVMSG", String::new()),
        };
        let emote = content.kind == MessageKind::Emote && matches!(speaker, Speaker::Puppet(..));
        let overhead = prefix.len() + if emote { "\u{1}ACTION \u{1}".len() } else { 0 };
        let budget = text_budget(linelen, &nick, command, target)
            .saturating_sub(overhead)
            .max(16);
        let mut lines = split_lines(&text, budget);
        if lines.len() > server.config.max_lines {
            // A long message goes as a link to a text file, when possible.
            let link = match runtime
                .upload_media(
                    text.clone().into_bytes(),
                    "text/plain; charset=utf-8",
                    "message.txt",
                )
                .await
            {
                Ok(mxc) => runtime.media_link(&mxc, "message.txt"),
                Err(_) => None,
            };
            let first = lines[0].clone();
            let more = lines.len() - 1;
            lines = match link {
                Some(link) => vec![format!("{first} … (full message: {link})")],
                None => {
                    let mut kept: Vec<String> = lines.drain(..server.config.max_lines).collect();
                    kept.push(format!(
                        "(… {} more lines not sent)",
                        more + 1 - server.config.max_lines
                    ));
                    kept
                }
            };
        }
        // IRCv3 reply tag on the first line, where the server has message-tags
        // and the replied-to message has a server msgid.
        let mut reply_tag = content
            .reply_to
            .as_ref()
            .and_then(|r| crate::server::server_msgid(r.as_str()))
            .filter(|_| {
                speaker
                    .handle()
                    .state()
                    .caps
                    .iter()
                    .any(|c| c == "message-tags")
            })
            .map(str::to_owned);
        for line in lines {
            let body = if emote {
                format!("\u{1}ACTION {line}\u{1}")
            } else {
                format!("{prefix}{line}")
            };
            let mut out = if command == "NOTICE" {
                Outgoing::notice(target, body)
            } else {
                Outgoing::privmsg(target, body)
            };
            if let Some(msgid) = reply_tag.take() {
                out = out.tag("+draft/reply", Some(msgid));
            }
            speaker.handle().send(out).await.map_err(send_error)?;
        }
        Ok(nick)
    }
}

#[cfg(test)]
mod tests {
    use crate::server::server_msgid;

    #[test]
    fn only_server_msgids_are_addressable() {
        assert_eq!(server_msgid("AbC123|carol"), Some("AbC123"));
        assert_eq!(server_msgid("~1795670000000.4|carol"), None);
        assert_eq!(server_msgid("nonick"), None);
        assert_eq!(server_msgid("|carol"), None);
    }
}
