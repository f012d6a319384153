//! Fixtures shared by the integration tests: real servers on 127.0.0.1,
//! installed by `scripts/install-deps` and driven through `scripts/`.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

pub mod synapse;

/// The ngircd fixture of the IRC module's own tests, shared.
#[path = "../../../bridges/irc/tests/conn/ngircd.rs"]
pub mod ngircd;

/// The npm package telegram-test-api behind its launcher.
#[path = "../../support/telegram_test_api.rs"]
pub mod telegram_test_api;

/// The project's own Telegram Bot API fake (docs/fakes/telegram.md).
#[path = "../../support/telegram_fake.rs"]
pub mod telegram_fake;

/// The project's own Slack fake: Web API, Socket Mode, Events API (docs/fakes/slack.md).
#[path = "../../support/slack_fake.rs"]
pub mod slack_fake;

use std::net::TcpListener;
use std::path::PathBuf;

/// A TCP port on 127.0.0.1 that was free a moment ago: bound to port 0, then
/// released. Another process may take it meanwhile, so bind it soon.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

/// The repository root (the directory of the root `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
