//! The server `msgid`s of recently bridged IRC messages, each with the
//! remote id its message was recorded under, so that an IRCv3 reply or
//! reaction (`+draft/reply=<msgid>`) finds its Matrix event.
//!
//! Our remote ids are `<msgid>|<nick>`, and the reply tag carries only the
//! msgid: the nick part comes from here. Only ids and nicks are kept, in
//! memory and bounded; a reply to a message the bridge no longer remembers
//! (older, or from before a restart) is bridged as a plain message.

use std::collections::{HashMap, VecDeque};

/// How many msgids are remembered per network.
pub const REMEMBERED: usize = 4096;

/// A bounded map msgid -> remote id; the oldest entries go first.
#[derive(Debug)]
pub struct RecentMsgids {
    capacity: usize,
    ids: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Default for RecentMsgids {
    fn default() -> Self {
        Self::with_capacity(REMEMBERED)
    }
}

impl RecentMsgids {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ids: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers that the message `msgid` was recorded as `remote_id`.
    pub fn insert(&mut self, msgid: &str, remote_id: &str) {
        if self
            .ids
            .insert(msgid.to_owned(), remote_id.to_owned())
            .is_some()
        {
            return;
        }
        self.order.push_back(msgid.to_owned());
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
    }

    /// The remote id of the message `msgid`, if it is remembered.
    pub fn get(&self, msgid: &str) -> Option<&str> {
        self.ids.get(msgid).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_are_forgotten_first() {
        let mut recent = RecentMsgids::with_capacity(2);
        recent.insert("a", "a|carol");
        recent.insert("b", "b|dave");
        recent.insert("a", "a|carol");
        assert_eq!(recent.get("a"), Some("a|carol"));
        recent.insert("c", "c|erin");
        assert_eq!(recent.get("a"), None);
        assert_eq!(recent.get("b"), Some("b|dave"));
        assert_eq!(recent.get("c"), Some("c|erin"));
        assert_eq!(recent.ids.len(), 2);
        assert_eq!(recent.order.len(), 2);
    }
}
