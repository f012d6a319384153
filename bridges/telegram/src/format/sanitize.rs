//! Attribute values both directions write: link targets, code block
//! languages, and the Matrix user a mention pill points at.

/// Schemes a link may have in Matrix HTML written from Telegram.
pub(super) const MATRIX_SCHEMES: &[&str] = &["https", "http", "mailto"];

/// Schemes a link may have in Telegram HTML written from Matrix; `tg:` for
/// `tg://user?id=` mentions and links into Telegram.
pub(super) const TELEGRAM_SCHEMES: &[&str] = &["https", "http", "mailto", "tg"];

/// `url` as a link target, if its scheme is one of `schemes` (compared
/// without case). Whitespace around it is dropped; whitespace and control
/// characters inside are percent-encoded so the target stays one word.
/// The result is not escaped: the writer escapes it into the attribute.
pub(super) fn safe_href(url: &str, schemes: &[&str]) -> Option<String> {
    let url = url.trim();
    let (scheme, _) = url.split_once(':')?;
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return None;
    }
    let mut href = String::with_capacity(url.len());
    for c in url.chars() {
        if c.is_whitespace() || c.is_control() {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                href.push_str(&format!("%{byte:02X}"));
            }
        } else {
            href.push(c);
        }
    }
    Some(href)
}

/// Whether `text` starts with a URL scheme (`mailto:`, `tg://`), as opposed
/// to a bare domain, possibly with a port (`example.org:8080/x`).
pub(super) fn has_scheme(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.starts_with(|c: char| c.is_ascii_digit())
}

/// A code block's language as a class name part (`language-<this>`): kept
/// when it is a plain identifier (`rust`, `c++`, `objective-c`, `c#`),
/// dropped otherwise, since highlighting is not worth odd markup.
pub(super) fn code_language(language: &str) -> Option<String> {
    let language = language.trim();
    let plain = !language.is_empty()
        && language.len() <= 32
        && language
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '.' | '#'));
    plain.then(|| language.to_owned())
}

/// The language of a `<code class="language-x">` element.
pub(super) fn class_language(class: &str) -> Option<String> {
    class
        .split_ascii_whitespace()
        .find_map(|class| class.strip_prefix("language-"))
        .and_then(code_language)
}

/// The Matrix user a mention pill's link points at (surrounding spaces
/// ignored).
pub(super) fn pill_target(href: &str) -> Option<String> {
    passerelle_api::html::pill_target(href.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_href_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "https://example.org/a?b=1&c=2",
                Some("https://example.org/a?b=1&c=2"),
            ),
            ("HTTP://EXAMPLE.ORG", Some("HTTP://EXAMPLE.ORG")),
            ("  https://x.org/a b\n", Some("https://x.org/a%20b")),
            ("https://x.org/\u{7}", Some("https://x.org/%07")),
            ("mailto:a@b.c", Some("mailto:a@b.c")),
            ("javascript:alert(1)", None),
            ("JavaScript:alert(1)", None),
            (" javascript:alert(1)", None),
            ("java\tscript:alert(1)", None),
            ("data:text/html,<b>", None),
            ("vbscript:x", None),
            ("ftp://x.org", None),
            ("//x.org", None),
            ("x.org", None),
            ("", None),
            ("tg://user?id=1", None),
        ];
        for (url, want) in cases {
            assert_eq!(safe_href(url, MATRIX_SCHEMES).as_deref(), *want, "{url:?}");
        }
        assert_eq!(
            safe_href("tg://user?id=1", TELEGRAM_SCHEMES).as_deref(),
            Some("tg://user?id=1")
        );
        assert_eq!(safe_href("javascript:x", TELEGRAM_SCHEMES), None);
    }

    #[test]
    fn has_scheme_table() {
        let cases = [
            ("https://x.org", true),
            ("mailto:a@b", true),
            ("tg://resolve", true),
            ("javascript:alert(1)", true),
            ("x.org", false),
            ("x.org:8080/a", false),
            ("localhost:3000", false),
            ("x.org/a:b", false),
            ("1http:x", false),
            (":x", false),
        ];
        for (text, want) in cases {
            assert_eq!(has_scheme(text), want, "{text:?}");
        }
    }

    #[test]
    fn code_language_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("rust", Some("rust")),
            (" c++ ", Some("c++")),
            ("objective-c", Some("objective-c")),
            ("c#", Some("c#")),
            ("", None),
            ("a b", None),
            ("x\"><script>", None),
            (&"a".repeat(33), None),
        ];
        for (language, want) in cases {
            assert_eq!(code_language(language).as_deref(), *want, "{language:?}");
        }
        assert_eq!(
            class_language("hljs language-python").as_deref(),
            Some("python")
        );
        assert_eq!(class_language("hljs"), None);
    }

    #[test]
    fn pill_target_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "https://matrix.to/#/@alice:example.org",
                Some("@alice:example.org"),
            ),
            (
                "https://matrix.to/#/%40alice%3Aexample.org",
                Some("@alice:example.org"),
            ),
            (
                "https://matrix.to/#/@alice:example.org?via=x",
                Some("@alice:example.org"),
            ),
            (
                "matrix:u/alice:example.org?action=chat",
                Some("@alice:example.org"),
            ),
            ("https://matrix.to/#/#room:example.org", None),
            ("https://matrix.to/#/!room:example.org/$event", None),
            ("https://matrix.to/#/@:", None),
            ("https://example.org/#/@alice:example.org", None),
        ];
        for (href, want) in cases {
            assert_eq!(pill_target(href).as_deref(), *want, "{href:?}");
        }
    }
}
