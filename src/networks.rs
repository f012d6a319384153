//! The modules this build contains, built from their config sections.
//! Each network is a cargo feature; a section for a network that is not
//! built in is a config error naming the key.

use std::sync::Arc;

use passerelle_api::Network;

use crate::config::{Config, ConfigError};

/// Networks whose config sections this runtime knows.
pub const KNOWN: &[&str] = &["irc", "slack", "telegram"];

/// Builds the enabled modules.
pub fn build(config: &Config) -> Result<Vec<Arc<dyn Network>>, ConfigError> {
    let mut modules: Vec<Arc<dyn Network>> = Vec::new();
    for name in config.bridges.keys() {
        if !KNOWN.contains(&name.as_str()) {
            return Err(ConfigError::key(
                format!("bridges.{name}"),
                format!("unknown network (known: {})", KNOWN.join(", ")),
            ));
        }
        let enabled = config.network_enabled(name);
        let section = &config.network_section(name).expect("listed above");
        match name.as_str() {
            // A disabled section is still checked, so check-config catches
            // mistakes before someone turns it on.
            #[cfg(feature = "irc")]
            "irc" => {
                let module = irc(section)?;
                if enabled {
                    modules.push(module);
                }
            }
            #[cfg(feature = "telegram")]
            "telegram" => {
                let module = telegram(section)?;
                if enabled {
                    modules.push(module);
                }
            }
            #[cfg(feature = "slack")]
            "slack" => {
                let module = slack(section)?;
                if enabled {
                    modules.push(module);
                }
            }
            _ if !enabled => {}
            other => {
                return Err(ConfigError::key(
                    format!("bridges.{other}.enabled"),
                    format!("the {other} module is not part of this build yet"),
                ));
            }
        }
    }
    Ok(modules)
}

#[cfg(feature = "irc")]
fn irc(section: &serde_json::Value) -> Result<Arc<dyn Network>, ConfigError> {
    let config: passerelle_irc::config::IrcConfig =
        crate::config::parse_section("bridges.irc", section)?;
    config
        .validate()
        .map_err(|p| ConfigError::key(format!("bridges.irc.{}", p.key), p.message))?;
    Ok(Arc::new(passerelle_irc::IrcModule::new(config)))
}

#[cfg(feature = "telegram")]
fn telegram(section: &serde_json::Value) -> Result<Arc<dyn Network>, ConfigError> {
    let config: passerelle_telegram::config::TelegramConfig =
        crate::config::parse_section("bridges.telegram", section)?;
    config
        .validate()
        .map_err(|p| ConfigError::key(format!("bridges.telegram.{}", p.key), p.message))?;
    Ok(Arc::new(passerelle_telegram::TelegramModule::new(config)))
}

#[cfg(feature = "slack")]
fn slack(section: &serde_json::Value) -> Result<Arc<dyn Network>, ConfigError> {
    let config: passerelle_slack::config::SlackConfig =
        crate::config::parse_section("bridges.slack", section)?;
    config
        .validate()
        .map_err(|p| ConfigError::key(format!("bridges.slack.{}", p.key), p.message))?;
    Ok(Arc::new(passerelle_slack::SlackModule::new(config)))
}
