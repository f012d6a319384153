//! The real binary as an operator runs it: start-up against Synapse,
//! `/health` and `/metrics`, logs without secrets, SIGTERM, retention purge.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use passerelle_api::{MessageContent, PortalKey, RemoteEventKind};

use crate::harness::{RunningBridge, config_text, fresh_db, remote, setup, take_turn};

#[tokio::test]
async fn the_binary_serves_health_and_metrics_and_stops_on_sigterm() {
    let setup = setup().await;
    let db = fresh_db("daemon").await;
    let _turn = take_turn().await;
    let metrics_port = crate::support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    // Encryption on too: its keys must stay out of the logs as well.
    let pickle_key = "pickle-secret-5d1c";
    let extra = format!(
        "metrics: {{listen: '127.0.0.1:{metrics_port}'}}\nlogging: {{level: info, format: json}}\n\
         encryption: {{allow: true, store: '{}', pickle_key: '{pickle_key}'}}",
        dir.path().join("crypto").display()
    );
    std::fs::write(
        &config,
        config_text(
            setup.port,
            &setup.hs.base_url,
            &setup.registration_path,
            &db,
            &extra,
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["run", "-c"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let health_url = format!("http://127.0.0.1:{metrics_port}/health");
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Ok(resp) = client.get(&health_url).send().await {
            break resp;
        }
        assert!(Instant::now() < deadline, "passerelle never served /health");
        assert!(
            child.try_wait().unwrap().is_none(),
            "passerelle exited early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health.status().as_u16(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["database"], true);

    // One transaction so the counters exist, then read them.
    let status = client
        .put(format!(
            "http://127.0.0.1:{}/_matrix/app/v1/transactions/daemon-1",
            setup.port
        ))
        .bearer_auth(&setup.registration.hs_token)
        .json(&serde_json::json!({"events": [{
            "type": "m.room.message", "event_id": "$daemon-1", "room_id": "!nowhere:localhost",
            "sender": "@alice:localhost", "origin_server_ts": 1,
            "content": {"msgtype": "m.text", "body": "secret-body-3f9a !passerelle help"}
        }]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    let metrics = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Ours, and any the homeserver pushed (with encryption on, device
    // list and key count updates come in transactions too).
    let handled = metrics
        .lines()
        .find_map(|l| l.strip_prefix("passerelle_transactions_total{outcome=\"handled\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(handled.is_some_and(|n| n >= 1), "{metrics}");
    assert!(
        metrics.contains("passerelle_homeserver_request_duration_seconds_bucket"),
        "{metrics}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(40);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "passerelle did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(exit.success(), "exit {exit:?}; logs:\n{logs}");
    assert!(
        logs.contains("passerelle is running") && logs.contains("stopped"),
        "{logs}"
    );
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
    assert!(
        !logs.contains("secret-body-3f9a"),
        "message content reached the info-level logs"
    );
    assert!(logs.contains("end-to-bridge encryption ready"), "{logs}");
    for secret in [
        setup.registration.as_token.as_str(),
        setup.registration.hs_token.as_str(),
        pickle_key,
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn the_retention_purge_runs_on_its_schedule() {
    let db = fresh_db("purge").await;
    let mut bridge = RunningBridge::start_with(
        &db,
        "privacy: {message_retention: 1s, purge_interval: 500ms}",
    )
    .await;
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let event = remote(
        "purge",
        "bob",
        old,
        RemoteEventKind::Message(MessageContent::text("soon forgotten")),
    )
    .with_remote_id("r-old");
    bridge.net.push(event).await.unwrap();
    let portal = PortalKey::new("test", "purge");
    let runtime = bridge.net.runtime();
    assert!(
        runtime.is_bridged(&portal, &"r-old".into()).await.unwrap(),
        "mapped right after sending"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.is_bridged(&portal, &"r-old".into()).await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "the message map row was not purged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bridge.stop().await;
}

/// A TCP relay between the bridge and PostgreSQL that the test can cut, as a
/// database restart or a network failure would: open connections die and new
/// ones are refused until `restore`.
struct CuttableLink {
    addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableLink {
    async fn start(target: String) -> CuttableLink {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let link = CuttableLink {
            addr: listener.local_addr().unwrap(),
            cut: Default::default(),
            open: Default::default(),
        };
        let (cut, open) = (link.cut.clone(), link.open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                open.lock().unwrap().push(task.abort_handle());
            }
        });
        link
    }

    fn cut(&self) -> usize {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        let open = std::mem::take(&mut *self.open.lock().unwrap());
        let n = open.iter().filter(|t| !t.is_finished()).count();
        open.iter().for_each(|t| t.abort());
        n
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_lost_database_connection_is_retried_not_fatal() {
    // Always PostgreSQL: a database server that goes away is its failure.
    let db = crate::harness::fresh_postgres_db("dblost").await;
    let mut url = url::Url::parse(&db).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let link = CuttableLink::start(target).await;
    url.set_port(Some(link.addr.port())).unwrap();
    let mut bridge = RunningBridge::start(url.as_str()).await;
    let alice = setup().await.hs.register_user("alice").await;
    let room = crate::bridging::portal_with(&bridge, "dblost", &alice).await;

    // The database is gone for three seconds; a remote message arrives
    // meanwhile. Its delivery waits and goes through once the link is back.
    let severed = link.cut();
    assert!(
        severed > 0,
        "the bridge had no open database connection to lose"
    );
    let during = remote(
        "dblost",
        "bob",
        crate::bridging::now_ms(),
        RemoteEventKind::Message(MessageContent::text("sent while the database was away")),
    )
    .with_remote_id("r-during");
    let net = bridge.net.clone();
    let pushed = tokio::spawn(async move { net.push(during).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!pushed.is_finished(), "delivered without a database?");
    link.restore();
    let event_id = pushed
        .await
        .unwrap()
        .expect("delivered after the database came back")
        .expect("an event id");
    let seen = alice
        .wait_for_event(
            &room,
            |e| e["content"]["body"] == "sent while the database was away",
            crate::support::synapse::DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(seen["event_id"], event_id.as_str());

    // The daemon is still whole: Matrix -> remote goes through as well.
    let sent = alice.send_text(&room, "and back").await;
    bridge
        .net
        .wait_received("alice's message after the outage", |e| e.event_id == sent)
        .await;
    bridge.stop().await;
}
