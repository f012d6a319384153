//! Operations benchmarks and the soak test: `cargo bench --bench ops -- <what>`
//! (or `scripts/bench-ops`, `scripts/soak`). Prints figures; nothing here is
//! asserted beyond "the run worked". Results go to docs/BENCHMARKS.md by hand.
//!
//! - `transactions`: events per second and per CPU second against an
//!   acknowledge-only homeserver stand-in.
//! - `latency`: IRC -> Matrix latency over a direct client send (Synapse, ngircd).
//! - `startup`: start-up to the first answered ping and RSS at rest, with an
//!   empty database and with 10,000 portals and 50,000 ghosts.
//! - `soak [portals] [messages/s] [seconds]`: IRC -> Matrix through Synapse
//!   with one Synapse and one ngircd restart; counts lost and duplicated
//!   messages, queue depth and memory.
//! - `ghost-devices`: what a ghost's own device (end-to-bridge encryption)
//!   costs in time and memory.

#[allow(dead_code)]
#[path = "../../tests/it/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../common/irc_rig.rs"]
mod irc_rig;
#[path = "../../tests/it/support/mod.rs"]
mod support;

mod ghost_devices;
mod latency;
mod procstat;
mod soak;
mod standin;
mod startup;
mod transactions;

const USAGE: &str = "usage: cargo bench --bench ops -- transactions | latency | startup | soak [portals] [messages/s] [seconds] | ghost-devices";

/// A count from the environment, else `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs a measurement on a runtime of two worker threads (the benchmark
/// machine has two cores).
fn block_on<F: std::future::Future>(measure: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(measure)
}

fn main() {
    // `cargo bench` passes `--bench`; options are not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some("transactions") => transactions::run(),
        Some("latency") => latency::run(),
        Some("startup") => startup::run(),
        Some("soak") => soak::run(&args[1..]),
        Some("ghost-devices") => ghost_devices::run(),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
