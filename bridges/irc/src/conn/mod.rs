//! The IRC connection engine: one cheap task per IRC connection, built on
//! irc-proto's types, tokio and rustls.
//!
//! One [`Engine`] per process holds what connections share: the TLS client
//! config (trust store read once) and the limiter on concurrent connection
//! attempts. [`Engine::connect`] starts a connection and returns a
//! [`Handle`] to send with and a receiver of [`Event`]s. The connection
//! registers (CAP LS 302, SASL, nick alternatives), answers PINGs, sends its
//! own keepalive PINGs, paces outgoing lines with a token bucket, and
//! reconnects with backoff after a loss, rejoining its channels, until
//! [`Handle::disconnect`] or until every handle (or the event receiver) is
//! dropped.
//!
//! What one idle connection costs, measured with 1,000 connections to
//! ngIRCd in a release build (`idle_connection_memory` in tests/conn.rs):
//! about 11 KiB of RSS in plain text, 19 KiB with TLS (rustls' own state).
//! That is its task (a ~3.4 KiB future), a 512-byte read buffer, the first
//! blocks of its two channels (32 slots each), its config and state snapshot
//! (nick, caps, channel names); the ISUPPORT set is shared by all
//! connections that received the same one.

mod actor;
mod backoff;
mod config;
mod flood;
mod isupport;
mod line;
mod message;
mod registration;
mod sasl;
mod tls;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

pub use self::config::{
    BackoffConfig, ConfigError, ConnectionConfig, DEFAULT_CAPS, EngineConfig, FloodConfig, Sasl,
    TlsClientCert, TlsRoots,
};
pub use self::isupport::{CaseMapping, ChanModes, Isupport};
pub use self::message::{IrcMessage, Outgoing, decode_line};
pub use irc_proto::message::Tag;
pub use irc_proto::{Command, Prefix};

use self::backoff::ConnectLimiter;
use self::tls::TlsContext;

/// What connections of one process share. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

#[derive(Debug)]
pub(crate) struct EngineInner {
    pub(crate) tls: TlsContext,
    pub(crate) limiter: ConnectLimiter,
    /// ISUPPORT sets in use, so that a thousand puppets on one network hold
    /// one copy.
    isupports: Mutex<Vec<Weak<Isupport>>>,
}

impl EngineInner {
    /// The shared copy of an ISUPPORT set equal to this one, if any.
    pub(crate) fn intern_isupport(&self, isupport: Arc<Isupport>) -> Arc<Isupport> {
        let mut known = self.isupports.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|weak| weak.strong_count() > 0);
        if let Some(shared) = known
            .iter()
            .filter_map(Weak::upgrade)
            .find(|shared| **shared == *isupport)
        {
            return shared;
        }
        known.push(Arc::downgrade(&isupport));
        isupport
    }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            inner: Arc::new(EngineInner {
                tls: TlsContext::new(config.tls_roots),
                limiter: ConnectLimiter::new(config.max_concurrent_connects),
                isupports: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Starts a connection task (on the current tokio runtime). It connects
    /// at once, or as soon as the engine's attempt limiter lets it.
    pub fn connect(
        &self,
        config: ConnectionConfig,
    ) -> Result<(Handle, mpsc::Receiver<Event>), ConfigError> {
        config.validate()?;
        let (line_tx, line_rx) = mpsc::channel(config.send_capacity);
        let (event_tx, event_rx) = mpsc::channel(config.event_capacity);
        let shared = Arc::new(Shared::new(&config.nick));
        let handle = Handle {
            inner: Arc::new(HandleInner {
                lines: line_tx,
                shared: Arc::clone(&shared),
            }),
        };
        let actor = actor::Actor::new(Arc::clone(&self.inner), config, shared, line_rx, event_tx);
        tokio::spawn(actor.run());
        Ok((handle, event_rx))
    }

    /// Connection attempts running now (holding a limiter permit).
    pub fn attempts_in_flight(&self) -> usize {
        self.inner.limiter.in_flight()
    }
}

/// What a connection reports, in order.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Registration is complete (welcome, ISUPPORT and MOTD received):
    /// lines can be sent. After a reconnection, comes again once the
    /// channels are being rejoined.
    Registered {
        nick: String,
        caps: Vec<String>,
        isupport: Arc<Isupport>,
    },
    /// A line from the server. PINGs, the PONGs of our keepalive and SASL
    /// exchanges are handled inside and not reported.
    Message(Box<IrcMessage>),
    /// The enabled capabilities changed after registration (CAP NEW / DEL).
    CapsChanged { caps: Vec<String> },
    /// At registration, the server refused `nick` (433 in use, 432
    /// erroneous, 436 collision, 437 unavailable); `retry_with` is tried
    /// next, `None` means we gave up and the attempt ends.
    NickUnavailable {
        nick: String,
        code: u16,
        retry_with: Option<String>,
    },
    /// SASL was attempted and failed (902, 904, 905, 906); registration goes
    /// on without an account. Call [`Handle::disconnect`] to refuse that.
    SaslFailed { code: u16, reason: String },
    /// The connection (or a connection attempt) ended. Followed by
    /// `Reconnecting` unless the reason is [`DisconnectReason::Requested`].
    Disconnected { reason: DisconnectReason },
    /// The next attempt starts after this delay (then waits for a permit of
    /// the engine's attempt limiter).
    Reconnecting { after: Duration },
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// [`Handle::disconnect`], or every handle or the event receiver dropped.
    Requested,
    /// Could not reach the server: resolution, TCP, TLS handshake, timeout.
    Connect(String),
    /// The server closed the connection.
    Closed,
    /// The server sent `ERROR` (K-line, throttling, kill...) and closed.
    ServerError(String),
    /// Reading or writing failed.
    Io(String),
    /// Nothing arrived within `ping_timeout` of our PING.
    PingTimeout,
    /// No welcome (001) within `register_timeout`.
    RegistrationTimeout,
    /// Every nick tried at registration was refused.
    NickUnavailable,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requested => f.write_str("disconnect requested"),
            Self::Connect(e) => write!(f, "could not connect: {e}"),
            Self::Closed => f.write_str("the server closed the connection"),
            Self::ServerError(e) => write!(f, "server error: {e}"),
            Self::Io(e) => write!(f, "connection error: {e}"),
            Self::PingTimeout => f.write_str("ping timeout"),
            Self::RegistrationTimeout => f.write_str("registration timed out"),
            Self::NickUnavailable => f.write_str("no nick was accepted"),
        }
    }
}

/// Why a line was not queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Not registered right now (connecting, or waiting to reconnect).
    #[error("not connected to the IRC server")]
    NotConnected,
    /// The connection was stopped for good.
    #[error("the IRC connection is closed")]
    Closed,
    /// The line would not mean what its parts say.
    #[error("invalid IRC line: {0}")]
    Invalid(&'static str),
    /// Split the text: `len` bytes where the server takes `max`.
    #[error("IRC line too long: {len} bytes, the limit is {max}")]
    TooLong { len: usize, max: usize },
    /// Needs a capability the server did not enable (e.g. tags without
    /// `message-tags`).
    #[error("the server did not enable the `{0}` capability")]
    MissingCapability(&'static str),
}

/// A snapshot of a connection's state.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ConnectionState {
    /// Registered and accepting lines.
    pub connected: bool,
    /// Our current nick (the wanted one before the first registration).
    pub nick: String,
    /// The account SASL logged us into (900), if any.
    pub account: Option<String>,
    pub caps: Vec<String>,
    pub isupport: Arc<Isupport>,
    /// Channels we are in; while disconnected, the ones rejoined after the
    /// next registration.
    pub channels: Vec<String>,
    /// Round trip of our last keepalive PING.
    pub lag: Option<Duration>,
}

impl ConnectionState {
    pub fn has_cap(&self, name: &str) -> bool {
        self.caps.iter().any(|c| c == name)
    }
}

/// Sends on one connection. Cheap to clone; the connection stops (with a
/// plain QUIT) when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Handle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    lines: mpsc::Sender<Box<Outgoing>>,
    shared: Arc<Shared>,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        self.shared.request_stop(None);
    }
}

impl Handle {
    /// Queues a line behind the flood limit. Waits while the queue is full.
    /// Lines still queued when the connection drops are sent after the
    /// next registration.
    pub async fn send(&self, line: Outgoing) -> Result<(), SendError> {
        let shared = &self.inner.shared;
        if shared.stopped() {
            return Err(SendError::Closed);
        }
        let max_line = {
            let state = shared.state();
            if !state.connected {
                return Err(SendError::NotConnected);
            }
            if !line.tags().is_empty() && !state.has_cap("message-tags") {
                return Err(SendError::MissingCapability("message-tags"));
            }
            state.isupport.linelen()
        };
        line.validate(max_line)?;
        self.inner
            .lines
            .send(Box::new(line))
            .await
            .map_err(|_| SendError::Closed)
    }

    pub async fn privmsg(&self, target: &str, text: &str) -> Result<(), SendError> {
        self.send(Outgoing::privmsg(target, text)).await
    }

    pub async fn notice(&self, target: &str, text: &str) -> Result<(), SendError> {
        self.send(Outgoing::notice(target, text)).await
    }

    /// The channel is remembered (and rejoined after reconnections) once the
    /// server confirms the JOIN.
    pub async fn join(&self, channel: &str) -> Result<(), SendError> {
        self.send(Outgoing::join(channel, None)).await
    }

    /// A keyed channel; the key is kept for rejoining.
    pub async fn join_with_key(&self, channel: &str, key: &str) -> Result<(), SendError> {
        let pending = (channel.to_owned(), key.to_owned());
        // Recorded before sending: the server's JOIN may come back at once.
        self.inner.shared.lock_pending_keys().push(pending.clone());
        let sent = self
            .send(Outgoing::join(channel, Some(key.to_owned())))
            .await;
        if sent.is_err() {
            let mut keys = self.inner.shared.lock_pending_keys();
            if let Some(i) = keys.iter().position(|k| *k == pending) {
                keys.swap_remove(i);
            }
        }
        sent
    }

    pub async fn part(&self, channel: &str, reason: Option<&str>) -> Result<(), SendError> {
        self.send(Outgoing::part(channel, reason.map(str::to_owned)))
            .await
    }

    pub async fn nick(&self, nick: &str) -> Result<(), SendError> {
        self.send(Outgoing::nick(nick)).await
    }

    /// A TAGMSG (reactions, typing); needs `message-tags`.
    pub async fn tagmsg(&self, target: &str, tags: Vec<Tag>) -> Result<(), SendError> {
        self.send(Outgoing::tagmsg(target, tags)).await
    }

    /// Sends QUIT (ahead of the flood queue) and stops for good: no
    /// reconnection. The event receiver gets `Disconnected { Requested }`,
    /// then ends.
    pub fn disconnect(&self, quit_message: Option<&str>) {
        self.inner
            .shared
            .request_stop(quit_message.map(str::to_owned));
    }

    pub fn state(&self) -> ConnectionState {
        self.inner.shared.state().clone()
    }

    /// Whether the connection was stopped for good.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.stopped()
    }
}

/// What the handles and the connection task share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<ConnectionState>,
    stop: Notify,
    stop_requested: AtomicBool,
    quit_message: Mutex<Option<String>>,
    /// Keys given to `join_with_key`, until the server confirms the JOIN.
    pending_keys: Mutex<Vec<(String, String)>>,
}

impl Shared {
    fn new(nick: &str) -> Self {
        Self {
            state: Mutex::new(ConnectionState {
                nick: nick.to_owned(),
                ..ConnectionState::default()
            }),
            stop: Notify::new(),
            stop_requested: AtomicBool::new(false),
            quit_message: Mutex::new(None),
            pending_keys: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, ConnectionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_pending_keys(&self) -> MutexGuard<'_, Vec<(String, String)>> {
        self.pending_keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request_stop(&self, quit_message: Option<String>) {
        {
            // The message is in place before the flag says to read it.
            let mut quit = self.quit_message.lock().unwrap_or_else(|e| e.into_inner());
            if self.stopped() {
                return;
            }
            *quit = quit_message;
            self.stop_requested.store(true, Ordering::SeqCst);
        }
        // notify_one keeps a permit when the task is not waiting right now.
        self.stop.notify_one();
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop_requested.load(Ordering::SeqCst)
    }

    pub(crate) fn take_quit_message(&self) -> Option<String> {
        self.quit_message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    pub(crate) async fn stop_requested(&self) {
        if !self.stopped() {
            self.stop.notified().await;
        }
    }
}
