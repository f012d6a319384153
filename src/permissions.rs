//! The `permissions` config: a Matrix user id, a server name or `*` mapped to
//! a level. The most specific entry wins: user id, then server, then `*`.

use std::collections::BTreeMap;

pub use passerelle_api::PermissionLevel;

use crate::mxid;

#[derive(Clone, Debug, Default)]
pub struct Permissions {
    entries: BTreeMap<String, PermissionLevel>,
}

impl Permissions {
    pub fn new(entries: BTreeMap<String, PermissionLevel>) -> Self {
        Self { entries }
    }

    /// The level of `user_id`; `None` when no entry matches.
    pub fn level(&self, user_id: &str) -> PermissionLevel {
        if let Some(level) = self.entries.get(user_id) {
            return *level;
        }
        if let Some(level) = mxid::server_of(user_id).and_then(|s| self.entries.get(s)) {
            return *level;
        }
        self.entries
            .get("*")
            .copied()
            .unwrap_or(PermissionLevel::None)
    }

    /// Users named explicitly as admins (for notices to admins).
    pub fn admins(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|(k, v)| k.starts_with('@') && **v == PermissionLevel::Admin)
            .map(|(k, _)| k.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms() -> Permissions {
        Permissions::new(BTreeMap::from([
            ("*".to_owned(), PermissionLevel::Relay),
            ("example.org".to_owned(), PermissionLevel::User),
            ("@admin:example.org".to_owned(), PermissionLevel::Admin),
            ("@banned:example.org".to_owned(), PermissionLevel::None),
        ]))
    }

    #[test]
    fn most_specific_entry_wins() {
        let p = perms();
        assert_eq!(p.level("@admin:example.org"), PermissionLevel::Admin);
        assert_eq!(p.level("@alice:example.org"), PermissionLevel::User);
        assert_eq!(p.level("@bob:elsewhere.net"), PermissionLevel::Relay);
        assert_eq!(p.level("@banned:example.org"), PermissionLevel::None);
        assert_eq!(p.admins().collect::<Vec<_>>(), ["@admin:example.org"]);
    }

    #[test]
    fn no_entry_means_no_access() {
        let p = Permissions::new(BTreeMap::from([(
            "example.org".to_owned(),
            PermissionLevel::User,
        )]));
        assert_eq!(p.level("@eve:evil.example"), PermissionLevel::None);
        assert!(PermissionLevel::Admin > PermissionLevel::User);
        assert!(PermissionLevel::User > PermissionLevel::Relay);
        assert!(PermissionLevel::Relay > PermissionLevel::None);
    }
}
