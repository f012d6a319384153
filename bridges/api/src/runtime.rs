//! The handle the runtime gives a module at start.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

use crate::error::BridgeError;
use crate::event::RemoteEvent;
use crate::ids::{NetworkId, PortalKey, RemoteMessageId};
use crate::login::Login;
use crate::network::PortalInfo;

/// Resolves when an enqueued remote event has reached Matrix (or failed for
/// good). Dropping it does not cancel the delivery.
pub type Pending = Pin<Box<dyn Future<Output = Result<Option<String>, BridgeError>> + Send>>;

/// What a module may ask of the runtime. Modules never touch SQL, HTTP to the
/// homeserver or another module's config: they go through this.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Queue a remote event on its portal's ordered queue. The order of calls
    /// is the order in Matrix. The returned future resolves with the Matrix
    /// event id once the event is in Matrix, so sources that can replay
    /// (Telegram offsets, Slack acks) advance only then.
    fn enqueue(&self, event: RemoteEvent) -> Pending;

    /// [`Runtime::enqueue`] for sources that cannot replay once told an event
    /// arrived (a Slack acknowledgement): returns once the event is stored,
    /// so the source may be acknowledged then. A crash before the event is
    /// in Matrix delivers it at the next start; the stored copy is deleted as
    /// soon as it is in Matrix. `key` names the event in this network (a
    /// Slack event id): a key still stored is not queued again (`Ok(None)`).
    async fn enqueue_durable(
        &self,
        key: &str,
        event: RemoteEvent,
    ) -> Result<Option<Pending>, BridgeError>;

    /// Brings the ghost of `sender` up to date with the name and avatar it
    /// carries, in every room (a Slack `user_change`). Does nothing and
    /// returns false when the user has no ghost yet: no ghost is made here.
    async fn update_ghost(&self, sender: crate::event::Sender) -> Result<bool, BridgeError>;

    /// The full Matrix id of this module's ghost for `user`
    /// (`@_telegram_42:example.org`), for mention pills. No I/O.
    fn ghost_mxid(&self, user: &crate::ids::RemoteUserId) -> String;

    /// This module's portals that have a room (to rejoin channels at start).
    async fn portals(&self) -> Result<Vec<PortalKey>, BridgeError>;

    /// A link anyone can open (an IRC user, say) that serves this Matrix
    /// media, or `None` when the bridge has no public media endpoint.
    fn media_link(&self, mxc: &str, filename: &str) -> Option<String>;

    /// The Matrix room of a portal, if it has one.
    async fn portal_room(&self, portal: &PortalKey) -> Result<Option<String>, BridgeError>;

    /// Whether a remote message is already bridged (dedupe of redelivered events).
    async fn is_bridged(
        &self,
        portal: &PortalKey,
        remote_id: &RemoteMessageId,
    ) -> Result<bool, BridgeError>;

    /// Read module state stored by the runtime (JSON), e.g. an update offset.
    async fn get_state(
        &self,
        network: &NetworkId,
        key: &str,
    ) -> Result<Option<serde_json::Value>, BridgeError>;

    /// Store module state (JSON). Not for secrets.
    async fn set_state(
        &self,
        network: &NetworkId,
        key: &str,
        value: serde_json::Value,
    ) -> Result<(), BridgeError>;

    /// Bridge an existing Matrix room to a remote chat (the `link` command):
    /// writes the `m.bridge` state and the portal row. Fails when either side
    /// is already bridged elsewhere.
    async fn link_portal(&self, room_id: &str, info: PortalInfo) -> Result<(), BridgeError>;

    /// A Matrix space grouping some of this module's portals (a Slack
    /// workspace, say), made once per `key` with `name`, the bridge admins
    /// invited. Returns its room id.
    async fn space(&self, key: &str, name: &str) -> Result<String, BridgeError>;

    /// Puts a portal's room into a space made by [`Runtime::space`]
    /// (`m.space.child` in the space, `m.space.parent` in the room). Does
    /// nothing when the portal has no room yet.
    async fn add_to_space(&self, space_room: &str, portal: &PortalKey) -> Result<(), BridgeError>;

    /// The logins of this module's network (to reconnect them at start).
    async fn logins(&self) -> Result<Vec<Login>, BridgeError>;

    /// Creates or updates a login of this module's network.
    async fn save_login(&self, login: Login) -> Result<(), BridgeError>;

    /// Forgets a login of this module's network.
    async fn remove_login(&self, mxid: &str, login_id: &str) -> Result<(), BridgeError>;

    /// Downloads Matrix media (`mxc://…`) as the bot, up to `max_bytes`.
    async fn download_media(
        &self,
        mxc: &str,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, Option<String>), BridgeError>;

    /// Uploads a file to the homeserver as the bot; returns its `mxc://` URI
    /// (for a long message sent to a network as a text file, say).
    async fn upload_media(
        &self,
        bytes: Vec<u8>,
        mime: &str,
        filename: &str,
    ) -> Result<String, BridgeError>;

    /// Post a notice from the bridge bot in a portal's room (a summary, a
    /// warning). Does nothing when the portal has no room.
    async fn portal_notice(&self, portal: &PortalKey, text: &str);

    /// Send a notice to the bridge admins' management rooms.
    async fn notify_admins(&self, text: &str);
}
