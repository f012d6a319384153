//! Transaction events handled per second and per CPU second, against the
//! acknowledge-only homeserver stand-in.
//!
//! The daemon runs in this process on a runtime of its own (two worker
//! threads) with the test network module, which accepts every message at
//! once; the stand-in and the pusher run on the main thread. The daemon's
//! CPU time is therefore the process's minus the main thread's.
//!
//! Each event is an `m.room.message` from a Matrix user into a linked portal,
//! relayed to the test network: permission check, dedupe by transaction and
//! event id, portal lookup, the portal queue, the module call and the
//! message-map row. Transactions are pushed one after the other, as a
//! homeserver does, each acknowledged only once its events are handled.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passerelle::Config;
use passerelle::registration::Registration;
use passerelle::store::{PortalRow, Store, StoreOptions};
use passerelle_api::{Network, PortalKey, PortalKind};
use serde_json::json;

use crate::env_or;
use crate::harness::{self, TestNetwork};
use crate::procstat;
use crate::standin::StandIn;

pub fn run() {
    let txns = env_or("PASSERELLE_BENCH_TXNS", 1000);
    let per_txn = env_or("PASSERELLE_BENCH_EVENTS_PER_TXN", 10);
    let portals = env_or("PASSERELLE_BENCH_PORTALS", 100);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = std::env::var("PASSERELLE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));

    let daemon_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("daemon")
        .enable_all()
        .build()
        .expect("daemon runtime");
    let main_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("main runtime");

    let standin = main_rt.block_on(StandIn::start());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the appservice");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("address").port();
    let reg_path = dir.path().join("registration.yaml");
    let text = harness::config_text(port, &standin.url, &reg_path, &db, "");
    let config = Config::parse(&text, Path::new("bench.yaml")).expect("config");
    let net = Arc::new(TestNetwork::default());
    let module: Arc<dyn Network> = net.clone();
    let registration = Registration::generate(
        &config,
        &passerelle::bridge::namespaces(std::slice::from_ref(&module)),
    );
    std::fs::write(&reg_path, registration.to_yaml()).expect("writing the registration");
    let as_url = format!("http://127.0.0.1:{port}");
    standin.set_appservice(&as_url, &registration.hs_token);

    daemon_rt.block_on(async {
        let store = Store::connect(&db, &StoreOptions::default())
            .await
            .expect("store");
        for i in 0..portals {
            let mut row = PortalRow::new(
                PortalKey::new("test", format!("chat{i}")),
                PortalKind::Group,
                passerelle::bridge::now_ms(),
            );
            row.room_id = Some(format!("!portal{i}"));
            row.name = Some(format!("Test chat {i}"));
            store.upsert_portal(&row).await.expect("seeding a portal");
        }
        store.close().await;
    });

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = {
        let _enter = daemon_rt.enter();
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        daemon_rt.spawn(passerelle::run(
            config,
            vec![module],
            listener,
            async move {
                let _ = stopped.await;
            },
        ))
    };

    main_rt.block_on(async {
        let began = Instant::now();
        while standin.first_ping_answered().is_none() {
            assert!(
                began.elapsed() < Duration::from_secs(60) && !daemon.is_finished(),
                "the daemon did not start"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let http = reqwest::Client::new();
        let mut next_event = 0usize;
        let mut push = |txn: usize| {
            let events: Vec<_> = (0..per_txn)
                .map(|_| {
                    let n = next_event;
                    next_event += 1;
                    json!({
                        "type": "m.room.message",
                        "event_id": format!("$bench{n}"),
                        "room_id": format!("!portal{}", n % portals),
                        "sender": "@alice:localhost",
                        "origin_server_ts": 1_700_000_000_000u64 + n as u64,
                        "content": {"msgtype": "m.text", "body": format!("message {n}")},
                    })
                })
                .collect();
            let request = http
                .put(format!("{as_url}/_matrix/app/v1/transactions/bench{txn}"))
                .bearer_auth(&registration.hs_token)
                .json(&json!({"events": events}));
            async move {
                let answer = request.send().await.expect("pushing a transaction");
                assert!(answer.status().is_success(), "transaction refused: {answer:?}");
            }
        };

        // Warm-up: every portal's worker started, every display name cached.
        let warmup = portals.div_ceil(per_txn) * 2;
        for txn in 0..warmup {
            push(txn).await;
        }
        standin.reset_counts();
        let delivered_before = net.received().len();

        let rss_before = procstat::rss_kib("self").unwrap_or_default();
        let (cpu0, main0) = (procstat::process_cpu("self"), procstat::this_thread_cpu());
        let began = Instant::now();
        for txn in warmup..warmup + txns {
            push(txn).await;
        }
        let wall = began.elapsed().as_secs_f64();
        let (cpu1, main1) = (procstat::process_cpu("self"), procstat::this_thread_cpu());
        let rss_after = procstat::rss_kib("self").unwrap_or_default();

        let events = txns * per_txn;
        let delivered = net.received().len() - delivered_before;
        let daemon_cpu = (cpu1 - cpu0) - (main1 - main0);
        let backend = if db.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        println!(
            "transactions: {txns} x {per_txn} m.room.message into {portals} portals ({backend}), \
             {delivered} delivered to the module"
        );
        println!(
            "  wall {wall:.2} s: {:.0} events/s, {:.1} transactions/s",
            events as f64 / wall,
            txns as f64 / wall
        );
        println!(
            "  daemon CPU {daemon_cpu:.2} s: {:.0} events per CPU second, {:.0} us CPU per event \
             (stand-in and pusher: {:.2} s)",
            events as f64 / daemon_cpu,
            daemon_cpu * 1e6 / events as f64,
            main1 - main0
        );
        println!(
            "  RSS of the process {rss_before} KiB before, {rss_after} KiB after (stand-in and pusher included)"
        );
        let calls: Vec<String> = standin
            .counts()
            .into_iter()
            .map(|(k, v)| format!("{k}: {:.2}", v as f64 / events as f64))
            .collect();
        println!(
            "  homeserver calls per event: {}",
            if calls.is_empty() {
                "none".to_owned()
            } else {
                calls.join(", ")
            }
        );
        assert_eq!(delivered, events, "every event reaches the module once");
    });

    let _ = stop.send(());
    daemon_rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(30), daemon).await;
    });
}
