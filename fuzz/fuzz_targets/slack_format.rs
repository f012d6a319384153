//! Fuzzes both directions of the Slack module's mrkdwn <-> Matrix HTML
//! conversion and its emoji names. The input is used as Slack text, as
//! Matrix HTML and body, and as emoji names alike.
//!
//! Invariants: nothing panics; `slack_to_matrix` writes balanced HTML;
//! `matrix_to_slack` writes no control sequence but the mentions the pill
//! callback gave and web links, no bare `&`, and `>` only as a quote marker
//! at the start of a line; that holds for what `slack_to_matrix` wrote too;
//! a name or emoji the emoji functions know converts back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_slack::emoji::{replace_shortcodes, shortcode_to_unicode, unicode_to_shortcode};
use passerelle_slack::mrkdwn::{
    Mention, Resolver, check_html_nesting, matrix_to_slack, mentioned_users, slack_to_matrix,
};

/// Some users and channels have a Matrix side, some do not; names and
/// links hold odd characters too.
struct Fuzzed;

impl Resolver for Fuzzed {
    fn user(&self, user_id: &str) -> Option<Mention> {
        user_id.starts_with('U').then(|| Mention {
            name: format!("<{user_id}> & \"co\""),
            matrix_link: user_id
                .ends_with('1')
                .then(|| format!("https://matrix.to/#/@{user_id}:example.org\"><b>")),
        })
    }

    fn channel(&self, channel_id: &str) -> Option<Mention> {
        channel_id.starts_with('C').then(|| Mention {
            name: channel_id.to_owned(),
            matrix_link: Some("javascript:alert(1)".to_owned()),
        })
    }
}

/// The Slack user a pill's Matrix user is; `@bad...` users map to an id
/// that must not be written as a mention.
fn slack_id_for(mxid: &str) -> Option<String> {
    if mxid.starts_with("@a") {
        Some("U1".to_owned())
    } else if mxid.starts_with("@bad") {
        Some("U1><!channel".to_owned())
    } else {
        None
    }
}

fn assert_balanced(input: &str, html: &str) {
    if let Err(e) = check_html_nesting(html) {
        panic!("unbalanced HTML {html:?} from {input:?}: {e}");
    }
}

fn assert_slack_safe(input: &str, slack: &str) {
    let fail = |why: &str| -> ! { panic!("{why} in {slack:?} from {input:?}") };
    let mut rest = slack;
    let mut at_line_start = true;
    while let Some(ch) = rest.chars().next() {
        match ch {
            '<' => {
                let end = rest.find('>').unwrap_or_else(|| fail("`<` without `>`"));
                let inner = &rest[1..end];
                let target = inner.split('|').next().unwrap_or_default();
                let link = ["http://", "https://", "mailto:"]
                    .iter()
                    .any(|scheme| target.starts_with(scheme))
                    && !target.contains(char::is_whitespace);
                if inner.contains(['<', '\n']) || !(inner == "@U1" || link) {
                    fail("unexpected control sequence");
                }
                rest = &rest[end + 1..];
                at_line_start = false;
                continue;
            }
            '>' if !at_line_start => fail("bare `>`"),
            '&' if !is_escape(rest) => fail("bare `&`"),
            _ => {}
        }
        at_line_start = ch == '\n';
        rest = &rest[ch.len_utf8()..];
    }
}

fn is_escape(text: &str) -> bool {
    ["&amp;", "&lt;", "&gt;"]
        .iter()
        .any(|e| text.starts_with(e))
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let input = input.as_ref();

    // Slack -> Matrix.
    let matrix = slack_to_matrix(input, &Fuzzed);
    if let Some(html) = &matrix.html {
        assert_balanced(input, html);
    }
    let _ = mentioned_users(input);

    // Matrix -> Slack, the input as HTML and as a plain body.
    assert_slack_safe(input, &matrix_to_slack(input, Some(input), &slack_id_for));
    assert_slack_safe(input, &matrix_to_slack(input, None, &slack_id_for));

    // And back: what slack_to_matrix wrote converts to Slack safely.
    assert_slack_safe(
        input,
        &matrix_to_slack(&matrix.body, matrix.html.as_deref(), &slack_id_for),
    );

    // Emoji: what converts one way converts back.
    let _ = replace_shortcodes(input);
    if let Some(emoji) = shortcode_to_unicode(input) {
        let name = unicode_to_shortcode(&emoji)
            .unwrap_or_else(|| panic!("{emoji:?} from {input:?} has no name"));
        assert_eq!(
            shortcode_to_unicode(&name).as_deref(),
            Some(emoji.as_str()),
            "{input:?} -> {emoji:?} -> {name:?}"
        );
    }
    if let Some(name) = unicode_to_shortcode(input) {
        assert!(
            shortcode_to_unicode(&name).is_some(),
            "{input:?} -> {name:?} is unknown"
        );
    }
});
