//! What the IRC benchmarks share: ngircd and Synapse on 127.0.0.1,
//! passerelle with the IRC module on its network `local`, an IRC user
//! `talker` in one channel, and alice in its portal, where the talker's
//! ghost has joined. Included by `benches/irc_throughput.rs` and
//! `benches/ops/` (each has `harness` and `support` at its root). In a
//! folder of its own so cargo does not take it for a benchmark.

use std::time::{Duration, Instant};

use passerelle_irc::conn::{ConnectionConfig, Engine, EngineConfig, Event, Handle};
use serde_json::json;

use crate::harness::{self, RunningBridge};
use crate::support::{ngircd::Ngircd, synapse::Synapse, synapse::TestClient};

/// The ghost of the talker.
pub const GHOST: &str = "@_irc_local_talker:localhost";

pub struct IrcRig {
    pub hs: &'static Synapse,
    pub bridge: RunningBridge,
    pub talker: Handle,
    pub alice: TestClient,
    /// The portal of `channel`.
    pub room: String,
    pub alias: String,
    // Last: stopped after the bridge.
    pub ngircd: Ngircd,
}

impl IrcRig {
    /// Starts everything, with a fresh database named `db`, and waits for
    /// the talker's ghost in the portal of `channel` (`#name`).
    pub async fn start(db: &str, channel: &str) -> IrcRig {
        let ngircd = Ngircd::start();
        let hs = harness::setup().await.hs;
        let module = std::sync::Arc::new(passerelle_irc::IrcModule::new(
            serde_json::from_value(json!({
                "enabled": true,
                "networks": {"local": {"host": "127.0.0.1", "port": ngircd.port, "tls": false, "bot_nick": "bridgebot"}}
            }))
            .expect("IRC config"),
        ));
        let bridge =
            RunningBridge::start_with_modules(&harness::fresh_db(db).await, "", vec![module]).await;

        let engine = Engine::new(EngineConfig::default());
        let mut config = ConnectionConfig::new("127.0.0.1", ngircd.port, "talker");
        // The sender is not what is measured: no flood pacing on its side.
        config.flood.burst = u32::MAX / 2;
        let (talker, mut events) = engine.connect(config).expect("config");
        while !matches!(events.recv().await, Some(Event::Registered { .. })) {}
        talker.join(channel).await.expect("join");
        // Nobody reads the talker's events any more: drain them.
        tokio::spawn(async move { while events.recv().await.is_some() {} });

        let alias = format!("#_irc_local_{channel}:localhost");
        let alice = hs.register_user("alice").await;
        let room = harness::join_alias(&alice, &alias).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !alice.joined_members(&room).await.iter().any(|m| m == GHOST) {
            assert!(Instant::now() < deadline, "the ghost never joined");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        IrcRig {
            hs,
            bridge,
            talker,
            alice,
            room,
            alias,
            ngircd,
        }
    }
}
