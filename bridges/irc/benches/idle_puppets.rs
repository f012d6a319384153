//! Benchmark: memory of idle puppet connections and the time to bring them
//! all back after an ircd restart, against a real ngircd on 127.0.0.1.
//!
//! `cargo bench -p passerelle-irc --bench idle_puppets` (or `scripts/bench-irc`).
//! `PASSERELLE_IDLE_CONNECTIONS` sets the count (default 1000),
//! `PASSERELLE_IDLE_TLS=1` uses TLS. Prints figures; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use passerelle_irc::conn::{ConnectionConfig, Engine, EngineConfig, Event, TlsRoots};
use tokio::sync::mpsc::Receiver;

#[path = "../tests/conn/ngircd.rs"]
mod ngircd;

fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn registered(events: &mut Receiver<Event>) {
    loop {
        match events.recv().await {
            Some(Event::Registered { .. }) => return,
            Some(_) => {}
            None => panic!("a connection ended before registering"),
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let count: usize = std::env::var("PASSERELLE_IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tls = std::env::var_os("PASSERELLE_IDLE_TLS").is_some();
    let server = if tls {
        ngircd::Ngircd::start_with_tls()
    } else {
        ngircd::Ngircd::start()
    };
    let mut engine_config = EngineConfig::default();
    engine_config.tls_roots = if tls {
        TlsRoots::Custom(server.root_store())
    } else {
        TlsRoots::Custom(Arc::new(rustls::RootCertStore::empty()))
    };
    let engine = Engine::new(engine_config);
    let config = |nick: &str| {
        let mut config =
            ConnectionConfig::new("127.0.0.1", server.tls_port.unwrap_or(server.port), nick);
        config.tls = tls;
        config
    };
    let (_warm, mut warm_events) = engine.connect(config("warmup")).expect("config");
    registered(&mut warm_events).await;
    let before = rss_kib();
    let started = Instant::now();
    let mut connections = Vec::with_capacity(count);
    for i in 0..count {
        connections.push(engine.connect(config(&format!("idle{i}"))).expect("config"));
    }
    for (_, events) in &mut connections {
        registered(events).await;
        while events.try_recv().is_ok() {}
    }
    let connected_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (_, events) in &mut connections {
        while events.try_recv().is_ok() {}
    }
    let after = rss_kib();
    let kind = if tls { "TLS" } else { "plain-text" };
    println!(
        "{count} idle {kind} puppets: connected in {:.1} s; VmRSS {before} KiB -> {after} KiB = {:.1} KiB each",
        connected_in.as_secs_f64(),
        (after - before) as f64 / count as f64
    );

    let restarted = Instant::now();
    server.restart();
    for (_, events) in &mut connections {
        registered(events).await;
    }
    println!(
        "ngircd restart: all {count} puppets registered again {:.1} s after the restart began",
        restarted.elapsed().as_secs_f64()
    );
    for (_, events) in &mut connections {
        while events.try_recv().is_ok() {}
    }
    println!("VmRSS after the reconnection: {} KiB", rss_kib());
}
