//! Telegram message entities <-> Matrix HTML (`org.matrix.custom.html`).
//! Pure: no I/O, no state; each direction is one function call.
//!
//! - [`telegram_to_matrix`]: a Telegram text with its [`Entity`] list to a
//!   Matrix body and formatted body.
//! - [`matrix_to_telegram`]: a Matrix message to text for the Bot API's
//!   `parse_mode: "HTML"`, mention pills mapped to Telegram users by a
//!   callback.
//! - [`escape_telegram`], [`utf16_len`]: plain text for Telegram HTML, and
//!   the length Telegram counts.
//! - [`check_html_nesting`] and [`check_telegram_html`]: the checkers the
//!   tests and the fuzz target hold each direction's output to.

mod check;
mod entity;
mod sanitize;
mod tags;
mod to_matrix;
mod to_telegram;

#[cfg(test)]
mod tests;

pub use check::check_telegram_html;
pub use entity::{Entity, EntityKind, utf16_len};
pub use passerelle_api::html::{HtmlNestingError, check_html_nesting};
pub use to_matrix::{Formatted, telegram_to_matrix};
pub use to_telegram::{escape_telegram, matrix_to_telegram};
