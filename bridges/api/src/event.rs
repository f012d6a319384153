//! Events a module pushes to the runtime (remote -> Matrix), and the message
//! content shared by both directions.

use serde::{Deserialize, Serialize};

use crate::ids::{PortalKey, RemoteMessageId, RemoteUserId};

/// Who sent a remote event, with the profile the ghost should show.
/// `None` fields mean "unknown, keep what the ghost has".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub id: RemoteUserId,
    pub display_name: Option<String>,
    /// A module-defined avatar reference (URL or file id); the runtime asks
    /// [`crate::Network::fetch_avatar`] only when it changed.
    pub avatar: Option<String>,
    /// Set when this remote user is a Matrix user's own login (the event is
    /// an echo of something sent from Matrix, or double puppeting applies).
    pub matrix_user: Option<String>,
}

impl Sender {
    pub fn new(id: impl Into<RemoteUserId>) -> Self {
        Self {
            id: id.into(),
            display_name: None,
            avatar: None,
            matrix_user: None,
        }
    }

    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
}

/// The Matrix msgtype a message maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    #[default]
    Text,
    Notice,
    Emote,
}

/// Media attached to a message. Bytes travel out of band: the module gives a
/// reference that it can resolve itself (`fetch_media`), or the runtime has
/// already uploaded it and gives an `mxc://` URI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteMedia {
    pub filename: String,
    pub mime_type: Option<String>,
    pub size: Option<u64>,
    /// The file in Matrix, once uploaded: a media reference to hand as is
    /// to `Runtime::download_media` or `Runtime::media_link`. Usually an
    /// `mxc://` URI; a file of an encrypted room carries its key after a
    /// `#`, so never parse it or show it.
    pub mxc: Option<String>,
    /// A module-defined reference (file id, URL) to download the bytes.
    pub remote_ref: Option<String>,
}

/// A message body in both directions. No message content is ever stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContent {
    pub kind: MessageKind,
    /// Plain-text body.
    pub body: String,
    /// Matrix HTML (`org.matrix.custom.html`), already converted and
    /// sanitised by the module's converter.
    pub html: Option<String>,
    /// The message this replies to.
    pub reply_to: Option<RemoteMessageId>,
    /// The thread root this message belongs to.
    pub thread_root: Option<RemoteMessageId>,
    pub media: Option<RemoteMedia>,
}

impl MessageContent {
    pub fn text(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    pub fn with_html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    pub fn with_kind(mut self, kind: MessageKind) -> Self {
        self.kind = kind;
        self
    }
}

/// Something that happened on the remote side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteEvent {
    pub portal: PortalKey,
    pub sender: Sender,
    /// The remote id of this message (for messages), used for the message map.
    pub remote_id: Option<RemoteMessageId>,
    /// Remote time, milliseconds since the Unix epoch; sent as `ts`.
    pub ts: u64,
    pub kind: RemoteEventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RemoteEventKind {
    Message(MessageContent),
    Edit {
        target: RemoteMessageId,
        content: MessageContent,
    },
    Delete {
        target: RemoteMessageId,
    },
    Reaction {
        target: RemoteMessageId,
        key: String,
    },
    ReactionRemove {
        target: RemoteMessageId,
        key: String,
    },
    /// The sender joined the chat.
    Join,
    /// The sender left the chat.
    Leave {
        reason: Option<String>,
    },
    /// The sender removed `target` from the chat.
    Kick {
        target: RemoteUserId,
        reason: Option<String>,
    },
    Topic {
        topic: String,
    },
    Rename {
        name: String,
    },
    /// The chat's picture changed: a module-defined reference its
    /// [`crate::Network::fetch_media`] resolves, or `None` when removed.
    RoomAvatar {
        remote_ref: Option<String>,
    },
    /// `target` was pinned (or unpinned) in the chat.
    Pin {
        target: RemoteMessageId,
        pinned: bool,
    },
    Typing {
        typing: bool,
    },
    /// Only the sender's profile changed (display name, avatar).
    Profile,
    /// `target`'s rank in the chat changed (IRC op/voice, Telegram admin):
    /// `level` is the Matrix power level to give its ghost.
    PowerLevel {
        target: RemoteUserId,
        level: i64,
    },
}

impl RemoteEvent {
    pub fn new(portal: PortalKey, sender: Sender, ts: u64, kind: RemoteEventKind) -> Self {
        Self {
            portal,
            sender,
            remote_id: None,
            ts,
            kind,
        }
    }

    pub fn with_remote_id(mut self, id: impl Into<RemoteMessageId>) -> Self {
        self.remote_id = Some(id.into());
        self
    }

    /// A short name for logs and metrics; never the content.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            RemoteEventKind::Message(_) => "message",
            RemoteEventKind::Edit { .. } => "edit",
            RemoteEventKind::Delete { .. } => "delete",
            RemoteEventKind::Reaction { .. } => "reaction",
            RemoteEventKind::ReactionRemove { .. } => "reaction_remove",
            RemoteEventKind::Join => "join",
            RemoteEventKind::Leave { .. } => "leave",
            RemoteEventKind::Kick { .. } => "kick",
            RemoteEventKind::Topic { .. } => "topic",
            RemoteEventKind::Rename { .. } => "rename",
            RemoteEventKind::RoomAvatar { .. } => "room_avatar",
            RemoteEventKind::Pin { .. } => "pin",
            RemoteEventKind::Typing { .. } => "typing",
            RemoteEventKind::Profile => "profile",
            RemoteEventKind::PowerLevel { .. } => "power_level",
        }
    }
}
