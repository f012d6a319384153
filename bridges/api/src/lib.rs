//! The contract between the Passerelle runtime and its bridge modules.
//!
//! A module (IRC, Slack, Telegram, or a test module) implements [`Network`]
//! and talks to the runtime only through the [`Runtime`] handle it is given
//! at start. This crate does no I/O: it holds ids, events, errors and traits.
//!
//! Directions:
//! - remote -> Matrix: the module builds a [`RemoteEvent`] and calls
//!   [`Runtime::enqueue`]; the runtime ensures ghost, portal and membership,
//!   sends, and records the message map.
//! - Matrix -> remote: the runtime resolves the portal, the sender's login or
//!   the relay, and the remote ids of reply/edit/redaction targets, then calls
//!   [`Network::handle_matrix`] with a [`MatrixEvent`].

pub mod command;
pub mod config;
pub mod error;
pub mod event;
pub mod html;
pub mod ids;
pub mod login;
pub mod matrix;
pub mod mxid;
pub mod network;
pub mod runtime;

pub use command::{CommandContext, CommandSpec, PermissionLevel};
pub use error::{BridgeError, ErrorKind};
pub use event::{MessageContent, MessageKind, RemoteEvent, RemoteEventKind, RemoteMedia, Sender};
pub use ids::{AccountId, NetworkId, PortalKey, RemoteMessageId, RemoteUserId};
pub use login::{Login, LoginState};
pub use matrix::{Delivered, MatrixEvent, MatrixEventKind, MatrixSender, Via};
pub use network::{Capabilities, Network, NetworkInfo, PortalInfo, PortalKind};
pub use runtime::{Pending, Runtime};

/// `Result` with [`BridgeError`] as the default error.
pub type Result<T, E = BridgeError> = std::result::Result<T, E>;
