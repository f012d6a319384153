//! The config file (`config.yaml`). Errors name the key, or the line and
//! column for malformed YAML; values still equal to the example's
//! placeholders are rejected.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

use crate::permissions::{PermissionLevel, Permissions};

/// A config problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Malformed YAML or a wrong type; the message carries line and column.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("problem with `{key}`: {message}")]
    Key { key: String, message: String },
}

impl ConfigError {
    pub fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole config file. Every key is documented in `config.example.yaml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub homeserver: HomeserverConfig,
    pub appservice: AppserviceConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub permissions: BTreeMap<String, PermissionLevel>,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub media: MediaConfig,
    /// The provisioning API (`docs/provisioning.yaml`); off when absent.
    #[serde(default)]
    pub provisioning: Option<ProvisioningConfig>,
    /// End-to-bridge encryption: the bot's device and its crypto store.
    #[serde(default)]
    pub encryption: EncryptionConfig,
    /// One section per network: `irc`, `slack`, `telegram`. Each module
    /// parses and validates its own section.
    #[serde(default)]
    pub bridges: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeserverConfig {
    /// Client-server API base URL.
    pub url: Url,
    /// The server name, the part after `:` in user ids.
    pub domain: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppserviceConfig {
    #[serde(default = "default_appservice_id")]
    pub id: String,
    /// Where we serve `/_matrix/app/v1`.
    pub listen: SocketAddr,
    /// How the homeserver reaches us (written into the registration).
    pub url: Url,
    /// The registration file holding the tokens.
    #[serde(default = "default_registration")]
    pub registration: PathBuf,
    #[serde(default = "default_bot_localpart")]
    pub bot_localpart: String,
    #[serde(default = "default_bot_displayname")]
    pub bot_displayname: String,
    /// Largest transaction body accepted, in bytes (413 above).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://file.db` or `postgres://user:pass@host/db`; `env:NAME` reads
    /// it from the environment.
    #[serde(default = "default_database_url")]
    pub url: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_acquire_timeout", deserialize_with = "duration")]
    pub acquire_timeout: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Message-map rows older than this are purged (`30d`, `12h`).
    #[serde(default = "default_retention", deserialize_with = "duration")]
    pub message_retention: Duration,
    /// How often the purge runs.
    #[serde(default = "default_purge_interval", deserialize_with = "duration")]
    pub purge_interval: Duration,
    /// How often portals with disappearing messages (`disappear 7d`) are
    /// checked for messages past their timer.
    #[serde(default = "default_disappear_interval", deserialize_with = "duration")]
    pub disappear_interval: Duration,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Prometheus `/metrics` and `/health`; off when absent.
    pub listen: Option<SocketAddr>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningConfig {
    /// Its own listener, apart from the appservice and metrics ones.
    pub listen: SocketAddr,
    /// Callers send `Authorization: Bearer <shared_secret>`. At least
    /// [`MIN_PROVISIONING_SECRET_LEN`] characters; `env:NAME` reads it from
    /// the environment.
    pub shared_secret: String,
}

/// The shortest provisioning secret accepted.
pub const MIN_PROVISIONING_SECRET_LEN: usize = 32;

impl std::fmt::Debug for ProvisioningConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningConfig")
            .field("listen", &self.listen)
            .field("shared_secret", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Public base URL under which `/_passerelle/media/…` of the appservice
    /// listener is reachable (through your reverse proxy). Without it,
    /// networks that need links to Matrix media (IRC) say the file cannot
    /// be linked.
    pub public_url: Option<Url>,
    /// How long a link stays valid.
    #[serde(default = "default_link_lifetime", deserialize_with = "duration")]
    pub link_lifetime: Duration,
    /// Largest file served through a link, in bytes.
    #[serde(default = "default_media_max_size")]
    pub max_size: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            link_lifetime: default_link_lifetime(),
            max_size: default_media_max_size(),
        }
    }
}

fn default_link_lifetime() -> Duration {
    crate::media::DEFAULT_LIFETIME
}
fn default_media_max_size() -> u64 {
    100 * 1024 * 1024
}

/// End-to-bridge encryption (`docs/ENCRYPTION.md`). Off unless `allow`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Gives the bot a device (MSC4190) so it reads and answers encrypted
    /// management rooms; networks opt in with `bridges.<net>.encryption`.
    #[serde(default)]
    pub allow: bool,
    /// The bot's device id, made with `PUT /devices/{deviceId}`; also the
    /// id of the device of each ghost that speaks in an encrypted room.
    #[serde(default = "default_device_id")]
    pub device_id: String,
    /// The crypto store: a folder of SQLite files of its own (the bot's,
    /// and one per ghost that spoke in an encrypted room), whatever
    /// `database.url` is.
    #[serde(default = "default_crypto_store")]
    pub store: PathBuf,
    /// Encrypts the secrets inside the crypto store. Empty: a key derived
    /// from the registration's `as_token`. `env:NAME` reads it from the
    /// environment.
    #[serde(default)]
    pub pickle_key: String,
    /// Which devices get the keys of messages the bridge sends.
    #[serde(default)]
    pub share_keys: KeySharing,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        Self {
            allow: false,
            device_id: default_device_id(),
            store: default_crypto_store(),
            pickle_key: String::new(),
            share_keys: KeySharing::default(),
        }
    }
}

impl std::fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionConfig")
            .field("allow", &self.allow)
            .field("device_id", &self.device_id)
            .field("store", &self.store)
            .field("pickle_key", &"<redacted>")
            .field("share_keys", &self.share_keys)
            .finish()
    }
}

/// `encryption.share_keys`: who may read what the bridge sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeySharing {
    /// Every device of every member (what clients do by default).
    #[default]
    All,
    /// Only devices their owner cross-signed.
    CrossSigned,
    /// Only devices the bot's own identity trusts (verified).
    Verified,
}

/// `bridges.<net>.encryption`: read by the runtime, not by the module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalEncryption {
    /// Bridge portals that are (or become) encrypted.
    #[serde(default)]
    pub allow: bool,
    /// Create new portals encrypted.
    #[serde(default)]
    pub default: bool,
    /// Refuse to bridge unencrypted rooms.
    #[serde(default)]
    pub require: bool,
}

fn default_device_id() -> String {
    "PASSERELLE".to_owned()
}
fn default_crypto_store() -> PathBuf {
    PathBuf::from("passerelle-crypto.db")
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// A tracing filter: `info`, `passerelle=debug,info`. `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

fn default_appservice_id() -> String {
    "passerelle".to_owned()
}
fn default_registration() -> PathBuf {
    PathBuf::from("registration.yaml")
}
fn default_bot_localpart() -> String {
    "passerelle".to_owned()
}
fn default_bot_displayname() -> String {
    "Passerelle".to_owned()
}
fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_database_url() -> String {
    "sqlite://passerelle.db".to_owned()
}
fn default_max_connections() -> u32 {
    5
}
fn default_acquire_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_purge_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_disappear_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: default_database_url(),
            max_connections: default_max_connections(),
            acquire_timeout: default_acquire_timeout(),
        }
    }
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            message_retention: default_retention(),
            purge_interval: default_purge_interval(),
            disappear_interval: default_disappear_interval(),
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: LogFormat::Text,
        }
    }
}

/// `30d`, `12h`, `90s`, `500ms` (humantime).
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!("`{s}` is not a duration like 30d or 12h: {e}"))
    })
}

/// Crates kept at `warn` by [`Config::log_filter`] unless named.
const QUIET_CRATES: &[&str] = &[
    "matrix_sdk_crypto",
    "matrix_sdk_sqlite",
    "matrix_sdk_common",
    "vodozemac",
];

/// Values of `config.example.yaml` that must be replaced before running.
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("homeserver.domain", "example.org"),
    (
        "provisioning.shared_secret",
        "replace-me-with-a-long-random-secret",
    ),
];

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is for messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_start_matches("error: ").to_owned(),
        })?;
        config.resolve_env()?;
        config.validate()?;
        Ok(config)
    }

    /// Replaces `env:NAME` values of secrets with the environment variable.
    fn resolve_env(&mut self) -> Result<(), ConfigError> {
        self.database.url = resolve_env_value("database.url", &self.database.url)?;
        if let Some(provisioning) = &mut self.provisioning {
            provisioning.shared_secret =
                resolve_env_value("provisioning.shared_secret", &provisioning.shared_secret)?;
        }
        self.encryption.pickle_key =
            resolve_env_value("encryption.pickle_key", &self.encryption.pickle_key)?;
        for (name, section) in &mut self.bridges {
            resolve_env_json(&format!("bridges.{name}"), section)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, placeholder) in PLACEHOLDERS {
            if self.get_str(key) == Some(placeholder) {
                return Err(ConfigError::key(
                    *key,
                    format!("still the example's placeholder `{placeholder}`: set your own value"),
                ));
            }
        }
        for user in self.permissions.keys() {
            if user.ends_with(":example.org") || user == "example.org" {
                return Err(ConfigError::key(
                    format!("permissions.\"{user}\""),
                    "still the example's placeholder: name your own users or server",
                ));
            }
        }
        if let Some(url) = &self.media.public_url
            && url.host_str().is_some_and(|h| h.ends_with("example.org"))
        {
            return Err(ConfigError::key(
                "media.public_url",
                "still the example's placeholder: set your bridge's public URL or remove the key",
            ));
        }
        if !matches!(self.homeserver.url.scheme(), "http" | "https") {
            return Err(ConfigError::key(
                "homeserver.url",
                "must be an http:// or https:// URL",
            ));
        }
        if !matches!(self.appservice.url.scheme(), "http" | "https") {
            return Err(ConfigError::key(
                "appservice.url",
                "must be an http:// or https:// URL",
            ));
        }
        if self.homeserver.domain.is_empty() || self.homeserver.domain.contains(['/', '@', ' ']) {
            return Err(ConfigError::key(
                "homeserver.domain",
                "must be a server name like matrix.org",
            ));
        }
        let local = &self.appservice.bot_localpart;
        if local.is_empty() || crate::mxid::escape_localpart(local) != *local {
            return Err(ConfigError::key(
                "appservice.bot_localpart",
                "must be lowercase letters, digits and ._-/",
            ));
        }
        if self.appservice.id.is_empty() {
            return Err(ConfigError::key("appservice.id", "must not be empty"));
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return Err(ConfigError::key(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::key(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.privacy.message_retention.is_zero() {
            return Err(ConfigError::key(
                "privacy.message_retention",
                "must be longer than zero",
            ));
        }
        if let Some(provisioning) = &self.provisioning {
            self.validate_provisioning(provisioning)?;
        }
        for (name, section) in &self.bridges {
            if !section.is_object() {
                return Err(ConfigError::key(
                    format!("bridges.{name}"),
                    "must be a mapping",
                ));
            }
            if let Some(enabled) = section.get("enabled")
                && !enabled.is_boolean()
            {
                return Err(ConfigError::key(
                    format!("bridges.{name}.enabled"),
                    "must be true or false",
                ));
            }
            self.portal_encryption(name)?;
        }
        self.validate_encryption()
    }

    fn validate_encryption(&self) -> Result<(), ConfigError> {
        let device = &self.encryption.device_id;
        if device.is_empty()
            || device.len() > 64
            || !device
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::key(
                "encryption.device_id",
                "must be 1 to 64 letters, digits, `_` or `-`",
            ));
        }
        if self.encryption.store.as_os_str().is_empty() {
            return Err(ConfigError::key("encryption.store", "must be a file path"));
        }
        Ok(())
    }

    /// `bridges.<network>.encryption`, checked against `encryption.allow`.
    pub fn portal_encryption(&self, network: &str) -> Result<PortalEncryption, ConfigError> {
        let Some(value) = self.bridges.get(network).and_then(|s| s.get("encryption")) else {
            return Ok(PortalEncryption::default());
        };
        let key = format!("bridges.{network}.encryption");
        let policy: PortalEncryption = parse_section(&key, value)?;
        if (policy.default || policy.require) && !policy.allow {
            let which = if policy.default { "default" } else { "require" };
            return Err(ConfigError::key(
                format!("{key}.{which}"),
                format!("needs `{key}.allow: true`"),
            ));
        }
        if policy.allow && !self.encryption.allow {
            return Err(ConfigError::key(
                format!("{key}.allow"),
                "needs `encryption.allow: true` (the bot's device)",
            ));
        }
        Ok(policy)
    }

    fn validate_provisioning(&self, provisioning: &ProvisioningConfig) -> Result<(), ConfigError> {
        let secret = &provisioning.shared_secret;
        if secret.chars().count() < MIN_PROVISIONING_SECRET_LEN {
            return Err(ConfigError::key(
                "provisioning.shared_secret",
                format!(
                    "must be at least {MIN_PROVISIONING_SECRET_LEN} characters \
                     (e.g. `openssl rand -hex 32`)"
                ),
            ));
        }
        // It travels in an HTTP header: `Authorization: Bearer <secret>`.
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::key(
                "provisioning.shared_secret",
                "must be printable ASCII without spaces",
            ));
        }
        let listen = provisioning.listen;
        let taken = [
            ("appservice.listen", Some(self.appservice.listen)),
            ("metrics.listen", self.metrics.listen),
        ];
        for (key, addr) in taken {
            if addr == Some(listen) && listen.port() != 0 {
                return Err(ConfigError::key(
                    "provisioning.listen",
                    format!("the same address as `{key}`: the API needs its own listener"),
                ));
            }
        }
        Ok(())
    }

    fn get_str(&self, key: &str) -> Option<&str> {
        match key {
            "homeserver.domain" => Some(&self.homeserver.domain),
            "provisioning.shared_secret" => {
                self.provisioning.as_ref().map(|p| p.shared_secret.as_str())
            }
            _ => None,
        }
    }

    pub fn permissions(&self) -> Permissions {
        Permissions::new(self.permissions.clone())
    }

    /// The bot's full user id.
    pub fn bot_user_id(&self) -> String {
        format!(
            "@{}:{}",
            self.appservice.bot_localpart, self.homeserver.domain
        )
    }

    /// The tracing filter of `logging.level`, with the encryption crates
    /// held at `warn` unless it names them: at debug level they log key
    /// ids and session details, which have no place in a bridge's logs.
    pub fn log_filter(&self) -> String {
        let mut filter = self.logging.level.clone();
        for quiet in QUIET_CRATES {
            if !filter.contains(quiet) {
                filter.push_str(&format!(",{quiet}=warn"));
            }
        }
        filter
    }

    /// Whether `bridges.<network>.enabled` is true.
    pub fn network_enabled(&self, network: &str) -> bool {
        self.bridges
            .get(network)
            .and_then(|s| s.get("enabled"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }

    /// The config section of a network, for its module to parse: without
    /// `encryption`, which the runtime reads.
    pub fn network_section(&self, network: &str) -> Option<serde_json::Value> {
        let mut section = self.bridges.get(network)?.clone();
        if let Some(map) = section.as_object_mut() {
            map.remove("encryption");
        }
        Some(section)
    }
}

fn resolve_env_value(key: &str, value: &str) -> Result<String, ConfigError> {
    match value.strip_prefix("env:") {
        Some(var) => std::env::var(var)
            .map_err(|_| ConfigError::key(key, format!("environment variable `{var}` is not set"))),
        None => Ok(value.to_owned()),
    }
}

fn resolve_env_json(key: &str, value: &mut serde_json::Value) -> Result<(), ConfigError> {
    match value {
        serde_json::Value::String(s) if s.starts_with("env:") => {
            *s = resolve_env_value(key, s)?;
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                resolve_env_json(&format!("{key}.{k}"), v)?;
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                resolve_env_json(&format!("{key}[{i}]"), v)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Deserialises a module's section into its typed config, naming the key on
/// error: "problem with `bridges.irc.networks.libera.port`: …".
pub fn parse_section<T: serde::de::DeserializeOwned>(
    prefix: &str,
    section: &serde_json::Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(section).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." {
            prefix.to_owned()
        } else {
            format!("{prefix}.{path}")
        };
        ConfigError::key(key, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests;
