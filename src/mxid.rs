//! Matrix ids for ghosts and portals, following DESIGN.md: lowercase, and
//! characters a user localpart cannot hold escaped as `=xx` (the spec's
//! recommended mapping for other character sets).

pub use passerelle_api::mxid::{escape_localpart, unescape_localpart};

/// `@<localpart>:<domain>` with the localpart escaped.
pub fn user_id(localpart: &str, domain: &str) -> String {
    format!("@{}:{domain}", escape_localpart(localpart))
}

/// The localpart of a full user id (`@local:domain` -> `local`).
pub fn localpart_of(user_id: &str) -> Option<&str> {
    let rest = user_id.strip_prefix('@')?;
    rest.split_once(':').map(|(local, _)| local)
}

/// The server name of a full user id (`@local:domain` -> `domain`).
pub fn server_of(user_id: &str) -> Option<&str> {
    user_id.split_once(':').map(|(_, server)| server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_parts() {
        assert_eq!(
            user_id("_irc_libera_Nick", "example.org"),
            "@_irc_libera_nick:example.org"
        );
        assert_eq!(localpart_of("@bob:example.org:8448"), Some("bob"));
        assert_eq!(server_of("@bob:example.org:8448"), Some("example.org:8448"));
        assert_eq!(localpart_of("bob"), None);
    }
}
