//! The trait a bridge module implements.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::command::{CommandContext, CommandSpec};
use crate::error::BridgeError;
use crate::ids::{NetworkId, PortalKey, RemoteUserId};
use crate::matrix::{Delivered, MatrixEvent};
use crate::runtime::Runtime;

/// What a network can do. A capability the network lacks is declared here, not
/// faked: the runtime tells the Matrix user instead of calling the module.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub edits: bool,
    pub redactions: bool,
    pub reactions: bool,
    pub replies: bool,
    pub threads: bool,
    pub media: bool,
    pub typing: bool,
    /// Matrix users can have their own login (`login <network>`).
    pub logins: bool,
}

/// Static information about a network, read once at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    /// `irc`, `slack`, `telegram`: the `bridges.<id>` key.
    pub id: NetworkId,
    /// Human name for notices and the `m.bridge` protocol.
    pub display_name: String,
    /// Ghost localparts start with this (`_irc_`); the registration claims it
    /// exclusively, for users and aliases.
    pub namespace_prefix: String,
    pub capabilities: Capabilities,
}

/// Broadcast-only chats are first-class: the runtime makes them read-only in
/// Matrix for everyone but the bridge and admins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortalKind {
    #[default]
    Group,
    Dm,
    Broadcast,
}

impl PortalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortalKind::Group => "group",
            PortalKind::Dm => "dm",
            PortalKind::Broadcast => "broadcast",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "group" => Some(PortalKind::Group),
            "dm" => Some(PortalKind::Dm),
            "broadcast" => Some(PortalKind::Broadcast),
            _ => None,
        }
    }
}

/// What the runtime needs to create a portal room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalInfo {
    pub key: PortalKey,
    pub kind: PortalKind,
    pub name: Option<String>,
    pub topic: Option<String>,
    /// The alias localpart without `#` sigil and server (`_irc_libera_#rust`).
    pub alias_localpart: Option<String>,
    /// Whether Matrix users without a login may speak through the relay.
    pub relay: bool,
    /// For DMs: the Matrix user to invite.
    pub invite: Vec<String>,
}

impl PortalInfo {
    pub fn new(key: PortalKey, kind: PortalKind) -> Self {
        Self {
            key,
            kind,
            name: None,
            topic: None,
            alias_localpart: None,
            relay: true,
            invite: Vec::new(),
        }
    }
}

/// A bridge module. One instance per network; it owns its connections
/// (clients per login or per account) and maps [`MatrixEvent::via`] to them.
#[async_trait]
pub trait Network: Send + Sync + 'static {
    /// Static info. Called once at start and when writing the registration;
    /// no I/O.
    fn info(&self) -> NetworkInfo;

    /// Connect accounts, reconnect logins, start receiving. Called once after
    /// the runtime's homeserver connection is up. Must not block: spawn tasks
    /// and return.
    async fn start(&self, runtime: Arc<dyn Runtime>) -> Result<(), BridgeError>;

    /// Disconnect cleanly. Called once on shutdown; in-flight deliveries
    /// should finish first.
    async fn stop(&self);

    /// Deliver a Matrix event to the remote side. Called from the portal's
    /// ordered queue, so events of one portal never overlap. Must not call back
    /// into the runtime's queue for the same portal and wait on it (deadlock).
    async fn handle_matrix(&self, event: MatrixEvent) -> Result<Delivered, BridgeError>;

    /// The portal behind a remote chat, when the runtime must create its room
    /// (first message, alias query, link). `Ok(None)` means "do not bridge".
    async fn portal_info(&self, key: &PortalKey) -> Result<Option<PortalInfo>, BridgeError>;

    /// The homeserver asked about `#<alias_localpart>:domain` in our
    /// namespace. Return the portal to create, or `None` for a 404.
    async fn resolve_alias(
        &self,
        alias_localpart: &str,
    ) -> Result<Option<PortalInfo>, BridgeError> {
        let _ = alias_localpart;
        Ok(None)
    }

    /// A Matrix user invited the ghost of `with` to a room that is not a
    /// portal: return the private-chat portal to make of that room, or
    /// `None` to decline (the ghost then leaves).
    async fn private_chat(
        &self,
        mxid: &str,
        with: &RemoteUserId,
    ) -> Result<Option<PortalInfo>, BridgeError> {
        let _ = (mxid, with);
        Ok(None)
    }

    /// The user behind a ghost localpart (unescaped, with the prefix), if it
    /// is one of this module's. Pure.
    fn parse_ghost_localpart(&self, localpart: &str) -> Option<RemoteUserId> {
        let _ = localpart;
        None
    }

    /// The homeserver asked about a user in our namespace. Return the remote
    /// user and its profile if it exists, or `None` for a 404.
    async fn resolve_user(
        &self,
        localpart: &str,
    ) -> Result<Option<crate::event::Sender>, BridgeError> {
        let _ = localpart;
        Ok(None)
    }

    /// The ghost localpart for a remote user (`_irc_libera_nick`), before the
    /// runtime escapes it. Pure.
    fn ghost_localpart(&self, user: &RemoteUserId) -> String {
        format!("{}{}", self.info().namespace_prefix, user.as_str())
    }

    /// Commands this module adds (`link`, `login`, …). Pure.
    fn commands(&self) -> Vec<CommandSpec> {
        Vec::new()
    }

    /// Run one of [`Network::commands`]; the runtime has already checked the
    /// permission level. The returned text is sent as a notice.
    async fn run_command(
        &self,
        ctx: CommandContext,
        name: &str,
        args: &[String],
    ) -> Result<String, BridgeError> {
        let _ = (ctx, args);
        Err(BridgeError::not_found(format!("unknown command `{name}`")))
    }

    /// Third-party protocol description for `GET /_matrix/app/v1/thirdparty/protocol/{id}`.
    fn thirdparty_protocol(&self) -> serde_json::Value {
        serde_json::json!({
            "user_fields": [],
            "location_fields": [],
            "icon": "",
            "field_types": {},
            "instances": [],
        })
    }

    /// Third-party location lookup (`GET /thirdparty/location/{protocol}`):
    /// the portal aliases (localparts) matching the given fields, each with
    /// the fields that describe it. Pure: no I/O.
    fn thirdparty_locations(
        &self,
        fields: &std::collections::BTreeMap<String, String>,
    ) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
        let _ = fields;
        Vec::new()
    }

    /// Third-party user lookup (`GET /thirdparty/user/{protocol}`): the
    /// remote users matching the fields, each with its fields. Pure.
    fn thirdparty_users(
        &self,
        fields: &std::collections::BTreeMap<String, String>,
    ) -> Vec<(RemoteUserId, std::collections::BTreeMap<String, String>)> {
        let _ = fields;
        Vec::new()
    }

    /// The Matrix user asked to be forgotten (`forget-me`): drop their
    /// connections, tokens and anything the module keeps about them in
    /// memory. The runtime deletes their stored rows afterwards.
    async fn forget_user(&self, mxid: &str) {
        let _ = mxid;
    }

    /// Download an avatar or media by the module-defined reference.
    async fn fetch_media(
        &self,
        remote_ref: &str,
    ) -> Result<(Vec<u8>, Option<String>), BridgeError> {
        let _ = remote_ref;
        Err(BridgeError::unsupported("this network has no media"))
    }
}
