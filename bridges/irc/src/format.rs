//! mIRC formatting <-> Matrix HTML (`org.matrix.custom.html`). Pure: no I/O,
//! no state; each direction is one function call.
//!
//! - [`irc_to_matrix`]: an IRC message to a Matrix body and formatted body.
//! - [`matrix_to_irc`] / [`matrix_to_irc_with`]: a Matrix message to IRC
//!   text with mIRC codes, mention pills mapped to nicks by a callback.
//! - [`nick_mention_at_start`], [`irc_mention_to_matrix`], [`pill_at_start`],
//!   [`matrix_to_irc_addressed`]: "nick: hello" <-> a leading mention pill.
//! - [`check_html_nesting`]: the balance checker the tests and the fuzz
//!   target hold [`irc_to_matrix`]'s HTML to.

mod mention;
mod mirc;
mod palette;
mod to_irc;
mod to_matrix;

#[cfg(test)]
mod tests;

pub use mention::{
    LeadingPill, NickMention, irc_mention_to_matrix, matrix_to_irc_addressed, mention_pill,
    nick_mention_at_start, pill_at_start,
};
/// For cutting formatted lines (`crate::split`).
pub(crate) use mirc::atoms;
pub use passerelle_api::html::{HtmlNestingError, check_html_nesting};
pub use to_irc::{matrix_to_irc, matrix_to_irc_with};
pub use to_matrix::{Formatted, irc_to_matrix};
