//! Integration tests against a real Synapse (started once per run by
//! `support::synapse`) with passerelle running in-process and a test-only
//! network module (`harness`).

// matrix-sdk's sync future is deep: proving it `Send` needs more room.
#![recursion_limit = "256"]

mod appservice;
mod bridging;
mod commands;
mod daemon;
/// A real end-to-end-capable Matrix client (matrix-sdk), for encrypted rooms;
/// declared here rather than in `support`, which the benchmarks share.
#[path = "support/e2e_client.rs"]
mod e2e_client;
mod encryption;
mod harness;
mod irc;
mod privacy;
mod provisioning;
mod slack;
mod support;
mod telegram;
