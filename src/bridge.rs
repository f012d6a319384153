//! The runtime core: owns the config, store, homeserver client and modules,
//! and wires them together. `run` is the testable entry point.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use passerelle_api::{
    MatrixEvent, MatrixEventKind, MatrixSender, Network, NetworkInfo, PermissionLevel, Via,
};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::appservice::Transaction;
use crate::config::Config;
use crate::inbound::Dispatched;
use crate::matrix::{Intent, MatrixClient, RetryPolicy};
use crate::mxid;
use crate::permissions::Permissions;
use crate::portal::PortalQueues;
use crate::registration::{NetworkNamespace, Registration};
use crate::store::{Store, StoreOptions};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// What `/health` reports.
#[derive(Debug, Serialize)]
pub struct Health {
    pub ok: bool,
    pub database: bool,
    pub networks: Vec<String>,
    pub queue_depth: i64,
}

/// The shared state of a running bridge.
pub struct Bridge {
    pub config: Config,
    pub registration: Registration,
    pub store: Store,
    pub matrix: MatrixClient,
    pub bot: Intent,
    pub permissions: Permissions,
    networks: BTreeMap<String, Arc<dyn Network>>,
    infos: BTreeMap<String, NetworkInfo>,
    pub(crate) queues: PortalQueues,
    pub(crate) media_signer: crate::media::MediaSigner,
    /// (room, user) pairs known to be joined, to skip redundant joins.
    pub(crate) joined: Mutex<HashSet<(String, String)>>,
    /// Users typing per room, to turn `m.typing` snapshots into changes.
    pub(crate) typing: Mutex<HashMap<String, HashSet<String>>>,
    /// When each encrypted room was last told that the bridge cannot read it.
    pub(crate) encryption_notices: Mutex<HashMap<String, std::time::Instant>>,
    /// The bot's device, when `encryption.allow` is on.
    pub(crate) crypto: Option<Arc<crate::crypto::Crypto>>,
    /// Room display names of Matrix senders, `(room, user)`; forgotten when
    /// a membership event of that user in that room passes by.
    pub(crate) display_names: Mutex<HashMap<(String, String), String>>,
    /// Transactions are handled one at a time: a retried transaction waits
    /// for the first attempt instead of racing it.
    pub(crate) txn_lock: tokio::sync::Mutex<()>,
    /// Spaces are made one at a time (`Runtime::space`).
    pub(crate) space_lock: tokio::sync::Mutex<()>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Every long-lived task holds a clone; shutdown drops this one and waits
    /// until all clones are gone.
    task_guard: Mutex<Option<mpsc::Sender<()>>>,
}

impl Bridge {
    pub fn network(&self, id: &str) -> Option<&Arc<dyn Network>> {
        self.networks.get(id)
    }

    pub fn networks(&self) -> impl Iterator<Item = (&String, &Arc<dyn Network>)> {
        self.networks.iter()
    }

    pub fn info(&self, id: &str) -> Option<&NetworkInfo> {
        self.infos.get(id)
    }

    pub fn domain(&self) -> &str {
        &self.config.homeserver.domain
    }

    pub fn bot_user_id(&self) -> String {
        self.config.bot_user_id()
    }

    /// A guard for a long-lived task; `None` once shutdown has begun.
    pub(crate) fn task_guard(&self) -> Option<mpsc::Sender<()>> {
        self.task_guard.lock().expect("task guard lock").clone()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The network whose namespace holds this (unescaped) localpart.
    pub fn network_for_localpart(&self, localpart: &str) -> Option<(&String, &NetworkInfo)> {
        self.infos
            .iter()
            .find(|(_, info)| localpart.starts_with(&info.namespace_prefix))
    }

    /// Whether a user id belongs to us (the bot or a ghost): its events are
    /// echoes and must not be bridged back.
    pub fn is_our_user(&self, user_id: &str) -> bool {
        if user_id == self.bot_user_id() {
            return true;
        }
        match (mxid::localpart_of(user_id), mxid::server_of(user_id)) {
            (Some(local), Some(server)) if server == self.domain() => self
                .infos
                .values()
                .any(|i| local.starts_with(&mxid::escape_localpart(&i.namespace_prefix))),
            _ => false,
        }
    }

    pub fn intent(&self, user_id: &str) -> anyhow::Result<Intent> {
        let id =
            ruma::UserId::parse(user_id).with_context(|| format!("invalid user id {user_id}"))?;
        Ok(self.matrix.intent(id))
    }

    pub async fn health(&self) -> Health {
        let database = self.store.count_portals().await.is_ok();
        Health {
            ok: database,
            database,
            networks: self.networks.keys().cloned().collect(),
            queue_depth: self.queues.depth(),
        }
    }

    /// Handles one appservice transaction. Events for modules are recorded
    /// as pending (ids only, no content) and queued; the rest (commands,
    /// invites) is handled here. The homeserver gets its answer once every
    /// event is handled or durably pending, so a crash loses nothing: pending
    /// events are fetched again and delivered at the next start. Each event
    /// is handled once, whatever transactions repeat it.
    pub async fn handle_transaction(
        self: &Arc<Self>,
        txn_id: &str,
        mut txn: Transaction,
    ) -> anyhow::Result<()> {
        let _one_at_a_time = self.txn_lock.lock().await;
        // A repeated transaction id is only a hint: a homeserver whose
        // database was reset counts from 1 again, so events are checked one
        // by one whatever the id says.
        let repeated = self.store.is_txn_handled(txn_id).await?;
        let push = txn.take_crypto();
        if let (false, Some(crypto)) = (repeated, &self.crypto) {
            // Before the events: a room key and the message it opens often
            // come in the same transaction. A failed key upload or query is
            // tried again with the next transaction.
            if let Err(e) = crypto.receive(push).await {
                tracing::warn!(txn_id, error = %e, "encryption state of a transaction not fully handled");
            }
        }
        for event in txn.events {
            let Some(event_id) = event
                .get("event_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
            else {
                continue;
            };
            if self.store.is_event_handled(&event_id).await?
                || self.store.is_pending(&event_id).await?
            {
                tracing::debug!(event_id, "event already handled");
                continue;
            }
            if self.dispatch_matrix_event(event, false).await? == Dispatched::Inline {
                self.store.claim_event(&event_id, now_ms()).await?;
            }
        }
        if !repeated {
            for ephemeral in txn.ephemeral {
                self.handle_ephemeral(ephemeral);
            }
        }
        self.store.mark_txn_handled(txn_id, now_ms()).await?;
        let outcome = if repeated { "duplicate" } else { "handled" };
        metrics::counter!("passerelle_transactions_total", "outcome" => outcome).increment(1);
        Ok(())
    }

    /// Delivers the events that were acknowledged but not delivered before
    /// the last stop, fetching each again from the homeserver.
    pub async fn replay_pending(self: &Arc<Self>) -> anyhow::Result<usize> {
        let pending = self.store.pending_events().await?;
        let count = pending.len();
        for (event_id, room_id) in pending {
            let (Ok(room), Ok(id)) = (
                ruma::RoomId::parse(&room_id),
                ruma::EventId::parse(&event_id),
            ) else {
                self.store.finish_pending(&event_id, now_ms()).await?;
                continue;
            };
            match self.bot.event(&room, &id).await {
                Ok(Some(mut event)) => {
                    if event.get("room_id").is_none() {
                        event["room_id"] = serde_json::json!(room_id);
                    }
                    if self.dispatch_matrix_event(event, true).await? == Dispatched::Inline {
                        self.store.finish_pending(&event_id, now_ms()).await?;
                    }
                }
                Ok(None) => {
                    tracing::warn!(event_id, "a pending event is gone from the homeserver");
                    self.store.finish_pending(&event_id, now_ms()).await?;
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(event_id, error = %e, "cannot fetch a pending event; dropping it");
                    self.store.finish_pending(&event_id, now_ms()).await?;
                }
            }
        }
        Ok(count)
    }

    /// `GET /users/{userId}`: create the ghost if its module knows the user.
    pub async fn query_user(self: &Arc<Self>, user_id: &str) -> anyhow::Result<bool> {
        let (Some(local), Some(server)) = (mxid::localpart_of(user_id), mxid::server_of(user_id))
        else {
            return Ok(false);
        };
        if server != self.domain() {
            return Ok(false);
        }
        let Some(local) = mxid::unescape_localpart(local) else {
            return Ok(false);
        };
        let Some((network_id, _)) = self.network_for_localpart(&local) else {
            return Ok(false);
        };
        let network = self.networks[network_id].clone();
        match network.resolve_user(&local).await? {
            Some(sender) => {
                self.ensure_ghost(network_id, &sender).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// `GET /rooms/{alias}`: create the portal (with this alias) if its
    /// module knows the chat.
    pub async fn query_alias(self: &Arc<Self>, alias: &str) -> anyhow::Result<bool> {
        let Some(rest) = alias.strip_prefix('#') else {
            return Ok(false);
        };
        // Alias localparts cannot hold `:`; the server name may (a port).
        let Some((local, server)) = rest.split_once(':') else {
            return Ok(false);
        };
        if server != self.domain() {
            return Ok(false);
        }
        let Some((network_id, _)) = self.network_for_localpart(local) else {
            return Ok(false);
        };
        let network = self.networks[network_id].clone();
        let Some(mut info) = network.resolve_alias(local).await? else {
            return Ok(false);
        };
        info.alias_localpart = Some(local.to_owned());
        let key = info.key.clone();
        let existed = self.store.portal(&key).await?.and_then(|p| p.room_id);
        let Some(portal) = self.ensure_portal_with(info).await? else {
            return Ok(false);
        };
        if let (Some(room_id), Some(_)) = (&portal.room_id, existed) {
            // The portal was made without this alias (from a remote message):
            // point the alias at it now, or the homeserver answers 404.
            let alias = ruma::RoomAliasId::parse(alias)?;
            let room = ruma::RoomId::parse(room_id)?;
            // Not looked up first: resolving an alias of our namespace would
            // make the homeserver ask us again. 409: it exists already.
            match self.bot.set_room_alias(&alias, &room).await {
                Err(e) if e.status() == Some(409) => {}
                other => other?,
            }
        }
        Ok(true)
    }

    /// Sends a notice from the bot (never fails the caller).
    pub async fn notice(&self, room_id: &str, text: &str, reply_to: Option<&str>) {
        let Ok(room) = ruma::RoomId::parse(room_id) else {
            return;
        };
        let mut content = crate::matrix::content::notice(text);
        if let Some(event_id) = reply_to.and_then(|e| ruma::EventId::parse(e).ok()) {
            content = crate::matrix::content::reply_to(content, &event_id);
        }
        if let Err(e) = self.bot.send(&room, "m.room.message", &content, None).await {
            tracing::warn!(room_id, error = %e, "could not send notice");
        }
    }

    /// Notices to the management rooms of users named as admins.
    pub async fn notify_admins(&self, text: &str) {
        for admin in self.permissions.admins() {
            if let Ok(Some(user)) = self.store.matrix_user(admin).await
                && let Some(room) = user.management_room
            {
                self.notice(&room, text, None).await;
            }
        }
    }

    /// Disappearing messages: in every portal with a timer, bridged
    /// messages older than it are redacted in Matrix, deleted remotely when
    /// the network can delete, and forgotten. Returns how many messages.
    pub async fn disappear_due(&self) -> anyhow::Result<u64> {
        let mut done = 0;
        for portal in self.store.portals().await? {
            let (Some(after), Some(room_id)) = (portal.disappear_after_ms, &portal.room_id) else {
                continue;
            };
            let room = ruma::RoomId::parse(room_id)?;
            let network = self.network(portal.key.network.as_str()).cloned();
            let can_delete = self
                .info(portal.key.network.as_str())
                .is_some_and(|i| i.capabilities.redactions);
            let cutoff = now_ms() - after;
            loop {
                let rows = self
                    .store
                    .messages_older_than(&portal.key, cutoff, 100)
                    .await?;
                if rows.is_empty() {
                    break;
                }
                let mut remote_ids = Vec::new();
                for row in &rows {
                    let event = ruma::EventId::parse(&row.event_id)?;
                    if let Err(e) = self
                        .bot
                        .redact(&room, &event, Some("disappearing messages"))
                        .await
                    {
                        tracing::warn!(portal = %portal.key, error = %e, "could not redact a disappearing message");
                    }
                    if !remote_ids.contains(&row.remote_id) {
                        remote_ids.push(row.remote_id.clone());
                    }
                }
                for remote_id in remote_ids {
                    if let (true, Some(network)) = (can_delete, &network) {
                        let event = MatrixEvent {
                            portal: portal.key.clone(),
                            sender: MatrixSender {
                                mxid: self.bot.user_id().to_string(),
                                display_name: self.config.appservice.bot_displayname.clone(),
                                avatar_url: None,
                                level: PermissionLevel::Admin,
                            },
                            via: Via::Relay,
                            event_id: format!("disappear-{}", remote_id),
                            ts: now_ms() as u64,
                            kind: MatrixEventKind::Redaction {
                                target: remote_id.clone(),
                            },
                        };
                        if let Err(e) = network.handle_matrix(event).await {
                            tracing::debug!(portal = %portal.key, error = %e, "remote deletion of a disappearing message failed");
                        }
                    }
                    self.store.delete_message(&portal.key, &remote_id).await?;
                    done += 1;
                }
            }
        }
        if done > 0 {
            metrics::counter!("passerelle_disappeared_messages_total").increment(done);
            tracing::info!(messages = done, "disappearing messages removed");
        }
        Ok(done)
    }

    /// Purges message-map rows older than the retention.
    pub async fn purge_expired(&self) -> anyhow::Result<u64> {
        let cutoff = now_ms() - self.config.privacy.message_retention.as_millis() as i64;
        let counts = self.store.purge_before(cutoff).await?;
        let total = counts.total();
        metrics::counter!("passerelle_purged_rows_total").increment(total);
        tracing::info!(rows = total, "retention purge done");
        Ok(total)
    }
}

/// The network namespaces a set of modules claims, for the registration.
pub fn namespaces(networks: &[Arc<dyn Network>]) -> Vec<NetworkNamespace> {
    networks
        .iter()
        .map(|n| {
            let info = n.info();
            NetworkNamespace {
                id: info.id.as_str().to_owned(),
                prefix: info.namespace_prefix,
            }
        })
        .collect()
}

/// Runs the daemon until `shutdown` resolves, then finishes in-flight work.
/// `listener` is the bound appservice listener (tests bind `127.0.0.1:0`).
pub async fn run(
    config: Config,
    networks: Vec<Arc<dyn Network>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let registration = Registration::load(&config.appservice.registration)?;
    let store = Store::connect(
        &config.database.url,
        &StoreOptions {
            max_connections: config.database.max_connections,
            acquire_timeout: config.database.acquire_timeout,
        },
    )
    .await
    .context("opening the database")?;
    let matrix = MatrixClient::new(
        config.homeserver.url.clone(),
        registration.as_token.clone(),
        config.homeserver.domain.clone(),
        RetryPolicy::default(),
    )?;
    let bot = matrix.bot(&config.appservice.bot_localpart)?;

    let mut shutdown = std::pin::pin!(shutdown);
    // The homeserver may still be starting (an upgrade, a service manager
    // starting both): wait for it rather than exit.
    let mut delay = Duration::from_secs(1);
    let versions = loop {
        tokio::select! {
            answer = matrix.versions() => match answer {
                Ok(versions) => break versions,
                Err(e) => {
                    tracing::warn!(
                        homeserver = %config.homeserver.url,
                        error = %e,
                        retry_in = ?delay,
                        "the homeserver does not answer /versions yet"
                    );
                }
            },
            () = &mut shutdown => return Ok(()),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => return Ok(()),
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    };
    tracing::info!(versions = versions.len(), "homeserver reachable");
    bot.ensure_registered()
        .await
        .context("registering the bot")?;
    match bot.profile().await {
        Ok(profile)
            if profile.displayname.as_deref() == Some(&config.appservice.bot_displayname) => {}
        _ => {
            if let Err(e) = bot
                .set_displayname(&config.appservice.bot_displayname)
                .await
            {
                tracing::warn!(error = %e, "could not set the bot's display name");
            }
        }
    }

    let crypto = if config.encryption.allow {
        let crypto = crate::crypto::Crypto::start(
            &config.encryption,
            &registration.as_token,
            &matrix,
            bot.clone(),
            &config.appservice.bot_displayname,
        )
        .await
        .context("starting end-to-bridge encryption")?;
        matrix.set_encryption(crypto.clone());
        Some(crypto)
    } else {
        None
    };

    let infos: BTreeMap<String, NetworkInfo> = networks
        .iter()
        .map(|n| (n.info().id.as_str().to_owned(), n.info()))
        .collect();
    let networks: BTreeMap<String, Arc<dyn Network>> = networks
        .into_iter()
        .map(|n| (n.info().id.as_str().to_owned(), n))
        .collect();

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (task_guard, mut tasks_done) = mpsc::channel::<()>(1);
    let media_signer = crate::media::MediaSigner::new(&registration.as_token);
    let bridge = Arc::new(Bridge {
        permissions: config.permissions(),
        config,
        registration,
        store,
        matrix,
        bot,
        networks,
        infos,
        queues: PortalQueues::default(),
        media_signer,
        joined: Mutex::new(HashSet::new()),
        typing: Mutex::new(HashMap::new()),
        encryption_notices: Mutex::new(HashMap::new()),
        crypto,
        display_names: Mutex::new(HashMap::new()),
        txn_lock: tokio::sync::Mutex::new(()),
        space_lock: tokio::sync::Mutex::new(()),
        shutdown: shutdown_rx.clone(),
        task_guard: Mutex::new(Some(task_guard)),
    });

    crate::metrics::install();
    if let Some(addr) = bridge.config.metrics.listen {
        let metrics_listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics.listen {addr}"))?;
        let mut stop = shutdown_rx.clone();
        let guard = bridge.task_guard();
        let health_bridge = bridge.clone();
        tokio::spawn(async move {
            let app = axum::Router::new()
                .route(
                    "/metrics",
                    axum::routing::get(|| async { crate::metrics::render() }),
                )
                .route(
                    "/health",
                    axum::routing::get(move || {
                        let b = health_bridge.clone();
                        async move {
                            let h = b.health().await;
                            let code = if h.ok {
                                http::StatusCode::OK
                            } else {
                                http::StatusCode::SERVICE_UNAVAILABLE
                            };
                            (code, axum::Json(h))
                        }
                    }),
                );
            let _ = axum::serve(metrics_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            drop(guard);
        });
    }

    // Bound now, so a taken port stops the start-up; served once the
    // modules run, so `/networks` never lists one that is still starting.
    let provisioning_listener = match &bridge.config.provisioning {
        Some(provisioning) => Some(
            TcpListener::bind(provisioning.listen)
                .await
                .with_context(|| format!("binding provisioning.listen {}", provisioning.listen))?,
        ),
        None => None,
    };

    // Events a module handed over durably before the last stop go first in
    // their portals' queues.
    match bridge.replay_spool().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            events = n,
            "delivering remote events spooled before the last stop"
        ),
        Err(e) => tracing::warn!(error = %e, "spooled remote events stay until the next start"),
    }

    // Modules first: the successful ping below makes the homeserver send
    // its backlog at once, and that must find the modules ready.
    for (id, network) in bridge.networks() {
        let handle = crate::runtime::RuntimeHandle::new(bridge.clone(), id.clone());
        network
            .start(Arc::new(handle))
            .await
            .map_err(|e| anyhow::anyhow!("starting the {id} module: {e}"))?;
        tracing::info!(network = %id, "module started");
    }
    if let Some(listener) = provisioning_listener {
        crate::provisioning::spawn(bridge.clone(), listener);
    }
    match bridge.replay_pending().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            events = n,
            "delivering events left pending at the last stop"
        ),
        Err(e) => tracing::warn!(error = %e, "pending events stay pending until the next start"),
    }

    let app = crate::appservice::router(bridge.clone());
    let mut stop = shutdown_rx.clone();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .into_future(),
    );

    match bridge
        .matrix
        .ping_appservice(
            &bridge.config.appservice.id,
            &format!("startup-{}", now_ms()),
        )
        .await
    {
        Ok(Some(ms)) => tracing::info!(
            duration_ms = ms,
            "homeserver reached us through the appservice ping"
        ),
        Ok(None) => {
            tracing::warn!("homeserver has no appservice ping endpoint; skipping the check")
        }
        Err(e) => {
            tracing::warn!(error = %e, "appservice ping failed: check appservice.url and the registration")
        }
    }

    crate::retention::spawn_purge(bridge.clone());
    crate::retention::spawn_disappear(bridge.clone());
    tracing::info!("passerelle is running");

    shutdown.await;
    tracing::info!("shutting down: finishing in-flight work");
    let _ = shutdown_tx.send(true);
    // No new transactions; then let the portal queues drain while the
    // modules are still connected; then stop the modules.
    let _ = server.await;
    bridge.queues.close();
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while bridge.queues.active_workers() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            queued = bridge.queues.depth(),
            "portal queues did not drain within 30 s; unfinished Matrix events stay pending"
        );
    }
    for (id, network) in bridge.networks() {
        network.stop().await;
        tracing::info!(network = %id, "module stopped");
    }
    bridge.task_guard.lock().expect("task guard lock").take();
    let store = bridge.store.clone();
    drop(bridge);
    if tokio::time::timeout(Duration::from_secs(10), async {
        while tasks_done.recv().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("some tasks did not finish within 10 s");
    }
    // The database connections go now, not whenever the last handle does
    // (a PostgreSQL server counts them against max_connections).
    if tokio::time::timeout(Duration::from_secs(5), store.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still in use at shutdown");
    }
    tracing::info!("stopped");
    Ok(())
}
