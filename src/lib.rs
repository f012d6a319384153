//! Passerelle: one Matrix application service that runs bridge modules for
//! IRC, Slack and Telegram. See `docs/ARCHITECTURE.md` for the layers.

pub mod appservice;
pub mod bridge;
pub mod cli;
pub mod commands;
pub mod config;
pub mod crypto;
#[doc(hidden)]
pub mod fuzzing;
mod ghost;
mod inbound;
pub mod matrix;
pub mod media;
pub mod metrics;
pub mod mxid;
pub mod networks;
pub mod permissions;
mod portal;
pub mod provisioning;
pub mod registration;
mod retention;
pub mod runtime;
pub mod store;

pub use bridge::{Bridge, run};
pub use config::Config;
