//! The Telegram module: a bot (Bot API) bridges groups, supergroups (with
//! forum topics as Matrix threads) and channels (as read-only rooms).
//!
//! - [`config`]: the `bridges.telegram` section.
//! - [`ids`]: portal, user and message ids and their string forms.
//! - [`format`]: Telegram entities <-> Matrix HTML (pure).
//! - `api`: the Bot API client (frankenstein for the JSON methods; our own
//!   multipart upload so media bytes never touch the disk).
//! - `updates`: an `Update` -> the runtime's remote events (pure).
//! - `outbound`: Matrix events -> Bot API calls.
//! - `module`: the [`passerelle_api::Network`] implementation, long polling
//!   with a persisted offset, and webhook mode.
//!
//! A second client kind (a user account over MTProto) would sit beside
//! `api` behind the same `updates`/`outbound` mapping.

mod api;
pub mod config;
pub mod format;
pub mod ids;
mod module;
mod outbound;
mod updates;
mod webhook;

pub use module::TelegramModule;
