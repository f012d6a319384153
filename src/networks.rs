//! The modules this build contains, built from their config sections.
//! Each network is a cargo feature; a section for a network that is not
//! built in is a config error naming the key.

use std::sync::Arc;

use passerelle_api::Network;

use crate::config::{Config, ConfigError};

/// Networks whose config sections this runtime knows. A module is added
/// here behind its cargo feature when it lands.
pub const KNOWN: &[&str] = &["irc", "slack", "telegram"];

/// Builds the enabled modules.
pub fn build(config: &Config) -> Result<Vec<Arc<dyn Network>>, ConfigError> {
    let modules: Vec<Arc<dyn Network>> = Vec::new();
    for name in config.bridges.keys() {
        if !KNOWN.contains(&name.as_str()) {
            return Err(ConfigError::key(
                format!("bridges.{name}"),
                format!("unknown network (known: {})", KNOWN.join(", ")),
            ));
        }
        if config.network_enabled(name) {
            return Err(ConfigError::key(
                format!("bridges.{name}.enabled"),
                format!("the {name} module is not part of this build yet"),
            ));
        }
    }
    Ok(modules)
}
