//! `bridges.telegram`: one bot, reached through `api_url`.

use std::net::SocketAddr;
use std::time::Duration;

use passerelle_api::config::{ConfigProblem, duration};
use serde::Deserialize;

/// The whole `bridges.telegram` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The token from @BotFather (`123456:ABC…`); `env:NAME` reads it from
    /// the environment.
    #[serde(default)]
    pub bot_token: String,
    /// The Bot API base: Telegram's, a local Bot API server, or a test fake.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// `polling` (getUpdates, the default) or `webhook`.
    #[serde(default)]
    pub mode: Mode,
    /// How long one getUpdates call waits for updates.
    #[serde(default = "default_poll_timeout", deserialize_with = "duration")]
    pub poll_timeout: Duration,
    /// Webhook mode: where Telegram posts updates.
    pub webhook: Option<WebhookConfig>,
    /// How a relayed Matrix message reads in Telegram (HTML parse mode):
    /// `{displayname}` and `{mxid}` are escaped; `{message}` is the
    /// converted message.
    #[serde(default = "default_relay_template")]
    pub relay_template: String,
    /// Create a portal for every chat the bot is in when the first message
    /// arrives, instead of waiting for `link telegram <chat id>`.
    #[serde(default)]
    pub auto_portals: bool,
    /// Matrix media larger than this is not sent to Telegram; the sender is
    /// told. Telegram's own limit for bots is 50 MB (10 MB for photos).
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// Ghost profile photos are looked up again after this long.
    #[serde(default = "default_profile_refresh", deserialize_with = "duration")]
    pub profile_refresh: Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Polling,
    Webhook,
}

/// `bridges.telegram.webhook`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where passerelle listens for Telegram's POSTs.
    pub listen: SocketAddr,
    /// The public https URL Telegram posts to (your reverse proxy in front of
    /// `listen`); registered with setWebhook at start.
    pub url: String,
    /// Sent by Telegram in `X-Telegram-Bot-Api-Secret-Token`; requests
    /// without it are refused. 1–256 characters of `A-Za-z0-9_-`.
    pub secret_token: String,
}

fn default_api_url() -> String {
    "https://api.telegram.org".to_owned()
}

fn default_poll_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_relay_template() -> String {
    "<b>{displayname}</b>: {message}".to_owned()
}

fn default_max_upload() -> u64 {
    50 * 1024 * 1024
}

fn default_profile_refresh() -> Duration {
    Duration::from_secs(6 * 3600)
}

impl TelegramConfig {
    /// Checks what serde cannot; the key is relative to `bridges.telegram`.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        if self.enabled {
            let token = self.bot_token.trim();
            let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !secret.is_empty()
            });
            if !well_formed {
                return Err(ConfigProblem::new(
                    "bot_token",
                    "expected the token @BotFather gives, like 123456:ABC-DEF…",
                ));
            }
        }
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            return Err(ConfigProblem::new("api_url", "must be an http(s) URL"));
        }
        if self.poll_timeout > Duration::from_secs(50) {
            return Err(ConfigProblem::new(
                "poll_timeout",
                "at most 50s (Telegram closes longer polls)",
            ));
        }
        if !self.relay_template.contains("{message}") {
            return Err(ConfigProblem::new(
                "relay_template",
                "must contain {message}",
            ));
        }
        match (&self.mode, &self.webhook) {
            (Mode::Webhook, None) => {
                return Err(ConfigProblem::new(
                    "webhook",
                    "mode is webhook: set webhook.listen, webhook.url and webhook.secret_token",
                ));
            }
            (_, Some(hook)) => {
                if !hook.url.starts_with("https://") && !hook.url.starts_with("http://") {
                    return Err(ConfigProblem::new("webhook.url", "must be an http(s) URL"));
                }
                let secret = &hook.secret_token;
                if secret.is_empty()
                    || secret.len() > 256
                    || !secret
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(ConfigProblem::new(
                        "webhook.secret_token",
                        "1-256 characters of A-Z, a-z, 0-9, _ and -",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The base of method URLs: `{api_url}/bot{token}`. Never logged.
    pub(crate) fn bot_url(&self) -> String {
        format!(
            "{}/bot{}",
            self.api_url.trim_end_matches('/'),
            self.bot_token.trim()
        )
    }

    /// The base of file downloads: `{api_url}/file/bot{token}`. Never logged.
    pub(crate) fn file_url(&self) -> String {
        format!(
            "{}/file/bot{}",
            self.api_url.trim_end_matches('/'),
            self.bot_token.trim()
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: serde_json::Value) -> TelegramConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let config = parse(json!({"enabled": true, "bot_token": "123:abc"}));
        config.validate().unwrap();
        assert_eq!(config.mode, Mode::Polling);
        assert_eq!(config.api_url, "https://api.telegram.org");
        assert_eq!(config.bot_url(), "https://api.telegram.org/bot123:abc");
    }

    #[test]
    fn problems_name_their_key() {
        for (v, key) in [
            (json!({"enabled": true, "bot_token": ""}), "bot_token"),
            (
                json!({"enabled": true, "bot_token": "abc:def"}),
                "bot_token",
            ),
            (json!({"bot_token": "1:a", "api_url": "ftp://x"}), "api_url"),
            (
                json!({"bot_token": "1:a", "poll_timeout": "2m"}),
                "poll_timeout",
            ),
            (
                json!({"bot_token": "1:a", "relay_template": "{displayname}"}),
                "relay_template",
            ),
            (json!({"bot_token": "1:a", "mode": "webhook"}), "webhook"),
            (
                json!({"bot_token": "1:a", "mode": "webhook", "webhook": {
                    "listen": "127.0.0.1:1", "url": "https://x/tg", "secret_token": "a b"}}),
                "webhook.secret_token",
            ),
        ] {
            assert_eq!(parse(v.clone()).validate().unwrap_err().key, key, "{v}");
        }
    }

    #[test]
    fn a_disabled_section_needs_no_token() {
        parse(json!({"enabled": false})).validate().unwrap();
    }
}
