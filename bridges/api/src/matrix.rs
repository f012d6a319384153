//! Events the runtime hands to a module (Matrix -> remote), already routed,
//! permission-checked and with reply/edit/redaction targets resolved to
//! remote ids through the message map.

use serde::{Deserialize, Serialize};

use crate::event::MessageContent;
use crate::ids::{PortalKey, RemoteMessageId, RemoteUserId};

/// How the message should reach the remote side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Via {
    /// The sender's own login on this network.
    Login { login_id: String },
    /// Through the bot/relay account, showing the sender's name.
    Relay,
}

/// The Matrix user behind an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixSender {
    /// Full Matrix user id, e.g. `@alice:example.org`.
    pub mxid: String,
    /// The room display name, falling back to the localpart.
    pub display_name: String,
    /// `mxc://` avatar, if any.
    pub avatar_url: Option<String>,
    /// The sender's permission level: a module gives its own remote identity
    /// (a puppet connection) only to `user` and above.
    pub level: crate::command::PermissionLevel,
}

/// A Matrix event for a module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixEvent {
    pub portal: PortalKey,
    pub sender: MatrixSender,
    pub via: Via,
    /// The Matrix event id (for logs and idempotency keys).
    pub event_id: String,
    /// Origin server timestamp in ms.
    pub ts: u64,
    pub kind: MatrixEventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MatrixEventKind {
    Message(MessageContent),
    Edit {
        target: RemoteMessageId,
        content: MessageContent,
    },
    Redaction {
        target: RemoteMessageId,
    },
    Reaction {
        target: RemoteMessageId,
        key: String,
    },
    ReactionRedaction {
        target: RemoteMessageId,
        key: String,
    },
    Join,
    Leave,
    Kick {
        target: RemoteUserId,
        reason: Option<String>,
    },
    /// Like `Kick`, and the user may not come back.
    Ban {
        target: RemoteUserId,
        reason: Option<String>,
    },
    Topic {
        topic: String,
    },
    /// Power levels of ghosts changed in Matrix: `(remote user, new level)`.
    PowerLevels {
        changes: Vec<(RemoteUserId, i64)>,
    },
    Typing {
        typing: bool,
    },
}

impl MatrixEventKind {
    /// A short name for logs and metrics; never the content.
    pub fn name(&self) -> &'static str {
        match self {
            MatrixEventKind::Message(_) => "message",
            MatrixEventKind::Edit { .. } => "edit",
            MatrixEventKind::Redaction { .. } => "redaction",
            MatrixEventKind::Reaction { .. } => "reaction",
            MatrixEventKind::ReactionRedaction { .. } => "reaction_redaction",
            MatrixEventKind::Join => "join",
            MatrixEventKind::Leave => "leave",
            MatrixEventKind::Kick { .. } => "kick",
            MatrixEventKind::Ban { .. } => "ban",
            MatrixEventKind::Topic { .. } => "topic",
            MatrixEventKind::PowerLevels { .. } => "power_levels",
            MatrixEventKind::Typing { .. } => "typing",
        }
    }
}

/// What a module reports after delivering a Matrix event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The remote id the message got, to record in the message map. `None`
    /// for events that create no remote message (typing, membership), or for
    /// networks that give no ids (IRC without msgid).
    pub remote_id: Option<RemoteMessageId>,
}

impl Delivered {
    pub fn with_id(id: impl Into<RemoteMessageId>) -> Self {
        Self {
            remote_id: Some(id.into()),
        }
    }

    pub fn none() -> Self {
        Self::default()
    }
}
