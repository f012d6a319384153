//! Table tests for both directions, round trips and robustness on random
//! input. The control sequence reader has its own tests next to it.

use super::*;

const ALICE: &str = "https://matrix.to/#/@alice:example.org";
const GENERAL: &str = "https://matrix.to/#/#general:example.org";

/// What the bridge would know: a few users and channels, some without a
/// Matrix side, one with an empty name, one with a link that must not
/// become an `href`.
struct Known;

impl Resolver for Known {
    fn user(&self, user_id: &str) -> Option<Mention> {
        let (name, link) = match user_id {
            "U1" => ("Alice", Some(ALICE)),
            "U2" => ("Bob <&>", None),
            "U3" => ("", Some("https://matrix.to/#/@dave:example.org")),
            "U4" => ("Eve", Some("javascript:alert(1)")),
            _ => return None,
        };
        Some(Mention {
            name: name.into(),
            matrix_link: link.map(Into::into),
        })
    }

    fn channel(&self, channel_id: &str) -> Option<Mention> {
        let (name, link) = match channel_id {
            "C1" => ("general", Some(GENERAL)),
            "C2" => ("random", None),
            _ => return None,
        };
        Some(Mention {
            name: name.into(),
            matrix_link: link.map(Into::into),
        })
    }
}

/// (Slack text, expected body, expected HTML)
fn slack_to_matrix_cases() -> Vec<(&'static str, &'static str, Option<String>)> {
    let h = |s: &str| {
        Some(
            s.replace("{ALICE}", &format!("<a href=\"{ALICE}\">Alice</a>"))
                .replace("{GENERAL}", &format!("<a href=\"{GENERAL}\">#general</a>")),
        )
    };
    vec![
        // Plain text and escapes
        ("", "", None),
        ("hello", "hello", None),
        ("a &amp; b &lt;c&gt;", "a & b <c>", None),
        ("&amp;gt; not a quote", "&gt; not a quote", None),
        ("&copy; &#60;", "&copy; &#60;", None),
        ("line1\nline2", "line1\nline2", None),
        ("a\r\nb", "a\nb", None),
        // Styles
        ("*bold*", "*bold*", h("<b>bold</b>")),
        ("_italic_", "_italic_", h("<i>italic</i>")),
        ("~strike~", "~strike~", h("<del>strike</del>")),
        ("*bold*, ok", "*bold*, ok", h("<b>bold</b>, ok")),
        ("(*bold*)", "(*bold*)", h("(<b>bold</b>)")),
        ("*a* *b*", "*a* *b*", h("<b>a</b> <b>b</b>")),
        (
            "*bold _italic_*",
            "*bold _italic_*",
            h("<b>bold <i>italic</i></b>"),
        ),
        (
            "_a *b ~c~ d* e_",
            "_a *b ~c~ d* e_",
            h("<i>a <b>b <del>c</del> d</b> e</i>"),
        ),
        (
            "~*_all three_*~",
            "~*_all three_*~",
            h("<del><b><i>all three</i></b></del>"),
        ),
        // Word boundaries, unmatched and crossed markers
        ("a*b*c", "a*b*c", None),
        ("snake_case_name", "snake_case_name", None),
        ("_snake_case_", "_snake_case_", h("<i>snake_case</i>")),
        ("* not bold*", "* not bold*", None),
        ("*not bold *", "*not bold *", None),
        ("*unclosed", "*unclosed", None),
        ("2 * 3 * 4", "2 * 3 * 4", None),
        ("* *", "* *", None),
        ("*a\nb*", "*a\nb*", None),
        ("*a _b* c_", "*a _b* c_", h("<b>a _b</b> c_")),
        ("*a *b* c*", "*a *b* c*", h("<b>a *b</b> c*")),
        ("**double**", "**double**", h("*<b>double</b>*")),
        ("*日本*語", "*日本*語", None),
        // Code
        (
            "`code *not bold*`",
            "`code *not bold*`",
            h("<code>code *not bold*</code>"),
        ),
        (
            "`a` and `b`",
            "`a` and `b`",
            h("<code>a</code> and <code>b</code>"),
        ),
        ("``", "``", None),
        ("`unclosed *b*", "`unclosed *b*", h("`unclosed <b>b</b>")),
        ("*`code`*", "*`code`*", h("<b><code>code</code></b>")),
        ("*`*`*", "*`*`*", h("<b><code>*</code></b>")),
        ("`:tada:`", "`:tada:`", h("<code>:tada:</code>")),
        (
            "`<@U1> <https://x.org|x>`",
            "`Alice x`",
            h("<code>Alice x</code>"),
        ),
        // Code blocks
        (
            "```pre *x*```",
            "```pre *x*```",
            h("<pre><code>pre *x*</code></pre>"),
        ),
        (
            "```\nfn main() {\n    x\n}\n```",
            "```\nfn main() {\n    x\n}\n```",
            h("<pre><code>fn main() {\n    x\n}</code></pre>"),
        ),
        (
            "before\n```code```\nafter",
            "before\n```code```\nafter",
            h("before<pre><code>code</code></pre>after"),
        ),
        (
            "```a &lt;b&gt; :tada: &gt; q```",
            "```a <b> :tada: > q```",
            h("<pre><code>a &lt;b&gt; :tada: &gt; q</code></pre>"),
        ),
        ("```unclosed", "```unclosed", None),
        ("``````", "``````", None),
        (
            "```\n&gt; not a quote\n```",
            "```\n> not a quote\n```",
            h("<pre><code>&gt; not a quote</code></pre>"),
        ),
        // Quotes
        (
            "&gt; quoted",
            "> quoted",
            h("<blockquote>quoted</blockquote>"),
        ),
        (
            "&gt; a\n&gt; b\nc",
            "> a\n> b\nc",
            h("<blockquote>a<br>b</blockquote>c"),
        ),
        (
            "a\n&gt; *b*",
            "a\n> *b*",
            h("a<blockquote><b>b</b></blockquote>"),
        ),
        (
            "&gt;&gt;&gt; all\nof this",
            "> all\n> of this",
            h("<blockquote>all<br>of this</blockquote>"),
        ),
        (
            "> bot quote",
            "> bot quote",
            h("<blockquote>bot quote</blockquote>"),
        ),
        ("a &gt; b", "a > b", None),
        (
            "&gt;&gt;&gt; ```x```",
            "> ```x```",
            h("<blockquote><pre><code>x</code></pre></blockquote>"),
        ),
        (
            "&gt; ```a\n&gt; b```\nc",
            "> ```a\n> b```\nc",
            h("<blockquote><pre><code>a\nb</code></pre></blockquote>c"),
        ),
        (
            "&gt; q\n```c```",
            "> q\n```c```",
            h("<blockquote>q</blockquote><pre><code>c</code></pre>"),
        ),
        (
            "&gt; a\n```b\n&gt; c```",
            "> a\n```b\n> c```",
            h("<blockquote>a</blockquote><pre><code>b\n&gt; c</code></pre>"),
        ),
        ("&gt;", "> ", h("<blockquote></blockquote>")),
        // Mentions
        ("<@U1> hi", "Alice hi", h("{ALICE} hi")),
        ("<@U2>", "@Bob <&>", None),
        ("*<@U2>*", "*@Bob <&>*", h("<b>@Bob &lt;&amp;&gt;</b>")),
        ("<@U9|carol>", "@carol", None),
        ("<@U9>", "@U9", None),
        (
            "<@U3|dave>",
            "dave",
            h("<a href=\"https://matrix.to/#/@dave:example.org\">dave</a>"),
        ),
        ("<@U4>", "@Eve", None),
        ("<#C1>", "#general", h("{GENERAL}")),
        ("<#C2|random>", "#random", None),
        ("<#C9|x>", "#x", None),
        ("<<@U1>>", "<Alice>", h("&lt;{ALICE}&gt;")),
        ("<@U1", "<@U1", None),
        // Special mentions: text, never @room
        ("<!here> look", "@here look", None),
        ("<!here|here>", "@here", None),
        ("<!channel> <!everyone>", "@channel @everyone", None),
        ("<!subteam^S1|@devs> ping", "@devs ping", None),
        ("<!subteam^S1|devs>", "@devs", None),
        ("<!subteam^S1>", "@S1", None),
        (
            "<!date^1392734382^{date_short}|Feb 18, 2014>",
            "Feb 18, 2014",
            None,
        ),
        ("<!date^1392734382^{date}>", "2014-02-18 14:39 UTC", None),
        ("<!date^soon^{date}>", "<!date^soon^{date}>", None),
        ("<!unknown>", "@unknown", None),
        // Links
        ("<https://example.org>", "https://example.org", None),
        (
            "<https://example.org|the site>",
            "the site (https://example.org)",
            h("<a href=\"https://example.org\">the site</a>"),
        ),
        ("<http://example.org|example.org>", "example.org", None),
        ("<https://x.org|>", "https://x.org", None),
        (
            "<https://x.org/?a=1&amp;b=2|q&amp;a>",
            "q&a (https://x.org/?a=1&b=2)",
            h("<a href=\"https://x.org/?a=1&amp;b=2\">q&amp;a</a>"),
        ),
        (
            "<https://x.org|a|b>",
            "a|b (https://x.org)",
            h("<a href=\"https://x.org\">a|b</a>"),
        ),
        ("<mailto:a@b.org|a@b.org>", "a@b.org", None),
        (
            "<MAILTO:a@b.org|mail me>",
            "mail me (MAILTO:a@b.org)",
            h("<a href=\"MAILTO:a@b.org\">mail me</a>"),
        ),
        ("<tel:+123|call me>", "call me", None),
        ("<javascript:alert(1)|click>", "click", None),
        ("<slack://open>", "slack://open", None),
        ("<not a link>", "<not a link>", None),
        (
            "*<https://x.org|bold link>*",
            "*bold link (https://x.org)*",
            h("<b><a href=\"https://x.org\">bold link</a></b>"),
        ),
        (
            "<https://x.org/a_b|x_y>_z_",
            "x_y (https://x.org/a_b)_z_",
            h("<a href=\"https://x.org/a_b\">x_y</a><i>z</i>"),
        ),
        (
            "<https://x.org/\"><script>|a>",
            "https://x.org/\"<script>|a>",
            None,
        ),
        (
            "*<https://x.org/\"q|a>*",
            "*a (https://x.org/\"q)*",
            h("<b><a href=\"https://x.org/&quot;q\">a</a></b>"),
        ),
        // HTML in Slack text is text
        ("<b>html</b>", "<b>html</b>", None),
        (
            "*x* <b>y</b> &lt;i&gt;",
            "*x* <b>y</b> <i>",
            h("<b>x</b> &lt;b&gt;y&lt;/b&gt; &lt;i&gt;"),
        ),
        (
            "*&lt;img src=x onerror=\"y\"&gt;*",
            "*<img src=x onerror=\"y\">*",
            h("<b>&lt;img src=x onerror=&quot;y&quot;&gt;</b>"),
        ),
        // Emoji and Unicode
        (":tada: done", "🎉 done", None),
        ("*:tada:*", "*🎉*", h("<b>🎉</b>")),
        (":partyparrot:", ":partyparrot:", None),
        ("_see :white_check_mark:_", "_see ✅_", h("<i>see ✅</i>")),
        (
            "héllo *wörld* 😀",
            "héllo *wörld* 😀",
            h("héllo <b>wörld</b> 😀"),
        ),
        // Whitespace
        ("*a*  b", "*a*  b", h("<b>a</b> &nbsp;b")),
        (" *a*", " *a*", h("&nbsp;<b>a</b>")),
        ("*a*\nb", "*a*\nb", h("<b>a</b><br>b")),
        ("*a*\n\nb", "*a*\n\nb", h("<b>a</b><br><br>b")),
    ]
}

#[test]
fn slack_to_matrix_table() {
    for (input, body, html) in slack_to_matrix_cases() {
        let got = slack_to_matrix(input, &Known);
        assert_eq!(got.body, body, "body of {input:?}");
        assert_eq!(got.html, html, "html of {input:?}");
        if let Some(html) = &got.html {
            check_html_nesting(html).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        }
    }
}

fn pill(mxid: &str) -> Option<String> {
    match mxid {
        "@alice:example.org" => Some("U1".into()),
        // A broken mapping must not write a broken sequence.
        "@weird:example.org" => Some("U<!channel>".into()),
        _ => None,
    }
}

/// (Matrix HTML, expected mrkdwn)
fn matrix_to_slack_cases() -> Vec<(&'static str, &'static str)> {
    vec![
        ("", ""),
        ("plain", "plain"),
        ("<p>", ""),
        // Styles
        ("<b>bold</b> text", "*bold* text"),
        ("<strong>s</strong>", "*s*"),
        ("<i>i</i> <em>e</em>", "_i e_"),
        ("<i>i</i>, <em>e</em>", "_i_, _e_"),
        ("<del>d</del><s>s</s><strike>k</strike>", "~dsk~"),
        ("<code>x</code> y", "`x` y"),
        ("<b>a <i>b</i> c</b>", "*a _b_ c*"),
        ("<i>a <b>b</b></i> c", "_a *b*_ c"),
        ("<b>a<i>b</b>c</i>", "*a_b_*c"),
        ("<b>bold </b>next", "*bold* next"),
        ("<b> lead</b>", "*lead*"),
        ("a<b> </b>b", "a b"),
        ("<b></b>x", "x"),
        ("<b>a</b><b>b</b>", "*ab*"),
        ("<b>a<b>b</b>c</b>", "*abc*"),
        ("<b>line1<br>line2</b>", "*line1*\n*line2*"),
        ("<b>a\n b</b>", "*a b*"),
        ("<b>bold", "*bold*"),
        ("</b>x", "x"),
        ("<del>a</del> <code>b</code>", "~a~ `b`"),
        ("é <b>ü</b> 😀", "é *ü* 😀"),
        // Code
        ("<code>a *b* c</code>", "`a *b* c`"),
        ("<b><code>x</code></b>", "*`x`*"),
        ("<code><b>x</b> y</code>", "`x y`"),
        ("<code>a &lt; b</code>", "`a &lt; b`"),
        (
            "<pre><code>fn main() {\n    x\n}\n</code></pre>",
            "```\nfn main() {\n    x\n}\n```",
        ),
        (
            "<pre><code class=\"language-rust\">\nlet x = 1;\n</code></pre>",
            "```\nlet x = 1;\n```",
        ),
        (
            "before<pre>a\n\nb</pre>after",
            "before\n```\na\n\nb\n```\nafter",
        ),
        (
            "<pre><b>x</b> &lt;y&gt; *z*</pre>",
            "```\nx &lt;y&gt; *z*\n```",
        ),
        ("<pre></pre>x", "x"),
        ("<b><pre>x</pre></b>", "```\nx\n```"),
        // Blocks
        ("<blockquote>quoted</blockquote>after", "> quoted\nafter"),
        ("<blockquote><p>a</p><p>b</p></blockquote>", "> a\n>\n> b"),
        (
            "<blockquote><blockquote>deep</blockquote></blockquote>",
            "> deep",
        ),
        (
            "<blockquote><pre>x\ny</pre></blockquote>",
            "> ```\n> x\n> y\n> ```",
        ),
        ("<ul><li>one</li><li>two</li></ul>", "• one\n• two"),
        ("<ol start=\"3\"><li>c</li><li>d</li></ol>", "3. c\n4. d"),
        ("<ul><li>a<ul><li>b</li></ul></li></ul>", "• a\n    • b"),
        (
            "<ol><li>a</li><li>b<ol><li>c</li></ol></li></ol>",
            "1. a\n2. b\n    1. c",
        ),
        ("<ul><li>a<li>b</ul>", "• a\n• b"),
        ("<li>orphan</li>", "• orphan"),
        ("<h1>Title</h1>text", "*Title*\ntext"),
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("<p>a</p>\n<p>b</p>", "a\n\nb"),
        ("<p>a<p>b", "a\n\nb"),
        ("a<br>b", "a\nb"),
        ("a<br><br>b", "a\n\nb"),
        ("x<br>", "x"),
        ("<br>x", "x"),
        ("a<hr>b", "a\n───\nb"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a | b"),
        ("  lots   of\n space  ", "lots of space"),
        // Links
        (
            "<a href=\"https://example.org\">site</a>",
            "<https://example.org|site>",
        ),
        (
            "<a href=\"https://example.org\">https://example.org</a>",
            "<https://example.org>",
        ),
        (
            "<a href=\"https://example.org\"></a>",
            "<https://example.org>",
        ),
        (
            "<a href=\"https://x.org/?a=1&amp;b=2\">a|b &amp; c</a>",
            "<https://x.org/?a=1&amp;b=2|a|b &amp; c>",
        ),
        (
            "<a href=\"https://x.org/a b|c<d>\">x</a>",
            "<https://x.org/a%20b%7Cc%3Cd%3E|x>",
        ),
        (
            "<a href=\"https://x.org\">&lt;!channel&gt;</a>",
            "<https://x.org|&lt;!channel&gt;>",
        ),
        (
            "<a href=\"https://x.org\"><b>bold</b>\n link</a>",
            "<https://x.org|bold link>",
        ),
        (
            "<b><a href=\"https://x.org\">l</a></b>",
            "*<https://x.org|l>*",
        ),
        (
            "<a href=\"mailto:a@b.org\">mail</a>",
            "<mailto:a@b.org|mail>",
        ),
        ("<a href=\"HTTPS://X.org\">x</a>", "<https://X.org|x>"),
        ("<a href=\"javascript:alert(1)\">click</a>", "click"),
        ("<a href=\"https://\">x</a>", "x"),
        ("<a>no href</a>", "no href"),
        ("<pre><a href=\"https://x.org\">l</a></pre>", "```\nl\n```"),
        // Pills
        (
            "<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>: hi",
            "<@U1>: hi",
        ),
        (
            "<a href=\"https://matrix.to/#/%40alice%3Aexample.org\">A</a>",
            "<@U1>",
        ),
        ("<a href=\"matrix:u/alice:example.org\">A</a>", "<@U1>"),
        (
            "<a href=\"https://matrix.to/#/@bob:example.org\">Bob</a>",
            "Bob",
        ),
        (
            "<a href=\"https://matrix.to/#/@bob:example.org\"></a>",
            "@bob:example.org",
        ),
        (
            "<a href=\"https://matrix.to/#/@weird:example.org\">W &lt;!here&gt;</a>",
            "W &lt;!here&gt;",
        ),
        (
            "<a href=\"https://matrix.to/#/#room:example.org\">#room</a>",
            "<https://matrix.to/#/#room:example.org|#room>",
        ),
        // Dropped and ignored
        (
            "<mx-reply><blockquote>quoted <a href=\"https://matrix.to/#/@alice:example.org\">Alice</a></blockquote></mx-reply>reply",
            "reply",
        ),
        ("<script>alert(1)</script>x", "x"),
        ("<u>under</u> <font color=\"red\">red</font>", "under red"),
        ("<span data-mx-spoiler>secret</span>", "secret"),
        ("<img src=\"mxc://x/y\" alt=\":party:\">", ":party:"),
        // Escaping and injection
        ("&lt;!channel&gt;", "&lt;!channel&gt;"),
        ("&lt;@U1&gt; hi", "&lt;@U1&gt; hi"),
        ("&lt;https://x.org|y&gt;", "&lt;https://x.org|y&gt;"),
        ("a &amp; b &gt; c", "a &amp; b &gt; c"),
        ("&amp;lt;", "&amp;lt;"),
        ("<b>&lt;!here&gt;</b>", "*&lt;!here&gt;*"),
        ("<!channel>", ""),
        ("<@U1>", "&lt;@U1&gt;"),
        ("a<br>&gt; b", "a\n&gt; b"),
        // Limitations, pinned
        ("<b>a</b>b", "*a*b"),
        ("2 * 3", "2 * 3"),
    ]
}

#[test]
fn matrix_to_slack_table() {
    for (html, want) in matrix_to_slack_cases() {
        let got = matrix_to_slack("body", Some(html), &pill);
        assert_eq!(got, want, "{html:?}");
        assert_slack_safe(html, &got);
    }
}

#[test]
fn matrix_to_slack_without_html_escapes_the_body() {
    let cases = [
        ("plain", "plain"),
        ("<!channel> hi", "&lt;!channel&gt; hi"),
        (
            "<@U1> <#C1> <https://x|y>",
            "&lt;@U1&gt; &lt;#C1&gt; &lt;https://x|y&gt;",
        ),
        ("a & b > c", "a &amp; b &gt; c"),
        ("&lt;", "&amp;lt;"),
        ("a\r\nb", "a\nb"),
        ("*bold* _it_", "*bold* _it_"),
        ("", ""),
    ];
    for (body, want) in cases {
        let got = matrix_to_slack(body, None, &pill);
        assert_eq!(got, want, "{body:?}");
        assert_slack_safe(body, &got);
    }
}

fn round_trip(text: &str) -> String {
    let matrix = slack_to_matrix(text, &Known);
    matrix_to_slack(&matrix.body, matrix.html.as_deref(), &pill)
}

#[test]
fn round_trip_table() {
    let cases = [
        ("plain", "plain"),
        (
            "*bold* and _it_ and ~s~ and `c`",
            "*bold* and _it_ and ~s~ and `c`",
        ),
        ("*bold _both_*", "*bold _both_*"),
        ("&gt; quote\nnot", "> quote\nnot"),
        ("```\ncode *x*\n```", "```\ncode *x*\n```"),
        ("a &amp; b &lt;c&gt;", "a &amp; b &lt;c&gt;"),
        ("<@U1> hi", "<@U1> hi"),
        ("<https://x.org|x> *y*", "<https://x.org|x> *y*"),
        ("<https://x.org> *y*", "<https://x.org> *y*"),
        ("<!here> *y*", "@here *y*"),
        ("*a*\nb", "*a*\nb"),
        (":tada: *y*", "🎉 *y*"),
    ];
    for (slack, want) in cases {
        assert_eq!(round_trip(slack), want, "{slack:?}");
    }
}

#[test]
fn mentions_are_listed_for_m_mentions() {
    assert_eq!(
        mentioned_users("<@U1> and <@U2|bob>, `<@U1>`"),
        ["U1", "U2"]
    );
}

/// Checks what `matrix_to_slack` promises: every `<` starts a mention of a
/// user the pill callback gave, or a web link, with nothing inside that
/// could end it early; every `>` outside those is a quote marker at the
/// start of a line; every `&` starts one of Slack's three escapes.
fn assert_slack_safe(input: &str, slack: &str) {
    let fail = |why: &str| panic!("{why} in {slack:?} from {input:?}");
    let mut rest = slack;
    let mut at_line_start = true;
    while let Some(ch) = rest.chars().next() {
        match ch {
            '<' => {
                let Some(end) = rest.find('>') else {
                    fail("`<` without `>`");
                    return;
                };
                let inner = &rest[1..end];
                if inner.contains(['<', '\n', '\r']) {
                    fail("broken sequence");
                }
                let target = inner.split('|').next().unwrap_or_default();
                let ok = inner == "@U1"
                    || (["http://", "https://", "mailto:"]
                        .iter()
                        .any(|s| target.starts_with(s))
                        && !target.contains(char::is_whitespace));
                if !ok {
                    fail("unexpected control sequence");
                }
                rest = &rest[end + 1..];
                at_line_start = false;
                continue;
            }
            '>' if !at_line_start => fail("bare `>`"),
            '&' if !["&amp;", "&lt;", "&gt;"]
                .iter()
                .any(|e| rest.starts_with(e)) =>
            {
                fail("bare `&`")
            }
            _ => {}
        }
        at_line_start = ch == '\n';
        rest = &rest[ch.len_utf8()..];
    }
}

/// A tiny xorshift PRNG: the tests need no cryptographic randomness, and no
/// dependency for it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, parts: &[&'a str]) -> &'a str {
        parts[self.below(parts.len())]
    }
}

/// Slack text from pieces that stress the parser: markers next to letters
/// and spaces, half sequences, escapes, fences, quotes.
fn random_slack(rng: &mut Rng) -> String {
    const PARTS: &[&str] = &[
        "*",
        "_",
        "~",
        "`",
        "```",
        "*",
        "_",
        "a",
        "b",
        "Z",
        "1",
        " ",
        "  ",
        "\n",
        "&gt;",
        "&gt; ",
        "&gt;&gt;&gt;",
        "&amp;",
        "&lt;",
        "&",
        ";",
        "<",
        ">",
        "|",
        "<@U1>",
        "<@U2|b>",
        "<@U4>",
        "<#C1>",
        "<#C2|r>",
        "<!here>",
        "<!subteam^S1|@t>",
        "<!date^12^{date}|d>",
        "<https://x.org|l>",
        "<https://x.org>",
        "<javascript:x|j>",
        "<mailto:a@b|m>",
        ":tada:",
        ":+1::skin-tone-3:",
        ":",
        "é",
        "😀",
        "日",
        "\"",
        "'",
        "\r",
        "\t",
        "\0",
    ];
    let mut text = String::new();
    for _ in 0..rng.below(32) {
        text.push_str(rng.pick(PARTS));
    }
    text
}

/// HTML that is mostly markup: tag fragments, pills, entities, controls.
fn random_html(rng: &mut Rng) -> String {
    const PARTS: &[&str] = &[
        "<b>",
        "</b>",
        "<i>",
        "</i>",
        "<del>",
        "</del>",
        "<code>",
        "</code>",
        "<pre>",
        "</pre>",
        "<p>",
        "</p>",
        "<br>",
        "<blockquote>",
        "</blockquote>",
        "<ul>",
        "<ol start=\"9\">",
        "<li>",
        "</li>",
        "</ul>",
        "</ol>",
        "<h2>",
        "</h2>",
        "<a href=\"https://matrix.to/#/@alice:example.org\">",
        "<a href=\"https://matrix.to/#/@weird:example.org\">",
        "<a href=\"https://matrix.to/#/@bob:example.org\">",
        "<a href=\"https://x.org/a b|c>\">",
        "<a href=\"javascript:x\">",
        "<a href=\"mailto:a@b\">",
        "<a href=\"HtTp://x\">",
        "</a>",
        "<mx-reply>",
        "</mx-reply>",
        "<script>",
        "</script>",
        "<span data-mx-spoiler>",
        "</span>",
        "<img alt=\"x\">",
        "<hr>",
        "<table><tr><td>",
        "</td><td>",
        "<!--",
        "-->",
        "<",
        ">",
        "&",
        "&amp;",
        "&lt;",
        "&gt;",
        "&lt;!channel&gt;",
        "&lt;@U1&gt;",
        "*",
        "_",
        "~",
        "`",
        "```",
        "|",
        "\"",
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
    let mut html = String::new();
    for _ in 0..rng.below(32) {
        html.push_str(rng.pick(PARTS));
    }
    html
}

fn random_bytes(rng: &mut Rng) -> String {
    let len = rng.below(64);
    let bytes: Vec<u8> = (0..len)
        .map(|_| match rng.below(4) {
            0 => rng.below(0x20) as u8,
            1 => {
                const SPECIAL: &[u8] = b"<>&|@#!^*_~`:;/\" \nabx";
                SPECIAL[rng.below(SPECIAL.len())]
            }
            _ => rng.next() as u8,
        })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The invariants the fuzz target asserts too.
fn assert_invariants(input: &str) {
    let matrix = slack_to_matrix(input, &Known);
    if let Some(html) = &matrix.html
        && let Err(e) = check_html_nesting(html)
    {
        panic!("{input:?} gave unbalanced {html:?}: {e}");
    }
    for slack in [
        matrix_to_slack(input, Some(input), &pill),
        matrix_to_slack(input, None, &pill),
        matrix_to_slack(&matrix.body, matrix.html.as_deref(), &pill),
        matrix_to_slack(&matrix.body, None, &pill),
    ] {
        assert_slack_safe(input, &slack);
    }
    let _ = mentioned_users(input);
}

#[test]
fn random_input_never_panics_and_stays_balanced() {
    let mut rng = Rng(0x5eed_51ac_cafe_f00d);
    for _ in 0..5_000 {
        assert_invariants(&random_slack(&mut rng));
        assert_invariants(&random_html(&mut rng));
        assert_invariants(&random_bytes(&mut rng));
    }
}

#[test]
fn deep_nesting_and_long_lines_are_cheap() {
    let html = "<b>".repeat(20_000) + "x" + &"</i>".repeat(20_000);
    assert_eq!(matrix_to_slack("", Some(&html), &pill), "*x*");
    let html = "<blockquote>".repeat(5_000) + "x";
    assert_eq!(matrix_to_slack("", Some(&html), &pill), "> x");
    let html = "<a href=\"https://x.org\">".repeat(5_000) + "x";
    assert_eq!(matrix_to_slack("", Some(&html), &pill), "<https://x.org|x>");
    // Unmatched openers: each looks for its closer once.
    let text = "*a _b ~c ".repeat(20_000);
    assert_eq!(slack_to_matrix(&text, &Known).html, None);
    let text = "*a* ".repeat(20_000);
    assert!(slack_to_matrix(&text, &Known).html.is_some());
    let text = "`".repeat(50_000) + &"```".repeat(10_000);
    let _ = slack_to_matrix(&text, &Known);
}
