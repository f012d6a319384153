//! Slack mrkdwn <-> Matrix HTML (`org.matrix.custom.html`). Pure: no I/O,
//! no state; each direction is one function call.
//!
//! - [`slack_to_matrix`]: a Slack message's `text` to a Matrix body and
//!   formatted body, mentions resolved by a [`Resolver`] the caller fills in
//!   beforehand.
//! - [`matrix_to_slack`]: a Matrix message to mrkdwn, mention pills mapped
//!   to Slack users by a callback.
//! - [`mentioned_users`]: the Slack users a message mentions, for the Matrix
//!   event's `m.mentions`.
//! - [`check_html_nesting`]: the balance checker the tests and the fuzz
//!   target hold [`slack_to_matrix`]'s HTML to.

mod control;
mod to_matrix;
mod to_slack;

#[cfg(test)]
mod tests;

pub use control::mentioned_users;
pub use passerelle_api::html::{HtmlNestingError, check_html_nesting};
pub use to_matrix::slack_to_matrix;
pub use to_slack::matrix_to_slack;

/// A Matrix text message: the plain `body` and, when the text had any
/// formatting, the `formatted_body` in `org.matrix.custom.html`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formatted {
    pub body: String,
    pub html: Option<String>,
}

/// What [`slack_to_matrix`] needs from the bridge to turn Slack references
/// into Matrix ones.
///
/// Called while converting, once per reference, so it must answer from
/// what the caller already knows: no network I/O here. The caller collects
/// the ids first ([`mentioned_users`], or its own scan for channels),
/// fetches what it lacks, then converts.
pub trait Resolver {
    /// The Slack user `user_id` (`U123`, `W123`), or `None` if unknown.
    fn user(&self, user_id: &str) -> Option<Mention>;
    /// The Slack channel `channel_id` (`C123`, `G123`), or `None` if unknown.
    fn channel(&self, channel_id: &str) -> Option<Mention>;
}

/// A Slack user or channel as a Matrix message shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mention {
    /// The display name, without a leading `@` or `#`.
    pub name: String,
    /// The `https://matrix.to/#/...` (or `matrix:`) URL of the user's ghost
    /// or the channel's portal room; `None` shows the mention as text.
    pub matrix_link: Option<String>,
}
