//! The appservice registration file: written by `generate-registration`,
//! loaded by the homeserver as is, and read back by `run` for the tokens.

use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};

/// Shortest token we generate or accept.
pub const MIN_TOKEN_LEN: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub url: String,
    pub as_token: String,
    pub hs_token: String,
    pub sender_localpart: String,
    pub namespaces: Namespaces,
    pub rate_limited: bool,
    #[serde(default)]
    pub protocols: Vec<String>,
    /// MSC2409 (stable since v1.13): typing and receipts are pushed to us.
    #[serde(default)]
    pub receive_ephemeral: bool,
    /// The unstable name older Synapse versions read.
    #[serde(rename = "de.sorunome.msc2409.push_ephemeral", default)]
    pub push_ephemeral_unstable: bool,
    /// MSC3202: device list changes, one-time-key counts and unused
    /// fallback keys of our devices in transactions. Written when
    /// `encryption.allow` is on.
    #[serde(
        rename = "org.matrix.msc3202",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub device_lists: bool,
    /// MSC4190: the bot's device is made with `PUT /devices/{deviceId}`,
    /// without a login. Written when `encryption.allow` is on.
    #[serde(
        rename = "io.element.msc4190",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub device_management: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    #[serde(default)]
    pub users: Vec<Namespace>,
    #[serde(default)]
    pub aliases: Vec<Namespace>,
    #[serde(default)]
    pub rooms: Vec<Namespace>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub exclusive: bool,
    pub regex: String,
}

/// One network's claim: its id and the ghost/alias localpart prefix (`_irc_`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkNamespace {
    pub id: String,
    pub prefix: String,
}

/// A random token of `MIN_TOKEN_LEN * 2` alphanumeric characters.
pub fn random_token() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(MIN_TOKEN_LEN * 2)
        .map(char::from)
        .collect()
}

/// Escapes a string for use inside a regex (the homeserver uses Python `re`).
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~ ".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Registration {
    /// A fresh registration for `config` with exclusive user and alias
    /// namespaces for each network in `networks`.
    pub fn generate(config: &Config, networks: &[NetworkNamespace]) -> Self {
        let domain = regex_escape(&config.homeserver.domain);
        let mut namespaces = Namespaces::default();
        namespaces.users.push(Namespace {
            exclusive: true,
            regex: format!(
                "@{}:{domain}",
                regex_escape(&config.appservice.bot_localpart)
            ),
        });
        for net in networks {
            let prefix = regex_escape(&net.prefix);
            namespaces.users.push(Namespace {
                exclusive: true,
                regex: format!("@{prefix}.*:{domain}"),
            });
            namespaces.aliases.push(Namespace {
                exclusive: true,
                regex: format!("#{prefix}.*:{domain}"),
            });
        }
        Self {
            id: config.appservice.id.clone(),
            url: config.appservice.url.to_string(),
            as_token: random_token(),
            hs_token: random_token(),
            sender_localpart: config.appservice.bot_localpart.clone(),
            namespaces,
            rate_limited: false,
            protocols: networks.iter().map(|n| n.id.clone()).collect(),
            receive_ephemeral: true,
            push_ephemeral_unstable: true,
            device_lists: config.encryption.allow,
            device_management: config.encryption.allow,
        }
    }

    pub fn to_yaml(&self) -> String {
        let body = serde_saphyr::to_string(self).expect("registration serialises");
        format!(
            "# Passerelle appservice registration: give this file to your homeserver\n\
             # (Synapse: app_service_config_files). It holds secrets: keep it private.\n{body}"
        )
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let reg: Registration = serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        for (key, token) in [("as_token", &reg.as_token), ("hs_token", &reg.hs_token)] {
            if token.len() < MIN_TOKEN_LEN {
                return Err(ConfigError::key(
                    format!("{}: {key}", path.display()),
                    format!("shorter than {MIN_TOKEN_LEN} characters: run generate-registration"),
                ));
            }
        }
        Ok(reg)
    }

    /// Whether `user_id` is in one of our exclusive user namespaces, judged
    /// by prefix (our regexes are always `@<prefix>.*:<domain>`).
    pub fn claims_user(&self, localpart: &str, networks: &[NetworkNamespace]) -> bool {
        localpart == self.sender_localpart
            || networks.iter().any(|n| localpart.starts_with(&n.prefix))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        Config::parse(
            "homeserver: {url: 'http://127.0.0.1:8008', domain: my.server}\n\
             appservice: {listen: '127.0.0.1:29300', url: 'http://127.0.0.1:29300'}\n",
            Path::new("test.yaml"),
        )
        .unwrap()
    }

    #[test]
    fn generated_registration_claims_each_network() {
        let nets = [
            NetworkNamespace {
                id: "irc".into(),
                prefix: "_irc_".into(),
            },
            NetworkNamespace {
                id: "telegram".into(),
                prefix: "_telegram_".into(),
            },
        ];
        let reg = Registration::generate(&config(), &nets);
        assert!(reg.as_token.len() >= MIN_TOKEN_LEN && reg.hs_token.len() >= MIN_TOKEN_LEN);
        assert_ne!(reg.as_token, reg.hs_token);
        assert!(!reg.rate_limited);
        assert!(reg.receive_ephemeral);
        assert_eq!(reg.sender_localpart, "passerelle");
        let users: Vec<_> = reg
            .namespaces
            .users
            .iter()
            .map(|n| (n.exclusive, n.regex.as_str()))
            .collect();
        assert_eq!(
            users,
            [
                (true, "@passerelle:my\\.server"),
                (true, "@_irc_.*:my\\.server"),
                (true, "@_telegram_.*:my\\.server")
            ]
        );
        let aliases: Vec<_> = reg
            .namespaces
            .aliases
            .iter()
            .map(|n| n.regex.as_str())
            .collect();
        assert_eq!(
            aliases,
            ["#_irc_.*:my\\.server", "#_telegram_.*:my\\.server"]
        );
        assert_eq!(reg.protocols, ["irc", "telegram"]);
    }

    #[test]
    fn yaml_round_trip_and_token_check() {
        let reg = Registration::generate(&config(), &[]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registration.yaml");
        std::fs::write(&path, reg.to_yaml()).unwrap();
        assert_eq!(Registration::load(&path).unwrap(), reg);
        let yaml = reg.to_yaml();
        assert!(yaml.contains("rate_limited: false"), "{yaml}");
        assert!(yaml.contains("receive_ephemeral: true"), "{yaml}");

        let short = yaml.replace(&reg.hs_token, "short");
        std::fs::write(&path, short).unwrap();
        let err = Registration::load(&path).unwrap_err().to_string();
        assert!(err.contains("hs_token"), "{err}");
    }

    #[test]
    fn encryption_adds_the_device_flags() {
        let plain = Registration::generate(&config(), &[]);
        assert!(!plain.device_lists && !plain.device_management);
        let yaml = plain.to_yaml();
        assert!(
            !yaml.contains("msc3202") && !yaml.contains("msc4190"),
            "{yaml}"
        );
        let mut config = config();
        config.encryption.allow = true;
        let reg = Registration::generate(&config, &[]);
        let yaml = reg.to_yaml();
        assert!(yaml.contains("org.matrix.msc3202: true"), "{yaml}");
        assert!(yaml.contains("io.element.msc4190: true"), "{yaml}");
        assert!(yaml.contains("receive_ephemeral: true"), "{yaml}");
    }

    #[test]
    fn tokens_are_random() {
        assert_ne!(random_token(), random_token());
        assert!(random_token().chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
