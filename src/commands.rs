//! Bot commands: in the management room (a DM with the bot) every message is
//! a command; elsewhere a command starts with `!passerelle `. Built-ins plus
//! a registry of module commands, each with a permission level.

use std::sync::Arc;

use passerelle_api::{CommandContext, CommandSpec, PermissionLevel};

use crate::bridge::Bridge;

/// The prefix of a command outside the management room.
pub const PREFIX: &str = "!passerelle ";

/// Commands that take the network as their first argument (`link irc …`).
const NETWORK_FIRST: &[&str] = &["link", "login", "logout"];

const BUILTINS: &[CommandSpec] = &[
    CommandSpec {
        name: "help",
        usage: "help",
        description: "list the commands you can use",
        level: PermissionLevel::Relay,
    },
    CommandSpec {
        name: "version",
        usage: "version",
        description: "show the Passerelle version",
        level: PermissionLevel::Relay,
    },
    CommandSpec {
        name: "ping",
        usage: "ping",
        description: "check that the bridge and the homeserver reach each other",
        level: PermissionLevel::Relay,
    },
    CommandSpec {
        name: "unlink",
        usage: "unlink",
        description: "stop bridging this room",
        level: PermissionLevel::Admin,
    },
    CommandSpec {
        name: "disappear",
        usage: "disappear <7d|12h|30m|off>",
        description: "in a portal: bridged messages older than this are redacted in Matrix and deleted on the other side where the network allows",
        level: PermissionLevel::User,
    },
    CommandSpec {
        name: "forget-me",
        usage: "forget-me",
        description: "log out everywhere and delete everything the bridge stores about you",
        level: PermissionLevel::Relay,
    },
];

/// Splits a command line into words; `"quoted words"` stay together.
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(current);
    }
    words
}

impl Bridge {
    /// The command in `body`, if the message is one.
    pub(crate) async fn command_line(
        &self,
        room_id: &str,
        sender: &str,
        body: &str,
    ) -> anyhow::Result<Option<String>> {
        if let Some(rest) = body.strip_prefix(PREFIX) {
            return Ok(Some(rest.trim().to_owned()));
        }
        if body.trim() == PREFIX.trim() {
            return Ok(Some("help".to_owned()));
        }
        let management = self
            .store
            .matrix_user(sender)
            .await?
            .and_then(|u| u.management_room);
        if management.as_deref() == Some(room_id) {
            return Ok(Some(body.trim().to_owned()));
        }
        Ok(None)
    }

    /// Every command, built-in and from modules, with its network.
    fn command_specs(&self) -> Vec<(Option<String>, CommandSpec)> {
        let mut specs: Vec<(Option<String>, CommandSpec)> =
            BUILTINS.iter().map(|s| (None, s.clone())).collect();
        for (id, network) in self.networks() {
            specs.extend(
                network
                    .commands()
                    .into_iter()
                    .map(|s| (Some(id.clone()), s)),
            );
        }
        specs
    }

    /// Runs a command line and returns the reply text.
    pub(crate) async fn run_command(
        self: &Arc<Self>,
        room_id: &str,
        sender: &str,
        line: &str,
        event_id: &str,
    ) -> String {
        let words = split_words(line);
        let Some((name, args)) = words.split_first() else {
            return self.help_text(self.permissions.level(sender));
        };
        let name = name.to_lowercase();
        let level = self.permissions.level(sender);
        if level == PermissionLevel::None {
            return "You are not allowed to use this bridge.".to_owned();
        }
        if BUILTINS.iter().any(|b| b.name == name) {
            // Only known command names are logged: in a management room the
            // first word of any message would otherwise reach the logs.
            tracing::info!(command = %name, level = ?level, "command");
        }
        let denied = |spec: &CommandSpec| {
            format!(
                "You need the `{}` permission for `{}`.",
                format!("{:?}", spec.level).to_lowercase(),
                spec.name
            )
        };
        match name.as_str() {
            "help" => return self.help_text(level),
            "version" => return format!("Passerelle {}", env!("CARGO_PKG_VERSION")),
            "ping" => {
                let txn = format!("cmd-{}", crate::bridge::now_ms());
                return match self
                    .matrix
                    .ping_appservice(&self.config.appservice.id, &txn)
                    .await
                {
                    Ok(Some(ms)) => format!("Pong. The homeserver reached the bridge in {ms} ms."),
                    Ok(None) => "Pong. (This homeserver cannot measure the round trip.)".to_owned(),
                    Err(e) => {
                        format!("Pong from the bridge, but the homeserver could not reach it: {e}")
                    }
                };
            }
            "unlink" => {
                let spec = &BUILTINS[3];
                if level < spec.level {
                    return denied(spec);
                }
                return self.unlink(room_id).await;
            }
            "disappear" => {
                let spec = &BUILTINS[4];
                if level < spec.level {
                    return denied(spec);
                }
                return self.set_disappearing(room_id, args).await;
            }
            "forget-me" => return self.forget_me(sender).await,
            _ => {}
        }
        let specs = self.command_specs();
        let candidates: Vec<&(Option<String>, CommandSpec)> = specs
            .iter()
            .filter(|(net, s)| net.is_some() && s.name == name)
            .collect();
        let (network_id, spec, args) =
            if NETWORK_FIRST.contains(&name.as_str()) || candidates.len() > 1 {
                let Some(network) = args.first() else {
                    let nets: Vec<&str> = candidates
                        .iter()
                        .filter_map(|(n, _)| n.as_deref())
                        .collect();
                    return format!(
                        "Usage: `{name} <network> …` (networks: {})",
                        nets.join(", ")
                    );
                };
                match candidates
                    .iter()
                    .find(|(n, _)| n.as_deref() == Some(network.as_str()))
                {
                    Some((n, s)) => (n.clone().unwrap_or_default(), s.clone(), &args[1..]),
                    None => return format!("`{network}` has no `{name}` command here."),
                }
            } else if let Some((n, s)) = candidates.first() {
                (n.clone().unwrap_or_default(), s.clone(), args)
            } else {
                return format!("Unknown command `{name}`. Send `help` for the list.");
            };
        tracing::info!(command = %name, network = %network_id, level = ?level, "command");
        if level < spec.level {
            return denied(&spec);
        }
        if name == "login" && !self.is_management_room(room_id, sender).await {
            // Credentials typed here would stay in the room's history.
            if !args.is_empty()
                && let (Ok(room), Ok(event)) =
                    (ruma::RoomId::parse(room_id), ruma::EventId::parse(event_id))
                && let Err(e) = self.bot.redact(&room, &event, Some("credentials")).await
            {
                tracing::warn!(error = %e, "could not redact a login command");
            }
            return "Send `login` in your management room (a direct chat with me), where \
                    nobody else can read your credentials."
                .to_owned();
        }
        let Some(network) = self.network(&network_id).cloned() else {
            return format!("`{network_id}` is not enabled.");
        };
        let portal = match self.store.portal_by_room(room_id).await {
            Ok(p) => p
                .map(|p| p.key)
                .filter(|k| k.network.as_str() == network_id),
            Err(e) => {
                tracing::error!(error = %e, "store error in a command");
                return "Internal database error; try again later.".to_owned();
            }
        };
        let ctx = CommandContext {
            sender: sender.to_owned(),
            room_id: room_id.to_owned(),
            level,
            portal,
        };
        match network.run_command(ctx, &name, args).await {
            Ok(reply) => reply,
            Err(e) => format!("`{name}` failed: {}", e.message),
        }
    }

    async fn is_management_room(&self, room_id: &str, sender: &str) -> bool {
        matches!(
            self.store.matrix_user(sender).await,
            Ok(Some(user)) if user.management_room.as_deref() == Some(room_id)
        )
    }

    fn help_text(&self, level: PermissionLevel) -> String {
        let mut lines = vec![
            "Commands (prefix them with `!passerelle ` outside your management room):".to_owned(),
        ];
        for (_, spec) in self.command_specs() {
            if level >= spec.level {
                lines.push(format!("- `{}`: {}", spec.usage, spec.description));
            }
        }
        lines.join("\n")
    }

    async fn set_disappearing(&self, room_id: &str, args: &[String]) -> String {
        let usage = "Usage: `disappear <7d|12h|30m|off>` in a bridged room.";
        let Some(arg) = args.first() else {
            return usage.to_owned();
        };
        let after = if arg == "off" {
            None
        } else {
            match passerelle_api::config::parse_duration(arg) {
                Some(d) if d.as_secs() >= 1 => Some(d),
                _ => return usage.to_owned(),
            }
        };
        let portal = match self.store.portal_by_room(room_id).await {
            Ok(Some(p)) => p,
            Ok(None) => return "This room is not bridged.".to_owned(),
            Err(e) => {
                tracing::error!(error = %e, "store error in disappear");
                return "Internal database error; try again later.".to_owned();
            }
        };
        let ms = after.map(|d| d.as_millis() as i64);
        if let Err(e) = self.store.set_disappear(&portal.key, ms).await {
            tracing::error!(error = %e, "store error in disappear");
            return "Internal database error; try again later.".to_owned();
        }
        tracing::info!(portal = %portal.key, after_ms = ?ms, "disappearing messages set");
        match after {
            None => "Disappearing messages are off in this room.".to_owned(),
            Some(_) => format!(
                "Bridged messages in this room now disappear after {arg}: redacted in Matrix, \
                 and deleted on the other side where the network allows it (see docs/PRIVACY.md)."
            ),
        }
    }

    /// `forget-me`: every module forgets the user's connections and
    /// tokens, then every row about them is deleted.
    async fn forget_me(&self, sender: &str) -> String {
        for (_, network) in self.networks() {
            network.forget_user(sender).await;
        }
        match self.store.forget_user(sender).await {
            Ok(rows) => {
                tracing::info!(rows, "a user asked to be forgotten");
                "Done: you are logged out everywhere and the bridge keeps nothing about you \
                 (logins, tokens, your management room, the message map of what you sent). \
                 Messages already in Matrix or on the other networks stay there."
                    .to_owned()
            }
            Err(e) => {
                tracing::error!(error = %e, "store error in forget-me");
                "Internal database error; nothing was deleted. Try again later.".to_owned()
            }
        }
    }

    async fn unlink(&self, room_id: &str) -> String {
        match self.store.portal_by_room(room_id).await {
            Ok(Some(portal)) => match self.store.delete_portal(&portal.key).await {
                Ok(()) => {
                    tracing::info!(portal = %portal.key, "portal unlinked");
                    format!("This room is no longer bridged to {}.", portal.key)
                }
                Err(e) => {
                    tracing::error!(error = %e, "unlink failed");
                    "Internal database error; try again later.".to_owned()
                }
            },
            Ok(None) => "This room is not bridged.".to_owned(),
            Err(e) => {
                tracing::error!(error = %e, "unlink failed");
                "Internal database error; try again later.".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_with_quotes() {
        assert_eq!(
            split_words("link irc #rust libera"),
            ["link", "irc", "#rust", "libera"]
        );
        assert_eq!(
            split_words("  login  slack \"my token\" "),
            ["login", "slack", "my token"]
        );
        assert_eq!(split_words("say \"\""), ["say", ""]);
        assert!(split_words("   ").is_empty());
    }
}
