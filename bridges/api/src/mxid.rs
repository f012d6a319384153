//! Matrix localparts for ghosts: lowercase, and characters a user localpart
//! cannot hold escaped as `=xx` (the spec's recommended mapping). Pure, so
//! modules can map a ghost's user id back to its remote user.

use std::fmt::Write;

/// Escapes a localpart: lowercase ASCII letters, digits and `._-/` stay,
/// everything else (including `=` itself) becomes `=xx` per UTF-8 byte.
/// Uppercase letters are lowercased first, so ids that differ only by case
/// (IRC nicks, Slack ids) share one ghost.
pub fn escape_localpart(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for ch in raw.chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-' | '/') {
            out.push(ch);
        } else {
            let mut buf = [0u8; 4];
            for byte in ch.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "={byte:02x}");
            }
        }
    }
    out
}

/// Reverses [`escape_localpart`] (up to case). Returns `None` for a malformed
/// escape.
pub fn unescape_localpart(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = escaped.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_table() {
        let cases = [
            ("alice", "alice"),
            ("Alice", "alice"),
            ("_irc_libera_nick", "_irc_libera_nick"),
            ("_irc_libera_[m]", "_irc_libera_=5bm=5d"),
            ("a=b", "a=3db"),
            ("a b", "a=20b"),
            ("é", "=c3=a9"),
            ("_slack_T0123_U0ABC", "_slack_t0123_u0abc"),
            ("nick|away", "nick=7caway"),
            ("", ""),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_localpart(raw), escaped, "escaping {raw:?}");
        }
    }

    #[test]
    fn unescape_reverses_escape_for_lowercase_input() {
        for raw in ["_irc_libera_[m]", "a=b", "é ü", "nick|away\\", "plain"] {
            assert_eq!(
                unescape_localpart(&escape_localpart(raw)).as_deref(),
                Some(raw)
            );
        }
        assert_eq!(unescape_localpart("bad=z"), None);
        assert_eq!(unescape_localpart("bad=zz"), None);
    }
}
