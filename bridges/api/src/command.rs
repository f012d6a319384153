//! Bot commands that modules add to the runtime's registry.

use serde::{Deserialize, Serialize};

/// Permission levels from the `permissions` config, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionLevel {
    /// No access at all (not listed in `permissions`).
    None,
    /// May speak in portals through the relay.
    Relay,
    /// May log in, use the bot, create portals.
    User,
    /// May link/unlink rooms and manage the bridge.
    Admin,
}

/// A command a module offers, e.g. `login` for `!passerelle login irc …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// The word after the prefix (`link`).
    pub name: &'static str,
    /// Usage line shown by `help`, without the prefix (`link irc <channel> [network]`).
    pub usage: &'static str,
    pub description: &'static str,
    /// The least permission needed to run it.
    pub level: PermissionLevel,
}

/// Who runs a command, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandContext {
    pub sender: String,
    pub room_id: String,
    /// The sender's permission level.
    pub level: PermissionLevel,
    /// Set when the room is a portal of this network.
    pub portal: Option<crate::PortalKey>,
}
