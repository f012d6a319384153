//! Telegram ids as the runtime stores them. Their string forms are in the
//! database: changing one needs a migration.
//!
//! - portal: the chat id (`-1001234567890` for a supergroup or channel);
//!   forum topics are threads inside their chat's portal, not portals.
//! - remote user: the user id (`12345`); a channel posting as itself is the
//!   channel's chat id. Ghost localpart `_telegram_<id>`.
//! - remote message: the message id within its chat (`42`). An edit carries
//!   `42@<edit date>` so a replayed edit is recognised.
//! - media reference: `file:<file_id>`; a user's profile photo
//!   `profile:<user id>:<file_unique_id>` (stable while the photo is).

use passerelle_api::{PortalKey, RemoteMessageId, RemoteUserId};

pub const NETWORK: &str = "telegram";
pub const GHOST_PREFIX: &str = "_telegram_";

pub fn portal_key(chat_id: i64) -> PortalKey {
    PortalKey::new(NETWORK, chat_id.to_string())
}

pub fn parse_portal(key: &PortalKey) -> Option<i64> {
    if key.network.as_str() != NETWORK {
        return None;
    }
    key.id.parse().ok()
}

pub fn user_id(id: i64) -> RemoteUserId {
    RemoteUserId::new(id.to_string())
}

pub fn parse_user(id: &RemoteUserId) -> Option<i64> {
    id.as_str().parse().ok()
}

pub fn message_id(id: i64) -> RemoteMessageId {
    RemoteMessageId::new(id.to_string())
}

/// The message id of a stored message id; `None` for anything else.
pub fn parse_message(id: &RemoteMessageId) -> Option<i64> {
    id.as_str().parse().ok()
}

pub fn edit_id(message: i64, edit_date: u64) -> RemoteMessageId {
    RemoteMessageId::new(format!("{message}@{edit_date}"))
}

/// `_telegram_12345` -> user 12345 (also a negative channel id).
pub fn parse_ghost_localpart(localpart: &str) -> Option<RemoteUserId> {
    let id: i64 = localpart.strip_prefix(GHOST_PREFIX)?.parse().ok()?;
    Some(user_id(id))
}

/// A reference `fetch_media` resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaRef {
    File(String),
    Profile { user: i64, unique_id: String },
}

impl MediaRef {
    pub fn to_ref(&self) -> String {
        match self {
            MediaRef::File(id) => format!("file:{id}"),
            MediaRef::Profile { user, unique_id } => format!("profile:{user}:{unique_id}"),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        if let Some(id) = s.strip_prefix("file:") {
            return (!id.is_empty()).then(|| MediaRef::File(id.to_owned()));
        }
        let rest = s.strip_prefix("profile:")?;
        let (user, unique_id) = rest.split_once(':')?;
        Some(MediaRef::Profile {
            user: user.parse().ok()?,
            unique_id: unique_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let key = portal_key(-1001234567890);
        assert_eq!(key.id, "-1001234567890");
        assert_eq!(parse_portal(&key), Some(-1001234567890));
        assert_eq!(parse_portal(&PortalKey::new("irc", "-1")), None);
        assert_eq!(parse_ghost_localpart("_telegram_42"), Some(user_id(42)));
        assert_eq!(
            parse_ghost_localpart("_telegram_-1001"),
            Some(user_id(-1001))
        );
        assert_eq!(parse_ghost_localpart("_telegram_x"), None);
        assert_eq!(parse_ghost_localpart("_irc_42"), None);
        assert_eq!(parse_message(&message_id(7)), Some(7));
        assert_eq!(parse_message(&edit_id(7, 99)), None);
        for r in [
            MediaRef::File("AgAD-x_y".into()),
            MediaRef::Profile {
                user: 5,
                unique_id: "AQAD:x".into(),
            },
        ] {
            assert_eq!(MediaRef::parse(&r.to_ref()), Some(r.clone()));
        }
        assert_eq!(MediaRef::parse("file:"), None);
        assert_eq!(MediaRef::parse("http://x"), None);
    }
}
