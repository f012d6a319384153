//! Cutting a Matrix message into IRC lines: the server relays
//! `:nick!user@host PRIVMSG target :text\r\n` in at most 512 bytes, so the
//! text of one line must leave room for a prefix we do not see.

use crate::format::atoms;

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
/// the last space that fits, else between two characters. A cut never falls
/// inside a UTF-8 character or a formatting code, and since IRC ends
/// formatting with each line, the line after a cut starts with the codes
/// that re-open the formatting in effect there (`text` follows
/// [`crate::format::matrix_to_irc_with`]'s rule: each of its lines starts
/// plain). Lines that would show nothing are dropped (IRC cannot send them).
pub fn split_lines(text: &str, budget: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.len() <= budget {
            push_visible(&mut out, String::new(), line);
        } else {
            split_line(line, budget, &mut out);
        }
    }
    out
}

/// Cuts one line longer than `budget`.
fn split_line(line: &str, budget: usize, out: &mut Vec<String>) {
    let atoms = atoms(line);
    let mut i = 0;
    loop {
        // Codes where a piece starts show nothing: the opening codes below
        // carry their effect, however many there were.
        while atoms.get(i).is_some_and(|a| a.code) {
            i += 1;
        }
        let Some(first) = atoms.get(i) else { return };
        let next = line[first.start..].chars().next();
        let mut opening = atoms[..i]
            .last()
            .map(|a| a.style_after.opening_codes(next))
            .unwrap_or_default();
        if opening.len() > budget / 2 {
            // A budget too small for its formatting keeps the text at least.
            opening.clear();
        }
        let room = budget - opening.len();
        let start = first.start;
        if line.len() - start <= room {
            push_visible(out, opening, &line[start..]);
            return;
        }
        let fit = atoms[i..].partition_point(|a| a.end - start <= room);
        // At least one character, should one not fit at all.
        let end = i + fit.max(1);
        // The last space past the middle (one just past the room counts:
        // the cut drops it), else right after the last atom that fits.
        let space = (i + 1..=end.min(atoms.len() - 1)).rev().find(|&k| {
            line.as_bytes()[atoms[k].start] == b' ' && atoms[k].start - start > room / 2
        });
        let (mut head_end, resume) = match space {
            Some(k) => (k, k + 1),
            None => (end, end),
        };
        // Codes right before the cut show nothing on this line.
        while head_end > i + 1 && atoms[head_end - 1].code {
            head_end -= 1;
        }
        push_visible(out, opening, &line[start..atoms[head_end - 1].end]);
        i = resume;
    }
}

/// Adds `opening` + `text` as a line, unless `text` shows nothing.
fn push_visible(out: &mut Vec<String>, mut opening: String, text: &str) {
    if text.chars().any(|c| !c.is_whitespace() && !c.is_control()) {
        opening.push_str(text);
        out.push(opening);
    }
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
    fn formatting_is_reopened_after_a_cut() {
        // (line, budget, pieces)
        let cases: &[(&str, usize, &[&str])] = &[
            // Bold across a cut at a space, closed further on.
            (
                "\x02aaaa bbbb cccc\x02 dd",
                12,
                &["\x02aaaa bbbb", "\x02cccc\x02 dd"],
            ),
            // Foreground and background colour.
            (
                "\x0304,05red red red",
                14,
                &["\x0304,05red red", "\x0304,05red"],
            ),
            // A hex colour.
            (
                "\x04FF8800orange orange",
                16,
                &["\x04FF8800orange", "\x04FF8800orange"],
            ),
            // Several at once, and reverse video.
            (
                "\x1d\x1f\x16\x0312abc def ghi",
                16,
                &["\x0312\x1d\x1f\x16abc def", "\x0312\x1d\x1f\x16ghi"],
            ),
            // A reset before the cut: the next line starts plain.
            (
                "\x02bold\x0f plain text here",
                12,
                &["\x02bold\x0f plain", "text here"],
            ),
            // Never inside a colour code: the whole code goes to the next line.
            ("abcdefgh\x0312ijk", 10, &["abcdefgh", "\x0312ijk"]),
            ("abcdefghi\x0312jk", 10, &["abcdefghi", "\x0312jk"]),
            // Codes right before a cut show nothing there: they move on.
            ("aaaaaaaaa\x02bbbb", 10, &["aaaaaaaaa", "\x02bbbb"]),
            // Never inside a UTF-8 character, formatting or not.
            (
                "\x1d\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
                6,
                &["\x1d\u{e9}\u{e9}", "\x1d\u{e9}\u{e9}", "\x1d\u{e9}"],
            ),
            // A comma after a reopened colour is not a background colour.
            (
                "\x0304aaaaaaaaa,5",
                12,
                &["\x0304aaaaaaaaa", "\x0304\x02\x02,5"],
            ),
            // A digit after it is text too (the code has two digits).
            ("\x033aaaaaaaaa77", 12, &["\x0303aaaaaaaaa", "\x030377"]),
            // However many codes there are, they cost only what they open.
            (
                "\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02xxxxxxxxxxxxxxxxxxxx",
                16,
                &["xxxxxxxxxxxxxxxx", "xxxx"],
            ),
            // A piece of codes only is not sent.
            ("aaaaaaaaa\x02\x02\x02", 10, &["aaaaaaaaa"]),
        ];
        for (line, budget, pieces) in cases {
            let got = split_lines(line, *budget);
            assert_eq!(got, *pieces, "{line:?} in {budget}");
            assert!(got.iter().all(|l| l.len() <= *budget), "{got:?}");
        }
        // Each line of a multi-line text starts plain, as IRC shows it.
        assert_eq!(
            split_lines("\x02one\ntwo \x02three four", 12),
            ["\x02one", "two \x02three", "\x02four"]
        );
    }

    /// The characters an IRC client shows, each with its formatting (as
    /// the codes that open it, one spelling per look); whitespace left
    /// out, as cuts drop spaces.
    fn shown(lines: &[String]) -> Vec<(char, String)> {
        let mut out = Vec::new();
        for line in lines {
            for atom in atoms(line) {
                let ch = line[atom.start..atom.end].chars().next().unwrap();
                if !atom.code && !ch.is_whitespace() {
                    out.push((ch, atom.style_after.opening_codes(None)));
                }
            }
        }
        out
    }

    #[test]
    fn random_formatted_text_keeps_every_character_and_its_look() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        const PARTS: &[&str] = &[
            "a",
            "word",
            " ",
            " ",
            "\u{e9}",
            "\u{1f642}",
            ",",
            "5",
            "12",
            "\x02",
            "\x1d",
            "\x1f",
            "\x1e",
            "\x11",
            "\x16",
            "\x0f",
            "\x03",
            "\x034",
            "\x0304,05",
            "\x0399,1",
            "\x0312,",
            "\x04FF8800",
            "\x04ff8800,000000",
            "\t",
        ];
        let mut rng = StdRng::seed_from_u64(0x5911);
        for _ in 0..2000 {
            let parts = rng.random_range(1..200);
            let line: String = (0..parts)
                .map(|_| PARTS[rng.random_range(0..PARTS.len())])
                .collect();
            // The longest opening (hex colours and every toggle) fits half.
            let budget = rng.random_range(48..120);
            let lines = split_lines(&line, budget);
            for piece in &lines {
                assert!(
                    piece.len() <= budget,
                    "{piece:?} over {budget} from {line:?}"
                );
            }
            assert_eq!(
                shown(&lines),
                shown(std::slice::from_ref(&line)),
                "{line:?} in {budget}: {lines:?}"
            );
        }
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
