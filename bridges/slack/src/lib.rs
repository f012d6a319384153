//! The Slack module. So far its pure converters:
//!
//! - [`mrkdwn`]: Slack mrkdwn <-> Matrix HTML, with `<@U…>`, `<#C…>`,
//!   `<!here>` and `<url|text>` (table-tested, fuzzed).
//! - [`emoji`]: Slack shortcodes (with skin tones) <-> Unicode, for
//!   reactions and text.

pub mod api;
pub mod config;
pub mod emoji;
pub mod events;
mod http;
pub mod ids;
mod module;
pub mod mrkdwn;
mod outbound;
pub mod socket;

pub use module::SlackModule;
