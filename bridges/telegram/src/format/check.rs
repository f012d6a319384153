//! A strict checker for the Telegram HTML [`super::matrix_to_telegram`]
//! writes, used by the tests and the fuzz target.

use passerelle_api::html::HtmlNestingError;

/// Checks that `html` is Telegram HTML of the kind this module writes, which
/// the Bot API accepts and nests as written:
/// - tags only `<b> <i> <u> <s> <tg-spoiler> <code> <pre> <blockquote>`,
///   `<blockquote expandable>`, `<a href="...">` and, right inside `<pre>`
///   and around all of its text, `<code class="language-...">`;
/// - every end tag closes the innermost open element, nothing left open;
/// - nothing inside `<code>` or `<pre>`; `<code>` and `<pre>` inside
///   nothing but `<blockquote>`; `<blockquote>` inside nothing; no `<a>`
///   inside `<a>`;
/// - text with `<`, `>`, `"` and `&` written as `&lt;` `&gt;` `&quot;`
///   `&amp;`, the only named references Telegram knows.
pub fn check_telegram_html(html: &str) -> Result<(), HtmlNestingError> {
    let fail = |at: usize, problem: String| Err(HtmlNestingError { at, problem });
    let mut open: Vec<&str> = Vec::new();
    let mut pos = 0;
    while pos < html.len() {
        let rest = &html[pos..];
        match rest.as_bytes()[0] {
            b'<' => {
                let Some(len) = rest.find('>') else {
                    return fail(pos, "tag without `>`".into());
                };
                let tag = &rest[1..len];
                let result = match tag.strip_prefix('/') {
                    Some(name) => check_end(name, &mut open, &rest[len + 1..]),
                    None => check_start(tag, &mut open, &html[..pos]),
                };
                if let Err(problem) = result {
                    return fail(pos, problem);
                }
                pos += len + 1;
            }
            b'>' => return fail(pos, "unescaped `>` in text".into()),
            b'"' => return fail(pos, "unescaped `\"` in text".into()),
            b'&' => match ["&lt;", "&gt;", "&amp;", "&quot;"]
                .iter()
                .find(|reference| rest.starts_with(*reference))
            {
                Some(reference) => pos += reference.len(),
                None => return fail(pos, "`&` that starts no known reference".into()),
            },
            _ => pos += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    match open.last() {
        Some(name) => fail(html.len(), format!("`<{name}>` never closed")),
        None => Ok(()),
    }
}

/// Checks a start tag (`tag` is what is between `<` and `>`) against the
/// open elements, and opens it. `before` is the HTML before the tag.
fn check_start<'a>(tag: &'a str, open: &mut Vec<&'a str>, before: &str) -> Result<(), String> {
    let inside = |names: &[&str]| open.iter().any(|name| names.contains(name));
    let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
    match (name, attrs) {
        ("b" | "i" | "u" | "s" | "tg-spoiler", "") => {
            if inside(&["code", "pre"]) {
                return Err(format!("`<{name}>` inside code"));
            }
        }
        ("a", attrs) => {
            check_attr(attrs, "href", |_| true)?;
            if inside(&["a", "code", "pre"]) {
                return Err("`<a>` inside a link or code".into());
            }
        }
        ("code", "") | ("pre", "") => {
            if open.iter().any(|name| *name != "blockquote") {
                return Err(format!("`<{name}>` inside something else than a quote"));
            }
        }
        ("code", attrs) => {
            check_attr(attrs, "class", |class| {
                class.strip_prefix("language-").is_some_and(|language| {
                    !language.is_empty()
                        && language.chars().all(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '.' | '#')
                        })
                })
            })?;
            if open.last() != Some(&"pre") || !before.ends_with("<pre>") {
                return Err("`<code class>` not right inside `<pre>`".into());
            }
        }
        ("blockquote", "" | "expandable") => {
            if !open.is_empty() {
                return Err("`<blockquote>` inside something".into());
            }
        }
        _ => return Err(format!("tag `<{tag}>` Telegram does not know")),
    }
    open.push(name);
    Ok(())
}

/// Checks `name="value"`, the only attribute a tag may have.
fn check_attr(attrs: &str, name: &str, valid: impl Fn(&str) -> bool) -> Result<(), String> {
    let value = attrs
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix("=\""))
        .and_then(|rest| rest.strip_suffix('"'))
        .ok_or_else(|| format!("bad attributes {attrs:?}"))?;
    if value.contains(['"', '<', '>']) {
        return Err(format!("unescaped character in {value:?}"));
    }
    // References in the value must be the ones Telegram knows, like text.
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        rest = &rest[amp..];
        let Some(reference) = ["&lt;", "&gt;", "&amp;", "&quot;"]
            .iter()
            .find(|reference| rest.starts_with(*reference))
        else {
            return Err(format!("bad reference in {value:?}"));
        };
        rest = &rest[reference.len()..];
    }
    if valid(value) {
        Ok(())
    } else {
        Err(format!("bad {name} {value:?}"))
    }
}

/// Checks an end tag against the innermost open element, and closes it.
/// `after` is the HTML after the end tag.
fn check_end(name: &str, open: &mut Vec<&str>, after: &str) -> Result<(), String> {
    match open.pop() {
        Some(top) if top == name => {
            let closes_language = name == "code" && open.last() == Some(&"pre");
            if closes_language && !after.starts_with("</pre>") {
                return Err("`<code class>` does not end with its `<pre>`".into());
            }
            Ok(())
        }
        Some(top) => Err(format!("`</{name}>` closes `<{top}>`")),
        None => Err(format!("`</{name}>` closes nothing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_table() {
        let cases = [
            "",
            "plain\nlines",
            "<b>x</b><i>y</i><u>z</u><s>w</s><tg-spoiler>v</tg-spoiler>",
            "<b><i>x</i></b>",
            "<a href=\"https://x.org/?a=1&amp;b=&quot;2&quot;\"><b>x</b></a>",
            "<b><a href=\"tg://user?id=1\">x</a></b>",
            "<code>x</code> <pre>y</pre>",
            "<pre><code class=\"language-rust\">x</code></pre>",
            "<blockquote>a<b>b</b><code>c</code><pre>d</pre></blockquote>",
            "<blockquote expandable>x</blockquote>",
            "&lt;&gt;&amp;&quot; é 😀",
        ];
        for html in cases {
            assert_eq!(check_telegram_html(html), Ok(()), "{html:?}");
        }
    }

    #[test]
    fn rejects_table() {
        let cases = [
            "<b>",
            "</b>",
            "<b><i>x</b></i>",
            "<br>",
            "<p>x</p>",
            "<span class=\"tg-spoiler\">x</span>",
            "<del>x</del>",
            "<B>x</B>",
            "<b class=\"x\">x</b>",
            "<a>x</a>",
            "<a href=x>x</a>",
            "<a href=\"x\" title=\"y\">x</a>",
            "<a href=\"a\"b\">x</a>",
            "<a href=\"&nbsp;\">x</a>",
            "<a href=\"x\"><a href=\"y\">z</a></a>",
            "<code><b>x</b></code>",
            "<b><code>x</code></b>",
            "<a href=\"x\"><code>x</code></a>",
            "<pre><b>x</b></pre>",
            "<blockquote><blockquote>x</blockquote></blockquote>",
            "<b><blockquote>x</blockquote></b>",
            "<blockquote expandable=\"\">x</blockquote>",
            "<code class=\"language-rust\">x</code>",
            "<pre>a<code class=\"language-rust\">x</code></pre>",
            "<pre><code class=\"language-rust\">x</code>a</pre>",
            "<pre><code class=\"language-a b\">x</code></pre>",
            "<pre><code class=\"rust\">x</code></pre>",
            "a > b",
            "a \" b",
            "a & b",
            "&nbsp;",
            "&#65;",
            "<b",
        ];
        for html in cases {
            assert!(check_telegram_html(html).is_err(), "{html:?} accepted");
        }
    }
}
