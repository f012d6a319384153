//! The client-server API client (us -> homeserver).
//!
//! [`MatrixClient`] holds the homeserver URL, the appservice's `as_token`
//! and the retry policy; every call goes through one request function that
//! authenticates (`Authorization: Bearer`), masquerades ghosts
//! (`?user_id=`), percent-encodes each path segment, retries 429/5xx and
//! connection errors with backoff, and records metrics. [`Intent`] is one
//! user of ours (the bot or a ghost) and carries the per-user calls.
//! [`content`] builds event content JSON without any I/O.
//!
//! Room ids are opaque: room version 12 ids have no `:server` part, so none
//! is ever parsed out of them.

mod client;
pub mod content;
mod device;
mod error;
mod intent;
#[cfg(test)]
mod mock;

pub use client::{MatrixClient, RetryPolicy};
pub use device::DeviceApi;
pub use error::{Error, Result};
pub use intent::{CreateRoom, InitialStateEvent, Intent, Profile, RoomPreset, RoomVisibility};

/// The content key of every event sent with [`Intent::send`]: a marker
/// made from the send's transaction id (keyed, so it reveals nothing), by
/// which a retry recognises an event an earlier attempt already made.
pub const TXN_MARKER_KEY: &str = "net.passerelle.txn";

/// Encrypts what our users send in encrypted rooms. Installed once on the
/// [`MatrixClient`] ([`MatrixClient::set_encryption`]); every
/// [`Intent::send`] asks it first.
#[async_trait::async_trait]
pub trait RoomEncryption: Send + Sync {
    /// The `m.room.encrypted` content `sender` sends instead of `content`,
    /// when `room` is encrypted; `None` when it is not. An error means the
    /// event must not be sent at all: never in the clear in an encrypted
    /// room.
    async fn encrypt(
        &self,
        room: &ruma::RoomId,
        sender: &ruma::UserId,
        event_type: &str,
        content: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>>;
}
