//! The task behind one connection: connect, register, relay lines both ways,
//! keep the link alive, and reconnect after losses. One task per connection,
//! supervisor and session together, so an idle connection is one future.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::{Duration, Instant, sleep, sleep_until, timeout};

use super::backoff::Backoff;
use super::flood::TokenBucket;
use super::isupport::{CaseMapping, Isupport};
use super::line::LineBuffer;
use super::message::{IrcMessage, Outgoing, decode_line, join_lines};
use super::registration::{Registration, Step};
use super::tls::{self, Transport};
use super::{ConnectionConfig, DisconnectReason, EngineInner, Event, Shared};

/// How long after the welcome (001) we wait for the end of the MOTD before
/// calling registration complete anyway.
const BURST_GRACE: Duration = Duration::from_secs(5);
/// How long a QUIT may take to leave when stopping.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a session ended.
enum End {
    /// Stop for good: requested, or nobody listens any more.
    Stop,
    Lost {
        reason: DisconnectReason,
        /// Registered for at least `backoff.stable_after`.
        stable: bool,
    },
}

/// What survives reconnections.
pub(crate) struct Actor {
    engine: Arc<EngineInner>,
    config: ConnectionConfig,
    shared: Arc<Shared>,
    lines: mpsc::Receiver<Box<Outgoing>>,
    events: mpsc::Sender<Event>,
    backoff: Backoff,
    /// Channels we are in, with their keys: rejoined after a reconnection.
    channels: Vec<(String, Option<String>)>,
    /// The nick to register with: the configured one, or the last one we
    /// changed to on purpose (not an alternative picked at registration).
    nick: String,
    /// Only with a client certificate: that certificate's own config.
    own_tls_config: Option<Arc<ClientConfig>>,
}

/// What lives as long as one TCP connection.
struct Session {
    transport: Transport,
    reader: LineBuffer,
    registration: Registration,
    bucket: TokenBucket,
    /// The engine's attempt permit, held until registration completes.
    permit: Option<OwnedSemaphorePermit>,
    started: Instant,
    welcomed: Option<Instant>,
    registered: Option<Instant>,
    nick: String,
    /// A NICK we sent and the server has not confirmed yet.
    requested_nick: Option<String>,
    isupport: Arc<Isupport>,
    casemapping: CaseMapping,
    last_received: Instant,
    /// Our keepalive PING waiting for its PONG: (token, sent at).
    ping: Option<(u32, Instant)>,
    ping_count: u32,
    server_error: Option<String>,
    /// Our own lines waiting for the flood bucket, ahead of the handles'
    /// (NickServ IDENTIFY, rejoins).
    queue: VecDeque<Outgoing>,
    write_timeout: Duration,
}

impl Actor {
    pub(crate) fn new(
        engine: Arc<EngineInner>,
        config: ConnectionConfig,
        shared: Arc<Shared>,
        lines: mpsc::Receiver<Box<Outgoing>>,
        events: mpsc::Sender<Event>,
    ) -> Self {
        Self {
            engine,
            backoff: Backoff::new(config.backoff),
            nick: config.nick.clone(),
            config,
            shared,
            lines,
            events,
            channels: Vec::new(),
            own_tls_config: None,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            match self.attempt().await {
                End::Stop => break,
                End::Lost { reason, stable } => {
                    tracing::info!(host = %self.config.host, nick = %self.nick, %reason, "IRC connection lost");
                    {
                        let mut state = self.shared.state();
                        state.connected = false;
                        state.account = None;
                        state.lag = None;
                    }
                    if stable {
                        self.backoff.reset();
                    }
                    if self.emit(Event::Disconnected { reason }).await.is_err() {
                        break;
                    }
                    let after = self.backoff.next_delay();
                    if self.emit(Event::Reconnecting { after }).await.is_err() {
                        break;
                    }
                    tokio::select! {
                        biased;
                        _ = self.shared.stop_requested() => break,
                        _ = self.events.closed() => break,
                        _ = sleep(after) => {}
                    }
                }
            }
        }
        self.shared.state().connected = false;
        // Best effort: a receiver that stopped reading still sees the end.
        let _ = self.events.try_send(Event::Disconnected {
            reason: DisconnectReason::Requested,
        });
    }

    /// Sends an event, unless a stop request comes first.
    async fn emit(&self, event: Event) -> Result<(), End> {
        tokio::select! {
            biased;
            sent = self.events.send(event) => sent.map_err(|_| End::Stop),
            _ = self.shared.stop_requested() => Err(End::Stop),
        }
    }

    /// One connection attempt, and the session when it succeeds.
    async fn attempt(&mut self) -> End {
        let permit = tokio::select! {
            biased;
            _ = self.shared.stop_requested() => return End::Stop,
            _ = self.events.closed() => return End::Stop,
            permit = self.engine.limiter.acquire() => permit,
        };
        let started = Instant::now();
        let connect_timeout = self.config.connect_timeout;
        let tls_config = match self.tls_config() {
            Ok(config) => config,
            Err(error) => return lost(DisconnectReason::Connect(error), None, &self.config),
        };
        let transport = tokio::select! {
            biased;
            _ = self.shared.stop_requested() => return End::Stop,
            opened = timeout(connect_timeout, open(&self.config, tls_config)) => match opened {
                Ok(Ok(transport)) => transport,
                Ok(Err(error)) => return lost(DisconnectReason::Connect(error), None, &self.config),
                Err(_) => {
                    let error = format!("no connection within {connect_timeout:?}");
                    return lost(DisconnectReason::Connect(error), None, &self.config);
                }
            },
        };
        let (registration, opening) = Registration::start(&self.config, &self.nick);
        let mut session = Session {
            transport,
            reader: LineBuffer::new(),
            registration,
            bucket: TokenBucket::new(self.config.flood, started),
            permit: Some(permit),
            started,
            welcomed: None,
            registered: None,
            nick: self.nick.clone(),
            requested_nick: None,
            isupport: Arc::default(),
            casemapping: CaseMapping::default(),
            last_received: started,
            ping: None,
            ping_count: 0,
            server_error: None,
            queue: VecDeque::new(),
            write_timeout: self.config.ping_timeout,
        };
        let end = self.run_session(&mut session, opening).await;
        if matches!(end, End::Stop) {
            let quit = Outgoing::quit(self.shared.take_quit_message());
            let _ = timeout(QUIT_TIMEOUT, async {
                session.write(&quit).await?;
                session.transport.shutdown().await
            })
            .await;
        }
        end
    }

    /// The TLS config for this connection, when it uses TLS.
    fn tls_config(&mut self) -> Result<Option<Arc<ClientConfig>>, String> {
        if !self.config.tls {
            return Ok(None);
        }
        let config = match (&self.own_tls_config, &self.config.tls_client_cert) {
            (Some(own), _) => Arc::clone(own),
            (None, Some(cert)) => {
                let own = self.engine.tls.client_config(Some(cert))?;
                self.own_tls_config = Some(Arc::clone(&own));
                own
            }
            (None, None) => self.engine.tls.client_config(None)?,
        };
        Ok(Some(config))
    }

    async fn run_session(&mut self, s: &mut Session, opening: Vec<Outgoing>) -> End {
        for line in &opening {
            if let Err(e) = s.write(line).await {
                return self.lost_io(s, &e);
            }
        }
        loop {
            if s.registered.is_some() {
                while !s.queue.is_empty() && s.bucket.try_take(Instant::now()) {
                    let line = s.queue.pop_front().expect("not empty");
                    if let Err(e) = s.write(&line).await {
                        return self.lost_io(s, &e);
                    }
                }
            }
            let now = Instant::now();
            let deadline = s.deadline(&self.config);
            let ready = s.registered.is_some() && s.queue.is_empty() && s.bucket.has_token(now);
            let flood_wait = (s.registered.is_some() && !s.bucket.has_token(now))
                .then(|| s.bucket.next_token_at(now));
            tokio::select! {
                biased;
                _ = self.shared.stop_requested() => return End::Stop,
                _ = self.events.closed() => return End::Stop,
                read = s.reader.read_from(&mut s.transport) => {
                    if let Err(end) = self.on_read(s, read).await {
                        return end;
                    }
                }
                _ = sleep_until(deadline) => {
                    if let Err(end) = self.on_deadline(s).await {
                        return end;
                    }
                }
                line = self.lines.recv(), if ready => {
                    let Some(line) = line else { return End::Stop };
                    s.bucket.try_take(Instant::now());
                    if line.command().eq_ignore_ascii_case("NICK") {
                        s.requested_nick = line.params().first().cloned();
                    }
                    if let Err(e) = s.write(&line).await {
                        return self.lost_io(s, &e);
                    }
                }
                _ = sleep_until(flood_wait.unwrap_or(now)), if flood_wait.is_some() => {}
            }
        }
    }

    /// Handles what a read brought: every complete line, or the end.
    async fn on_read(&mut self, s: &mut Session, read: std::io::Result<usize>) -> Result<(), End> {
        match read {
            Ok(0) => {
                let reason = match s.server_error.take() {
                    Some(error) => DisconnectReason::ServerError(error),
                    None => DisconnectReason::Closed,
                };
                Err(lost(reason, s.registered, &self.config))
            }
            Ok(_) => {
                s.last_received = Instant::now();
                let fallback = self.config.fallback_encoding;
                while let Some(bytes) = s.reader.next_line() {
                    if let Some(msg) = IrcMessage::parse(&decode_line(bytes, fallback)) {
                        self.on_message(s, msg).await?;
                    }
                }
                Ok(())
            }
            Err(e) => Err(self.lost_io(s, &e)),
        }
    }

    async fn on_deadline(&mut self, s: &mut Session) -> Result<(), End> {
        let now = Instant::now();
        let config = &self.config;
        match (s.welcomed, s.registered) {
            (None, _) if now >= s.started + config.register_timeout => {
                return Err(lost(DisconnectReason::RegistrationTimeout, None, config));
            }
            (Some(welcomed), None) if now >= welcomed + BURST_GRACE => {
                return self.complete_registration(s).await;
            }
            (Some(_), _) => {}
            (None, _) => return Ok(()),
        }
        let unanswered = s
            .ping
            .map(|(_, sent)| sent)
            .filter(|sent| s.last_received <= *sent);
        if let Some(sent) = unanswered {
            if now >= sent + config.ping_timeout {
                return Err(lost(DisconnectReason::PingTimeout, s.registered, config));
            }
        } else if now >= s.last_received + config.ping_interval {
            s.ping_count = s.ping_count.wrapping_add(1);
            s.ping = Some((s.ping_count, now));
            let ping = Outgoing::new("PING").param(format!("passerelle-{}", s.ping_count));
            if let Err(e) = s.write(&ping).await {
                return Err(self.lost_io(s, &e));
            }
        }
        Ok(())
    }

    async fn on_message(&mut self, s: &mut Session, msg: IrcMessage) -> Result<(), End> {
        match msg.command.as_str() {
            "PING" => {
                // Ahead of everything, flood queue included.
                let mut pong = Outgoing::new("PONG");
                for param in &msg.params {
                    pong = pong.param(param.clone());
                }
                return s.write(&pong).await.map_err(|e| self.lost_io(s, &e));
            }
            "PONG" => {
                if let Some((token, sent)) = s.ping
                    && msg
                        .params
                        .last()
                        .is_some_and(|p| *p == format!("passerelle-{token}"))
                {
                    s.ping = None;
                    self.shared.state().lag = Some(Instant::now() - sent);
                    return Ok(());
                }
            }
            "ERROR" => s.server_error = msg.params.last().cloned(),
            _ => {}
        }

        let mut steps = Vec::new();
        s.registration.handle(&self.config, &msg, &mut steps);
        for step in steps {
            self.apply(s, step).await?;
        }

        let mut burst_over = false;
        match msg.command.as_str() {
            "005" => {
                Arc::make_mut(&mut s.isupport).apply(&msg.params);
                s.casemapping = s.isupport.casemapping();
                if s.registered.is_some() {
                    self.shared.state().isupport = Arc::clone(&s.isupport);
                }
            }
            "376" | "422" => burst_over = s.welcomed.is_some() && s.registered.is_none(),
            "JOIN" | "PART" | "KICK" | "NICK" => self.track(s, &msg),
            // Definitive JOIN refusals: do not retry at every reconnection.
            "403" | "405" | "473" | "474" | "475" | "476" => {
                if let Some(channel) = msg.param(1) {
                    self.forget_channel(s.casemapping, channel);
                }
            }
            _ => {}
        }
        if msg.command != "AUTHENTICATE" {
            self.emit(Event::Message(Box::new(msg))).await?;
        }
        if burst_over {
            self.complete_registration(s).await?;
        }
        Ok(())
    }

    async fn apply(&mut self, s: &mut Session, step: Step) -> Result<(), End> {
        match step {
            Step::Send(line) => s.write(&line).await.map_err(|e| self.lost_io(s, &e))?,
            Step::NickUnavailable {
                nick,
                code,
                retry_with,
            } => {
                if let Some(next) = &retry_with {
                    s.nick.clone_from(next);
                }
                self.emit(Event::NickUnavailable {
                    nick,
                    code,
                    retry_with,
                })
                .await?;
            }
            Step::SaslFailed { code, reason } => {
                tracing::warn!(host = %self.config.host, nick = %s.nick, code, "SASL failed");
                self.emit(Event::SaslFailed { code, reason }).await?;
            }
            Step::LoggedIn(account) => self.shared.state().account = Some(account),
            Step::Welcome(nick) => {
                s.welcomed = Some(Instant::now());
                s.last_received = Instant::now();
                s.nick = nick;
                self.shared.state().nick.clone_from(&s.nick);
                if let Some(identify) = s.registration.nickserv_identify(&self.config, &s.nick) {
                    s.queue.push_front(identify);
                }
            }
            Step::CapsChanged => {
                let caps = s.registration.enabled_caps().to_vec();
                self.shared.state().caps.clone_from(&caps);
                self.emit(Event::CapsChanged { caps }).await?;
            }
            Step::GiveUp(reason) => return Err(lost(reason, None, &self.config)),
        }
        Ok(())
    }

    /// End of the welcome burst: usable, rejoin, tell the owner.
    async fn complete_registration(&mut self, s: &mut Session) -> Result<(), End> {
        s.registered = Some(Instant::now());
        s.permit = None;
        // Every connection to a network gets the same tokens: share them.
        s.isupport = self.engine.intern_isupport(Arc::clone(&s.isupport));
        let max_line = s.isupport.linelen();
        s.queue.extend(join_lines(&self.channels, max_line));
        let caps = s.registration.enabled_caps().to_vec();
        {
            let mut state = self.shared.state();
            state.connected = true;
            state.nick.clone_from(&s.nick);
            state.caps.clone_from(&caps);
            state.isupport = Arc::clone(&s.isupport);
        }
        tracing::info!(
            host = %self.config.host,
            nick = %s.nick,
            caps = caps.len(),
            rejoin = self.channels.len(),
            "IRC connection registered"
        );
        self.emit(Event::Registered {
            nick: s.nick.clone(),
            caps,
            isupport: Arc::clone(&s.isupport),
        })
        .await
    }

    /// Follows our own JOIN, PART, KICK and NICK.
    fn track(&mut self, s: &mut Session, msg: &IrcMessage) {
        let map = s.casemapping;
        let from_us = msg.source_nick().is_some_and(|n| map.eq(n, &s.nick));
        match (msg.command.as_str(), msg.param(0)) {
            ("JOIN", Some(channel)) if from_us => {
                if self.channels.iter().any(|(c, _)| map.eq(c, channel)) {
                    return;
                }
                let key = {
                    let mut pending = self.shared.lock_pending_keys();
                    let found = pending.iter().position(|(c, _)| map.eq(c, channel));
                    found.map(|i| pending.swap_remove(i).1)
                };
                self.channels.push((channel.to_owned(), key));
                self.publish_channels();
            }
            ("PART", Some(channel)) if from_us => self.forget_channel(map, channel),
            ("KICK", Some(channel)) if msg.param(1).is_some_and(|n| map.eq(n, &s.nick)) => {
                self.forget_channel(map, channel);
            }
            ("NICK", Some(new)) if from_us => {
                if s.requested_nick.as_deref().is_some_and(|r| map.eq(r, new)) {
                    // Chosen on purpose: keep it across reconnections.
                    self.nick = new.to_owned();
                    s.requested_nick = None;
                }
                s.nick = new.to_owned();
                self.shared.state().nick = new.to_owned();
            }
            _ => {}
        }
    }

    fn forget_channel(&mut self, map: CaseMapping, channel: &str) {
        let before = self.channels.len();
        self.channels.retain(|(c, _)| !map.eq(c, channel));
        if self.channels.len() != before {
            self.publish_channels();
        }
    }

    fn publish_channels(&self) {
        self.shared.state().channels = self.channels.iter().map(|(c, _)| c.clone()).collect();
    }

    fn lost_io(&self, s: &Session, error: &std::io::Error) -> End {
        let reason = match error.kind() {
            std::io::ErrorKind::TimedOut => DisconnectReason::Io("write timed out".to_owned()),
            _ => DisconnectReason::Io(error.to_string()),
        };
        lost(reason, s.registered, &self.config)
    }
}

fn lost(reason: DisconnectReason, registered: Option<Instant>, config: &ConnectionConfig) -> End {
    let stable = registered.is_some_and(|at| at.elapsed() >= config.backoff.stable_after);
    End::Lost { reason, stable }
}

/// TCP (from `local_addr` if set), then TLS if configured.
async fn open(
    config: &ConnectionConfig,
    tls_config: Option<Arc<ClientConfig>>,
) -> Result<Transport, String> {
    let host = config.host.as_str();
    let addrs = tokio::net::lookup_host((host, config.port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?;
    let mut last_error = format!("{host} has no address");
    let mut tcp = None;
    for addr in addrs {
        match connect_tcp(addr, config.local_addr).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last_error = format!("{addr}: {e}"),
        }
    }
    let tcp = tcp.ok_or(last_error)?;
    match tls_config {
        None => Ok(Transport::Plain(tcp)),
        Some(tls_config) => tls::handshake(tls_config, host, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}")),
    }
}

async fn connect_tcp(
    addr: SocketAddr,
    local: Option<std::net::IpAddr>,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = local {
        if local.is_ipv4() != addr.is_ipv4() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                "local_addr is of the other IP family",
            ));
        }
        socket.bind(SocketAddr::new(local, 0))?;
    }
    socket.set_nodelay(true)?;
    socket.connect(addr).await
}

impl Session {
    /// The next moment something must be checked: the registration timeout
    /// before the welcome, the end-of-burst grace after it, the keepalive
    /// once registered.
    fn deadline(&self, config: &ConnectionConfig) -> Instant {
        let Some(welcomed) = self.welcomed else {
            return self.started + config.register_timeout;
        };
        let keepalive = match self.ping {
            Some((_, sent)) if self.last_received <= sent => sent + config.ping_timeout,
            _ => self.last_received + config.ping_interval,
        };
        match self.registered {
            None => keepalive.min(welcomed + BURST_GRACE),
            Some(_) => keepalive,
        }
    }

    async fn write(&mut self, line: &Outgoing) -> std::io::Result<()> {
        tracing::trace!(command = line.command(), "IRC line out");
        let bytes = line.to_wire();
        let transport = &mut self.transport;
        match timeout(self.write_timeout, async {
            transport.write_all(&bytes).await?;
            transport.flush().await
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}
