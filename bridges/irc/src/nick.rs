//! IRC nicks: case mapping, sanitising Matrix names into nicks, templates.

/// RFC 1459 case mapping (the default `CASEMAPPING` of most servers):
/// `A-Z[]\~` fold to `a-z{}|^`.
pub fn casefold(name: &str) -> String {
    crate::conn::CaseMapping::Rfc1459.fold(name)
}

fn is_special(c: char) -> bool {
    matches!(c, '[' | ']' | '\\' | '`' | '_' | '^' | '{' | '|' | '}')
}

/// Makes a valid nick out of any text: letters, digits, `-` and the IRC
/// specials stay, other characters are dropped, a leading digit or `-` gets
/// a `_` in front, and the result is cut to `max_len` (empty input gives `_`).
pub fn sanitize(raw: &str, max_len: usize) -> String {
    let mut nick: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || is_special(*c))
        .collect();
    if nick.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        nick.insert(0, '_');
    }
    if nick.is_empty() {
        nick.push('_');
    }
    nick.truncate(max_len.max(1));
    nick
}

/// Renders a nick template (`{displayname}[m]`) for a Matrix user.
pub fn from_template(template: &str, displayname: &str, localpart: &str, max_len: usize) -> String {
    let rendered = template
        .replace("{displayname}", displayname)
        .replace("{localpart}", localpart);
    sanitize(&rendered, max_len)
}

/// The `n`th alternative when `nick` is taken: `nick_`, then `nick1`, `nick2`,
/// … keeping within `max_len`.
pub fn alternative(nick: &str, n: u32, max_len: usize) -> String {
    let suffix = if n == 0 {
        "_".to_owned()
    } else {
        n.to_string()
    };
    let keep = max_len.saturating_sub(suffix.len()).max(1);
    let base: String = nick.chars().take(keep).collect();
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casefold_follows_rfc1459() {
        assert_eq!(casefold("Nick[Away]\\~"), "nick{away}|^");
        assert_eq!(casefold("#Rust"), "#rust");
    }

    #[test]
    fn sanitize_table() {
        let cases = [
            ("Alice", "Alice"),
            ("Alice Smith", "AliceSmith"),
            ("Élodie", "lodie"),
            ("42", "_42"),
            ("-dash", "_-dash"),
            ("", "_"),
            ("日本", "_"),
            ("a\r\nQUIT", "aQUIT"),
            ("averyveryverylongnickname", "averyveryv"),
            ("[m]", "[m]"),
        ];
        for (raw, nick) in cases {
            assert_eq!(sanitize(raw, 10), nick, "sanitising {raw:?}");
        }
    }

    #[test]
    fn templates_and_alternatives() {
        assert_eq!(
            from_template("{displayname}[m]", "Alice B", "alice", 30),
            "AliceB[m]"
        );
        assert_eq!(from_template("mx-{localpart}", "x", "bob", 30), "mx-bob");
        assert_eq!(alternative("alice", 0, 30), "alice_");
        assert_eq!(alternative("alice", 2, 30), "alice2");
        assert_eq!(alternative("abcdefghij", 12, 10), "abcdefgh12");
    }
}
