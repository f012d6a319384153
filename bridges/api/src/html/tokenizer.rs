//! A small, forgiving HTML tokenizer for the subset Matrix clients send.
//!
//! It never fails: what does not look like a tag is text, a tag cut off by the
//! end of input is dropped (as browsers do), comments and doctypes are
//! skipped, and `<script>`/`<style>` bodies are read as raw text so markup
//! inside them cannot open tags.

use std::borrow::Cow;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    /// Text with entities decoded.
    Text(Cow<'a, str>),
    /// A start tag; the name and attribute names are lowercase.
    Start {
        name: String,
        attrs: Vec<(String, String)>,
        self_closing: bool,
    },
    End {
        name: String,
    },
}

impl Token<'_> {
    /// The value of attribute `name` of a start tag.
    pub fn attr(&self, name: &str) -> Option<&str> {
        match self {
            Token::Start { attrs, .. } => attrs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str()),
            _ => None,
        }
    }
}

pub struct Tokenizer<'a> {
    src: &'a str,
    pos: usize,
    /// Inside `<script>` or `<style>`: the end tag that ends the raw text.
    raw_until: Option<&'static str>,
}

impl<'a> Tokenizer<'a> {
    pub fn new(src: &'a str) -> Self {
        Tokenizer {
            src,
            pos: 0,
            raw_until: None,
        }
    }

    /// The input not read yet.
    pub fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn raw_text(&mut self, end_tag: &'static str) -> Token<'a> {
        let rest = self.rest();
        let end = find_ascii_case_insensitive(rest, end_tag).unwrap_or(rest.len());
        self.pos += end;
        Token::Text(Cow::Borrowed(&rest[..end]))
    }

    /// At a `<`: a tag or comment, how many bytes it spans, or `None` if the
    /// `<` is just text.
    fn markup(&self) -> Option<(Option<Token<'a>>, usize)> {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        match bytes.get(1) {
            Some(b'!') if rest.starts_with("<!--") => {
                let end = rest[4..].find("-->").map_or(rest.len(), |i| 4 + i + 3);
                Some((None, end))
            }
            Some(b'!' | b'?') => Some((None, rest.find('>').map_or(rest.len(), |i| i + 1))),
            Some(b'/') if bytes.get(2).is_some_and(u8::is_ascii_alphabetic) => {
                let name_len = tag_name_len(&rest[2..]);
                let name = rest[2..2 + name_len].to_ascii_lowercase();
                // Anything between the name and `>` in an end tag is ignored.
                let end = rest.find('>').map_or(rest.len(), |i| i + 1);
                let token = rest[..end].ends_with('>').then_some(Token::End { name });
                Some((token, end))
            }
            Some(b) if b.is_ascii_alphabetic() => Some(parse_start_tag(rest)),
            _ => None,
        }
    }
}

impl<'a> Iterator for Tokenizer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return None;
            }
            if let Some(end_tag) = self.raw_until {
                if starts_with_ascii_case_insensitive(rest, end_tag) {
                    self.raw_until = None;
                } else {
                    return Some(self.raw_text(end_tag));
                }
            }
            if rest.starts_with('<')
                && let Some((token, len)) = self.markup()
            {
                self.pos += len;
                if let Some(Token::Start {
                    name,
                    self_closing: false,
                    ..
                }) = &token
                {
                    self.raw_until = match name.as_str() {
                        "script" => Some("</script"),
                        "style" => Some("</style"),
                        _ => None,
                    };
                }
                match token {
                    Some(token) => return Some(token),
                    None => continue,
                }
            }
            // Text up to the next `<` (a `<` that starts no markup is text).
            let skip = usize::from(rest.starts_with('<'));
            let end = rest[skip..].find('<').map_or(rest.len(), |i| skip + i);
            let text = &rest[..end];
            self.pos += end;
            return Some(Token::Text(decode_entities(text)));
        }
    }
}

fn tag_name_len(s: &str) -> usize {
    s.find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(s.len())
}

/// Parses `<name attr=value ...>` at the start of `rest`.
fn parse_start_tag(rest: &str) -> (Option<Token<'_>>, usize) {
    let name_len = tag_name_len(&rest[1..]);
    let name = rest[1..1 + name_len].to_ascii_lowercase();
    let mut attrs = Vec::new();
    let mut pos = 1 + name_len;
    let bytes = rest.as_bytes();
    loop {
        while pos < bytes.len() && (bytes[pos].is_ascii_whitespace() || bytes[pos] == b'/') {
            if bytes[pos] == b'/' && bytes.get(pos + 1) == Some(&b'>') {
                let token = Token::Start {
                    name,
                    attrs,
                    self_closing: true,
                };
                return (Some(token), pos + 2);
            }
            pos += 1;
        }
        match bytes.get(pos) {
            // Cut off by the end of input: dropped, as browsers do.
            None => return (None, rest.len()),
            Some(b'>') => {
                let token = Token::Start {
                    name,
                    attrs,
                    self_closing: false,
                };
                return (Some(token), pos + 1);
            }
            Some(_) => {}
        }
        // An attribute name is anything up to `=`, whitespace, `/` or `>`
        // (a leading `=` belongs to the name, as in HTML).
        let name_start = pos;
        pos += 1;
        while pos < bytes.len()
            && !matches!(bytes[pos], b'=' | b'/' | b'>')
            && !bytes[pos].is_ascii_whitespace()
        {
            pos += 1;
        }
        let attr_name = rest[name_start..pos].to_ascii_lowercase();
        let mut after_name = pos;
        while after_name < bytes.len() && bytes[after_name].is_ascii_whitespace() {
            after_name += 1;
        }
        let mut value = String::new();
        if bytes.get(after_name) == Some(&b'=') {
            pos = after_name + 1;
            while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            match bytes.get(pos) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let Some(len) = rest[pos + 1..].find(char::from(quote)) else {
                        return (None, rest.len());
                    };
                    value = decode_entities(&rest[pos + 1..pos + 1 + len]).into_owned();
                    pos += len + 2;
                }
                _ => {
                    let start = pos;
                    while pos < bytes.len()
                        && bytes[pos] != b'>'
                        && !bytes[pos].is_ascii_whitespace()
                    {
                        pos += 1;
                    }
                    value = decode_entities(&rest[start..pos]).into_owned();
                }
            }
        }
        if !attrs
            .iter()
            .any(|(key, _): &(String, String)| *key == attr_name)
        {
            attrs.push((attr_name, value));
        }
    }
}

fn starts_with_ascii_case_insensitive(haystack: &str, prefix: &str) -> bool {
    haystack
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn find_ascii_case_insensitive(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Decodes character references: `&amp;`-style names from a small table and
/// `&#NNN;`/`&#xHH;` numbers. Unknown names stay as they are; numbers that
/// are not characters become U+FFFD. `&nbsp;` becomes U+00A0.
pub fn decode_entities(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match decode_one(rest) {
            Some((ch, len)) => {
                out.push(ch);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character a reference at the start of `s` (which starts with `&`)
/// stands for, and the reference's length.
fn decode_one(s: &str) -> Option<(char, usize)> {
    let body = &s[1..];
    if let Some(number) = body.strip_prefix('#') {
        let (digits, radix, prefix) = match number.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (number, 10, 1),
        };
        let len = digits
            .find(|c: char| !c.is_digit(radix))
            .unwrap_or(digits.len());
        if len == 0 {
            return None;
        }
        // Anything too long to be a code point is not a character anyway.
        let value = u32::from_str_radix(&digits[..len.min(8)], radix).unwrap_or(u32::MAX);
        let ch = match char::from_u32(value) {
            Some('\0') | None => char::REPLACEMENT_CHARACTER,
            Some(ch) => ch,
        };
        let semicolon = usize::from(digits[len..].starts_with(';'));
        return Some((ch, 1 + prefix + len + semicolon));
    }
    let name_len = body
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(body.len());
    if !body[name_len..].starts_with(';') {
        return None;
    }
    let ch = match &body[..name_len] {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "times" => '×',
        "divide" => '÷',
        "deg" => '°',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "shy" => '\u{ad}',
        "zwj" => '\u{200d}',
        "zwnj" => '\u{200c}',
        _ => return None,
    };
    Some((ch, 1 + name_len + 1))
}

/// Escapes text for HTML element content or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(name: &str, attrs: &[(&str, &str)]) -> Token<'static> {
        Token::Start {
            name: name.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            self_closing: false,
        }
    }

    fn end(name: &str) -> Token<'static> {
        Token::End { name: name.into() }
    }

    fn text(text: &str) -> Token<'static> {
        Token::Text(Cow::Owned(text.into()))
    }

    #[test]
    fn tokenizer_table() {
        let cases: Vec<(&str, Vec<Token>)> = vec![
            ("plain", vec![text("plain")]),
            ("<b>x</b>", vec![start("b", &[]), text("x"), end("b")]),
            (
                "<B CLASS=a>x</B >",
                vec![start("b", &[("class", "a")]), text("x"), end("b")],
            ),
            (
                "<a href=\"u?a=1&amp;b=2\" title='t'>x</a>",
                vec![
                    start("a", &[("href", "u?a=1&b=2"), ("title", "t")]),
                    text("x"),
                    end("a"),
                ],
            ),
            (
                "<font data-mx-color = #ff0000 >",
                vec![start("font", &[("data-mx-color", "#ff0000")])],
            ),
            (
                "<input disabled>",
                vec![start("input", &[("disabled", "")])],
            ),
            ("<a x=1 x=2>", vec![start("a", &[("x", "1")])]),
            ("a < b", vec![text("a "), text("< b")]),
            ("a<3", vec![text("a"), text("<3")]),
            ("<>", vec![text("<>")]),
            ("</>", vec![text("</>")]),
            ("x<!-- <b> -->y", vec![text("x"), text("y")]),
            ("<!DOCTYPE html>x", vec![text("x")]),
            ("<?xml?>x", vec![text("x")]),
            ("<!-- unterminated", vec![]),
            ("a<b", vec![text("a")]),
            ("<a href=\"x", vec![]),
            ("</b", vec![]),
            (
                "<br/><br />",
                vec![
                    Token::Start {
                        name: "br".into(),
                        attrs: vec![],
                        self_closing: true,
                    },
                    Token::Start {
                        name: "br".into(),
                        attrs: vec![],
                        self_closing: true,
                    },
                ],
            ),
            (
                "<script>if (a<b) x()</script>y",
                vec![
                    start("script", &[]),
                    text("if (a<b) x()"),
                    end("script"),
                    text("y"),
                ],
            ),
            (
                "<style>b{}</STYLE>",
                vec![start("style", &[]), text("b{}"), end("style")],
            ),
            (
                "<script><b>x</script>",
                vec![start("script", &[]), text("<b>x"), end("script")],
            ),
            (
                "<script>never closed <b>",
                vec![start("script", &[]), text("never closed <b>")],
            ),
            ("&lt;b&gt; &amp;amp;", vec![text("<b> &amp;")]),
        ];
        for (input, want) in cases {
            let got: Vec<_> = Tokenizer::new(input).collect();
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn entity_table() {
        let cases: &[(&str, &str)] = &[
            ("&amp;&lt;&gt;&quot;&#39;&apos;", "&<>\"''"),
            ("&#65;&#x42;&#X43;&#0068;", "ABCD"),
            ("&#65", "A"),
            ("&#x1F600;", "😀"),
            ("&nbsp;", "\u{a0}"),
            ("&hellip;&mdash;", "…—"),
            ("&#0;", "\u{fffd}"),
            ("&#xD800;", "\u{fffd}"),
            ("&#99999999999999;", "\u{fffd}"),
            ("&#x110000;", "\u{fffd}"),
            ("&#;&#x;", "&#;&#x;"),
            ("&unknown; &amp", "&unknown; &amp"),
            ("AT&T", "AT&T"),
            ("&", "&"),
            ("&&amp;", "&&"),
            ("é&eacute;", "é&eacute;"),
        ];
        for (input, want) in cases {
            assert_eq!(decode_entities(input), *want, "{input:?}");
        }
    }
}
