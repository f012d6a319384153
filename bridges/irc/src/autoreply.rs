//! What the bridge bot answers when an IRC user writes to it privately: one
//! notice saying what it is and how to reach Matrix users.
//!
//! It never answers a NOTICE (RFC 1459: automatic replies go as NOTICEs and
//! must not be answered), and answers each nick at most once per
//! [`EVERY`], so two bots writing to each other cannot loop, and a flood of
//! messages does not become a flood of answers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::NetworkConfig;

/// A nick gets at most one answer this often.
pub const EVERY: Duration = Duration::from_secs(300);
/// Nicks answered within [`EVERY`] that are remembered at once; past this
/// (a flood of new nicks), nobody more is answered until some expire.
pub const TRACKED: usize = 256;

/// Who was answered when.
#[derive(Debug, Default)]
pub struct AutoReply {
    answered: HashMap<String, Instant>,
}

impl AutoReply {
    /// Whether to answer `nick` (casefolded) at `now`; if so, it counts as
    /// answered from then on.
    pub fn should_answer(&mut self, nick: &str, now: Instant) -> bool {
        self.answered
            .retain(|_, at| now.saturating_duration_since(*at) < EVERY);
        if self.answered.contains_key(nick) || self.answered.len() >= TRACKED {
            return false;
        }
        self.answered.insert(nick.to_owned(), now);
        true
    }
}

/// Whether a private message to the bot gets an answer at all: a PRIVMSG
/// with text, or a `/me`; not a NOTICE, and not a CTCP query (VERSION,
/// PING…), which clients send by themselves.
pub fn answers(command: &str, text: &str) -> bool {
    command == "PRIVMSG"
        && (!text.starts_with('\u{1}') || text.starts_with("\u{1}ACTION "))
        && !text.trim().is_empty()
}

/// The answer, one line.
pub fn text(config: &NetworkConfig) -> String {
    let how = if config.puppets {
        let example = crate::nick::from_template(&config.nick_template, "alice", "alice", 30);
        format!(
            "Matrix users in the bridged channels have their own nicks here (like {example}): \
             write to them directly, and they get your message in Matrix."
        )
    } else {
        "Matrix users speak in the bridged channels through me, as <name> text; \
         write to them there."
            .to_owned()
    };
    format!("I am the bot of a Matrix bridge (Passerelle) and do not read private messages. {how}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_nick_at_most_once_per_period() {
        let mut replies = AutoReply::default();
        let start = Instant::now();
        assert!(replies.should_answer("carol", start));
        assert!(!replies.should_answer("carol", start + Duration::from_secs(1)));
        assert!(replies.should_answer("dave", start + Duration::from_secs(1)));
        assert!(!replies.should_answer("carol", start + EVERY - Duration::from_secs(1)));
        assert!(replies.should_answer("carol", start + EVERY));
    }

    #[test]
    fn a_flood_of_nicks_is_not_answered_past_the_cap() {
        let mut replies = AutoReply::default();
        let now = Instant::now();
        for n in 0..TRACKED {
            assert!(replies.should_answer(&format!("bot{n}"), now));
        }
        assert!(!replies.should_answer("one-more", now));
        assert!(replies.should_answer("one-more", now + EVERY));
    }

    #[test]
    fn only_messages_people_write_are_answered() {
        assert!(answers("PRIVMSG", "hello?"));
        assert!(answers("PRIVMSG", "\u{1}ACTION waves\u{1}"));
        assert!(!answers("NOTICE", "hello?"));
        assert!(!answers("PRIVMSG", "\u{1}VERSION\u{1}"));
        assert!(!answers("PRIVMSG", "  "));
    }

    #[test]
    fn the_answer_shows_the_puppet_nicks() {
        let mut config: NetworkConfig =
            serde_json::from_value(serde_json::json!({"host": "irc.test"})).unwrap();
        let text = text(&config);
        assert!(text.contains("(like alice[m])"), "{text}");
        assert!(text.len() < 300, "one IRC line: {text}");
        config.puppets = false;
        let text = super::text(&config);
        assert!(text.contains("through me"), "{text}");
    }
}
