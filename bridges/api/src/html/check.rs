//! A strict checker for the HTML this module writes, used by the tests and
//! the fuzz target: every tag well formed and properly nested, every `<`,
//! `>`, `"` and `&` in text escaped.

/// Why [`check_html_nesting`] rejected some HTML.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed HTML at byte {at}: {problem}")]
pub struct HtmlNestingError {
    pub at: usize,
    pub problem: String,
}

/// Elements that have no end tag.
const VOID: &[&str] = &["br", "hr", "img"];

/// Checks that `html` is a well-formed, balanced fragment of the kind
/// a module converter writes (IRC, Telegram, Slack): tags `<name attr="value">`
/// with lowercase names, void elements only `br`, `hr` and `img`, every end
/// tag closing the innermost open element, nothing left open, and text with
/// `<`, `>`, `"` and `&` written as references.
pub fn check_html_nesting(html: &str) -> Result<(), HtmlNestingError> {
    let fail = |at: usize, problem: String| Err(HtmlNestingError { at, problem });
    let bytes = html.as_bytes();
    let mut open: Vec<&str> = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match bytes[pos] {
            b'<' => {
                let Some(len) = html[pos..].find('>') else {
                    return fail(pos, "tag without `>`".into());
                };
                let tag = &html[pos + 1..pos + len];
                if let Some(name) = tag.strip_prefix('/') {
                    match open.pop() {
                        Some(top) if top == name => {}
                        Some(top) => return fail(pos, format!("`</{name}>` closes `<{top}>`")),
                        None => return fail(pos, format!("`</{name}>` closes nothing")),
                    }
                } else {
                    let name = check_start_tag(tag)
                        .map_err(|problem| HtmlNestingError { at: pos, problem })?;
                    if !VOID.contains(&name) {
                        open.push(name);
                    }
                }
                pos += len + 1;
            }
            b'>' => return fail(pos, "unescaped `>` in text".into()),
            b'"' => return fail(pos, "unescaped `\"` in text".into()),
            b'&' => {
                pos += check_reference(&html[pos..])
                    .map_err(|problem| HtmlNestingError { at: pos, problem })?
            }
            _ => pos += 1,
        }
    }
    match open.last() {
        Some(name) => fail(html.len(), format!("`<{name}>` never closed")),
        None => Ok(()),
    }
}

fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks `name attr="value" ...` (the inside of a start tag); returns the name.
fn check_start_tag(tag: &str) -> Result<&str, String> {
    let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
    if !is_name(name) {
        return Err(format!("bad tag name {name:?}"));
    }
    while !attrs.is_empty() {
        let Some((attr, rest)) = attrs.split_once("=\"") else {
            return Err(format!("attribute without a quoted value in {tag:?}"));
        };
        if !is_name(attr) {
            return Err(format!("bad attribute name {attr:?}"));
        }
        let Some((value, rest)) = rest.split_once('"') else {
            return Err(format!("unterminated attribute value in {tag:?}"));
        };
        if value.contains('<') {
            return Err(format!("`<` in attribute value {value:?}"));
        }
        attrs = match rest.strip_prefix(' ') {
            Some(more) if !more.is_empty() => more,
            None if rest.is_empty() => rest,
            _ => return Err(format!("bad spacing between attributes in {tag:?}")),
        };
    }
    Ok(name)
}

/// Checks the character reference at the start of `text`; returns its length.
fn check_reference(text: &str) -> Result<usize, String> {
    let Some(end) = text.find(';') else {
        return Err("`&` that starts no reference".into());
    };
    let name = &text[1..end];
    let valid = match name.strip_prefix('#') {
        Some(hex) if hex.starts_with(['x', 'X']) => {
            hex.len() > 1 && hex[1..].bytes().all(|b| b.is_ascii_hexdigit())
        }
        Some(dec) => !dec.is_empty() && dec.bytes().all(|b| b.is_ascii_digit()),
        None => !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()),
    };
    if valid {
        Ok(end + 1)
    } else {
        Err(format!("bad reference {:?}", &text[..=end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_table() {
        let cases = [
            "",
            "plain",
            "<b>x</b>",
            "<b><i>x</i></b>y",
            "a<br>b",
            "<font data-mx-color=\"#ff0000\" color=\"#ff0000\">x</font>",
            "&amp;&lt;&gt;&quot;&nbsp;&#39;&#x1F600;",
            "<code>a</code><del>b</del>",
        ];
        for html in cases {
            assert_eq!(check_html_nesting(html), Ok(()), "{html:?}");
        }
    }

    #[test]
    fn rejects_table() {
        let cases = [
            "<b>",
            "</b>",
            "<b><i>x</b></i>",
            "<b>x</i>",
            "a > b",
            "a \" b",
            "a & b",
            "&;",
            "&#;",
            "&#xZZ;",
            "<b",
            "<B>x</B>",
            "<font color=red>x</font>",
            "<font color=\"a\"x=\"b\">y</font>",
            "<font  color=\"a\">y</font>",
            "<font color=\"a\" >y</font>",
            "<font color=\"<\">y</font>",
            "<1>x</1>",
            "< b>x</b>",
        ];
        for html in cases {
            assert!(check_html_nesting(html).is_err(), "{html:?} accepted");
        }
    }
}
