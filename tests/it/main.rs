//! Integration tests against a real Synapse (started once per run by
//! `support::synapse`) with passerelle running in-process and a test-only
//! network module (`harness`).

mod appservice;
mod bridging;
mod commands;
mod daemon;
mod harness;
mod irc;
mod privacy;
mod provisioning;
mod slack;
mod support;
mod telegram;
