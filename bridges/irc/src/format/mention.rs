//! Addressing someone at the start of a message: IRC's "nick: hello" and
//! Matrix's mention pill.

use super::to_irc::{matrix_to_irc_with, pill_target};
use super::to_matrix::{Formatted, irc_to_matrix, plain_to_html};
use crate::nick::casefold;
use passerelle_api::html::{Token, Tokenizer, escape};

/// An IRC message that starts by addressing a nick: `nick: rest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NickMention<'t, 'n> {
    /// The nick as the known list spells it.
    pub nick: &'n str,
    /// `:` or `,`, as written.
    pub separator: char,
    /// The text after the separator and the spaces that follow it.
    pub rest: &'t str,
}

/// Finds the IRC convention `nick: hello` or `nick, hello` at the start of
/// `text`, for a nick in `known_nicks` (compared with the RFC 1459 case
/// mapping, IRC's default). The separator must be followed by a space or end
/// the text, so `http://...` is no mention of a user called `http`. The text
/// must start with the nick itself: formatting codes before it mean no match.
pub fn nick_mention_at_start<'t, 'n, I>(
    text: &'t str,
    known_nicks: I,
) -> Option<NickMention<'t, 'n>>
where
    I: IntoIterator<Item = &'n str>,
{
    let mut found: Option<NickMention<'t, 'n>> = None;
    for nick in known_nicks {
        let Some(head) = text.get(..nick.len()) else {
            continue;
        };
        if nick.is_empty() || !irc_eq(head, nick) {
            continue;
        }
        let after = &text[nick.len()..];
        let Some(separator) = after.chars().next().filter(|c| matches!(c, ':' | ',')) else {
            continue;
        };
        let after = &after[1..];
        if !(after.is_empty() || after.starts_with(char::is_whitespace)) {
            continue;
        }
        let mention = NickMention {
            nick,
            separator,
            rest: after.trim_start(),
        };
        if head == nick {
            return Some(mention);
        }
        found.get_or_insert(mention);
    }
    found
}

/// Nicks compare under the RFC 1459 case mapping, IRC's default.
fn irc_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && casefold(a) == casefold(b)
}

/// HTML for a mention pill of `mxid`, showing `name`.
pub fn mention_pill(mxid: &str, name: &str) -> String {
    let mut href = String::from("https://matrix.to/#/");
    for byte in mxid.bytes() {
        if byte.is_ascii_alphanumeric() || b"@:._=-/+!~*'()$,;".contains(&byte) {
            href.push(char::from(byte));
        } else {
            href.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("<a href=\"{}\">{}</a>", escape(&href), escape(name))
}

/// The Matrix message for an IRC message that addresses someone: the nick
/// becomes a pill of `mxid` showing `name`, then the separator, then the
/// rest converted as [`irc_to_matrix`] does. The result always has HTML.
pub fn irc_mention_to_matrix(mention: &NickMention<'_, '_>, mxid: &str, name: &str) -> Formatted {
    let rest = irc_to_matrix(mention.rest);
    let rest_html = rest.html.unwrap_or_else(|| plain_to_html(&rest.body));
    let separator = mention.separator;
    let pill = mention_pill(mxid, name);
    if rest.body.is_empty() {
        return Formatted {
            body: format!("{name}{separator}"),
            html: Some(format!("{pill}{separator}")),
        };
    }
    Formatted {
        body: format!("{name}{separator} {}", rest.body),
        html: Some(format!("{pill}{separator} {rest_html}")),
    }
}

/// A Matrix message that starts with a mention pill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadingPill<'h> {
    /// The user the pill points at.
    pub mxid: String,
    /// The pill's text, usually the display name.
    pub text: String,
    /// The HTML after the pill and after a `:` or `,` and spaces following it.
    pub rest: &'h str,
}

/// Finds a mention pill at the start of a message's HTML, before any other
/// text (a reply fallback `<mx-reply>` and opening `<p>` tags may come first).
pub fn pill_at_start(html: &str) -> Option<LeadingPill<'_>> {
    let mut tokens = Tokenizer::new(html);
    let mxid = loop {
        match tokens.next()? {
            Token::Text(text) if text.trim().is_empty() => {}
            Token::Start { ref name, .. } if name == "p" || name == "div" => {}
            Token::Start { ref name, .. } if name == "mx-reply" => {
                let mut depth = 1usize;
                while depth > 0 {
                    match tokens.next()? {
                        Token::Start { ref name, .. } if name == "mx-reply" => depth += 1,
                        Token::End { ref name } if name == "mx-reply" => depth -= 1,
                        _ => {}
                    }
                }
            }
            ref tag @ Token::Start { ref name, .. } if name == "a" => {
                break pill_target(tag.attr("href")?)?;
            }
            _ => return None,
        }
    };
    let mut text = String::new();
    loop {
        match tokens.next()? {
            Token::Text(part) => text.push_str(&part),
            Token::End { ref name } if name == "a" => break,
            _ => {}
        }
    }
    let rest = tokens.rest();
    let rest = rest.strip_prefix([':', ',']).unwrap_or(rest).trim_start();
    Some(LeadingPill {
        mxid,
        text: text.trim().to_owned(),
        rest,
    })
}

/// Like [`matrix_to_irc_with`], but a message that starts with a mention
/// pill is written the IRC way, `nick: rest`, whatever separator the Matrix
/// client put after the pill. With no `html`, `body` is used as it is.
pub fn matrix_to_irc_addressed(
    html: Option<&str>,
    body: &str,
    nick_for: &dyn Fn(&str) -> Option<String>,
) -> String {
    let Some(pill) = html.and_then(pill_at_start) else {
        return matrix_to_irc_with(html, body, nick_for);
    };
    let nick = nick_for(&pill.mxid)
        .or_else(|| (!pill.text.is_empty()).then_some(pill.text))
        .unwrap_or(pill.mxid);
    let rest = matrix_to_irc_with(Some(pill.rest), "", nick_for);
    let nick: String = nick.chars().filter(|c| !c.is_control()).collect();
    if rest.is_empty() {
        format!("{nick}:")
    } else {
        format!("{nick}: {rest}")
    }
}
