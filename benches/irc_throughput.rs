//! Benchmark: IRC -> Matrix messages per second through passerelle, against
//! a real ngircd and a real Synapse on 127.0.0.1 (both started here).
//!
//! `cargo bench --bench irc_throughput` (or `scripts/bench-irc`).
//! `PASSERELLE_BENCH_MESSAGES` sets the count (default 300). Prints figures.

use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "common/irc_rig.rs"]
mod irc_rig;
#[path = "../tests/it/support/mod.rs"]
mod support;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let count: usize = std::env::var("PASSERELLE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let irc_rig::IrcRig {
        talker,
        alice,
        room,
        mut bridge,
        ngircd: _ngircd,
        ..
    } = irc_rig::IrcRig::start("bench", "#bench").await;

    let started = Instant::now();
    for i in 0..count {
        talker
            .privmsg("#bench", &format!("message {i}"))
            .await
            .expect("send");
    }
    let last = format!("message {}", count - 1);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let events = alice.messages(&room).await;
        if events.iter().any(|e| e["content"]["body"] == last.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "the last message never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "IRC -> Matrix: {count} messages in {:.2} s = {:.1} messages/s (one channel, one sender, Synapse on SQLite)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );

    // Baseline: the same number of sequential sends by a plain client, in a
    // room of its own (not bridged, so nothing is queued for IRC).
    let plain = alice
        .create_room(serde_json::json!({"preset": "private_chat"}))
        .await;
    let started = Instant::now();
    for i in 0..count {
        alice.send_text(&plain, &format!("direct {i}")).await;
    }
    let direct = started.elapsed();
    println!(
        "Baseline: {count} sequential client sends in {:.2} s = {:.1} messages/s",
        direct.as_secs_f64(),
        count as f64 / direct.as_secs_f64()
    );
    bridge.stop().await;
}
