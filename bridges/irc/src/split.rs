//! Cutting a Matrix message into IRC lines: the server relays
//! `:nick!user@host PRIVMSG target :text\r\n` in at most 512 bytes, so the
//! text of one line must leave room for a prefix we do not see.

/// Longest user part and host part we assume the server adds (USERLEN is
/// usually 10; a cloaked or IPv6 host fits in 63).
const USER_MAX: usize = 10;
const HOST_MAX: usize = 63;

/// How many bytes of text fit in one `command target :text` line from
/// `nick`, once the server has added its `:nick!user@host ` prefix.
pub fn text_budget(linelen: usize, nick: &str, command: &str, target: &str) -> usize {
    let prefix = 1 + nick.len() + 1 + USER_MAX + 1 + HOST_MAX + 1;
    let fixed = command.len() + 1 + target.len() + 2 + 2; // " :" and CRLF
    linelen.saturating_sub(prefix + fixed).max(16)
}

/// Splits `text` into lines of at most `budget` bytes: at `\n` first, then at
/// the last space that fits, else at a character boundary. Empty lines are
/// dropped (IRC cannot send them).
pub fn split_lines(text: &str, budget: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let mut rest = line.trim_end_matches('\r');
        while rest.len() > budget {
            let mut cut = budget;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let at_space = rest[..cut].rfind(' ').filter(|&i| i > budget / 2);
            let (head, tail) = match at_space {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => rest.split_at(cut),
            };
            if !head.is_empty() {
                out.push(head.to_owned());
            }
            rest = tail;
        }
        if !rest.trim().is_empty() {
            out.push(rest.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_the_server_prefix() {
        let budget = text_budget(512, "alice[m]", "PRIVMSG", "#rust");
        let line = format!(
            ":alice[m]!{}@{} PRIVMSG #rust :{}\r\n",
            "u".repeat(USER_MAX),
            "h".repeat(HOST_MAX),
            "x".repeat(budget)
        );
        assert_eq!(line.len(), 512);
    }

    #[test]
    fn split_table() {
        assert_eq!(split_lines("one\ntwo", 100), ["one", "two"]);
        assert_eq!(split_lines("a\n\n\nb\n", 100), ["a", "b"]);
        assert_eq!(split_lines("aaaa bbbb cccc", 10), ["aaaa bbbb", "cccc"]);
        assert_eq!(split_lines("abcdefghijkl", 5), ["abcde", "fghij", "kl"]);
        // Never inside a UTF-8 character.
        let lines = split_lines("ééééé", 3);
        assert!(lines.iter().all(|l| l.len() <= 3), "{lines:?}");
        assert_eq!(lines.concat(), "ééééé");
        assert!(split_lines("", 10).is_empty());
        assert_eq!(split_lines("line\r\nnext", 10), ["line", "next"]);
    }

    #[test]
    fn every_piece_fits_and_nothing_is_lost() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(40);
        for budget in [16, 50, 100, 400] {
            let lines = split_lines(&text, budget);
            assert!(lines.iter().all(|l| l.len() <= budget && !l.contains('\n')));
            let rejoined: String = lines.join(" ");
            assert_eq!(
                rejoined.split_whitespace().collect::<Vec<_>>(),
                text.split_whitespace().collect::<Vec<_>>()
            );
        }
    }
}
