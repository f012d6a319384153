//! Slack's control sequences (`<@U123>`, `<#C123|general>`, `<!here>`,
//! `<https://x|text>`) and its three escapes (`&amp;`, `&lt;`, `&gt;`).

use std::borrow::Cow;

/// A control sequence, its parts still escaped as Slack sent them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sequence<'a> {
    /// `<@U123>` or `<@U123|name>`.
    User { id: &'a str, label: Option<&'a str> },
    /// `<#C123>` or `<#C123|general>`.
    Channel { id: &'a str, label: Option<&'a str> },
    /// `<!here>`, `<!subteam^S123|@team>`, `<!date^1392734382^{date}|Feb 18>`:
    /// the command, what follows its first `^` (empty if nothing), the label.
    Special {
        command: &'a str,
        args: &'a str,
        label: Option<&'a str>,
    },
    /// `<https://x>`, `<mailto:a@b|a@b>`, any `<scheme:...>`.
    Link {
        url: &'a str,
        label: Option<&'a str>,
    },
}

/// The control sequence at the start of `text` (which starts with `<`), and
/// its length with the brackets. `None` when the `<` starts none: no `>` on
/// the same line, another `<` first, nothing inside, or a target that is no
/// mention, command or URL. Slack escapes every `<` a person types, so in
/// practice that is text written by a bot.
pub(super) fn sequence_at(text: &str) -> Option<(Sequence<'_>, usize)> {
    let inner = text.strip_prefix('<')?;
    let end = inner.find(['>', '<', '\n'])?;
    if !inner[end..].starts_with('>') {
        return None;
    }
    let inner = &inner[..end];
    let (target, label) = match inner.split_once('|') {
        Some((target, label)) => (target, Some(label).filter(|l| !l.is_empty())),
        None => (inner, None),
    };
    let sequence = if let Some(id) = target.strip_prefix('@') {
        Sequence::User { id, label }
    } else if let Some(id) = target.strip_prefix('#') {
        Sequence::Channel { id, label }
    } else if let Some(rest) = target.strip_prefix('!') {
        let (command, args) = rest.split_once('^').unwrap_or((rest, ""));
        Sequence::Special {
            command,
            args,
            label,
        }
    } else if has_scheme(target) {
        Sequence::Link { url: target, label }
    } else {
        return None;
    };
    let id = match sequence {
        Sequence::User { id, .. } | Sequence::Channel { id, .. } => id,
        Sequence::Special { command, .. } => command,
        Sequence::Link { .. } => "x",
    };
    (!id.is_empty() && !id.contains(char::is_whitespace)).then_some((sequence, end + 2))
}

/// Whether `target` starts with a URI scheme and its colon (`https:`).
fn has_scheme(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// The Slack user ids that `<@U…>` sequences in `text` mention, each once,
/// in order: what the caller resolves to Matrix users for the event's
/// `m.mentions`.
pub fn mentioned_users(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        match sequence_at(rest) {
            Some((Sequence::User { id, .. }, len)) => {
                let id = decode(id);
                if !ids.iter().any(|known| *known == id) {
                    ids.push(id.into_owned());
                }
                rest = &rest[len..];
            }
            Some((_, len)) => rest = &rest[len..],
            None => rest = &rest[1..],
        }
    }
    ids
}

/// Decodes Slack's three escapes. Other references stay as they are: Slack
/// escapes `&` itself, so `&amp;copy;` is the text `&copy;`, and a bare
/// `&copy;` a bot sent is shown as Slack shows it, verbatim.
pub(super) fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let (ch, len) = entity_at(rest).unwrap_or(('&', 1));
        out.push(ch);
        rest = &rest[len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character a Slack escape at the start of `text` stands for, and the
/// escape's length.
pub(super) fn entity_at(text: &str) -> Option<(char, usize)> {
    [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>')]
        .into_iter()
        .find(|(entity, _)| text.starts_with(entity))
        .map(|(entity, ch)| (ch, entity.len()))
}

/// Formats a `<!date^…>` timestamp (Unix seconds) for a sequence that has no
/// fallback text: `2014-02-18 14:39 UTC`.
pub(super) fn format_timestamp(seconds: &str) -> Option<String> {
    let seconds: i64 = seconds.trim().parse().ok()?;
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9_999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        of_day / 3_600,
        of_day % 3_600 / 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_table() {
        use Sequence::*;
        let cases: &[(&str, Option<(Sequence, usize)>)] = &[
            (
                "<@U123>",
                Some((
                    User {
                        id: "U123",
                        label: None,
                    },
                    7,
                )),
            ),
            (
                "<@U123|bob> hi",
                Some((
                    User {
                        id: "U123",
                        label: Some("bob"),
                    },
                    11,
                )),
            ),
            (
                "<#C1|general>",
                Some((
                    Channel {
                        id: "C1",
                        label: Some("general"),
                    },
                    13,
                )),
            ),
            (
                "<!here>",
                Some((
                    Special {
                        command: "here",
                        args: "",
                        label: None,
                    },
                    7,
                )),
            ),
            (
                "<!subteam^S1|@team>",
                Some((
                    Special {
                        command: "subteam",
                        args: "S1",
                        label: Some("@team"),
                    },
                    19,
                )),
            ),
            (
                "<!date^1^{date}^https://x|then>",
                Some((
                    Special {
                        command: "date",
                        args: "1^{date}^https://x",
                        label: Some("then"),
                    },
                    31,
                )),
            ),
            (
                "<https://x/?a=1&amp;b|>",
                Some((
                    Link {
                        url: "https://x/?a=1&amp;b",
                        label: None,
                    },
                    23,
                )),
            ),
            (
                "<mailto:a@b|a|b>",
                Some((
                    Link {
                        url: "mailto:a@b",
                        label: Some("a|b"),
                    },
                    16,
                )),
            ),
            ("<>", None),
            ("<@>", None),
            ("<!>", None),
            ("<@U1", None),
            ("<@U1\n>", None),
            ("<a<@U1>", None),
            ("<plain text>", None),
            ("<1http://x>", None),
            ("<@U 1>", None),
            ("x<@U1>", None),
        ];
        for (text, want) in cases {
            assert_eq!(sequence_at(text), *want, "{text:?}");
        }
    }

    #[test]
    fn mentioned_users_table() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("<@U1> and <@U2|b> and <@U1>", &["U1", "U2"]),
            ("<#C1> <!here> <https://x> &lt;@U3&gt;", &[]),
            ("<<@U4>", &["U4"]),
            ("`<@U5>`", &["U5"]),
        ];
        for (text, want) in cases {
            assert_eq!(mentioned_users(text), *want, "{text:?}");
        }
    }

    #[test]
    fn decode_table() {
        let cases = [
            ("a &amp; b &lt;c&gt;", "a & b <c>"),
            ("&amp;lt;", "&lt;"),
            ("&copy; &#60; &", "&copy; &#60; &"),
            ("&&amp;", "&&"),
            ("&am", "&am"),
        ];
        for (text, want) in cases {
            assert_eq!(decode(text), want, "{text:?}");
        }
    }

    #[test]
    fn timestamp_table() {
        let cases = [
            ("0", Some("1970-01-01 00:00 UTC")),
            ("1392734382", Some("2014-02-18 14:39 UTC")),
            ("951782400", Some("2000-02-29 00:00 UTC")),
            ("-1", Some("1969-12-31 23:59 UTC")),
            ("x", None),
            ("9223372036854775807", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(format_timestamp(text).as_deref(), want, "{text:?}");
        }
    }
}
