//! What a ghost's own device costs (end-to-bridge encryption): N ghosts
//! each say one message in an encrypted portal, so each gets a device, an
//! Olm machine, a cross-signing identity and a crypto store of its own.
//! Prints the time of a ghost's first message (which makes its device)
//! against a later one (which reuses it), and the RSS of this process
//! (the daemon runs in it, as in the end-to-end tests) before and after.

use std::time::{Duration, Instant};

use passerelle_api::{MessageContent, PortalKey, RemoteEventKind};

use crate::env_or;
use crate::harness::{self, RunningBridge, remote};
use crate::procstat;

pub fn run() {
    crate::block_on(measure());
}

fn now_ms() -> u64 {
    passerelle::bridge::now_ms() as u64
}

async fn say(bridge: &RunningBridge, chat: &str, who: &str, id: &str) -> Duration {
    let began = Instant::now();
    bridge
        .net
        .push(
            remote(
                chat,
                who,
                now_ms(),
                RemoteEventKind::Message(MessageContent::text("hello")),
            )
            .with_remote_id(id),
        )
        .await
        .expect("bridged");
    began.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure() {
    let ghosts = env_or("PASSERELLE_BENCH_GHOSTS", 100);
    let hs = harness::setup().await.hs;
    let store = tempfile::tempdir().expect("a temporary directory");
    let extra = format!(
        "encryption: {{allow: true, store: '{}'}}\n\
         bridges: {{test: {{encryption: {{allow: true, default: true}}}}}}",
        store.path().display()
    );
    let mut bridge =
        RunningBridge::start_with(&harness::fresh_db("ghost_devices").await, &extra).await;
    let alice = hs.register_user("alice").await;
    bridge
        .net
        .invite
        .lock()
        .unwrap()
        .push(alice.user_id().to_owned());
    let chat = format!("ghost-devices-{}", rand::random::<u32>());
    // The portal, and one ghost device, before the first reading.
    say(&bridge, &chat, "opener", "open").await;
    let room = bridge
        .net
        .runtime()
        .portal_room(&PortalKey::new("test", chat.as_str()))
        .await
        .unwrap()
        .expect("portal");
    alice.join(&room).await;
    say(&bridge, &chat, "opener", "open-2").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = procstat::rss_kib("self").unwrap_or_default();

    let mut first = Vec::new();
    let tag = rand::random::<u32>();
    for i in 0..ghosts {
        first.push(ms(say(
            &bridge,
            &chat,
            &format!("g{tag}x{i}"),
            &format!("first-{i}"),
        )
        .await));
    }
    let mut again = Vec::new();
    for i in 0..ghosts {
        again.push(ms(say(
            &bridge,
            &chat,
            &format!("g{tag}x{i}"),
            &format!("again-{i}"),
        )
        .await));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = procstat::rss_kib("self").unwrap_or_default();

    println!(
        "ghost devices: {ghosts} ghosts, one encrypted portal, one Matrix member (Synapse on SQLite)"
    );
    println!(
        "  a ghost's first message (makes its device): median {:.0} ms, total {:.1} s",
        median(first.clone()),
        first.iter().sum::<f64>() / 1000.0
    );
    println!(
        "  its second message (device reused):         median {:.0} ms",
        median(again)
    );
    println!(
        "  VmRSS of the process: {:.1} -> {:.1} MiB, {:.0} KiB per ghost device",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after as f64 - before as f64) / ghosts as f64
    );
    bridge.stop().await;
}
