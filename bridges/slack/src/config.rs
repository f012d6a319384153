//! `bridges.slack`: any number of workspaces, each a Slack app with a bot
//! token, reached by Socket Mode (the default) or the Events API over HTTP.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use passerelle_api::config::ConfigProblem;
use serde::Deserialize;

/// The whole `bridges.slack` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The Web API base; methods are `{api_url}/{method}`.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Where the Events API (HTTP mode) posts, for every workspace in that
    /// mode; each workspace's path is `/slack/<name>`.
    pub events_listen: Option<SocketAddr>,
    #[serde(default)]
    pub workspaces: BTreeMap<String, WorkspaceConfig>,
}

/// How events arrive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventMode {
    /// A websocket the bridge opens with the app-level token: nothing to
    /// expose to the internet.
    #[default]
    SocketMode,
    /// Slack POSTs to a public URL, signed with the signing secret.
    Http,
}

/// One workspace (`bridges.slack.workspaces.<name>`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// `xoxb-…`: the bot user's token (OAuth & Permissions page).
    pub bot_token: String,
    /// `xapp-…`: the app-level token with `connections:write` (Socket Mode).
    #[serde(default)]
    pub app_token: String,
    #[serde(default)]
    pub mode: EventMode,
    /// For `mode: http`: Basic Information -> Signing Secret.
    #[serde(default)]
    pub signing_secret: String,
    /// Bridge every channel the bot is a member of, without `link`.
    #[serde(default)]
    pub auto_bridge: bool,
    /// Whether Matrix users without their own login speak through the bot
    /// (with their name and avatar).
    #[serde(default = "default_true")]
    pub relay: bool,
}

fn default_api_url() -> String {
    "https://slack.com/api".to_owned()
}

fn default_true() -> bool {
    true
}

impl SlackConfig {
    /// Checks what serde cannot; the key is relative to `bridges.slack`.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            return Err(ConfigProblem::new("api_url", "must be an http(s) URL"));
        }
        for (name, ws) in &self.workspaces {
            let key = |k: &str| format!("workspaces.{name}.{k}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(ConfigProblem::new(
                    format!("workspaces.{name}"),
                    "workspace names are lowercase letters, digits and -",
                ));
            }
            if !self.enabled {
                continue;
            }
            if !ws.bot_token.starts_with("xoxb-") || ws.bot_token.contains('…') {
                return Err(ConfigProblem::new(
                    key("bot_token"),
                    "expected the bot token (xoxb-…) from the app's OAuth & Permissions page",
                ));
            }
            match ws.mode {
                EventMode::SocketMode => {
                    if !ws.app_token.starts_with("xapp-") || ws.app_token.contains('…') {
                        return Err(ConfigProblem::new(
                            key("app_token"),
                            "Socket Mode needs the app-level token (xapp-…) with connections:write",
                        ));
                    }
                }
                EventMode::Http => {
                    if ws.signing_secret.len() < 16 {
                        return Err(ConfigProblem::new(
                            key("signing_secret"),
                            "mode http needs the app's signing secret",
                        ));
                    }
                    if self.events_listen.is_none() {
                        return Err(ConfigProblem::new(
                            "events_listen",
                            "a workspace uses mode http: set where the Events API posts",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: serde_json::Value) -> SlackConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn socket_mode_is_the_default() {
        let config = parse(json!({"enabled": true, "workspaces": {"acme": {
            "bot_token": "xoxb-1-2-abc", "app_token": "xapp-1-A-1-abc"}}}));
        config.validate().unwrap();
        assert_eq!(config.workspaces["acme"].mode, EventMode::SocketMode);
        assert!(config.workspaces["acme"].relay);
        assert_eq!(config.api_url, "https://slack.com/api");
    }

    #[test]
    fn problems_name_their_key() {
        for (v, key) in [
            (
                json!({"enabled": true, "workspaces": {"acme": {"bot_token": "xoxp-1", "app_token": "xapp-1"}}}),
                "workspaces.acme.bot_token",
            ),
            (
                json!({"enabled": true, "workspaces": {"acme": {"bot_token": "xoxb-…", "app_token": "xapp-1"}}}),
                "workspaces.acme.bot_token",
            ),
            (
                json!({"enabled": true, "workspaces": {"acme": {"bot_token": "xoxb-1"}}}),
                "workspaces.acme.app_token",
            ),
            (
                json!({"enabled": true, "workspaces": {"acme": {"bot_token": "xoxb-1", "mode": "http"}}}),
                "workspaces.acme.signing_secret",
            ),
            (
                json!({"enabled": true, "workspaces": {"acme": {"bot_token": "xoxb-1", "mode": "http",
                "signing_secret": "0123456789abcdef0123"}}}),
                "events_listen",
            ),
            (
                json!({"workspaces": {"Acme Corp": {"bot_token": "x"}}}),
                "workspaces.Acme Corp",
            ),
            (json!({"api_url": "slack.com"}), "api_url"),
        ] {
            assert_eq!(parse(v.clone()).validate().unwrap_err().key, key, "{v}");
        }
    }
}
