//! `bridges.irc`: any number of IRC networks, each with its own connection
//! settings, puppet policy, static channel mappings and limits.

use std::collections::BTreeMap;
use std::time::Duration;

use passerelle_api::config::duration;
pub use passerelle_api::config::{ConfigProblem, parse_duration};
use serde::Deserialize;

/// The whole `bridges.irc` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcConfig {
    #[serde(default)]
    pub enabled: bool,
    /// At most this many connection attempts run at once, across every
    /// network and puppet: a netsplit is not a reconnect storm.
    #[serde(default = "default_concurrent_connects")]
    pub max_concurrent_connects: usize,
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkConfig>,
}

/// SASL credentials for a connection.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "mechanism", rename_all = "lowercase", deny_unknown_fields)]
pub enum SaslConfig {
    Plain { username: String, password: String },
    External,
}

/// One IRC network (`bridges.irc.networks.<name>`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_true")]
    pub tls: bool,
    /// Server password (`PASS`), for the bot and every puppet.
    pub password: Option<String>,
    /// SASL for the bot connection.
    pub sasl: Option<SaslConfig>,
    /// `IDENTIFY` to NickServ when the server offers no SASL.
    pub nickserv_password: Option<String>,
    /// The nick of the bridge bot's own connection (it relays and watches channels).
    #[serde(default = "default_bot_nick")]
    pub bot_nick: String,
    /// Nick of a Matrix user's puppet: `{displayname}` and `{localpart}` are
    /// replaced, then the result is sanitised for IRC.
    #[serde(default = "default_nick_template")]
    pub nick_template: String,
    /// Whether Matrix users get their own IRC connection.
    #[serde(default = "default_true")]
    pub puppets: bool,
    /// Whether Matrix users without a puppet speak through the bot (`<name> text`).
    #[serde(default = "default_true")]
    pub relay: bool,
    /// Static mappings: IRC channel -> Matrix room id or alias.
    #[serde(default)]
    pub channels: BTreeMap<String, String>,
    /// Puppets idle this long are disconnected.
    #[serde(default = "default_idle", deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Puppets active within this time are reconnected at start.
    #[serde(default = "default_reconnect_recent", deserialize_with = "duration")]
    pub reconnect_active_within: Duration,
    /// At most this many puppet connections on this network.
    #[serde(default = "default_max_puppets")]
    pub max_puppets: usize,
    /// Lines sent at once before the rate applies.
    #[serde(default = "default_flood_burst")]
    pub flood_burst: u32,
    /// One line per this interval after the burst.
    #[serde(default = "default_flood_interval", deserialize_with = "duration")]
    pub flood_interval: Duration,
    /// Encoding tried when a line is not UTF-8 (an encoding_rs label).
    #[serde(default = "default_encoding")]
    pub fallback_encoding: String,
    /// Whether the members of a channel (NAMES) become ghosts in the portal.
    #[serde(default = "default_true")]
    pub names_sync: bool,
    /// Messages longer than this many IRC lines are sent as a link to a text file.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
    /// Channel modes -> Matrix power levels.
    #[serde(default = "default_power_levels")]
    pub power_levels: BTreeMap<char, i64>,
}

fn default_concurrent_connects() -> usize {
    10
}
fn default_port() -> u16 {
    6697
}
fn default_true() -> bool {
    true
}
fn default_bot_nick() -> String {
    "passerelle".to_owned()
}
fn default_nick_template() -> String {
    "{displayname}[m]".to_owned()
}
fn default_idle() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_reconnect_recent() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_max_puppets() -> usize {
    1000
}
fn default_flood_burst() -> u32 {
    5
}
fn default_flood_interval() -> Duration {
    Duration::from_millis(2000)
}
fn default_encoding() -> String {
    "windows-1252".to_owned()
}
fn default_max_lines() -> usize {
    5
}
fn default_power_levels() -> BTreeMap<char, i64> {
    BTreeMap::from([('o', 50), ('h', 25), ('v', 1)])
}

impl IrcConfig {
    /// Checks values serde cannot: names, templates, encodings, placeholders.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        let problem = |key: String, message: &str| ConfigProblem {
            key,
            message: message.to_owned(),
        };
        if self.max_concurrent_connects == 0 {
            return Err(problem(
                "max_concurrent_connects".into(),
                "must be at least 1",
            ));
        }
        if self.enabled && self.networks.is_empty() {
            return Err(problem("networks".into(), "list at least one IRC network"));
        }
        for (name, net) in &self.networks {
            let key = |k: &str| format!("networks.{name}.{k}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(problem(
                    format!("networks.{name}"),
                    "network names are lowercase letters, digits and -",
                ));
            }
            if net.host.is_empty() || net.host.contains(char::is_whitespace) {
                return Err(problem(key("host"), "must be a host name"));
            }
            if net.host == "irc.example.org" {
                return Err(problem(
                    key("host"),
                    "still the example's placeholder: set your IRC server",
                ));
            }
            if net.port == 0 {
                return Err(problem(key("port"), "must be a port number"));
            }
            if !net.nick_template.contains("{displayname}")
                && !net.nick_template.contains("{localpart}")
            {
                return Err(problem(
                    key("nick_template"),
                    "must contain {displayname} or {localpart}",
                ));
            }
            if crate::nick::sanitize(&net.bot_nick, 30) != net.bot_nick {
                return Err(problem(key("bot_nick"), "is not a valid IRC nick"));
            }
            if encoding_rs::Encoding::for_label(net.fallback_encoding.as_bytes()).is_none() {
                return Err(problem(
                    key("fallback_encoding"),
                    "unknown encoding (try windows-1252, iso-8859-15, koi8-r)",
                ));
            }
            if net.flood_burst == 0 {
                return Err(problem(key("flood_burst"), "must be at least 1"));
            }
            if net.max_lines == 0 {
                return Err(problem(key("max_lines"), "must be at least 1"));
            }
            for channel in net.channels.keys() {
                if !channel.starts_with(['#', '&', '+', '!']) {
                    return Err(problem(
                        format!("networks.{name}.channels.{channel}"),
                        "an IRC channel starts with #",
                    ));
                }
            }
            for mode in net.power_levels.keys() {
                if !mode.is_ascii_alphabetic() {
                    return Err(problem(
                        format!("networks.{name}.power_levels.{mode}"),
                        "keys are channel mode letters (o, h, v)",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> IrcConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_are_filled() {
        let config = parse(serde_json::json!({
            "enabled": true,
            "networks": {"libera": {"host": "irc.libera.chat"}}
        }));
        config.validate().unwrap();
        let libera = &config.networks["libera"];
        assert_eq!(
            (libera.port, libera.tls, libera.puppets),
            (6697, true, true)
        );
        assert_eq!(libera.flood_interval, Duration::from_secs(2));
        assert_eq!(libera.power_levels[&'o'], 50);
    }

    #[test]
    fn problems_name_the_key() {
        let cases = [
            (
                serde_json::json!({"host": "irc.example.org"}),
                "networks.net.host",
            ),
            (
                serde_json::json!({"host": "h", "nick_template": "static"}),
                "networks.net.nick_template",
            ),
            (
                serde_json::json!({"host": "h", "fallback_encoding": "klingon"}),
                "networks.net.fallback_encoding",
            ),
            (
                serde_json::json!({"host": "h", "channels": {"rust": "!r"}}),
                "networks.net.channels.rust",
            ),
            (
                serde_json::json!({"host": "h", "bot_nick": "bad nick"}),
                "networks.net.bot_nick",
            ),
        ];
        for (network, key) in cases {
            let config = parse(serde_json::json!({"enabled": true, "networks": {"net": network}}));
            assert_eq!(config.validate().unwrap_err().key, key);
        }
    }
}
