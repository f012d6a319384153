//! A test-only network module and a way to run passerelle in-process against
//! the shared Synapse. The module is not shipped: it lives only here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use passerelle::Config;
use passerelle::registration::Registration;
use passerelle_api::{
    BridgeError, Capabilities, CommandContext, CommandSpec, Delivered, Login, LoginState,
    MatrixEvent, MatrixEventKind, Network, NetworkInfo, PermissionLevel, PortalInfo, PortalKey,
    PortalKind, RemoteEvent, Runtime, Sender,
};
use tokio::sync::oneshot;

use crate::support::synapse::Synapse;

pub const DOMAIN: &str = "localhost";

/// A network that records what it is given and can be told to fail.
#[derive(Default)]
pub struct TestNetwork {
    pub received: Mutex<Vec<MatrixEvent>>,
    runtime: OnceLock<Arc<dyn Runtime>>,
    /// Users invited to portals the module creates.
    pub invite: Mutex<Vec<String>>,
    next_id: AtomicU64,
    /// While set, every delivery fails as "try again later".
    pub offline: std::sync::atomic::AtomicBool,
    /// Delivery attempts, successful or not.
    pub attempts: AtomicU64,
}

impl TestNetwork {
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        self.runtime.get().expect("module started").clone()
    }

    /// Pushes a remote event and waits until it is in Matrix.
    pub async fn push(&self, event: RemoteEvent) -> Result<Option<String>, BridgeError> {
        self.runtime().enqueue(event).await
    }

    pub fn received(&self) -> Vec<MatrixEvent> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until the module got an event matching `f`.
    pub async fn wait_received(&self, what: &str, f: impl Fn(&MatrixEvent) -> bool) -> MatrixEvent {
        for _ in 0..200 {
            if let Some(ev) = self.received().into_iter().find(|e| f(e)) {
                return ev;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the test module never received {what}; it got: {:#?}",
            self.received()
        );
    }
}

#[async_trait]
impl Network for TestNetwork {
    fn info(&self) -> NetworkInfo {
        NetworkInfo {
            id: "test".into(),
            display_name: "Test network".to_owned(),
            namespace_prefix: "_test_".to_owned(),
            capabilities: Capabilities {
                edits: true,
                redactions: true,
                reactions: true,
                replies: true,
                threads: true,
                media: true,
                typing: true,
                logins: false,
            },
        }
    }

    async fn start(&self, runtime: Arc<dyn Runtime>) -> Result<(), BridgeError> {
        let _ = self.runtime.set(runtime);
        Ok(())
    }

    async fn stop(&self) {}

    async fn handle_matrix(&self, event: MatrixEvent) -> Result<Delivered, BridgeError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.offline.load(Ordering::SeqCst) {
            return Err(BridgeError::retryable("the test network is offline"));
        }
        if let MatrixEventKind::Message(content) = &event.kind
            && content.body.contains("please fail")
        {
            return Err(BridgeError::permanent(
                "the test network refused this message",
            ));
        }
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.received.lock().unwrap().push(event);
        Ok(Delivered::with_id(format!("from-matrix-{n}")))
    }

    /// `text:<words>`: a text file of those words.
    async fn fetch_media(
        &self,
        remote_ref: &str,
    ) -> Result<(Vec<u8>, Option<String>), BridgeError> {
        match remote_ref.strip_prefix("text:") {
            Some(words) => Ok((words.as_bytes().to_vec(), Some("text/plain".to_owned()))),
            None => Err(BridgeError::not_found("no such test file")),
        }
    }

    async fn portal_info(&self, key: &PortalKey) -> Result<Option<PortalInfo>, BridgeError> {
        if key.id.starts_with("unbridged") {
            return Ok(None);
        }
        let mut info = PortalInfo::new(key.clone(), PortalKind::Group);
        info.name = Some(format!("Test {}", key.id));
        info.invite = self.invite.lock().unwrap().clone();
        Ok(Some(info))
    }

    async fn resolve_alias(
        &self,
        alias_localpart: &str,
    ) -> Result<Option<PortalInfo>, BridgeError> {
        let Some(id) = alias_localpart.strip_prefix("_test_") else {
            return Ok(None);
        };
        if id.starts_with("missing") {
            return Ok(None);
        }
        self.portal_info(&PortalKey::new("test", id)).await
    }

    async fn resolve_user(&self, localpart: &str) -> Result<Option<Sender>, BridgeError> {
        Ok(localpart
            .strip_prefix("_test_")
            .filter(|id| !id.starts_with("missing"))
            .map(|id| Sender::new(id).with_display_name(format!("{id} (Test)"))))
    }

    async fn private_chat(
        &self,
        mxid: &str,
        with: &passerelle_api::RemoteUserId,
    ) -> Result<Option<PortalInfo>, BridgeError> {
        if with.as_str().starts_with("shy") {
            return Ok(None);
        }
        let mut info = PortalInfo::new(
            PortalKey::new("test", format!("pm/{with}/{mxid}")),
            PortalKind::Dm,
        );
        info.name = Some(with.to_string());
        Ok(Some(info))
    }

    fn parse_ghost_localpart(&self, localpart: &str) -> Option<passerelle_api::RemoteUserId> {
        localpart.strip_prefix("_test_").map(Into::into)
    }

    fn commands(&self) -> Vec<CommandSpec> {
        vec![
            CommandSpec {
                name: "link",
                usage: "link test <chat id>",
                description: "bridge this room to a test chat",
                level: PermissionLevel::Admin,
            },
            CommandSpec {
                name: "login",
                usage: "login test <remote name>",
                description: "speak as yourself on the test network",
                level: PermissionLevel::User,
            },
            CommandSpec {
                name: "logout",
                usage: "logout test",
                description: "forget your test login",
                level: PermissionLevel::User,
            },
        ]
    }

    async fn run_command(
        &self,
        ctx: CommandContext,
        name: &str,
        args: &[String],
    ) -> Result<String, BridgeError> {
        match (name, args) {
            ("link", [chat]) => {
                let info =
                    PortalInfo::new(PortalKey::new("test", chat.as_str()), PortalKind::Group);
                self.runtime().link_portal(&ctx.room_id, info).await?;
                Ok(format!("Linked to test chat {chat}."))
            }
            ("login", [name]) => {
                let login = Login {
                    mxid: ctx.sender.clone(),
                    login_id: name.clone(),
                    remote_user: name.as_str().into(),
                    state: LoginState::Connected,
                    secret: Some(format!("secret-of-{name}")),
                    metadata: serde_json::json!({}),
                };
                self.runtime().save_login(login).await?;
                Ok(format!("Logged in as {name}."))
            }
            ("logout", []) => {
                let runtime = self.runtime();
                let mine: Vec<Login> = runtime
                    .logins()
                    .await?
                    .into_iter()
                    .filter(|l| l.mxid == ctx.sender)
                    .collect();
                for login in &mine {
                    runtime.remove_login(&login.mxid, &login.login_id).await?;
                }
                Ok(format!("Logged out ({} login(s)).", mine.len()))
            }
            _ => Err(BridgeError::permanent(
                "usage: link test <chat id> | login test <name> | logout test",
            )),
        }
    }
}

/// Everything fixed for the whole test process: one registration, so one
/// appservice port that every test's bridge binds in turn.
pub struct Setup {
    pub port: u16,
    pub registration: Registration,
    pub registration_path: PathBuf,
    pub hs: &'static Synapse,
}

static SETUP: tokio::sync::OnceCell<Setup> = tokio::sync::OnceCell::const_new();
/// Tests share the appservice port, so they take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This test's turn on the appservice port, held until dropped.
pub async fn take_turn() -> tokio::sync::MutexGuard<'static, ()> {
    TURN.lock().await
}

/// The config every test bridge uses; `extra` is appended YAML (top-level keys).
pub fn config_text(port: u16, hs_url: &str, registration: &Path, db: &str, extra: &str) -> String {
    format!(
        "homeserver: {{url: '{hs_url}', domain: {DOMAIN}}}\n\
         appservice:\n  listen: '127.0.0.1:{port}'\n  url: 'http://127.0.0.1:{port}'\n  registration: '{}'\n  max_body_bytes: 65536\n\
         database: {{url: '{db}'}}\n\
         permissions:\n  '@alice:{DOMAIN}': admin\n  '@carol:{DOMAIN}': relay\n  '@dave:{DOMAIN}': user\n\
         {extra}\n",
        registration.display()
    )
}

pub async fn setup() -> &'static Setup {
    SETUP
        .get_or_init(|| async {
            let port = crate::support::free_port();
            // The registration file is written by the Synapse fixture into its
            // own folder; the path here only serves to build the config.
            let registration_path = PathBuf::from("registration.yaml");
            // The homeserver URL is not known yet; the registration does not contain it.
            // With `encryption.allow`, so that the registration asks for the
            // device lists and to-device events the encryption tests need.
            let text = config_text(
                port,
                "http://127.0.0.1:1",
                &registration_path,
                "sqlite://unused.db",
                "encryption: {allow: true}",
            );
            let config = Config::parse(&text, Path::new("test-config.yaml")).unwrap();
            let network: Arc<dyn Network> = Arc::new(TestNetwork::default());
            // The IRC module's namespace too, for the IRC tests.
            let irc: Arc<dyn Network> = Arc::new(passerelle_irc::IrcModule::new(
                serde_json::from_value(serde_json::json!({"networks": {}})).unwrap(),
            ));
            let telegram: Arc<dyn Network> = Arc::new(passerelle_telegram::TelegramModule::new(
                serde_json::from_value(serde_json::json!({})).unwrap(),
            ));
            let slack: Arc<dyn Network> = Arc::new(passerelle_slack::SlackModule::new(
                serde_json::from_value(serde_json::json!({})).unwrap(),
            ));
            let registration = Registration::generate(
                &config,
                &passerelle::bridge::namespaces(&[network, irc, telegram, slack]),
            );
            let hs = Synapse::shared(&registration.to_yaml()).await;
            let registration_path = hs.dir.join("registration.yaml");
            assert!(
                registration_path.exists(),
                "the Synapse fixture keeps the registration in its folder"
            );
            Setup {
                port,
                registration,
                registration_path,
                hs,
            }
        })
        .await
}

/// A running passerelle with the test module.
pub struct RunningBridge {
    pub net: Arc<TestNetwork>,
    pub db_url: String,
    extra: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _turn: Option<tokio::sync::MutexGuard<'static, ()>>,
}

/// A fresh SQLite database path for one test, inside the homeserver's
/// temporary folder (removed with it when the test process ends).
/// A new, empty database for one bridge: a SQLite file by default, or a
/// fresh PostgreSQL database when `PASSERELLE_IT_DATABASE=postgres`
/// (`scripts/test` runs the suite both ways), on the server of
/// `PASSERELLE_TEST_POSTGRES_URL`.
pub async fn fresh_db(name: &str) -> String {
    if std::env::var("PASSERELLE_IT_DATABASE").as_deref() == Ok("postgres") {
        return fresh_postgres_db(name).await;
    }
    let dir = setup().await.hs.dir.join("bridge-dbs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.db", rand::random::<u32>()));
    format!("sqlite://{}", path.display())
}

pub async fn fresh_postgres_db(name: &str) -> String {
    use sqlx::Connection;
    let base = std::env::var("PASSERELLE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "PASSERELLE_IT_DATABASE=postgres needs PASSERELLE_TEST_POSTGRES_URL: \
             run `scripts/postgres start` and export `scripts/postgres url` (scripts/test does both)"
        )
    });
    let db: String = format!("it_{name}_{}", rand::random::<u32>())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut admin = sqlx::postgres::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL not reachable at {base}: {e}; run `scripts/postgres start`")
        });
    // `db` is only ASCII letters, digits and `_` (made above).
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{db}"));
    url.to_string()
}

impl RunningBridge {
    /// Takes this test's turn on the appservice port and starts passerelle.
    pub async fn start(db_url: &str) -> RunningBridge {
        Self::start_with(db_url, "").await
    }

    /// Like [`RunningBridge::start`] with extra top-level config YAML.
    pub async fn start_with(db_url: &str, extra: &str) -> RunningBridge {
        Self::start_with_modules(db_url, extra, Vec::new()).await
    }

    /// With more modules next to the test module (the IRC module, say).
    pub async fn start_with_modules(
        db_url: &str,
        extra: &str,
        modules: Vec<Arc<dyn Network>>,
    ) -> RunningBridge {
        let turn = take_turn().await;
        let net = Arc::new(TestNetwork::default());
        let mut bridge = Self::start_without_turn(db_url, extra, net, modules).await;
        bridge._turn = Some(turn);
        bridge
    }

    async fn start_without_turn(
        db_url: &str,
        extra: &str,
        net: Arc<TestNetwork>,
        others: Vec<Arc<dyn Network>>,
    ) -> RunningBridge {
        // Logs of the bridge under test: `RUST_LOG=passerelle=debug cargo test …`.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let setup = setup().await;
        let text = config_text(
            setup.port,
            &setup.hs.base_url,
            &setup.registration_path,
            db_url,
            extra,
        );
        let config = Config::parse(&text, Path::new("test-config.yaml")).unwrap();
        let mut listener = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(("127.0.0.1", setup.port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let listener = listener.expect("appservice port stays busy");
        let (stop, stopped) = oneshot::channel::<()>();
        let module: Arc<dyn Network> = net.clone();
        let mut modules = vec![module];
        modules.extend(others);
        let task = tokio::spawn(passerelle::run(config, modules, listener, async move {
            let _ = stopped.await;
        }));
        for _ in 0..200 {
            if net.runtime.get().is_some() {
                break;
            }
            if task.is_finished() {
                panic!("passerelle exited at start: {:?}", task.await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            net.runtime.get().is_some(),
            "passerelle did not start its module"
        );
        RunningBridge {
            net,
            db_url: db_url.to_owned(),
            extra: extra.to_owned(),
            stop: Some(stop),
            task: Some(task),
            _turn: None,
        }
    }

    /// Stops passerelle (as SIGTERM would) and waits for it to finish.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("passerelle stops within 60 s")
                .expect("task")
                .expect("passerelle ran without error");
        }
    }

    /// Stops and starts again on the same database, keeping the turn; the
    /// module starts afresh (what it received is forgotten).
    pub async fn restart(&mut self) {
        self.restart_with_modules(Vec::new()).await;
    }

    /// [`RunningBridge::restart`] with fresh instances of other modules.
    pub async fn restart_with_modules(&mut self, others: Vec<Arc<dyn Network>>) {
        self.stop().await;
        let fresh = Self::start_without_turn(
            &self.db_url,
            &self.extra,
            Arc::new(TestNetwork::default()),
            others,
        )
        .await;
        self.net = fresh.net.clone();
        let mut fresh = fresh;
        self.stop = fresh.stop.take();
        self.task = fresh.task.take();
    }
}

/// A remote event from `user` in test chat `chat`.
pub fn remote(
    chat: &str,
    user: &str,
    ts: u64,
    kind: passerelle_api::RemoteEventKind,
) -> RemoteEvent {
    RemoteEvent::new(
        PortalKey::new("test", chat),
        Sender::new(user).with_display_name(format!("{user} (Test)")),
        ts,
        kind,
    )
}

/// Joins a room by an alias in our namespace. The first alias query after a
/// bridge restart on the same port can fail inside Synapse (it may reuse a
/// pooled connection to the previous listener, and alias queries are not
/// retried), so a 404 is tried again a few times.
pub async fn join_alias(client: &crate::support::synapse::TestClient, alias: &str) -> String {
    let path = format!(
        "/_matrix/client/v3/join/{}",
        crate::support::synapse::enc(alias)
    );
    for _ in 0..5 {
        let (status, body) = client
            .request(reqwest::Method::POST, &path, Some(serde_json::json!({})))
            .await;
        if status.is_success() {
            return body["room_id"].as_str().expect("room_id").to_owned();
        }
        assert_eq!(status.as_u16(), 404, "joining {alias}: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{alias} stayed unknown to the homeserver");
}
