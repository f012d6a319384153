//! Table tests for both directions, round trips and robustness on random
//! input. Per-file unit tests (tokenizer, palette, code reader, checker) live
//! next to their code.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::mirc::{Piece, pieces};
use super::palette::Rgb;
use super::*;

const RED: &str = r##"<font data-mx-color="#ff0000" color="#ff0000">"##;
const BLUE: &str = r##"<font data-mx-color="#0000fc" color="#0000fc">"##;

/// (IRC text, expected body, expected HTML)
fn irc_to_matrix_cases() -> Vec<(&'static str, &'static str, Option<String>)> {
    let h = |s: &str| Some(s.replace("{RED}", RED).replace("{BLUE}", BLUE));
    vec![
        ("", "", None),
        ("hello", "hello", None),
        (
            "<b>not html</b> & \"quotes\"",
            "<b>not html</b> & \"quotes\"",
            None,
        ),
        ("\x02bold\x02 text", "bold text", h("<b>bold</b> text")),
        ("\x1ditalic\x1d", "italic", h("<i>italic</i>")),
        ("\x1funder", "under", h("<u>under</u>")),
        ("\x1estrike", "strike", h("<del>strike</del>")),
        ("\x11mono\x11 not", "mono not", h("<code>mono</code> not")),
        ("\x02open", "open", h("<b>open</b>")),
        (
            "\x02\x1dboth\x02 italic\x1d",
            "both italic",
            h("<b><i>both</i></b><i> italic</i>"),
        ),
        ("\x02a\x1fb\x02c\x1f", "abc", h("<b>a<u>b</u></b><u>c</u>")),
        ("\x02a\x1fb\x1fc", "abc", h("<b>a<u>b</u>c</b>")),
        ("\x1e\x11x", "x", h("<del><code>x</code></del>")),
        ("\x02\x1dbi\x0fplain", "biplain", h("<b><i>bi</i></b>plain")),
        ("\x0f\x02x", "x", h("<b>x</b>")),
        ("\x0304red", "red", h("{RED}red</font>")),
        (
            "\x034red\x03 plain",
            "red plain",
            h("{RED}red</font> plain"),
        ),
        ("\x0312blue", "blue", h("{BLUE}blue</font>")),
        ("\x03123", "3", h("{BLUE}3</font>")),
        (
            "\x031,x",
            ",x",
            h(r##"<font data-mx-color="#000000" color="#000000">,x</font>"##),
        ),
        ("\x03,5x", ",5x", None),
        ("\x03,", ",", None),
        ("a\x03b", "ab", None),
        ("\x0399x", "x", None),
        ("\x0304", "", None),
        (
            "\x0304,12x",
            "x",
            h(
                r##"<font data-mx-color="#ff0000" data-mx-bg-color="#0000fc" color="#ff0000">x</font>"##,
            ),
        ),
        (
            "\x0399,01x",
            "x",
            h(r##"<font data-mx-bg-color="#000000">x</font>"##),
        ),
        (
            "\x0398x",
            "x",
            h(r##"<font data-mx-color="#ffffff" color="#ffffff">x</font>"##),
        ),
        ("\x0352x", "x", h("{RED}x</font>")),
        (
            "\x0301,04a\x0312b",
            "ab",
            h(concat!(
                r##"<font data-mx-color="#000000" data-mx-bg-color="#ff0000" color="#000000">a</font>"##,
                r##"<font data-mx-color="#0000fc" data-mx-bg-color="#ff0000" color="#0000fc">b</font>"##
            )),
        ),
        (
            "\x02a\x0304b\x02c",
            "abc",
            h("<b>a{RED}b</font></b>{RED}c</font>"),
        ),
        (
            "\x02\x0304a\x0312b",
            "ab",
            h("{RED}<b>a</b></font>{BLUE}<b>b</b></font>"),
        ),
        ("\x0304\x02\x03x", "x", h("<b>x</b>")),
        (
            "\x04ff8800orange",
            "orange",
            h(r##"<font data-mx-color="#ff8800" color="#ff8800">orange</font>"##),
        ),
        (
            "\x04FF0000,00ff00x",
            "x",
            h(
                r##"<font data-mx-color="#ff0000" data-mx-bg-color="#00ff00" color="#ff0000">x</font>"##,
            ),
        ),
        ("\x04zz", "zz", None),
        ("\x04ff0000,zz", ",zz", h("{RED},zz</font>")),
        (
            "\x16rev",
            "rev",
            h(
                r##"<font data-mx-color="#ffffff" data-mx-bg-color="#000000" color="#ffffff">rev</font>"##,
            ),
        ),
        (
            "\x0304,01\x16x",
            "x",
            h(
                r##"<font data-mx-color="#000000" data-mx-bg-color="#ff0000" color="#000000">x</font>"##,
            ),
        ),
        (
            "\x0304\x16x",
            "x",
            h(
                r##"<font data-mx-color="#ffffff" data-mx-bg-color="#ff0000" color="#ffffff">x</font>"##,
            ),
        ),
        ("\x16\x16x", "x", None),
        (
            "\x02<a href=\"x\">&amp;",
            "<a href=\"x\">&amp;",
            h("<b>&lt;a href=&quot;x&quot;&gt;&amp;amp;</b>"),
        ),
        (
            "see https://example.org/?a=1&b=2 \x02now",
            "see https://example.org/?a=1&b=2 now",
            h("see https://example.org/?a=1&amp;b=2 <b>now</b>"),
        ),
        ("\x02a  b", "a  b", h("<b>a &nbsp;b</b>")),
        ("\x02 a", " a", h("<b>&nbsp;a</b>")),
        ("a \x02 b", "a  b", h("a <b>&nbsp;b</b>")),
        ("\x02a\tb", "a\tb", h("<b>a\tb</b>")),
        ("\x02héllo 😀", "héllo 😀", h("<b>héllo 😀</b>")),
        ("\x02a\nb", "a\nb", h("<b>a</b><br>b")),
        ("a\n\x02b", "a\nb", h("a<br><b>b</b>")),
        ("a\r\n\x02b", "a\nb", h("a<br><b>b</b>")),
        ("\x02a\n b", "a\n b", h("<b>a</b><br>&nbsp;b")),
        ("a\nb", "a\nb", None),
        ("a\x01b\x07c\x1bd\x7fe\0f\rg", "abcdefg", None),
        ("\x01ACTION waves\x01", "ACTION waves", None),
        ("\x02\x02", "", None),
        ("\x02", "", None),
        ("\x02\x02plain", "plain", None),
        ("x\x02", "x", None),
    ]
}

#[test]
fn irc_to_matrix_table() {
    for (input, body, html) in irc_to_matrix_cases() {
        let got = irc_to_matrix(input);
        assert_eq!(got.body, body, "body of {input:?}");
        assert_eq!(got.html, html, "html of {input:?}");
        if let Some(html) = &got.html {
            check_html_nesting(html).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        }
    }
}

/// (Matrix HTML, expected IRC text), without a nick callback.
fn matrix_to_irc_cases() -> Vec<(&'static str, &'static str)> {
    vec![
        ("plain", "plain"),
        ("<b>bold</b> text", "\x02bold\x02 text"),
        ("<strong>s</strong>", "\x02s"),
        ("<i>i</i><em>e</em> x", "\x1die\x1d x"),
        ("<u>u</u><ins>i</ins>", "\x1fui"),
        ("<s>a</s><del>b</del><strike>c</strike>", "\x1eabc"),
        ("<code>x</code> y", "\x11x\x11 y"),
        ("<b>a<i>b</i>c</b>", "\x02a\x1db\x1dc"),
        ("<b>a<i>b</b>c</i>", "\x02a\x1db\x02\x1dc"),
        ("<b>héllo 😀</b>", "\x02héllo 😀"),
        ("<b>a</b> <b>b</b>", "\x02a\x02 \x02b"),
        ("<u>a </u>b", "\x1fa \x1fb"),
        ("a<u> b</u>", "a\x1f b"),
        // Code blocks
        (
            "<pre><code>fn main() {\n    x\n}\n</code></pre>",
            "fn main() {\n    x\n}",
        ),
        (
            "before<pre><code>a\nb</code></pre>after",
            "before\na\nb\nafter",
        ),
        (
            "<pre><code class=\"language-rust\">let x = 1;\n</code></pre>\n",
            "let x = 1;",
        ),
        ("<pre>a\r\nb\0c</pre>", "a\nb c"),
        ("<pre><b>x</b>  y</pre>", "x  y"),
        // Links
        (
            "<a href=\"https://example.org\">https://example.org</a>",
            "https://example.org",
        ),
        (
            "<a href=\"https://example.org/page\">the page</a>",
            "the page <https://example.org/page>",
        ),
        (
            "<a href=\"https://example.org/page\">the page</a>.",
            "the page <https://example.org/page>.",
        ),
        (
            "<a href=\"https://example.org/\">example.org</a>",
            "example.org",
        ),
        ("<a href=\"mailto:a@b.c\">a@b.c</a>", "a@b.c"),
        (
            "<a href=\"https://x.org/a\"><b>bold link</b></a>",
            "\x02bold link\x02 <https://x.org/a>",
        ),
        ("<a href=\"https://x.org\"></a>", "https://x.org"),
        (
            "<a href=\"https://x.org/a b\nc\">t</a>",
            "t <https://x.org/a%20b%0Ac>",
        ),
        ("<a href=\"\">t</a>", "t"),
        ("<a name=\"x\">t</a>", "t"),
        (
            "<a href=\"https://matrix.to/#/#room:example.org\">#room:example.org</a>",
            "#room:example.org",
        ),
        (
            "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>: hi",
            "Alice: hi",
        ),
        // Colours
        ("<font data-mx-color=\"#ff0000\">red</font>", "\x0304red"),
        (
            "<font data-mx-color=\"#ff0000\">red</font> plain",
            "\x0304red\x03 plain",
        ),
        ("<font data-mx-color=\"#ff0000\">a</font>1", "\x0304a\x0f1"),
        (
            "<b><font data-mx-color=\"#ff0000\">a</font>1</b>",
            "\x0304\x02a\x0f\x021",
        ),
        ("<font data-mx-color=\"#ff0000\">1</font>", "\x03041"),
        (
            "<font data-mx-color=\"#ff0000\">,x</font>",
            "\x0304\x02\x02,x",
        ),
        (
            "<span data-mx-color=\"#0000ff\" data-mx-bg-color=\"#ffff00\">x</span>",
            "\x0360,08x",
        ),
        (
            "<span data-mx-color=\"#ff0000\" data-mx-bg-color=\"#0000fc\">a</span><span data-mx-color=\"#ff0000\">b</span>",
            "\x0304,12a\x03\x0304b",
        ),
        ("<span data-mx-bg-color=\"#ffff00\">x</span>", "\x0399,08x"),
        ("<font color=\"red\">r</font>", "\x0304r"),
        (
            "<font color=\"#f00\" data-mx-color=\"#0000fc\">b</font>",
            "\x0312b",
        ),
        ("<font data-mx-color=\"nope\">x</font>", "x"),
        ("<span data-mx-spoiler>secret</span>", "\x0301,01secret"),
        (
            "<span data-mx-spoiler=\"why\">secret</span> ok",
            "\x0301,01secret\x03 ok",
        ),
        // Blocks
        ("a<br>b", "a\nb"),
        ("a<br/>b<br />c", "a\nb\nc"),
        ("a<br><br>b", "a\n\nb"),
        ("<br><br>a<br><br>", "a"),
        ("<p>one</p><p>two</p>", "one\ntwo"),
        ("<p>one</p>\n<p>two</p>\n", "one\ntwo"),
        ("<p>a<p>b", "a\nb"),
        ("  <p> a </p>  ", "a"),
        ("<div>a</div>b", "a\nb"),
        ("<h1>Title</h1>text", "\x02Title\ntext"),
        ("<h2>a <code>b</code></h2>", "\x02a \x11b"),
        ("a<hr>b", "a\n---\nb"),
        (
            "<details><summary>More</summary>hidden text</details>",
            "More\nhidden text",
        ),
        (
            "<table><tr><th>h1</th><th>h2</th></tr><tr><td>a</td><td>b</td></tr></table>",
            "h1 | h2\na | b",
        ),
        ("<b>multi<br>line</b>", "\x02multi\n\x02line"),
        // Quotes
        ("<blockquote>quoted</blockquote>reply", "> quoted\nreply"),
        ("<blockquote><p>a</p><p>b</p></blockquote>", "> a\n> b"),
        ("<blockquote>a<br><b>b</b></blockquote>", "> a\n> \x02b"),
        (
            "<blockquote>a<blockquote>b</blockquote></blockquote>",
            "> a\n> > b",
        ),
        // Lists
        ("<ul><li>one</li><li>two</li></ul>", "• one\n• two"),
        ("<ol><li>one</li><li>two</li></ol>", "1. one\n2. two"),
        ("<ol start=\"3\"><li>a</li><li>b</li></ol>", "3. a\n4. b"),
        ("<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n", "• one\n• two"),
        (
            "<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>",
            "• a\n  • b\n• c",
        ),
        ("<ul><li><p>a</p></li><li><p>b</p></li></ul>", "• a\n• b"),
        ("<ul><li>a<li>b</ul>", "• a\n• b"),
        ("<ul><li></li><li>b</li></ul>", "• \n• b"),
        ("<li>x</li>", "• x"),
        (
            "intro<ol><li><b>x</b></li></ol>outro",
            "intro\n1. \x02x\noutro",
        ),
        ("<blockquote><ul><li>q</li></ul></blockquote>", "> • q"),
        // Dropped
        (
            "<mx-reply><blockquote><a href=\"https://matrix.to/#/!room/$ev\">In reply to</a> \
             <a href=\"https://matrix.to/#/@bob:example.org\">@bob:example.org</a><br>original\
             </blockquote></mx-reply>my answer",
            "my answer",
        ),
        ("a<script>alert('<b>')</script>b", "ab"),
        ("<style>p { color: red }</style>x", "x"),
        ("<marquee>fun</marquee>", "fun"),
        ("a<!-- hidden -->b", "ab"),
        ("a</b>b", "ab"),
        ("<b>a", "\x02a"),
        ("<b", ""),
        ("<img src=\"mxc://a/b\" alt=\":party:\"> yay", ":party: yay"),
        ("<img src=\"mxc://a/b\">x", "x"),
        // Text
        (
            "&amp; &lt; &gt; &quot; &#39; &#65; &#x42; a&nbsp;&nbsp;b",
            "& < > \" ' A B a  b",
        ),
        ("a   b\n c", "a b c"),
        ("a\r\nb\0c", "a b c"),
        ("a&#13;b&#0;c", "a b\u{fffd}c"),
        ("a\x02b\x03c", "abc"),
        ("a < b > c", "a < b > c"),
    ]
}

#[test]
fn matrix_to_irc_table() {
    for (html, want) in matrix_to_irc_cases() {
        assert_eq!(matrix_to_irc(Some(html), "body"), want, "{html:?}");
    }
}

#[test]
fn matrix_to_irc_without_html_keeps_the_body() {
    let cases = [
        ("plain", "plain"),
        ("<b>not html</b> &amp;", "<b>not html</b> &amp;"),
        ("a\nb", "a\nb"),
        ("a\r\nb\rc\0d", "a\nb c d"),
        ("\x02irc codes\x02", "\x02irc codes\x02"),
    ];
    for (body, want) in cases {
        assert_eq!(matrix_to_irc(None, body), want, "{body:?}");
    }
}

fn nick_for(mxid: &str) -> Option<String> {
    match mxid {
        "@alice:example.org" => Some("alice_irc".into()),
        "@_irc_libera_x:example.org" => Some("x".into()),
        _ => None,
    }
}

#[test]
fn pills_become_nicks() {
    let pill = |href: &str, text: &str| format!("<a href=\"{href}\">{text}</a>");
    let alice = "https://matrix.to/#/@alice:example.org";
    let cases = [
        (pill(alice, "Alice") + ": hi", "alice_irc: hi"),
        (format!("hey {}!", pill(alice, "Alice")), "hey alice_irc!"),
        (
            format!("<b>hey {}</b>", pill(alice, "<i>Alice</i>")),
            "\x02hey alice_irc",
        ),
        (
            pill("https://matrix.to/#/%40alice%3Aexample.org", "Alice"),
            "alice_irc",
        ),
        (
            pill(
                "https://matrix.to/#/@alice:example.org?via=example.org",
                "Alice",
            ),
            "alice_irc",
        ),
        (
            pill("matrix:u/alice:example.org?action=chat", "Alice"),
            "alice_irc",
        ),
        (
            pill("https://matrix.to/#/@_irc_libera_x:example.org", "x"),
            "x",
        ),
        (
            pill("https://matrix.to/#/@bob:example.org", "Bob") + ": hi",
            "Bob: hi",
        ),
        (
            pill("https://matrix.to/#/@bob:example.org", "") + "hi",
            "hi",
        ),
        (
            pill("https://matrix.to/#/!room:example.org/$event", "that"),
            "that <https://matrix.to/#/!room:example.org/$event>",
        ),
        (
            pill("https://matrix.to/#/@:", "odd"),
            "odd <https://matrix.to/#/@:>",
        ),
        (
            format!("<blockquote>{}</blockquote>", pill(alice, "Alice")),
            "> alice_irc",
        ),
    ];
    for (html, want) in cases {
        assert_eq!(
            matrix_to_irc_with(Some(&html), "body", &nick_for),
            want,
            "{html:?}"
        );
    }
}

#[test]
fn nick_mention_table() {
    let known = ["alice", "Bob", "[m]x", "foo", "http"];
    type Case = (&'static str, Option<(&'static str, char, &'static str)>);
    let cases: &[Case] = &[
        ("alice: hello", Some(("alice", ':', "hello"))),
        ("alice, hello", Some(("alice", ',', "hello"))),
        ("ALICE: hi", Some(("alice", ':', "hi"))),
        ("bob: x", Some(("Bob", ':', "x"))),
        ("{M}X: hi", Some(("[m]x", ':', "hi"))),
        ("[M]x, hi", Some(("[m]x", ',', "hi"))),
        ("alice:", Some(("alice", ':', ""))),
        ("foo:   spaced", Some(("foo", ':', "spaced"))),
        ("foo:\tx", Some(("foo", ':', "x"))),
        ("alice: \x02bold", Some(("alice", ':', "\x02bold"))),
        ("alice:hello", None),
        ("alice hello", None),
        ("alicex: hi", None),
        ("alic: hi", None),
        ("http://example.org", None),
        (" alice: hi", None),
        ("\x02alice\x02: hi", None),
        ("hello alice: hi", None),
        ("", None),
        ("é: x", None),
        ("aé: x", None),
    ];
    for (text, want) in cases {
        let got = nick_mention_at_start(text, known).map(|m| (m.nick, m.separator, m.rest));
        assert_eq!(got, *want, "{text:?}");
    }
}

#[test]
fn nick_mention_prefers_the_exact_spelling() {
    let got = nick_mention_at_start("alice: hi", ["Alice", "alice"]).map(|m| m.nick);
    assert_eq!(got, Some("alice"));
    let got = nick_mention_at_start("ALICE: hi", ["Alice", "alice"]).map(|m| m.nick);
    assert_eq!(got, Some("Alice"));
    let none: [&str; 0] = [];
    assert_eq!(nick_mention_at_start("alice: hi", none), None);
    assert_eq!(nick_mention_at_start("alice: hi", [""]), None);
}

#[test]
fn irc_mention_becomes_a_pill() {
    let cases = [
        (
            "alice: \x02hi",
            "Alice: hi",
            "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>: <b>hi</b>",
        ),
        (
            "alice, a  b <x>",
            "Alice, a  b <x>",
            "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>, a &nbsp;b &lt;x&gt;",
        ),
        (
            "alice:",
            "Alice:",
            "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>:",
        ),
    ];
    for (text, body, html) in cases {
        let mention = nick_mention_at_start(text, ["alice"]).unwrap();
        let got = irc_mention_to_matrix(&mention, "@alice:example.org", "Alice");
        assert_eq!(got.body, body, "{text:?}");
        assert_eq!(got.html.as_deref(), Some(html), "{text:?}");
        check_html_nesting(html).unwrap();
    }
}

#[test]
fn mention_pill_escapes() {
    assert_eq!(
        mention_pill("@a\"b c:x.org", "<Name> & co"),
        "<a href=\"https://matrix.to/#/@a%22b%20c:x.org\">&lt;Name&gt; &amp; co</a>"
    );
    let pill = mention_pill("@alice:example.org", "Alice");
    assert_eq!(matrix_to_irc_with(Some(&pill), "", &nick_for), "alice_irc");
}

#[test]
fn pill_at_start_table() {
    let a = "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>";
    /// (HTML, expected (mxid, text, rest))
    type Case = (String, Option<(&'static str, &'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        (
            format!("{a}: hi"),
            Some(("@alice:example.org", "Alice", "hi")),
        ),
        (
            format!("{a}, <b>hi</b>"),
            Some(("@alice:example.org", "Alice", "<b>hi</b>")),
        ),
        (
            format!("{a} hi"),
            Some(("@alice:example.org", "Alice", "hi")),
        ),
        (
            format!("<p>{a}: hi</p>"),
            Some(("@alice:example.org", "Alice", "hi</p>")),
        ),
        (
            format!("<mx-reply><blockquote>{a} said</blockquote></mx-reply>{a}: yes"),
            Some(("@alice:example.org", "Alice", "yes")),
        ),
        (format!("  {a}"), Some(("@alice:example.org", "Alice", ""))),
        (format!("hi {a}"), None),
        (format!("<b>{a}</b>"), None),
        ("<a href=\"https://example.org\">x</a>: hi".into(), None),
        ("<a>x</a>: hi".into(), None),
        (a[..a.len() - 4].to_owned(), None),
        ("<mx-reply>never closed".into(), None),
        ("".into(), None),
    ];
    for (html, want) in cases {
        let got = pill_at_start(&html);
        let got = got
            .as_ref()
            .map(|p| (p.mxid.as_str(), p.text.as_str(), p.rest));
        assert_eq!(got, want, "{html:?}");
    }
}

#[test]
fn addressed_matrix_messages_start_with_the_nick() {
    let a = "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>";
    let b = "<a href=\"https://matrix.to/#/@bob:example.org\">Bob</a>";
    let cases = [
        (format!("{a}: hi"), "alice_irc: hi"),
        (format!("{a} hi"), "alice_irc: hi"),
        (format!("{a}, <b>hi</b>"), "alice_irc: \x02hi"),
        (format!("<p>{a}: hi</p><p>more</p>"), "alice_irc: hi\nmore"),
        (
            format!("<mx-reply><blockquote>quoted</blockquote></mx-reply>{a}: hi"),
            "alice_irc: hi",
        ),
        (format!("{a}: and {a}"), "alice_irc: and alice_irc"),
        (format!("{b}: hi"), "Bob: hi"),
        (
            "<a href=\"https://matrix.to/#/@bob:example.org\"></a>: hi".to_owned(),
            "@bob:example.org: hi",
        ),
        (a.to_owned(), "alice_irc:"),
        (format!("hi {a}"), "hi alice_irc"),
    ];
    for (html, want) in cases {
        assert_eq!(
            matrix_to_irc_addressed(Some(&html), "body", &nick_for),
            want,
            "{html:?}"
        );
    }
    assert_eq!(
        matrix_to_irc_addressed(None, "Alice: hi", &nick_for),
        "Alice: hi"
    );
}

/// What an IRC client shows for one character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shown {
    ch: char,
    bold: bool,
    italic: bool,
    underline: bool,
    strike: bool,
    mono: bool,
    fg: Option<Rgb>,
    bg: Option<Rgb>,
}

/// The lines an IRC client would show for `text`, character by character,
/// with trailing spaces and leading and trailing empty lines removed (HTML
/// cannot keep those, and IRC does not send them).
fn shown(text: &str) -> Vec<Vec<Shown>> {
    let mut lines = vec![Vec::new()];
    for piece in pieces(text) {
        match piece {
            Piece::Newline => lines.push(Vec::new()),
            Piece::Text(text, style) => {
                let (fg, bg) = style.shown_colors();
                let line = lines.last_mut().expect("never empty");
                line.extend(text.chars().map(|ch| Shown {
                    ch,
                    bold: style.bold,
                    italic: style.italic,
                    underline: style.underline,
                    strike: style.strike,
                    mono: style.mono,
                    fg,
                    bg,
                }));
            }
        }
    }
    for line in &mut lines {
        while line.last().is_some_and(|c| c.ch == ' ') {
            line.pop();
        }
    }
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let first = lines
        .iter()
        .position(|line| !line.is_empty())
        .unwrap_or(lines.len());
    lines.split_off(first)
}

fn round_trip(text: &str) -> String {
    let matrix = irc_to_matrix(text);
    matrix_to_irc(matrix.html.as_deref(), &matrix.body)
}

#[test]
fn round_trip_table() {
    let cases = [
        "plain",
        "\x02bold\x02 and \x1ditalic\x1d and \x1funder\x1f and \x1estrike\x1e and \x11mono",
        "\x0304red\x03 \x0304,12red on blue\x0f plain",
        "\x0304red\x035 five",
        "\x02\x0304a\x03\x021",
        "\x0304a\x03,b",
        "\x0301,02x\x0304y",
        "\x16reverse\x16 \x0304\x16red reversed",
        "\x02a  b   c\x02 d",
        " \x02leading",
        "a & b < c > d \" e",
        "\x02two\nlines",
        "\x0352extended \x0388black",
        "\x02\x1d\x1f\x1e\x11all\x0f none",
    ];
    for text in cases {
        let back = round_trip(text);
        assert_eq!(shown(&back), shown(text), "{text:?} came back as {back:?}");
    }
}

/// IRC text from pieces that stress the code reader: codes next to digits
/// and commas, colours of every width, spaces and HTML-special characters.
fn random_irc(rng: &mut StdRng) -> String {
    const PARTS: &[&str] = &[
        "\x02", "\x1d", "\x1f", "\x1e", "\x11", "\x16", "\x0f", "\x03", "a", "b", "Z", "1", "23",
        ",", ", ", " ", "  ", "&", "<", ">", "\"", "é", "😀", "\n",
    ];
    let mut text = String::new();
    for _ in 0..rng.random_range(0..24) {
        if rng.random_bool(0.15) {
            text.push('\x03');
            text.push_str(&rng.random_range(0..100u8).to_string());
            if rng.random_bool(0.5) {
                text.push(',');
                text.push_str(&format!("{:02}", rng.random_range(0..100u8)));
            }
        } else {
            text.push_str(PARTS[rng.random_range(0..PARTS.len())]);
        }
    }
    text
}

#[test]
fn random_round_trips_keep_text_and_formatting() {
    let mut rng = StdRng::seed_from_u64(0x1bc0_ffee);
    for _ in 0..5_000 {
        let text = random_irc(&mut rng);
        let back = round_trip(&text);
        assert_eq!(shown(&back), shown(&text), "{text:?} came back as {back:?}");
    }
}

/// Bytes that are mostly markup: tag fragments, entities, controls.
fn random_html(rng: &mut StdRng) -> String {
    const PARTS: &[&str] = &[
        "<b>",
        "</b>",
        "<i>",
        "</i>",
        "<p>",
        "</p>",
        "<br>",
        "<br/>",
        "<pre>",
        "</pre>",
        "<code>",
        "</code>",
        "<blockquote>",
        "</blockquote>",
        "<ul>",
        "<ol start=\"9\">",
        "<li>",
        "</li>",
        "</ul>",
        "</ol>",
        "<a href=\"https://matrix.to/#/@alice:example.org\">",
        "<a href=\"x y\">",
        "</a>",
        "<mx-reply>",
        "</mx-reply>",
        "<script>",
        "</script>",
        "<font data-mx-color=\"#ff0000\">",
        "<span data-mx-bg-color=\"#00ff00\" data-mx-color=\"#0000ff\">",
        "</span>",
        "</font>",
        "<span data-mx-spoiler>",
        "<img alt=\"x\">",
        "<hr>",
        "<table><tr><td>",
        "</td><td>",
        "<h1>",
        "</h1>",
        "<!--",
        "-->",
        "<",
        ">",
        "&",
        "&amp;",
        "&#",
        "&#x",
        "1",
        ",",
        ";",
        "\"",
        "'",
        "=",
        " ",
        "  ",
        "\n",
        "\r",
        "\0",
        "\t",
        "\x02",
        "\x03",
        "a",
        "é",
        "😀",
        "&nbsp;",
    ];
    let mut html = String::new();
    for _ in 0..rng.random_range(0..32) {
        html.push_str(PARTS[rng.random_range(0..PARTS.len())]);
    }
    html
}

fn random_bytes(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..64);
    let bytes: Vec<u8> = (0..len)
        .map(|_| match rng.random_range(0..4) {
            0 => rng.random_range(0..0x20),
            1 => *b"<>&/\"'=;#, \n0123456789abx"
                .get(rng.random_range(0..25))
                .unwrap_or(&b'a'),
            _ => rng.random(),
        })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The invariants the fuzz target asserts too.
fn assert_invariants(input: &str) {
    let matrix = irc_to_matrix(input);
    assert!(
        !matrix
            .body
            .contains(|c: char| c.is_ascii_control() && c != '\n' && c != '\t'),
        "controls left in body of {input:?}"
    );
    if let Some(html) = &matrix.html
        && let Err(e) = check_html_nesting(html)
    {
        panic!("{input:?} gave unbalanced {html:?}: {e}");
    }
    for irc in [
        matrix_to_irc(Some(input), input),
        matrix_to_irc_with(Some(input), input, &nick_for),
        matrix_to_irc_addressed(Some(input), input, &nick_for),
        matrix_to_irc(matrix.html.as_deref(), &matrix.body),
        matrix_to_irc(None, input),
    ] {
        assert!(!irc.contains(['\r', '\0']), "{input:?} gave {irc:?}");
    }
    let _ = nick_mention_at_start(input, ["alice", "a", "é"]);
    let _ = pill_at_start(input);
}

#[test]
fn random_input_never_panics_and_stays_balanced() {
    let mut rng = StdRng::seed_from_u64(42);
    for _ in 0..5_000 {
        assert_invariants(&random_bytes(&mut rng));
        assert_invariants(&random_html(&mut rng));
        assert_invariants(&random_irc(&mut rng));
    }
}

#[test]
fn deep_nesting_is_cheap() {
    let html = "<b>".repeat(20_000) + "x" + &"</i>".repeat(20_000);
    assert_eq!(matrix_to_irc(Some(&html), ""), "\x02x");
    let html = "<blockquote>".repeat(5_000) + "x";
    assert!(matrix_to_irc(Some(&html), "").ends_with("> x"));
    let irc = "\x02\x1d".repeat(20_000) + "x";
    assert_eq!(irc_to_matrix(&irc).html, None);
}
