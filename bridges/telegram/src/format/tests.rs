//! Table tests for both directions, round trips and robustness on random
//! input. Per-file unit tests (UTF-16 ranges, link targets, tag stack,
//! Telegram HTML checker) live next to their code.

use passerelle_api::html::{Token, Tokenizer};

use super::*;

use EntityKind::*;

fn e(kind: EntityKind, offset: usize, length: usize) -> Entity {
    Entity::new(kind, offset, length)
}

fn link(url: &str) -> EntityKind {
    TextLink { url: url.into() }
}

fn pre(language: Option<&str>) -> EntityKind {
    Pre {
        language: language.map(Into::into),
    }
}

const GHOST_42: &str = "https://matrix.to/#/@_telegram_42:example.org";

/// The Matrix pill of Telegram users the bridge knows: only user 42.
fn user_link(user_id: i64) -> Option<String> {
    (user_id == 42).then(|| GHOST_42.to_owned())
}

/// The Telegram user of Matrix users the bridge knows.
fn pill(mxid: &str) -> Option<i64> {
    match mxid {
        "@_telegram_42:example.org" => Some(42),
        "@alice:example.org" => Some(7),
        _ => None,
    }
}

/// (Telegram text, entities, expected HTML)
fn telegram_to_matrix_cases() -> Vec<(&'static str, Vec<Entity>, Option<&'static str>)> {
    vec![
        // Plain
        ("", vec![], None),
        ("hello", vec![], None),
        ("<b>not html</b> & \"q\"", vec![], None),
        ("two\nlines  and  spaces", vec![], None),
        // One style each
        ("bold text", vec![e(Bold, 0, 4)], Some("<b>bold</b> text")),
        ("italic", vec![e(Italic, 0, 6)], Some("<i>italic</i>")),
        ("under", vec![e(Underline, 0, 5)], Some("<u>under</u>")),
        (
            "strike",
            vec![e(Strikethrough, 0, 6)],
            Some("<del>strike</del>"),
        ),
        (
            "the end: he dies",
            vec![e(Spoiler, 9, 7)],
            Some("the end: <span data-mx-spoiler=\"\">he dies</span>"),
        ),
        (
            "run ls -la",
            vec![e(Code, 4, 6)],
            Some("run <code>ls -la</code>"),
        ),
        // Code blocks
        (
            "fn main() {}",
            vec![e(pre(None), 0, 12)],
            Some("<pre><code>fn main() {}</code></pre>"),
        ),
        (
            "let a = 1;\n  let b;",
            vec![e(pre(Some("rust")), 0, 19)],
            Some("<pre><code class=\"language-rust\">let a = 1;\n  let b;</code></pre>"),
        ),
        (
            "x",
            vec![e(pre(Some("x\"><script>")), 0, 1)],
            Some("<pre><code>x</code></pre>"),
        ),
        (
            "a<b>&",
            vec![e(pre(Some("html")), 0, 5)],
            Some("<pre><code class=\"language-html\">a&lt;b&gt;&amp;</code></pre>"),
        ),
        (
            "abc",
            vec![e(pre(None), 0, 3), e(Code, 1, 1)],
            Some("<pre><code>abc</code></pre>"),
        ),
        (
            "see:\ncode\nafter",
            vec![e(pre(None), 5, 4)],
            Some("see:<pre><code>code</code></pre>after"),
        ),
        // Nesting
        (
            "bold italic",
            vec![e(Bold, 0, 11), e(Italic, 5, 6)],
            Some("<b>bold <i>italic</i></b>"),
        ),
        (
            "abcd",
            vec![e(Italic, 0, 2), e(Bold, 0, 4)],
            Some("<b><i>ab</i>cd</b>"),
        ),
        (
            "ab",
            vec![e(Bold, 0, 2), e(Italic, 0, 2)],
            Some("<b><i>ab</i></b>"),
        ),
        (
            "abcd",
            vec![e(Bold, 0, 2), e(Italic, 2, 2)],
            Some("<b>ab</b><i>cd</i>"),
        ),
        (
            "abcd",
            vec![e(Bold, 0, 2), e(Bold, 2, 2)],
            Some("<b>abcd</b>"),
        ),
        (
            "all four",
            vec![
                e(Bold, 0, 8),
                e(Italic, 0, 8),
                e(Underline, 4, 4),
                e(Strikethrough, 5, 3),
            ],
            Some("<b><i>all <u>f<del>our</del></u></i></b>"),
        ),
        // Overlapping without nesting (Telegram never sends it)
        (
            "abcdef",
            vec![e(Bold, 0, 4), e(Italic, 2, 4)],
            Some("<b>ab<i>cd</i></b><i>ef</i>"),
        ),
        (
            "abcdef",
            vec![e(Bold, 0, 4), e(Bold, 2, 4)],
            Some("<b>abcdef</b>"),
        ),
        (
            "abcdef",
            vec![e(Code, 0, 4), e(Bold, 2, 4)],
            Some("<code>ab<b>cd</b></code><b>ef</b>"),
        ),
        // Links
        (
            "see docs",
            vec![e(link("https://example.org/?a=1&b=\"2\""), 4, 4)],
            Some("see <a href=\"https://example.org/?a=1&amp;b=&quot;2&quot;\">docs</a>"),
        ),
        (
            "docs here",
            vec![e(link("https://x.org"), 0, 9), e(Bold, 0, 4)],
            Some("<a href=\"https://x.org\"><b>docs</b> here</a>"),
        ),
        (
            "a link b",
            vec![e(Bold, 0, 8), e(link("https://x.org"), 2, 4)],
            Some("<b>a <a href=\"https://x.org\">link</a> b</b>"),
        ),
        (
            "outer",
            vec![
                e(link("https://a.org"), 0, 5),
                e(link("https://b.org"), 1, 3),
            ],
            Some("<a href=\"https://a.org\">outer</a>"),
        ),
        (
            "x",
            vec![e(link(" https://x.org/a b "), 0, 1)],
            Some("<a href=\"https://x.org/a%20b\">x</a>"),
        ),
        (
            "mail",
            vec![e(link("mailto:a@b.c"), 0, 4)],
            Some("<a href=\"mailto:a@b.c\">mail</a>"),
        ),
        // Link targets that must not become links
        ("click", vec![e(link("javascript:alert(1)"), 0, 5)], None),
        ("click", vec![e(link(" JavaScript:alert(1)"), 0, 5)], None),
        ("click", vec![e(link("java\nscript:alert(1)"), 0, 5)], None),
        (
            "click",
            vec![e(link("data:text/html,<b>x</b>"), 0, 5)],
            None,
        ),
        ("click", vec![e(link("tg://user?id=1"), 0, 5)], None),
        ("click", vec![e(link(""), 0, 5)], None),
        (
            "click",
            vec![e(Bold, 0, 5), e(link("vbscript:x"), 0, 5)],
            Some("<b>click</b>"),
        ),
        // Entities found in the text
        (
            "go https://example.org/a?b=1&c=2 now",
            vec![e(Url, 3, 29)],
            Some(
                "go <a href=\"https://example.org/a?b=1&amp;c=2\">https://example.org/a?b=1&amp;c=2</a> now",
            ),
        ),
        (
            "example.org/x",
            vec![e(Url, 0, 13)],
            Some("<a href=\"http://example.org/x\">example.org/x</a>"),
        ),
        (
            "x.org:8080",
            vec![e(Url, 0, 10)],
            Some("<a href=\"http://x.org:8080\">x.org:8080</a>"),
        ),
        ("tg://resolve?domain=x", vec![e(Url, 0, 21)], None),
        ("javascript:alert(1)", vec![e(Url, 0, 19)], None),
        (
            "write a@b.c",
            vec![e(Email, 6, 5)],
            Some("write <a href=\"mailto:a@b.c\">a@b.c</a>"),
        ),
        ("@alice hi", vec![e(Mention, 0, 6)], None),
        (
            "#tag $USD /start@bot",
            vec![e(Hashtag, 0, 4), e(Cashtag, 5, 4), e(BotCommand, 10, 10)],
            None,
        ),
        ("call +1-212-555-0123", vec![e(PhoneNumber, 5, 15)], None),
        (
            "👍 ok",
            vec![e(
                CustomEmoji {
                    id: "5368324170671202286".into(),
                },
                0,
                2,
            )],
            None,
        ),
        ("at 22:45", vec![e(DateTime, 3, 5)], None),
        ("new", vec![e(Other("future_kind".into()), 0, 3)], None),
        // Mentions of users without a username
        (
            "hi Ann",
            vec![e(TextMention { user_id: 42 }, 3, 3)],
            Some("hi <a href=\"https://matrix.to/#/@_telegram_42:example.org\">Ann</a>"),
        ),
        ("hi Bob", vec![e(TextMention { user_id: 9 }, 3, 3)], None),
        (
            "hi Ann",
            vec![e(Bold, 0, 6), e(TextMention { user_id: 42 }, 3, 3)],
            Some("<b>hi <a href=\"https://matrix.to/#/@_telegram_42:example.org\">Ann</a></b>"),
        ),
        // Quotes
        (
            "quote\nreply",
            vec![e(Blockquote, 0, 5)],
            Some("<blockquote>quote</blockquote>reply"),
        ),
        (
            "a\nb\nc",
            vec![e(Blockquote, 0, 3)],
            Some("<blockquote>a<br>b</blockquote>c"),
        ),
        (
            "hi\nq",
            vec![e(Blockquote, 3, 1)],
            Some("hi<blockquote>q</blockquote>"),
        ),
        (
            "hi\n\nq\n\nbye",
            vec![e(ExpandableBlockquote, 4, 1)],
            Some("hi<br><blockquote>q</blockquote><br>bye"),
        ),
        (
            "q\n",
            vec![e(Blockquote, 0, 2)],
            Some("<blockquote>q<br></blockquote>"),
        ),
        (
            "ab\ncd",
            vec![e(Bold, 0, 5), e(Blockquote, 3, 2)],
            Some("<b>ab<br></b><blockquote><b>cd</b></blockquote>"),
        ),
        (
            "said: code",
            vec![e(Blockquote, 0, 10), e(pre(None), 6, 4)],
            Some("<blockquote>said: <pre><code>code</code></pre></blockquote>"),
        ),
        // UTF-16 offsets
        ("😀 bold", vec![e(Bold, 3, 4)], Some("😀 <b>bold</b>")),
        ("a😀b", vec![e(Bold, 1, 2)], Some("a<b>😀</b>b")),
        ("a😀b", vec![e(Bold, 2, 2)], Some("a<b>😀b</b>")),
        ("a😀b", vec![e(Bold, 1, 1)], Some("a<b>😀</b>b")),
        ("👨‍👩‍👧 hi", vec![e(Bold, 9, 2)], Some("👨‍👩‍👧 <b>hi</b>")),
        ("привет мир", vec![e(Bold, 7, 3)], Some("привет <b>мир</b>")),
        ("é😀é", vec![e(Italic, 3, 1)], Some("é😀<i>é</i>")),
        // Out of range and empty
        ("abc", vec![e(Bold, 2, 100)], Some("ab<b>c</b>")),
        ("abc", vec![e(Bold, 5, 1)], None),
        ("abc", vec![e(Bold, 1, 0)], None),
        ("abc", vec![e(Bold, usize::MAX, usize::MAX)], None),
        ("abc", vec![e(Bold, 1, usize::MAX)], Some("a<b>bc</b>")),
        ("", vec![e(Bold, 0, 1)], None),
        // Text in HTML
        (
            "<&>\"",
            vec![e(Bold, 0, 4)],
            Some("<b>&lt;&amp;&gt;&quot;</b>"),
        ),
        ("a\nb", vec![e(Bold, 0, 1)], Some("<b>a</b><br>b")),
        ("a\r\nb\rc", vec![e(Bold, 0, 1)], Some("<b>a</b><br>b<br>c")),
        ("a\nb", vec![e(Bold, 0, 3)], Some("<b>a<br>b</b>")),
        ("a  b", vec![e(Bold, 0, 1)], Some("<b>a</b> &nbsp;b")),
        (" a", vec![e(Bold, 1, 1)], Some("&nbsp;<b>a</b>")),
        ("x\n y", vec![e(Bold, 0, 1)], Some("<b>x</b><br>&nbsp;y")),
    ]
}

#[test]
fn telegram_to_matrix_table() {
    for (text, entities, html) in telegram_to_matrix_cases() {
        let got = telegram_to_matrix(text, &entities, &user_link);
        assert_eq!(got.body, text, "body of {text:?} {entities:?}");
        assert_eq!(got.html.as_deref(), html, "html of {text:?} {entities:?}");
        if let Some(html) = &got.html {
            check_html_nesting(html).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
    }
}

/// (Matrix HTML, expected Telegram HTML)
fn matrix_to_telegram_cases() -> Vec<(&'static str, &'static str)> {
    vec![
        ("plain", "plain"),
        ("<b>bold</b> text", "<b>bold</b> text"),
        ("<strong>s</strong><em>e</em>", "<b>s</b><i>e</i>"),
        ("<u>u</u><ins>i</ins>", "<u>ui</u>"),
        ("<s>a</s><del>b</del><strike>c</strike>", "<s>abc</s>"),
        (
            "<span data-mx-spoiler>secret</span> ok",
            "<tg-spoiler>secret</tg-spoiler> ok",
        ),
        (
            "<span data-mx-spoiler=\"why\"><b>x</b></span>",
            "<b><tg-spoiler>x</tg-spoiler></b>",
        ),
        ("<b>a<i>b</i>c</b>", "<b>a<i>b</i>c</b>"),
        ("<b>a<i>b</b>c</i>", "<b>a<i>b</i></b>c"),
        ("<i>a<b>b</b></i><b>c</b>", "<i>a<b>b</b></i><b>c</b>"),
        ("<b>héllo 😀</b>", "<b>héllo 😀</b>"),
        ("<b>a </b>b", "<b>a </b>b"),
        ("a<b> b</b>", "a<b> b</b>"),
        // Code
        ("<code>x &lt; y</code>", "<code>x &lt; y</code>"),
        (
            "<b>a <code>x</code> b</b>",
            "<b>a </b><code>x</code><b> b</b>",
        ),
        ("<code><b>x</b></code>", "<code>x</code>"),
        ("<kbd>Ctrl</kbd>", "<code>Ctrl</code>"),
        (
            "<pre><code>fn main() {\n    x\n}\n</code></pre>",
            "<pre>fn main() {\n    x\n}</pre>",
        ),
        (
            "<pre><code class=\"language-rust\">let x = 1;\n</code></pre>\n",
            "<pre><code class=\"language-rust\">let x = 1;</code></pre>",
        ),
        (
            "<pre><code class=\"language-x&quot;y\">z</code></pre>",
            "<pre>z</pre>",
        ),
        (
            "before<pre><code>a\nb</code></pre>after",
            "before\n<pre>a\nb</pre>\nafter",
        ),
        ("<pre><b>x</b>  y</pre>", "<pre>x  y</pre>"),
        ("<pre>a\r\nb\0c</pre>", "<pre>a\nbc</pre>"),
        (
            "<pre><code>&lt;b&gt; &amp;</code></pre>",
            "<pre>&lt;b&gt; &amp;</pre>",
        ),
        // Links
        (
            "<a href=\"https://example.org/?a=1&amp;b=2\">the page</a>",
            "<a href=\"https://example.org/?a=1&amp;b=2\">the page</a>",
        ),
        (
            "<a href=\"https://x.org/a\"><b>bold link</b></a>",
            "<a href=\"https://x.org/a\"><b>bold link</b></a>",
        ),
        (
            "<b>a <a href=\"https://x.org\">b</a></b>",
            "<b>a <a href=\"https://x.org\">b</a></b>",
        ),
        (
            "<a href=\"https://x.org\"></a>",
            "<a href=\"https://x.org\">https://x.org</a>",
        ),
        (
            "<a href=\"https://x.org/a b\nc\">t</a>",
            "<a href=\"https://x.org/a%20b%0Ac\">t</a>",
        ),
        (
            "<a href=\"https://x.org/&quot;&gt;\">t</a>",
            "<a href=\"https://x.org/&quot;&gt;\">t</a>",
        ),
        ("<a href=\"javascript:alert(1)\">click</a>", "click"),
        ("<a href=\" JAVASCRIPT:alert(1)\">click</a>", "click"),
        ("<a href=\"data:text/html,x\">click</a>", "click"),
        ("<a href=\"\">t</a>", "t"),
        ("<a name=\"x\">t</a>", "t"),
        (
            "<a href=\"tg://resolve?domain=x\">x</a>",
            "<a href=\"tg://resolve?domain=x\">x</a>",
        ),
        (
            "<a href=\"mailto:a@b.c\">mail</a>",
            "<a href=\"mailto:a@b.c\">mail</a>",
        ),
        (
            "<a href=\"https://a.org\">a<a href=\"https://b.org\">b</a></a>",
            "<a href=\"https://a.org\">ab</a>",
        ),
        (
            "<a href=\"https://x.org\">run <code>ls</code></a>",
            "<a href=\"https://x.org\">run ls</a>",
        ),
        (
            "<a href=\"https://matrix.to/#/#room:example.org\">#room:example.org</a>",
            "<a href=\"https://matrix.to/#/#room:example.org\">#room:example.org</a>",
        ),
        // Pills
        (
            "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>: hi",
            "<a href=\"tg://user?id=7\">Alice</a>: hi",
        ),
        (
            "<a href=\"https://matrix.to/#/%40_telegram_42%3Aexample.org\">Ann</a>",
            "<a href=\"tg://user?id=42\">Ann</a>",
        ),
        (
            "<a href=\"matrix:u/alice:example.org?action=chat\">Alice</a>",
            "<a href=\"tg://user?id=7\">Alice</a>",
        ),
        (
            "<a href=\"https://matrix.to/#/@bob:example.org\">Bob</a>: hi",
            "Bob: hi",
        ),
        (
            "<a href=\"https://matrix.to/#/@alice:example.org\"></a> hi",
            "<a href=\"tg://user?id=7\">@alice:example.org</a> hi",
        ),
        (
            "<b>hey <a href=\"https://matrix.to/#/@alice:example.org\"><i>Alice</i></a></b>",
            "<b>hey <a href=\"tg://user?id=7\"><i>Alice</i></a></b>",
        ),
        // Blocks
        ("a<br>b", "a\nb"),
        ("a<br/>b<br />c", "a\nb\nc"),
        ("a<br><br>b", "a\n\nb"),
        ("<br><br>a<br><br>", "a"),
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("<p>one</p>\n<p>two</p>\n", "one\n\ntwo"),
        ("<p>a<p>b", "a\n\nb"),
        ("  <p> a </p>  ", "a"),
        ("<div>a</div>b", "a\nb"),
        ("<h1>Title</h1>text", "<b>Title</b>\n\ntext"),
        ("<h2>a <code>b</code></h2>", "<b>a </b><code>b</code>"),
        ("a<hr>b", "a\n———\nb"),
        ("<b>multi<br>line</b>", "<b>multi\nline</b>"),
        (
            "<table><tr><th>h1</th><th>h2</th></tr><tr><td>a</td><td>b</td></tr></table>",
            "h1 | h2\na | b",
        ),
        ("x<sup>2</sup> H<sub>2</sub>O", "x2 H2O"),
        // Quotes
        (
            "<blockquote>quoted</blockquote>reply",
            "<blockquote>quoted</blockquote>\nreply",
        ),
        (
            "intro<blockquote>q</blockquote>",
            "intro\n<blockquote>q</blockquote>",
        ),
        (
            "<blockquote><p>a</p><p>b</p></blockquote>",
            "<blockquote>a\n\nb</blockquote>",
        ),
        (
            "<blockquote>a<br><b>b</b></blockquote>",
            "<blockquote>a\n<b>b</b></blockquote>",
        ),
        (
            "<blockquote>a<blockquote>b</blockquote></blockquote>",
            "<blockquote>a\nb</blockquote>",
        ),
        (
            "<blockquote><pre><code>x</code></pre></blockquote>",
            "<blockquote><pre>x</pre></blockquote>",
        ),
        (
            "<b>a<blockquote>q</blockquote>b</b>",
            "<b>a</b>\n<blockquote><b>q</b></blockquote>\n<b>b</b>",
        ),
        (
            "<details><summary>More</summary>hidden text</details>",
            "<blockquote expandable>More\nhidden text</blockquote>",
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
        ("<ul><li>a<li>b</ul>", "• a\n• b"),
        ("<ul><li><p>a</p></li><li><p>b</p></li></ul>", "• a\n• b"),
        ("<ul><li></li><li>b</li></ul>", "• \n• b"),
        ("<ul><li><b>x</b></li></ul>", "• <b>x</b>"),
        (
            "<blockquote><ul><li>q</li></ul></blockquote>",
            "<blockquote>• q</blockquote>",
        ),
        ("<p>intro</p><ul><li>a</li></ul>", "intro\n\n• a"),
        // Dropped
        (
            "<mx-reply><blockquote><a href=\"https://matrix.to/#/!room/$ev\">In reply to</a> \
             <a href=\"https://matrix.to/#/@bob:example.org\">@bob:example.org</a><br>original\
             </blockquote></mx-reply>my answer",
            "my answer",
        ),
        ("<mx-reply>only a fallback</mx-reply>", ""),
        ("a<script>alert('<b>')</script>b", "ab"),
        ("<style>p { color: red }</style>x", "x"),
        ("<marquee>fun</marquee>", "fun"),
        (
            "<font color=\"red\" data-mx-color=\"#ff0000\">red</font>",
            "red",
        ),
        ("a<!-- hidden -->b", "ab"),
        ("a</b>b", "ab"),
        ("<b>a", "<b>a</b>"),
        ("<b", ""),
        ("<img src=\"mxc://a/b\" alt=\":party:\"> yay", ":party: yay"),
        ("<img src=\"mxc://a/b\" title=\"t\">x", "x"),
        ("<b/>x", "x"),
        // Text
        (
            "&amp; &lt; &gt; &quot; &#39; &#65; a&nbsp;&nbsp;b",
            "&amp; &lt; &gt; &quot; ' A a  b",
        ),
        (
            "&lt;b&gt;not a tag&lt;/b&gt;",
            "&lt;b&gt;not a tag&lt;/b&gt;",
        ),
        ("a   b\n c", "a b c"),
        ("a\r\nb\0c\x07d", "a bcd"),
        ("a < b > c", "a &lt; b &gt; c"),
        ("tab\there", "tab here"),
    ]
}

#[test]
fn matrix_to_telegram_table() {
    for (html, want) in matrix_to_telegram_cases() {
        let got = matrix_to_telegram("body", Some(html), &pill);
        assert_eq!(got, want, "{html:?}");
        check_telegram_html(&got).unwrap_or_else(|e| panic!("{html:?} gave {got:?}: {e}"));
    }
}

#[test]
fn matrix_to_telegram_without_html_escapes_the_body() {
    let cases = [
        ("plain", "plain"),
        (
            "<b>not html</b> &amp;",
            "&lt;b&gt;not html&lt;/b&gt; &amp;amp;",
        ),
        ("say \"hi\"", "say &quot;hi&quot;"),
        ("a\nb  c", "a\nb  c"),
        ("😀", "😀"),
    ];
    for (body, want) in cases {
        assert_eq!(matrix_to_telegram(body, None, &pill), want, "{body:?}");
        assert_eq!(escape_telegram(body), want, "{body:?}");
    }
}

/// Telegram -> Matrix -> Telegram: (text, entities, expected Telegram HTML)
fn round_trip_cases() -> Vec<(&'static str, Vec<Entity>, &'static str)> {
    vec![
        ("plain", vec![], "plain"),
        ("a <b> & c", vec![], "a &lt;b&gt; &amp; c"),
        (
            "b i u s",
            vec![
                e(Bold, 0, 1),
                e(Italic, 2, 1),
                e(Underline, 4, 1),
                e(Strikethrough, 6, 1),
            ],
            "<b>b</b> <i>i</i> <u>u</u> <s>s</s>",
        ),
        (
            "secret",
            vec![e(Spoiler, 0, 6)],
            "<tg-spoiler>secret</tg-spoiler>",
        ),
        (
            "bold italic",
            vec![e(Bold, 0, 11), e(Italic, 5, 6)],
            "<b>bold <i>italic</i></b>",
        ),
        ("run ls", vec![e(Code, 4, 2)], "run <code>ls</code>"),
        (
            "fn main() {\n    x\n}",
            vec![e(pre(Some("rust")), 0, 19)],
            "<pre><code class=\"language-rust\">fn main() {\n    x\n}</code></pre>",
        ),
        ("x", vec![e(pre(None), 0, 1)], "<pre>x</pre>"),
        (
            "see docs",
            vec![e(link("https://example.org/?a=1&b=2"), 4, 4)],
            "see <a href=\"https://example.org/?a=1&amp;b=2\">docs</a>",
        ),
        (
            "hi Ann",
            vec![e(TextMention { user_id: 42 }, 3, 3)],
            "hi <a href=\"tg://user?id=42\">Ann</a>",
        ),
        (
            "quote\nreply",
            vec![e(Blockquote, 0, 5)],
            "<blockquote>quote</blockquote>\nreply",
        ),
        (
            "a\nquote\nb",
            vec![e(ExpandableBlockquote, 2, 5)],
            "a\n<blockquote>quote</blockquote>\nb",
        ),
        ("a  b\n\nc", vec![e(Bold, 0, 1)], "<b>a</b>  b\n\nc"),
        ("😀 <b>", vec![e(Bold, 3, 3)], "😀 <b>&lt;b&gt;</b>"),
    ]
}

#[test]
fn round_trip_table() {
    for (text, entities, want) in round_trip_cases() {
        let matrix = telegram_to_matrix(text, &entities, &user_link);
        let back = matrix_to_telegram(&matrix.body, matrix.html.as_deref(), &pill);
        assert_eq!(back, want, "{text:?} {entities:?} via {:?}", matrix.html);
        check_telegram_html(&back).unwrap_or_else(|e| panic!("{back:?}: {e}"));
    }
}

/// A tiny deterministic PRNG (SplitMix64), so the random tests need no
/// dependency and fail the same way every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const TEXT_PARTS: &[&str] = &[
    "a",
    "b",
    "Z",
    "1",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\t",
    "<",
    ">",
    "&",
    "\"",
    "'",
    "&amp;",
    "é",
    "😀",
    "👨‍👩‍👧",
    "\u{200d}",
    "\u{a0}",
    "\0",
    "\x07",
    "<b>",
    "</i>",
    "http://x.org",
];

fn random_text(rng: &mut Rng) -> String {
    (0..rng.below(24)).map(|_| *rng.pick(TEXT_PARTS)).collect()
}

fn random_kind(rng: &mut Rng) -> EntityKind {
    match rng.below(24) {
        0 => Bold,
        1 => Italic,
        2 => Underline,
        3 => Strikethrough,
        4 => Spoiler,
        5 => Code,
        6 => pre(None),
        7 => pre(Some("rust")),
        8 => pre(Some("\"><x")),
        9 => link("https://example.org/?a=1&b=\"2\""),
        10 => link("javascript:alert(1)"),
        11 => TextMention { user_id: 42 },
        12 => TextMention { user_id: 9 },
        13 => Mention,
        14 => Url,
        15 => Email,
        16 => PhoneNumber,
        17 => Hashtag,
        18 => Cashtag,
        19 => BotCommand,
        20 => Blockquote,
        21 => ExpandableBlockquote,
        22 => CustomEmoji { id: "1".into() },
        _ => Other("x".into()),
    }
}

/// Entities of any kind over any range, most of them inside the text,
/// some past its end or huge, nested, overlapping or empty.
fn random_entities(rng: &mut Rng, text: &str) -> Vec<Entity> {
    let len = utf16_len(text);
    (0..rng.below(12))
        .map(|_| {
            let kind = random_kind(rng);
            let (offset, length) = match rng.below(10) {
                0 => (rng.below(len + 3), rng.below(4) * 1000),
                1 => (usize::MAX - rng.below(3), rng.below(3)),
                2 => (rng.below(len + 1), usize::MAX),
                _ => (rng.below(len + 2), rng.below(len + 2)),
            };
            Entity::new(kind, offset, length)
        })
        .collect()
}

/// Matrix HTML that is mostly markup: tag fragments, entities, controls.
fn random_html(rng: &mut Rng) -> String {
    const PARTS: &[&str] = &[
        "<b>",
        "</b>",
        "<i>",
        "</i>",
        "<u>",
        "<del>",
        "</del>",
        "<p>",
        "</p>",
        "<br>",
        "<br/>",
        "<pre>",
        "</pre>",
        "<code>",
        "<code class=\"language-rust\">",
        "</code>",
        "<blockquote>",
        "</blockquote>",
        "<details>",
        "<summary>",
        "</details>",
        "<ul>",
        "<ol start=\"9\">",
        "<li>",
        "</li>",
        "</ul>",
        "</ol>",
        "<a href=\"https://matrix.to/#/@alice:example.org\">",
        "<a href=\"https://matrix.to/#/@bob:example.org\">",
        "<a href=\"https://x.org/?a=1&amp;b=2\">",
        "<a href=\"javascript:alert(1)\">",
        "<a href=\"x y\">",
        "</a>",
        "<mx-reply>",
        "</mx-reply>",
        "<script>",
        "</script>",
        "<span data-mx-spoiler>",
        "</span>",
        "<font color=\"red\">",
        "</font>",
        "<img alt=\"x<y\">",
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
        "&lt;",
        "&#",
        "&#x",
        "1",
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
        "a",
        "é",
        "😀",
        "&nbsp;",
    ];
    (0..rng.below(32)).map(|_| *rng.pick(PARTS)).collect()
}

fn random_bytes(rng: &mut Rng) -> String {
    let bytes: Vec<u8> = (0..rng.below(64))
        .map(|_| match rng.below(4) {
            0 => rng.below(0x20) as u8,
            1 => *rng.pick(b"<>&/\"'=;#, \n0123456789abx"),
            _ => rng.next() as u8,
        })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The invariants the fuzz target asserts too.
fn assert_invariants(text: &str, entities: &[Entity]) {
    let matrix = telegram_to_matrix(text, entities, &user_link);
    assert_eq!(matrix.body, text);
    if let Some(html) = &matrix.html
        && let Err(e) = check_html_nesting(html)
    {
        panic!("{text:?} {entities:?} gave unbalanced {html:?}: {e}");
    }
    for telegram in [
        matrix_to_telegram(&matrix.body, matrix.html.as_deref(), &pill),
        matrix_to_telegram(text, Some(text), &pill),
        matrix_to_telegram(text, None, &pill),
    ] {
        if let Err(e) = check_telegram_html(&telegram) {
            panic!("{text:?} {entities:?} gave bad Telegram HTML {telegram:?}: {e}");
        }
    }
}

#[test]
fn random_input_never_panics_and_stays_balanced() {
    let mut rng = Rng(0x7e1e_6a4a);
    for _ in 0..5_000 {
        let text = random_text(&mut rng);
        let entities = random_entities(&mut rng, &text);
        assert_invariants(&text, &entities);
        let html = random_html(&mut rng);
        let entities = random_entities(&mut rng, &html);
        assert_invariants(&html, &entities);
        let bytes = random_bytes(&mut rng);
        let entities = random_entities(&mut rng, &bytes);
        assert_invariants(&bytes, &entities);
    }
}

/// The formatting Telegram shows on one character.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Shown {
    ch: char,
    bold: bool,
    italic: bool,
    underline: bool,
    strike: bool,
    spoiler: bool,
    link: Option<String>,
}

/// The lines Telegram would show for its HTML, character by character, with
/// spaces at line ends and empty lines at either end removed (HTML cannot
/// keep those).
fn shown_telegram(html: &str) -> Vec<Vec<Shown>> {
    let mut open: Vec<(String, Option<String>)> = Vec::new();
    let mut lines = vec![Vec::new()];
    for token in Tokenizer::new(html) {
        match token {
            Token::Start { ref name, .. } => {
                let href = token.attr("href").map(str::to_owned);
                open.push((name.clone(), href));
            }
            Token::End { .. } => {
                open.pop();
            }
            Token::Text(text) => {
                let on = |tag: &str| open.iter().any(|(name, _)| name == tag);
                for ch in text.chars() {
                    if ch == '\n' {
                        lines.push(Vec::new());
                        continue;
                    }
                    let shown = Shown {
                        ch,
                        bold: on("b"),
                        italic: on("i"),
                        underline: on("u"),
                        strike: on("s"),
                        spoiler: on("tg-spoiler"),
                        link: open.iter().find_map(|(_, href)| href.clone()),
                    };
                    lines.last_mut().expect("never empty").push(shown);
                }
            }
        }
    }
    normalize(lines)
}

/// The same for a Telegram text and its entities.
fn shown_entities(text: &str, entities: &[Entity]) -> Vec<Vec<Shown>> {
    let mut lines = vec![Vec::new()];
    let mut unit = 0;
    for ch in text.chars() {
        let covers = |kind: &EntityKind| {
            entities
                .iter()
                .any(|e| e.kind == *kind && e.offset <= unit && unit < e.offset + e.length)
        };
        if ch == '\n' {
            lines.push(Vec::new());
        } else {
            let link = entities.iter().find_map(|e| match &e.kind {
                TextLink { url } if e.offset <= unit && unit < e.offset + e.length => {
                    Some(url.clone())
                }
                _ => None,
            });
            lines.last_mut().expect("never empty").push(Shown {
                ch,
                bold: covers(&Bold),
                italic: covers(&Italic),
                underline: covers(&Underline),
                strike: covers(&Strikethrough),
                spoiler: covers(&Spoiler),
                link,
            });
        }
        unit += ch.len_utf16();
    }
    normalize(lines)
}

fn normalize(mut lines: Vec<Vec<Shown>>) -> Vec<Vec<Shown>> {
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

/// Telegram text whose whitespace HTML keeps (no tabs, no CR, no space at a
/// line start), with styles over random runs, possibly overlapping, and a
/// link or two.
fn random_styled(rng: &mut Rng) -> (String, Vec<Entity>) {
    const PARTS: &[&str] = &[
        "a", "b", "Z", "1", " x", "  y", "\n", "\n\n", "<", ">", "&", "\"", "é", "😀", "👍🏽", "日本",
    ];
    let text: String = (0..rng.below(16)).map(|_| *rng.pick(PARTS)).collect();
    let len = utf16_len(&text);
    let kinds = [
        Bold,
        Italic,
        Underline,
        Strikethrough,
        Spoiler,
        link("https://x.org/?a=1&b=2"),
    ];
    let mut entities = Vec::new();
    if len > 0 {
        for _ in 0..rng.below(6) {
            let kind = rng.pick(&kinds).clone();
            let offset = rng.below(len);
            let length = 1 + rng.below(len - offset);
            // Runs that start or end inside a character would be widened,
            // which the per-character comparison does not model.
            let starts = text_starts(&text);
            if starts.contains(&offset) && starts.contains(&(offset + length)) {
                entities.push(Entity::new(kind, offset, length));
            }
        }
    }
    // Two links over the same character are one link in HTML.
    let mut links = 0;
    entities.retain(|e| {
        !matches!(e.kind, TextLink { .. }) || {
            links += 1;
            links == 1
        }
    });
    (text, entities)
}

/// The UTF-16 offsets at which characters of `text` start, and its end.
fn text_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let mut unit = 0;
    for ch in text.chars() {
        unit += ch.len_utf16();
        starts.push(unit);
    }
    starts
}

#[test]
fn random_round_trips_keep_text_and_formatting() {
    let mut rng = Rng(0x1bc0_ffee);
    for _ in 0..5_000 {
        let (text, entities) = random_styled(&mut rng);
        let matrix = telegram_to_matrix(&text, &entities, &user_link);
        let back = matrix_to_telegram(&matrix.body, matrix.html.as_deref(), &pill);
        assert_eq!(
            shown_telegram(&back),
            shown_entities(&text, &entities),
            "{text:?} {entities:?} came back as {back:?} via {:?}",
            matrix.html
        );
    }
}

#[test]
fn many_entities_and_deep_nesting_are_cheap() {
    let text = "x".repeat(4096);
    let entities: Vec<Entity> = (0..4096)
        .map(|i| Entity::new(if i % 2 == 0 { Bold } else { Italic }, i, 4096 - i))
        .collect();
    let matrix = telegram_to_matrix(&text, &entities, &user_link);
    check_html_nesting(matrix.html.as_deref().unwrap_or_default()).unwrap();
    // Links to different targets cannot be merged.
    let entities: Vec<Entity> = (0..1024)
        .map(|i| Entity::new(link(&format!("https://x.org/{i}")), i, 4096 - 2 * i))
        .collect();
    let matrix = telegram_to_matrix(&text, &entities, &user_link);
    check_html_nesting(matrix.html.as_deref().unwrap_or_default()).unwrap();

    let html = "<b>".repeat(20_000) + "x" + &"</i>".repeat(20_000);
    assert_eq!(matrix_to_telegram("", Some(&html), &pill), "<b>x</b>");
    let html = "<blockquote>".repeat(5_000) + "x";
    assert_eq!(
        matrix_to_telegram("", Some(&html), &pill),
        "<blockquote>x</blockquote>"
    );
}
