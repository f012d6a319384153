//! Ids of the IRC module, each with its make/parse pair. Their string forms
//! are stored: changing them needs a migration.
//!
//! - portal of a channel: `<network>/<#channel casefolded>`
//! - portal of a private chat: `<network>/pm/<nick casefolded>/<Matrix user id>`
//! - remote user: `<network>/<nick casefolded>`
//! - ghost localpart: `_irc_<network>_<nick>`; alias localpart: `_irc_<network>_<#channel>`

use passerelle_api::{PortalKey, RemoteUserId};

use crate::nick::casefold;

pub const NETWORK: &str = "irc";
pub const PREFIX: &str = "_irc_";

/// What a portal id stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortalTarget {
    Channel {
        network: String,
        channel: String,
    },
    Private {
        network: String,
        nick: String,
        mxid: String,
    },
}

pub fn make_channel_portal(network: &str, channel: &str) -> PortalKey {
    PortalKey::new(NETWORK, format!("{network}/{}", casefold(channel)))
}

pub fn make_private_portal(network: &str, nick: &str, mxid: &str) -> PortalKey {
    PortalKey::new(NETWORK, format!("{network}/pm/{}/{mxid}", casefold(nick)))
}

pub fn parse_portal(key: &PortalKey) -> Option<PortalTarget> {
    if key.network.as_str() != NETWORK {
        return None;
    }
    let (network, rest) = key.id.split_once('/')?;
    if let Some(pm) = rest.strip_prefix("pm/") {
        let (nick, mxid) = pm.split_once('/')?;
        return Some(PortalTarget::Private {
            network: network.to_owned(),
            nick: nick.to_owned(),
            mxid: mxid.to_owned(),
        });
    }
    rest.starts_with(['#', '&', '+', '!'])
        .then(|| PortalTarget::Channel {
            network: network.to_owned(),
            channel: rest.to_owned(),
        })
}

pub fn make_user(network: &str, nick: &str) -> RemoteUserId {
    RemoteUserId::new(format!("{network}/{}", casefold(nick)))
}

/// `(network, casefolded nick)`.
pub fn parse_user(user: &RemoteUserId) -> Option<(&str, &str)> {
    user.as_str().split_once('/')
}

/// `_irc_<network>_<nick>` (the runtime escapes it into a localpart).
pub fn ghost_localpart(user: &RemoteUserId) -> String {
    match parse_user(user) {
        Some((network, nick)) => format!("{PREFIX}{network}_{nick}"),
        None => format!("{PREFIX}{}", user.as_str()),
    }
}

/// The remote user behind an (unescaped) ghost localpart, given the
/// configured network names (a network name may not contain `_`).
pub fn parse_ghost_localpart<'a>(
    localpart: &str,
    networks: impl IntoIterator<Item = &'a str>,
) -> Option<RemoteUserId> {
    let rest = localpart.strip_prefix(PREFIX)?;
    let (network, nick) = rest.split_once('_')?;
    networks
        .into_iter()
        .any(|n| n == network)
        .then(|| make_user(network, nick))
        .filter(|_| !nick.is_empty())
}

/// `_irc_<network>_<#channel>`.
pub fn make_alias_localpart(network: &str, channel: &str) -> String {
    format!("{PREFIX}{network}_{}", casefold(channel))
}

/// `(network, channel)` from an alias localpart.
pub fn parse_alias_localpart(localpart: &str) -> Option<(String, String)> {
    let rest = localpart.strip_prefix(PREFIX)?;
    let (network, channel) = rest.split_once('_')?;
    channel
        .starts_with(['#', '&', '+', '!'])
        .then(|| (network.to_owned(), casefold(channel)))
        .filter(|(_, c)| c.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_round_trips() {
        let key = make_channel_portal("libera", "#Rust");
        assert_eq!(key.id, "libera/#rust");
        assert_eq!(
            parse_portal(&key),
            Some(PortalTarget::Channel {
                network: "libera".into(),
                channel: "#rust".into()
            })
        );
        let pm = make_private_portal("libera", "Bob", "@alice:example.org");
        assert_eq!(pm.id, "libera/pm/bob/@alice:example.org");
        assert_eq!(
            parse_portal(&pm),
            Some(PortalTarget::Private {
                network: "libera".into(),
                nick: "bob".into(),
                mxid: "@alice:example.org".into()
            })
        );
        assert_eq!(
            parse_portal(&PortalKey::new("irc", "libera/nochannel")),
            None
        );
        assert_eq!(parse_portal(&PortalKey::new("slack", "libera/#rust")), None);
    }

    #[test]
    fn users_ghosts_and_aliases() {
        let user = make_user("libera", "Nick[m]");
        assert_eq!(user.as_str(), "libera/nick{m}");
        assert_eq!(ghost_localpart(&user), "_irc_libera_nick{m}");
        assert_eq!(
            parse_ghost_localpart("_irc_libera_nick{m}", ["libera"]),
            Some(user)
        );
        assert_eq!(parse_ghost_localpart("_irc_oftc_nick", ["libera"]), None);
        assert_eq!(make_alias_localpart("libera", "#Rust"), "_irc_libera_#rust");
        assert_eq!(
            parse_alias_localpart("_irc_libera_#rust"),
            Some(("libera".into(), "#rust".into()))
        );
        assert_eq!(parse_alias_localpart("_irc_libera_rust"), None);
        assert_eq!(parse_alias_localpart("_irc_libera_#"), None);
    }
}
