//! IRC lines in both directions: [`IrcMessage`] parsed from the server,
//! [`Outgoing`] built by us and serialised so that no parameter can ever
//! become a second line.

use std::borrow::Cow;

use irc_proto::message::Tag;
use irc_proto::{Command, Message, Prefix};

use super::SendError;

/// One line received from the server, decoded and split.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct IrcMessage {
    /// IRCv3 message tags, values unescaped, in the order received.
    pub tags: Vec<Tag>,
    /// The source: a server name or `nick!user@host`.
    pub prefix: Option<Prefix>,
    /// The command, upper-cased (`PRIVMSG`), or a three-digit numeric (`001`).
    pub command: String,
    /// Every parameter, the trailing one included, without its `:`.
    pub params: Vec<String>,
    /// The `time` tag (server-time) as milliseconds since the Unix epoch.
    pub server_time_ms: Option<i64>,
}

impl IrcMessage {
    /// Splits one line (without or with its line ending). `None` for an empty
    /// line or one without a command.
    ///
    /// We split lines ourselves rather than with `irc_proto::Message::from_str`:
    /// that parser rejects valid lines it cannot type (a `MODE` whose mode
    /// string it does not understand, since it does not know the server's
    /// CHANMODES) and merges parameters past the 14th. The typed view is
    /// still there: [`IrcMessage::to_proto`].
    pub fn parse(line: &str) -> Option<IrcMessage> {
        let mut rest = line.trim_end_matches(['\r', '\n']).trim_start_matches(' ');
        let mut tags = Vec::new();
        if let Some(after) = rest.strip_prefix('@') {
            let (raw, after) = after.split_once(' ')?;
            for item in raw.split(';').filter(|s| !s.is_empty()) {
                tags.push(match item.split_once('=') {
                    Some((key, value)) if !value.is_empty() => {
                        Tag(key.to_owned(), Some(unescape_tag_value(value)))
                    }
                    Some((key, _)) => Tag(key.to_owned(), None),
                    None => Tag(item.to_owned(), None),
                });
            }
            rest = after.trim_start_matches(' ');
        }
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (raw, after) = after.split_once(' ')?;
            prefix = Some(Prefix::new_from_str(raw));
            rest = after.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param.to_owned());
            rest = after;
        }
        let server_time_ms = tags
            .iter()
            .rev()
            .find(|t| t.0 == "time")
            .and_then(|t| t.1.as_deref())
            .and_then(parse_server_time);
        Some(IrcMessage {
            tags,
            prefix,
            command: command.to_ascii_uppercase(),
            params,
            server_time_ms,
        })
    }

    /// The value of a tag; `Some("")` for a tag without value. The last one
    /// wins when a key repeats.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .rev()
            .find(|t| t.0 == key)
            .map(|t| t.1.as_deref().unwrap_or(""))
    }

    pub fn param(&self, index: usize) -> Option<&str> {
        self.params.get(index).map(String::as_str)
    }

    /// The nick of a `nick!user@host` source.
    pub fn source_nick(&self) -> Option<&str> {
        match &self.prefix {
            Some(Prefix::Nickname(nick, _, _)) => Some(nick),
            _ => None,
        }
    }

    /// The numeric reply code, for `001` to `999`.
    pub fn numeric(&self) -> Option<u16> {
        (self.command.len() == 3)
            .then(|| self.command.parse().ok())
            .flatten()
    }

    /// The same line as irc-proto's typed [`Message`], for matching on
    /// [`Command`] variants; a command irc-proto cannot type becomes
    /// [`Command::Raw`].
    pub fn to_proto(&self) -> Message {
        let args: Vec<&str> = self.params.iter().map(String::as_str).collect();
        let command = Command::new(&self.command, args)
            .unwrap_or_else(|_| Command::Raw(self.command.clone(), self.params.clone()));
        Message {
            tags: (!self.tags.is_empty()).then(|| self.tags.clone()),
            prefix: self.prefix.clone(),
            command,
        }
    }
}

/// Decodes one line: UTF-8 when it is valid UTF-8, else the fallback
/// encoding (IRC has no charset negotiation; old clients send latin1).
pub fn decode_line<'a>(bytes: &'a [u8], fallback: &'static encoding_rs::Encoding) -> Cow<'a, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => fallback.decode_without_bom_handling(bytes).0,
    }
}

fn unescape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => break,
        }
    }
    out
}

/// `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)` to milliseconds since the epoch.
pub(crate) fn parse_server_time(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &value[start..i.min(start + 3)];
        millis = frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_minutes = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = digits(i + 1..i + 3)? * 60 + digits(i + 4..i + 6)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A line to send, as structured data: tags, a command and parameters.
///
/// Serialisation strips CR, LF and NUL from the command and every
/// parameter, and escapes tag values, so whatever a Matrix user typed, one
/// `Outgoing` is exactly one line on the wire. [`Outgoing::validate`] (run by
/// every `Handle` method) also rejects parameters that would shift the
/// others: an empty, spaced or `:`-prefixed parameter anywhere but last.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    tags: Vec<Tag>,
    command: String,
    params: Vec<String>,
}

impl Outgoing {
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            tags: Vec::new(),
            command: command.into(),
            params: Vec::new(),
        }
    }

    /// Appends a parameter; the last one may contain spaces.
    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.params.push(param.into());
        self
    }

    /// Adds a message tag (`+draft/reply`, `+draft/react`, `label`...);
    /// needs the `message-tags` capability.
    pub fn tag(mut self, key: impl Into<String>, value: Option<String>) -> Self {
        self.tags.push(Tag(key.into(), value));
        self
    }

    pub fn with_tags(mut self, tags: Vec<Tag>) -> Self {
        self.tags.extend(tags);
        self
    }

    pub fn privmsg(target: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new("PRIVMSG").param(target).param(text)
    }

    pub fn notice(target: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new("NOTICE").param(target).param(text)
    }

    pub fn join(channel: impl Into<String>, key: Option<String>) -> Self {
        let join = Self::new("JOIN").param(channel);
        match key {
            Some(key) => join.param(key),
            None => join,
        }
    }

    pub fn part(channel: impl Into<String>, reason: Option<String>) -> Self {
        let part = Self::new("PART").param(channel);
        match reason {
            Some(reason) => part.param(reason),
            None => part,
        }
    }

    pub fn nick(nick: impl Into<String>) -> Self {
        Self::new("NICK").param(nick)
    }

    pub fn quit(message: Option<String>) -> Self {
        let quit = Self::new("QUIT");
        match message {
            Some(message) => quit.param(message),
            None => quit,
        }
    }

    /// A message made of tags only (reactions, typing notifications).
    pub fn tagmsg(target: impl Into<String>, tags: Vec<Tag>) -> Self {
        Self::new("TAGMSG").param(target).with_tags(tags)
    }

    pub fn command(&self) -> &str {
        &self.command
    }

    pub fn params(&self) -> &[String] {
        &self.params
    }

    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// Checks that the line means what its parts say, and fits in
    /// `max_line` bytes (CR LF included, tags excluded: the IRC limit is
    /// 512, or ISUPPORT `LINELEN`).
    pub fn validate(&self, max_line: usize) -> Result<(), SendError> {
        let invalid = |why: &'static str| Err(SendError::Invalid(why));
        if self.command.is_empty() || !self.command.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return invalid("the command must be letters or digits");
        }
        if let Some((_, middle)) = self.params.split_last() {
            for param in middle {
                let param = strip_controls(param);
                if param.is_empty() || param.starts_with(':') || param.contains(' ') {
                    return invalid(
                        "only the last parameter may be empty, start with ':' or contain spaces",
                    );
                }
            }
        }
        for Tag(key, _) in &self.tags {
            if !is_tag_key(key) {
                return invalid(
                    "a tag key must be letters, digits, '-', '/', '.', or a leading '+'",
                );
            }
        }
        let (tags_len, line_len) = self.lengths();
        if line_len > max_line {
            return Err(SendError::TooLong {
                len: line_len,
                max: max_line,
            });
        }
        // IRCv3 message-tags: 4094 bytes of client tags; servers add theirs.
        if tags_len > 4096 {
            return Err(SendError::TooLong {
                len: tags_len,
                max: 4096,
            });
        }
        Ok(())
    }

    /// The bytes to write: one line ending in CR LF, whatever the parts hold.
    pub fn to_wire(&self) -> Vec<u8> {
        self.serialise().into_bytes()
    }

    fn serialise(&self) -> String {
        let mut line = String::with_capacity(
            self.command.len() + self.params.iter().map(|p| p.len() + 2).sum::<usize>() + 2,
        );
        if !self.tags.is_empty() {
            line.push('@');
            for (i, Tag(key, value)) in self.tags.iter().enumerate() {
                if i > 0 {
                    line.push(';');
                }
                line.extend(key.chars().filter(|c| is_tag_key_char(*c)));
                if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                    line.push('=');
                    escape_tag_value(&mut line, value);
                }
            }
            line.push(' ');
        }
        line.push_str(&strip_controls(&self.command));
        let last = self.params.len().saturating_sub(1);
        for (i, param) in self.params.iter().enumerate() {
            let param = strip_controls(param);
            line.push(' ');
            if i == last && (param.is_empty() || param.contains(' ') || param.starts_with(':')) {
                line.push(':');
            }
            line.push_str(&param);
        }
        line.push_str("\r\n");
        line
    }

    /// (tags part with its '@' and space, the rest with CR LF).
    fn lengths(&self) -> (usize, usize) {
        let line = self.serialise();
        let tags = if line.starts_with('@') {
            line.find(' ').map_or(0, |i| i + 1)
        } else {
            0
        };
        (tags, line.len() - tags)
    }
}

/// Removes the characters that end an IRC line (and NUL, which C servers
/// treat as the end of the string).
fn strip_controls(s: &str) -> Cow<'_, str> {
    if s.contains(['\r', '\n', '\0']) {
        Cow::Owned(
            s.chars()
                .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

fn is_tag_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '.' | '+')
}

fn is_tag_key(key: &str) -> bool {
    let name = key.strip_prefix('+').unwrap_or(key);
    !name.is_empty() && name.chars().all(|c| c != '+' && is_tag_key_char(c))
}

fn escape_tag_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\0' => {}
            c => out.push(c),
        }
    }
}

impl std::fmt::Display for Outgoing {
    /// The line without its CR LF, for logs at debug level.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = self.serialise();
        f.write_str(line.trim_end_matches("\r\n"))
    }
}

/// Writes `a,b,c` JOIN lines for rejoining, each under `max` bytes.
pub(crate) fn join_lines(channels: &[(String, Option<String>)], max: usize) -> Vec<Outgoing> {
    // Keyed channels first, so that the keys line up with their channels.
    let mut sorted: Vec<&(String, Option<String>)> = channels.iter().collect();
    sorted.sort_by_key(|(_, key)| key.is_none());
    let mut lines = Vec::new();
    let (mut names, mut keys) = (String::new(), String::new());
    for (name, key) in sorted {
        let extra = name.len() + key.as_ref().map_or(0, |k| k.len() + 1) + 1;
        if !names.is_empty() && "JOIN ".len() + names.len() + keys.len() + extra + 3 > max {
            lines.push(join_line(&names, &keys));
            names.clear();
            keys.clear();
        }
        if !names.is_empty() {
            names.push(',');
        }
        names.push_str(name);
        if let Some(key) = key {
            if !keys.is_empty() {
                keys.push(',');
            }
            keys.push_str(key);
        }
    }
    if !names.is_empty() {
        lines.push(join_line(&names, &keys));
    }
    lines
}

fn join_line(names: &str, keys: &str) -> Outgoing {
    let line = Outgoing::new("JOIN").param(names);
    if keys.is_empty() {
        line
    } else {
        line.param(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(out: &Outgoing) -> String {
        String::from_utf8(out.to_wire()).unwrap()
    }

    #[test]
    fn parses_tags_prefix_and_params() {
        let msg = IrcMessage::parse(
            "@time=2011-10-19T16:40:51.620Z;msgid=abc;+draft/reply=x\\sy;flag \
             :nick!user@host privmsg #chan :hello  there\r\n",
        )
        .unwrap();
        assert_eq!(msg.command, "PRIVMSG");
        assert_eq!(msg.params, ["#chan", "hello  there"]);
        assert_eq!(msg.source_nick(), Some("nick"));
        assert_eq!(msg.tag("msgid"), Some("abc"));
        assert_eq!(msg.tag("+draft/reply"), Some("x y"));
        assert_eq!(msg.tag("flag"), Some(""));
        assert_eq!(msg.tag("missing"), None);
        assert_eq!(msg.server_time_ms, Some(1_319_042_451_620));
    }

    #[test]
    fn parses_edge_cases() {
        type Expected<'a> = Option<(&'a str, &'a [&'a str])>;
        let table: &[(&str, Expected)] = &[
            ("PING", Some(("PING", &[]))),
            ("PING :", Some(("PING", &[""]))),
            (":srv 001 me :Welcome", Some(("001", &["me", "Welcome"]))),
            ("CMD a  b   :c :d", Some(("CMD", &["a", "b", "c :d"]))),
            ("  CMD x", Some(("CMD", &["x"]))),
            ("", None),
            (":onlyprefix", None),
            ("@a=b", None),
            (
                "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
                Some((
                    "CMD",
                    &[
                        "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14",
                        "15", "16",
                    ],
                )),
            ),
        ];
        for (line, expected) in table {
            let parsed = IrcMessage::parse(line);
            match expected {
                None => assert!(parsed.is_none(), "{line:?} -> {parsed:?}"),
                Some((command, params)) => {
                    let parsed = parsed.unwrap_or_else(|| panic!("{line:?} did not parse"));
                    assert_eq!(parsed.command, *command, "{line:?}");
                    assert_eq!(parsed.params, *params, "{line:?}");
                }
            }
        }
    }

    #[test]
    fn typed_view_falls_back_to_raw() {
        let msg = IrcMessage::parse(":a!b@c PRIVMSG #x :hi").unwrap();
        assert_eq!(
            msg.to_proto().command,
            Command::PRIVMSG("#x".into(), "hi".into())
        );
        let msg = IrcMessage::parse(":srv MODE #x +Z").unwrap();
        assert!(matches!(
            msg.to_proto().command,
            Command::ChannelMODE(..) | Command::Raw(..)
        ));
    }

    #[test]
    fn server_time() {
        let table = [
            ("1970-01-01T00:00:00.000Z", Some(0)),
            ("1970-01-01T00:00:01Z", Some(1000)),
            ("2000-02-29T12:00:00.5Z", Some(951_825_600_500)),
            ("2024-12-31T23:59:59.999999Z", Some(1_735_689_599_999)),
            ("2024-01-01T01:00:00+01:00", Some(1_704_067_200_000)),
            ("1969-12-31T23:59:59Z", Some(-1000)),
            ("2024-13-01T00:00:00Z", None),
            ("2024-01-01 00:00:00Z", None),
            ("garbage", None),
            ("2024-01-01T00:00:00.Z", None),
        ];
        for (value, expected) in table {
            assert_eq!(parse_server_time(value), expected, "{value}");
        }
    }

    #[test]
    fn decodes_invalid_utf8_with_the_fallback() {
        let latin1 = b":a!b@c PRIVMSG #x :caf\xe9 \x80";
        assert_eq!(
            decode_line(latin1, encoding_rs::WINDOWS_1252),
            ":a!b@c PRIVMSG #x :café €"
        );
        let utf8 = ":a!b@c PRIVMSG #x :café".as_bytes();
        assert!(matches!(
            decode_line(utf8, encoding_rs::WINDOWS_1252),
            Cow::Borrowed(_)
        ));
        assert_eq!(decode_line(b"caf\xe9", encoding_rs::UTF_8), "caf\u{fffd}");
    }

    #[test]
    fn a_parameter_never_becomes_a_second_line() {
        for text in [
            "a\r\nQUIT :x",
            "a\rQUIT :x",
            "a\nQUIT :x",
            "a\0\r\n\r\nQUIT :x",
        ] {
            let line = wire(&Outgoing::privmsg("#chan", text));
            assert_eq!(line, "PRIVMSG #chan :aQUIT :x\r\n");
            assert_eq!(line.matches(['\r', '\n']).count(), 2);
            assert_eq!(
                IrcMessage::parse(&line).unwrap().params,
                ["#chan", "aQUIT :x"]
            );
        }
        let line = wire(&Outgoing::privmsg("#chan\r\nQUIT", "x"));
        assert_eq!(line, "PRIVMSG #chanQUIT x\r\n");
        let line = wire(&Outgoing::new("PRIV\nMSG").param("x"));
        assert_eq!(line, "PRIVMSG x\r\n");
        let tagged = Outgoing::tagmsg(
            "#c",
            vec![
                Tag("+draft/react".into(), Some("a\r\n; \\\0b".into())),
                Tag("+bad\r\nkey".into(), None),
            ],
        );
        assert_eq!(
            wire(&tagged),
            "@+draft/react=a\\r\\n\\:\\s\\\\b;+badkey TAGMSG #c\r\n"
        );
    }

    #[test]
    fn trailing_colon_only_when_needed() {
        assert_eq!(wire(&Outgoing::nick("alice")), "NICK alice\r\n");
        assert_eq!(
            wire(&Outgoing::privmsg("#c", "hi you")),
            "PRIVMSG #c :hi you\r\n"
        );
        assert_eq!(wire(&Outgoing::privmsg("#c", ":)")), "PRIVMSG #c ::)\r\n");
        assert_eq!(wire(&Outgoing::privmsg("#c", "")), "PRIVMSG #c :\r\n");
        assert_eq!(wire(&Outgoing::quit(None)), "QUIT\r\n");
    }

    #[test]
    fn validate_rejects_shifting_parameters() {
        let invalid = [
            Outgoing::privmsg("#a b", "x"),
            Outgoing::privmsg("", "x"),
            Outgoing::privmsg(":#a", "x"),
            Outgoing::privmsg("\r\n", "x"),
            Outgoing::new("PRIV MSG").param("x"),
            Outgoing::new(""),
            Outgoing::tagmsg("#a", vec![Tag("a;b".into(), None)]),
            Outgoing::tagmsg("#a", vec![Tag("+".into(), None)]),
        ];
        for out in invalid {
            assert!(
                matches!(out.validate(512), Err(SendError::Invalid(_))),
                "{out:?}"
            );
        }
        Outgoing::privmsg("#a", "b c :d").validate(512).unwrap();
        Outgoing::tagmsg("#a", vec![Tag("+draft/react".into(), Some("👍".into()))])
            .validate(512)
            .unwrap();
    }

    #[test]
    fn validate_checks_length_without_tags() {
        let text = format!("a {}", "x".repeat(510 - "PRIVMSG #c :a ".len()));
        Outgoing::privmsg("#c", text.clone()).validate(512).unwrap();
        Outgoing::privmsg("#c", text.clone())
            .tag("+draft/reply", Some("y".repeat(100)))
            .validate(512)
            .unwrap();
        let err = Outgoing::privmsg("#c", text + "x")
            .validate(512)
            .unwrap_err();
        assert_eq!(err, SendError::TooLong { len: 513, max: 512 });
    }

    #[test]
    fn join_lines_pack_channels_and_keys() {
        let channels = vec![
            ("#a".to_owned(), None),
            ("#k".to_owned(), Some("secret".to_owned())),
            ("#b".to_owned(), None),
        ];
        let lines: Vec<String> = join_lines(&channels, 512).iter().map(wire).collect();
        assert_eq!(lines, ["JOIN #k,#a,#b secret\r\n"]);
        let many: Vec<(String, Option<String>)> = (0..100)
            .map(|i| (format!("#channel{i:03}"), None))
            .collect();
        let lines = join_lines(&many, 512);
        assert!(lines.len() > 1);
        let mut seen = 0;
        for line in &lines {
            assert!(line.to_wire().len() <= 512);
            seen += line.params()[0].split(',').count();
        }
        assert_eq!(seen, 100);
    }
}
