//! Opaque, typed identifiers. Their string form is stored in the database, so
//! changing a module's format needs a migration.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! opaque_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a module-made id.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The stored string form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

opaque_id!(
    /// A network's id: `irc`, `slack`, `telegram` (the `bridges.<id>` config key).
    NetworkId
);
opaque_id!(
    /// One configured endpoint of a network: an IRC network name, a Slack
    /// workspace name, a Telegram bot name.
    AccountId
);
opaque_id!(
    /// A remote user, unique within its network (the module decides the
    /// format, e.g. `libera/nick` or a Telegram user id).
    RemoteUserId
);
opaque_id!(
    /// A remote message, unique within its portal.
    RemoteMessageId
);

/// A remote chat: the network plus a module-defined id that is unique within
/// the network (and includes the account where the network needs it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortalKey {
    pub network: NetworkId,
    pub id: String,
}

impl PortalKey {
    pub fn new(network: impl Into<NetworkId>, id: impl Into<String>) -> Self {
        Self {
            network: network.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for PortalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.network, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialise_as_plain_strings() {
        let id = RemoteMessageId::new("1234");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"1234\"");
        let key = PortalKey::new("irc", "libera/#rust");
        assert_eq!(key.to_string(), "irc:libera/#rust");
        assert_eq!(
            serde_json::to_value(&key).unwrap(),
            serde_json::json!({"network": "irc", "id": "libera/#rust"})
        );
    }
}
