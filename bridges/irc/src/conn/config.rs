//! What one connection needs to know, and the process-wide engine settings.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use encoding_rs::Encoding;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The IRCv3 capabilities requested by default, when the server offers them.
///
/// `sasl` is not listed: it is requested only when [`ConnectionConfig::sasl`]
/// is set. `cap-notify` is implied by `CAP LS 302`.
pub const DEFAULT_CAPS: &[&str] = &[
    "server-time",
    "message-tags",
    "echo-message",
    "multi-prefix",
    "away-notify",
    "account-notify",
    "extended-join",
    "batch",
    "labeled-response",
];

/// Settings shared by every connection of the process.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// How many connection attempts (TCP connect, TLS handshake, registration)
    /// may run at once across all connections. A netsplit drops every puppet
    /// at the same moment; this keeps their return from being a connection
    /// storm the server answers with throttling or K-lines. Default 10.
    pub max_concurrent_connects: usize,
    /// Which certificate authorities TLS connections trust.
    pub tls_roots: TlsRoots,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_concurrent_connects: 10,
            tls_roots: TlsRoots::Native,
        }
    }
}

/// The trust anchors for TLS server certificates.
#[derive(Clone, Debug, Default)]
pub enum TlsRoots {
    /// The operating system's store, read once, at the first TLS connection.
    #[default]
    Native,
    /// A store given by the caller (tests, private networks).
    Custom(Arc<RootCertStore>),
}

/// SASL credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum Sasl {
    /// `AUTHENTICATE PLAIN` with an account name and its password.
    Plain { username: String, password: String },
    /// `AUTHENTICATE EXTERNAL`: the server identifies us by the TLS client
    /// certificate ([`ConnectionConfig::tls_client_cert`]).
    External,
}

impl Sasl {
    pub(crate) fn mechanism(&self) -> &'static str {
        match self {
            Sasl::Plain { .. } => "PLAIN",
            Sasl::External => "EXTERNAL",
        }
    }
}

impl fmt::Debug for Sasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sasl::Plain { username, .. } => f
                .debug_struct("Plain")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Sasl::External => f.write_str("External"),
        }
    }
}

/// A TLS client certificate (CertFP), for SASL EXTERNAL or networks that
/// identify users by certificate.
pub struct TlsClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientCert")
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The outgoing flood limit: a token bucket of `burst` lines, refilled by one
/// line every `interval`.
///
/// Defaults: a burst of 5 lines, then one line every 1.5 s. That is
/// heisenbridge's pace (up to 5 lines at once, then 1.5 s apart) and a bit
/// slower than matrix-appservice-irc's 700 ms spacing, which does get
/// "Excess Flood" kills on some networks. Servers rarely allow more than
/// 1 line/s sustained; PONG and QUIT bypass the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodConfig {
    pub burst: u32,
    pub interval: Duration,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            burst: 5,
            interval: Duration::from_millis(1500),
        }
    }
}

impl FloodConfig {
    /// No limit at all: for tests against servers without flood control.
    pub fn unlimited() -> Self {
        Self {
            burst: u32::MAX,
            interval: Duration::ZERO,
        }
    }
}

/// Reconnection delays: exponential backoff with full jitter, each delay
/// drawn uniformly from `[0, min(max, initial * 2^attempt)]`.
///
/// Defaults: `initial` 1 s, `max` 5 min, `stable_after` 1 min. After a
/// netsplit the first attempts of a thousand puppets spread over a second
/// (and the engine's concurrency cap paces them further); a server that stays
/// down is retried at most every 5 min. A connection that stayed registered
/// for `stable_after` starts again from `initial`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            stable_after: Duration::from_secs(60),
        }
    }
}

/// Everything one IRC connection needs. Build it with [`ConnectionConfig::new`]
/// and change the public fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// Presented when `tls` is set.
    pub tls_client_cert: Option<Arc<TlsClientCert>>,
    /// Source address, for networks that tell users apart by IP (one IPv6
    /// address per puppet).
    pub local_addr: Option<IpAddr>,
    /// Sent as `PASS` before anything else.
    pub server_password: Option<String>,
    /// The nick asked for; the server may give an alternative (see
    /// [`Event::NickUnavailable`](super::Event::NickUnavailable)).
    pub nick: String,
    pub username: String,
    pub realname: String,
    pub sasl: Option<Sasl>,
    /// `PRIVMSG NickServ :IDENTIFY ...` after registration, unless SASL
    /// succeeded. Without it, SASL PLAIN credentials are used the same way
    /// when the server offers no SASL.
    pub nickserv_password: Option<String>,
    /// Capabilities requested when offered. Default [`DEFAULT_CAPS`].
    pub want_caps: Vec<String>,
    /// How incoming lines that are not valid UTF-8 are decoded. Default
    /// windows-1252 (what "latin1" means on IRC in practice).
    pub fallback_encoding: &'static Encoding,
    /// Silence after which we send our own PING. Default 60 s.
    pub ping_interval: Duration,
    /// How long after our PING a silent connection is declared dead.
    /// Default 90 s, so a dead link is noticed within 2.5 min while a lagged
    /// server (netsplit, services burst) is not mistaken for a dead one.
    pub ping_timeout: Duration,
    /// TCP connect plus TLS handshake. Default 30 s.
    pub connect_timeout: Duration,
    /// From TCP connect to the welcome (001). Default 60 s.
    pub register_timeout: Duration,
    /// Nicks tried at registration before giving up (the first included).
    /// Default 10.
    pub nick_attempts: u32,
    pub flood: FloodConfig,
    pub backoff: BackoffConfig,
    /// Capacity of the event channel. Default 32: events wait for the
    /// receiver (and the connection stops reading) when it is full.
    pub event_capacity: usize,
    /// Capacity of the outgoing line queue. Default 16: `send` waits when
    /// it is full.
    pub send_capacity: usize,
}

impl ConnectionConfig {
    /// A plain-text connection with the defaults documented on each field;
    /// username and realname start equal to the nick.
    pub fn new(host: impl Into<String>, port: u16, nick: impl Into<String>) -> Self {
        let nick = nick.into();
        Self {
            host: host.into(),
            port,
            tls: false,
            tls_client_cert: None,
            local_addr: None,
            server_password: None,
            username: nick.clone(),
            realname: nick.clone(),
            nick,
            sasl: None,
            nickserv_password: None,
            want_caps: DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect(),
            fallback_encoding: encoding_rs::WINDOWS_1252,
            ping_interval: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(30),
            register_timeout: Duration::from_secs(60),
            nick_attempts: 10,
            flood: FloodConfig::default(),
            backoff: BackoffConfig::default(),
            event_capacity: 32,
            send_capacity: 16,
        }
    }

    /// Rejects what would put an invalid line on the wire or make the
    /// connection loop.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, problem: &'static str| Err(ConfigError { field, problem });
        if self.host.is_empty() {
            return bad("host", "is empty");
        }
        if self.port == 0 {
            return bad("port", "is 0");
        }
        if !is_word(&self.nick) {
            return bad(
                "nick",
                "is empty or has spaces, control characters or a leading ':'",
            );
        }
        if !is_word(&self.username) {
            return bad(
                "username",
                "is empty or has spaces, control characters or a leading ':'",
            );
        }
        if has_control(&self.realname) {
            return bad("realname", "has control characters");
        }
        for (field, value) in [
            ("server_password", &self.server_password),
            ("nickserv_password", &self.nickserv_password),
        ] {
            if value.as_deref().is_some_and(has_control) {
                return bad(field, "has control characters");
            }
        }
        if let Some(Sasl::Plain { username, password }) = &self.sasl
            && (username.is_empty() || username.contains('\0') || password.contains('\0'))
        {
            return bad(
                "sasl",
                "PLAIN needs a username, and neither may contain NUL",
            );
        }
        if self.want_caps.iter().any(|c| !is_word(c)) {
            return bad("want_caps", "has an empty name or one with spaces");
        }
        if self.ping_interval.is_zero() || self.ping_timeout.is_zero() {
            return bad(
                "ping_interval",
                "ping_interval and ping_timeout must be above 0",
            );
        }
        if self.flood.burst == 0 {
            return bad("flood.burst", "is 0: nothing could ever be sent");
        }
        if self.nick_attempts == 0 {
            return bad("nick_attempts", "is 0");
        }
        if self.event_capacity == 0 || self.send_capacity == 0 {
            return bad("event_capacity", "channel capacities must be above 0");
        }
        Ok(())
    }
}

/// A parameter that can stand anywhere in a line: not empty, no space, no
/// control character, no leading ':'.
fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.starts_with(':') && !s.chars().any(|c| c == ' ' || c.is_control())
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| matches!(c, '\r' | '\n' | '\0'))
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("ConnectionConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("tls_client_cert", &self.tls_client_cert.is_some())
            .field("local_addr", &self.local_addr)
            .field("server_password", &set(&self.server_password))
            .field("nick", &self.nick)
            .field("username", &self.username)
            .field("realname", &self.realname)
            .field("sasl", &self.sasl)
            .field("nickserv_password", &set(&self.nickserv_password))
            .field("want_caps", &self.want_caps)
            .field("fallback_encoding", &self.fallback_encoding.name())
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("register_timeout", &self.register_timeout)
            .field("nick_attempts", &self.nick_attempts)
            .field("flood", &self.flood)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// A [`ConnectionConfig`] field that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("problem with `{field}`: {problem}")]
pub struct ConfigError {
    pub field: &'static str,
    pub problem: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ConnectionConfig::new("irc.example.org", 6697, "alice")
            .validate()
            .unwrap();
    }

    #[test]
    fn rejects_what_would_break_a_line() {
        type Change = fn(&mut ConnectionConfig);
        let cases: [(&str, Change); 6] = [
            ("nick", |c| c.nick = "a b".into()),
            ("nick", |c| c.nick = "a\r\nQUIT".into()),
            ("username", |c| c.username = String::new()),
            ("realname", |c| c.realname = "x\ny".into()),
            ("server_password", |c| {
                c.server_password = Some("p\r".into())
            }),
            ("flood.burst", |c| c.flood.burst = 0),
        ];
        for (field, change) in cases {
            let mut config = ConnectionConfig::new("h", 1, "n");
            change(&mut config);
            assert_eq!(config.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let mut config = ConnectionConfig::new("h", 1, "n");
        config.server_password = Some("hunter2".into());
        config.nickserv_password = Some("hunter3".into());
        config.sasl = Some(Sasl::Plain {
            username: "acc".into(),
            password: "hunter4".into(),
        });
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("acc"));
    }
}
