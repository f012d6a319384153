//! Slack ids as the runtime stores them (changing one needs a migration).
//!
//! - portal: `<team id>/<channel id>` (`T012AB3C4/C0123456`); DMs are
//!   channels too (`D…`).
//! - remote user: `<team id>/<user id>`; ghost localpart
//!   `_slack_<team id>_<user id>`, lowercase (DESIGN.md): Slack ids are
//!   uppercase letters and digits, so lowercasing is reversible.
//! - remote message: the message `ts` (`1700000000.000100`), unique within
//!   its channel. Threads are rooted at their parent's ts.

use passerelle_api::{PortalKey, RemoteMessageId, RemoteUserId};

pub const NETWORK: &str = "slack";
pub const GHOST_PREFIX: &str = "_slack_";

fn is_slack_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

pub fn portal_key(team: &str, channel: &str) -> PortalKey {
    PortalKey::new(NETWORK, format!("{team}/{channel}"))
}

/// `(team, channel)` of one of this module's portals.
pub fn parse_portal(key: &PortalKey) -> Option<(&str, &str)> {
    if key.network.as_str() != NETWORK {
        return None;
    }
    let (team, channel) = key.id.split_once('/')?;
    (is_slack_id(team) && is_slack_id(channel)).then_some((team, channel))
}

pub fn user_id(team: &str, user: &str) -> RemoteUserId {
    RemoteUserId::new(format!("{team}/{user}"))
}

pub fn parse_user(id: &RemoteUserId) -> Option<(&str, &str)> {
    let (team, user) = id.as_str().split_once('/')?;
    (is_slack_id(team) && is_slack_id(user)).then_some((team, user))
}

/// `T0001/U0002` -> `_slack_t0001_u0002`.
pub fn ghost_localpart(user: &RemoteUserId) -> String {
    let (team, id) = parse_user(user).unwrap_or(("", user.as_str()));
    format!(
        "{GHOST_PREFIX}{}_{}",
        team.to_lowercase(),
        id.to_lowercase()
    )
}

/// `_slack_t0001_u0002` -> `T0001/U0002`.
pub fn parse_ghost_localpart(localpart: &str) -> Option<RemoteUserId> {
    let rest = localpart.strip_prefix(GHOST_PREFIX)?;
    let (team, user) = rest.split_once('_')?;
    let (team, user) = (team.to_uppercase(), user.to_uppercase());
    (is_slack_id(&team) && is_slack_id(&user)).then(|| user_id(&team, &user))
}

pub fn message_id(ts: &str) -> RemoteMessageId {
    RemoteMessageId::new(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let key = portal_key("T012AB3C4", "C0123456");
        assert_eq!(parse_portal(&key), Some(("T012AB3C4", "C0123456")));
        assert_eq!(parse_portal(&PortalKey::new("irc", "T1/C1")), None);
        assert_eq!(parse_portal(&PortalKey::new(NETWORK, "t1/c1")), None);
        let user = user_id("T012AB3C4", "U0G9QF9C6");
        let local = ghost_localpart(&user);
        assert_eq!(local, "_slack_t012ab3c4_u0g9qf9c6");
        assert_eq!(parse_ghost_localpart(&local), Some(user));
        assert_eq!(parse_ghost_localpart("_slack_t1"), None);
        assert_eq!(parse_ghost_localpart("_slack_t1_u-2"), None);
        assert_eq!(parse_ghost_localpart("_irc_t1_u2"), None);
    }
}
