//! Telegram text with message entities -> a Matrix message body and
//! `org.matrix.custom.html`.

use std::cmp::Reverse;
use std::collections::HashMap;

use passerelle_api::html::escape;

use super::entity::{Entity, EntityKind, Utf16Index};
use super::sanitize::{MATRIX_SCHEMES, code_language, has_scheme, safe_href};
use super::tags::{Rank, keep};

/// A Matrix text message: the plain `body` and, when the text has any
/// formatting, the `formatted_body` in `org.matrix.custom.html`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formatted {
    pub body: String,
    pub html: Option<String>,
}

/// Converts a Telegram message text (or caption) and its entities to Matrix.
///
/// `body` is `text` as it is. `html` is `None` when no entity gives any
/// formatting, so plain messages stay plain; otherwise it is balanced HTML:
/// - bold `<b>`, italic `<i>`, underline `<u>`, strikethrough `<del>`,
///   spoiler `<span data-mx-spoiler="">`, inline code `<code>`;
/// - `pre` is `<pre><code>`, with `class="language-x"` when it has a
///   language that is a plain identifier;
/// - blockquotes, expandable or not, are `<blockquote>`; a line break right
///   after one (and right before one) is left out, since the block already
///   breaks the line;
/// - a `text_link` is a link when its target is `http(s):` or `mailto:`,
///   else plain text; a `url` links to itself (`http://` is added when it
///   has no scheme; other schemes, such as `tg://`, stay text); an `email`
///   links to `mailto:`; a `text_mention` links to `user_link(user_id)`
///   (the ghost's `matrix.to` URL) when that gives a link;
/// - `mention`, `hashtag`, `cashtag`, `bot_command`, `phone_number`,
///   `custom_emoji` (its text is the fallback emoji), `date_time` and kinds
///   this module does not know stay plain text;
/// - line breaks are `<br>` (kept as they are inside `<pre>`), and runs of
///   spaces survive as `&nbsp;`, because HTML would collapse them.
///
/// Entities are UTF-16 ranges. Bad input never panics: ranges are clamped
/// to the text, a bound inside a surrogate pair widens the range to the
/// whole character, empty ranges are dropped. Entities that overlap without
/// nesting are closed and reopened around each other; two of the same kind
/// that overlap are merged, and a link inside another link, or inline code
/// inside a code block, is left out.
pub fn telegram_to_matrix(
    text: &str,
    entities: &[Entity],
    user_link: &dyn Fn(i64) -> Option<String>,
) -> Formatted {
    let spans = spans(text, entities, user_link);
    let mut cuts: Vec<usize> = spans.iter().flat_map(|s| [s.start, s.end]).collect();
    cuts.extend([0, text.len()]);
    cuts.sort_unstable();
    cuts.dedup();
    let mut by_start: Vec<usize> = (0..spans.len()).collect();
    by_start.sort_by_key(|&i| spans[i].start);

    // Indexes into `spans`, which are sorted outermost first, so the active
    // list in index order is the nesting order.
    let mut active: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut html = HtmlWriter::default();
    for cut in cuts.windows(2) {
        let (from, to) = (cut[0], cut[1]);
        active.retain(|&i| spans[i].end > from);
        while let Some(&i) = by_start.get(next).filter(|&&i| spans[i].start <= from) {
            if let Err(at) = active.binary_search(&i) {
                active.insert(at, i);
            }
            next += 1;
        }
        html.sync(&wanted_tags(&spans, &active));
        html.text(&text[from..to]);
    }
    Formatted {
        body: text.to_owned(),
        html: html.finish(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Tag {
    Quote,
    Pre(Option<String>),
    Link(String),
    Bold,
    Italic,
    Underline,
    Strike,
    Spoiler,
    Code,
}

impl Rank for Tag {
    const INLINE: u8 = 2;

    fn rank(&self) -> u8 {
        match self {
            Tag::Quote => 0,
            Tag::Pre(_) => 1,
            _ => Self::INLINE,
        }
    }
}

impl Tag {
    fn is_block(&self) -> bool {
        self.rank() < Self::INLINE
    }

    fn start(&self) -> String {
        match self {
            Tag::Quote => "<blockquote>".into(),
            Tag::Pre(None) => "<pre><code>".into(),
            Tag::Pre(Some(language)) => {
                format!("<pre><code class=\"language-{}\">", escape(language))
            }
            Tag::Link(href) => format!("<a href=\"{}\">", escape(href)),
            Tag::Bold => "<b>".into(),
            Tag::Italic => "<i>".into(),
            Tag::Underline => "<u>".into(),
            Tag::Strike => "<del>".into(),
            Tag::Spoiler => "<span data-mx-spoiler=\"\">".into(),
            Tag::Code => "<code>".into(),
        }
    }

    fn end(&self) -> &'static str {
        match self {
            Tag::Quote => "</blockquote>",
            Tag::Pre(_) => "</code></pre>",
            Tag::Link(_) => "</a>",
            Tag::Bold => "</b>",
            Tag::Italic => "</i>",
            Tag::Underline => "</u>",
            Tag::Strike => "</del>",
            Tag::Spoiler => "</span>",
            Tag::Code => "</code>",
        }
    }
}

/// An entity as a tag over a byte range of the text.
struct Span {
    start: usize,
    end: usize,
    tag: Tag,
    /// The position of its (first) entity in Telegram's list.
    order: usize,
}

/// The entities that give formatting, as non-empty byte ranges, sorted
/// outermost first: blocks before inline tags, then by start, longest
/// first, then in the order Telegram sent them. Ranges of the same tag that
/// overlap or touch are merged into one, which also keeps the work per
/// character small when many entities cover it.
fn spans(text: &str, entities: &[Entity], user_link: &dyn Fn(i64) -> Option<String>) -> Vec<Span> {
    let index = Utf16Index::new(text);
    let mut by_tag: HashMap<Tag, Vec<(usize, usize, usize)>> = HashMap::new();
    for (order, entity) in entities.iter().enumerate() {
        let (start, end) = index.byte_range(entity.offset, entity.length);
        if start >= end {
            continue;
        }
        if let Some(tag) = tag_for(&entity.kind, &text[start..end], user_link) {
            by_tag.entry(tag).or_default().push((start, end, order));
        }
    }
    let mut spans: Vec<Span> = Vec::new();
    for (tag, mut ranges) in by_tag {
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize, usize)> = Vec::new();
        for (start, end, order) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => {
                    last.1 = last.1.max(end);
                    last.2 = last.2.min(order);
                }
                _ => merged.push((start, end, order)),
            }
        }
        spans.extend(merged.into_iter().map(|(start, end, order)| Span {
            start,
            end,
            tag: tag.clone(),
            order,
        }));
    }
    spans.sort_by_key(|span| (span.tag.rank(), span.start, Reverse(span.end), span.order));
    spans
}

fn tag_for(
    kind: &EntityKind,
    covered: &str,
    user_link: &dyn Fn(i64) -> Option<String>,
) -> Option<Tag> {
    let link = |url: &str| safe_href(url, MATRIX_SCHEMES).map(Tag::Link);
    match kind {
        EntityKind::Bold => Some(Tag::Bold),
        EntityKind::Italic => Some(Tag::Italic),
        EntityKind::Underline => Some(Tag::Underline),
        EntityKind::Strikethrough => Some(Tag::Strike),
        EntityKind::Spoiler => Some(Tag::Spoiler),
        EntityKind::Code => Some(Tag::Code),
        EntityKind::Pre { language } => Some(Tag::Pre(language.as_deref().and_then(code_language))),
        EntityKind::Blockquote | EntityKind::ExpandableBlockquote => Some(Tag::Quote),
        EntityKind::TextLink { url } => link(url),
        EntityKind::TextMention { user_id } => link(&user_link(*user_id)?),
        EntityKind::Url => {
            let url = covered.trim();
            if has_scheme(url) {
                link(url)
            } else {
                // As Telegram clients open a bare domain.
                link(&format!("http://{url}"))
            }
        }
        EntityKind::Email => link(&format!("mailto:{}", covered.trim())),
        EntityKind::Mention
        | EntityKind::PhoneNumber
        | EntityKind::Hashtag
        | EntityKind::Cashtag
        | EntityKind::BotCommand
        | EntityKind::CustomEmoji { .. }
        | EntityKind::DateTime
        | EntityKind::Other(_) => None,
    }
}

/// The tags the text covered by the `active` spans wants, outermost first:
/// one of each kind (the outermost span of that kind wins), and no inline
/// code inside a code block.
fn wanted_tags<'a>(spans: &'a [Span], active: &[usize]) -> Vec<&'a Tag> {
    let mut wanted: Vec<&Tag> = Vec::new();
    for &i in active {
        let tag = &spans[i].tag;
        let same_kind =
            |other: &&Tag| std::mem::discriminant(*other) == std::mem::discriminant(tag);
        let code_in_pre = *tag == Tag::Code && wanted.iter().any(|t| matches!(t, Tag::Pre(_)));
        if !code_in_pre && !wanted.iter().any(same_kind) {
            wanted.push(tag);
        }
    }
    wanted
}

#[derive(Default)]
struct HtmlWriter {
    html: String,
    open: Vec<Tag>,
    formatted: bool,
    /// Whether the next space would be collapsed by an HTML renderer: at the
    /// start of a line or right after another space.
    space_collapses: bool,
    started_line: bool,
    /// A block just ended: the line break that follows it in the text is
    /// already there.
    block_ended: bool,
    /// Where the last `<br>` ended, to take it back if a block starts right
    /// after it.
    br_end: Option<usize>,
    /// The last character was CR: a LF right after it is the same break.
    after_cr: bool,
}

impl HtmlWriter {
    fn sync(&mut self, wanted: &[&Tag]) {
        let kept = keep(&self.open, wanted);
        self.close_from(kept);
        for tag in wanted {
            if !self.open.contains(tag) {
                self.open_tag((*tag).clone());
            }
        }
    }

    fn open_tag(&mut self, tag: Tag) {
        if tag.is_block() {
            if self.br_end == Some(self.html.len()) {
                self.html.truncate(self.html.len() - "<br>".len());
            }
            self.started_line = false;
        }
        self.formatted = true;
        self.html.push_str(&tag.start());
        self.open.push(tag);
    }

    fn close_from(&mut self, keep: usize) {
        while self.open.len() > keep {
            if let Some(tag) = self.open.pop() {
                self.html.push_str(tag.end());
                if tag.is_block() {
                    self.block_ended = true;
                    self.started_line = false;
                    self.space_collapses = false;
                }
            }
        }
    }

    fn in_pre(&self) -> bool {
        self.open.iter().any(|tag| matches!(tag, Tag::Pre(_)))
    }

    fn text(&mut self, text: &str) {
        let in_pre = self.in_pre();
        for ch in text.chars() {
            let after_cr = std::mem::replace(&mut self.after_cr, ch == '\r');
            if in_pre {
                self.block_ended = false;
                self.push_escaped(ch);
                continue;
            }
            match ch {
                '\n' if after_cr => {}
                '\n' | '\r' => self.line_break(),
                ' ' if !self.started_line || self.space_collapses => {
                    self.html.push_str("&nbsp;");
                    self.started_text(true);
                }
                _ => {
                    self.push_escaped(ch);
                    self.started_text(ch == ' ');
                }
            }
        }
    }

    fn started_text(&mut self, space: bool) {
        self.started_line = true;
        self.space_collapses = space;
        self.block_ended = false;
    }

    fn push_escaped(&mut self, ch: char) {
        match ch {
            '&' => self.html.push_str("&amp;"),
            '<' => self.html.push_str("&lt;"),
            '>' => self.html.push_str("&gt;"),
            '"' => self.html.push_str("&quot;"),
            _ => self.html.push(ch),
        }
    }

    fn line_break(&mut self) {
        if std::mem::take(&mut self.block_ended) {
            return;
        }
        self.html.push_str("<br>");
        self.br_end = Some(self.html.len());
        self.started_line = false;
        self.space_collapses = false;
    }

    fn finish(mut self) -> Option<String> {
        self.close_from(0);
        self.formatted.then_some(self.html)
    }
}
