//! Matrix `org.matrix.custom.html` -> text for Telegram's
//! `parse_mode: "HTML"`.

use std::rc::Rc;

use passerelle_api::html::{Token, Tokenizer, VOID_ELEMENTS};

use super::sanitize::{TELEGRAM_SCHEMES, class_language, pill_target, safe_href};
use super::tags::{Rank, keep};

/// Escapes plain text for Telegram HTML: `<`, `>`, `&` and `"` become the
/// only named references Telegram knows, `&lt;` `&gt;` `&amp;` `&quot;`.
pub fn escape_telegram(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        push_escaped(&mut out, ch);
    }
    out
}

fn push_escaped(out: &mut String, ch: char) {
    match ch {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        _ => out.push(ch),
    }
}

/// Converts a Matrix message to text for the Bot API's `parse_mode: "HTML"`.
///
/// With no `html`, `body` is escaped and sent as it is.
///
/// With `html`, the subset Matrix clients send is rendered with the tags
/// Telegram knows, nested as Telegram allows:
/// - `<b> <strong>` are `<b>`, `<i> <em>` `<i>`, `<u> <ins>` `<u>`,
///   `<s> <del> <strike>` `<s>`, a `data-mx-spoiler` span `<tg-spoiler>`,
///   and `<code> <kbd> <samp> <tt>` inline `<code>`. Telegram lets inline
///   code neither hold nor sit inside other formatting: styles pause around
///   it, and code inside a link is plain link text;
/// - `<pre>` is `<pre>`, or `<pre><code class="language-x">` when its
///   `<code>` names a plain language; nothing is formatted inside;
/// - `<blockquote>` is `<blockquote>`, `<details>` an expandable one;
///   a quote inside a quote is not quoted again, Telegram cannot nest them;
/// - a link is `<a href>` when its target is `http(s):`, `mailto:` or
///   `tg:`, else its text; a link inside a link is text. A link with no text
///   shows its target;
/// - a mention pill (`https://matrix.to/#/@user:server`, `matrix:u/...`)
///   is `<a href="tg://user?id=N">` around its text when `pill(mxid)` gives
///   the Telegram user `N`, else only its text;
/// - `<p>` and headings (bold) are separated by a blank line (paragraphs
///   right inside a list item by a line break); `<div>`,
///   `<br>`, lists (`• item`, `1. item`, indented two spaces per level),
///   table rows and other blocks by a line break; `<hr>` is a line `———`;
///   table cells are separated by ` | `;
/// - `<img>` is its `alt` text, or nothing; `<mx-reply>` (the reply
///   fallback), `<script>` and `<style>` are dropped with their content;
///   other tags are dropped, keeping their text;
/// - whitespace collapses as HTML renders it (Telegram keeps every space
///   and line break it is sent); entities are decoded, and the text is
///   escaped again with [`escape_telegram`]. ASCII control characters other
///   than line breaks and tabs are dropped.
///
/// The result may be empty, for HTML with nothing visible (only a reply
/// fallback, an image without alt text): the caller decides what to send.
/// It is not cut to Telegram's length limit.
pub fn matrix_to_telegram(
    body: &str,
    html: Option<&str>,
    pill: &dyn Fn(&str) -> Option<i64>,
) -> String {
    let Some(html) = html else {
        return escape_telegram(body);
    };
    let mut converter = Converter {
        out: Writer::default(),
        frames: Vec::new(),
        hidden_depth: 0,
        content_seen: 0,
        pill,
    };
    for token in Tokenizer::new(html) {
        converter.token(token);
    }
    converter.close_to(0);
    converter.out.close_from(0);
    converter.out.out
}

/// Inline formatting as the Matrix HTML asks for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Look {
    bold: bool,
    italic: bool,
    underline: bool,
    strike: bool,
    spoiler: bool,
    code: bool,
    link: Option<Rc<str>>,
}

/// Everything that decides how one character is written: the inline look
/// and the blocks around it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Style {
    look: Look,
    /// Inside a quote; `true` when it is expandable.
    quote: Option<bool>,
    /// Inside a code block, with its language.
    pre: Option<Option<Rc<str>>>,
}

impl Style {
    /// The Telegram tags this style is written with, outermost first,
    /// keeping to Telegram's nesting rules: nothing inside a code block or
    /// inline code, code inside nothing but a quote, no link or quote
    /// inside another.
    fn tags(&self) -> Vec<TgTag> {
        let mut tags = self.block_tags();
        if let Some(language) = &self.pre {
            tags.push(TgTag::Pre(language.clone()));
            return tags;
        }
        let look = &self.look;
        match &look.link {
            Some(href) => tags.push(TgTag::Link(href.clone())),
            None if look.code => {
                tags.push(TgTag::Code);
                return tags;
            }
            None => {}
        }
        let styles = [
            (look.bold, TgTag::Bold),
            (look.italic, TgTag::Italic),
            (look.underline, TgTag::Underline),
            (look.strike, TgTag::Strike),
            (look.spoiler, TgTag::Spoiler),
        ];
        tags.extend(styles.into_iter().filter_map(|(on, tag)| on.then_some(tag)));
        tags
    }

    /// The quote this style is in, for what starts a line (list bullets).
    fn block_tags(&self) -> Vec<TgTag> {
        self.quote
            .map(|expandable| TgTag::Quote { expandable })
            .into_iter()
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TgTag {
    Quote { expandable: bool },
    Pre(Option<Rc<str>>),
    Link(Rc<str>),
    Bold,
    Italic,
    Underline,
    Strike,
    Spoiler,
    Code,
}

impl Rank for TgTag {
    const INLINE: u8 = 2;

    fn rank(&self) -> u8 {
        match self {
            TgTag::Quote { .. } => 0,
            TgTag::Pre(_) => 1,
            _ => Self::INLINE,
        }
    }
}

impl TgTag {
    fn start(&self) -> String {
        match self {
            TgTag::Quote { expandable: false } => "<blockquote>".into(),
            TgTag::Quote { expandable: true } => "<blockquote expandable>".into(),
            TgTag::Pre(None) => "<pre>".into(),
            TgTag::Pre(Some(language)) => format!(
                "<pre><code class=\"language-{}\">",
                escape_telegram(language)
            ),
            TgTag::Link(href) => format!("<a href=\"{}\">", escape_telegram(href)),
            TgTag::Bold => "<b>".into(),
            TgTag::Italic => "<i>".into(),
            TgTag::Underline => "<u>".into(),
            TgTag::Strike => "<s>".into(),
            TgTag::Spoiler => "<tg-spoiler>".into(),
            TgTag::Code => "<code>".into(),
        }
    }

    fn end(&self) -> &'static str {
        match self {
            TgTag::Quote { .. } => "</blockquote>",
            TgTag::Pre(None) => "</pre>",
            TgTag::Pre(Some(_)) => "</code></pre>",
            TgTag::Link(_) => "</a>",
            TgTag::Bold => "</b>",
            TgTag::Italic => "</i>",
            TgTag::Underline => "</u>",
            TgTag::Strike => "</s>",
            TgTag::Spoiler => "</tg-spoiler>",
            TgTag::Code => "</code>",
        }
    }
}

#[derive(Default)]
struct Writer {
    out: String,
    open: Vec<TgTag>,
    line_has_content: bool,
    any_content: bool,
    /// A collapsible space seen after content, with the style it had.
    pending_space: Option<Style>,
    /// How many line breaks a block boundary asks for before the next
    /// content (2 leaves a blank line), if the current line has content.
    pending_break: usize,
    /// Explicit line breaks not yet written (`<br>`, newlines in `<pre>`).
    pending_newlines: usize,
    /// A list item's bullet, written before the item's first content.
    pending_marker: Option<String>,
}

impl Writer {
    /// Text outside `<pre>`: whitespace collapses and is dropped at line
    /// ends.
    fn flowing_text(&mut self, text: &str, style: &Style) {
        for ch in text.chars() {
            match ch {
                ' ' | '\t' | '\n' | '\r' | '\x0c' => {
                    if self.line_has_content
                        && self.pending_break == 0
                        && self.pending_newlines == 0
                    {
                        self.pending_space.get_or_insert_with(|| style.clone());
                    }
                }
                '\u{a0}' => self.put(' ', style),
                ch if ch.is_ascii_control() => {}
                ch => self.put(ch, style),
            }
        }
    }

    /// Text inside `<pre>`: kept as it is.
    fn verbatim_text(&mut self, text: &str, style: &Style) {
        let mut after_cr = false;
        for ch in text.chars() {
            match ch {
                '\n' if after_cr => {}
                '\n' | '\r' => self.pending_newlines += 1,
                '\t' => self.put('\t', style),
                ch if ch.is_ascii_control() => {}
                ch => self.put(ch, style),
            }
            after_cr = ch == '\r';
        }
    }

    fn block_break(&mut self, newlines: usize) {
        self.pending_break = self.pending_break.max(newlines);
    }

    /// Writes one visible character in `style`, after whatever line breaks,
    /// bullet and space are due.
    fn put(&mut self, ch: char, style: &Style) {
        let tags = style.tags();
        self.start_content(&tags, style);
        if let Some(space_style) = self.pending_space.take() {
            self.sync(&space_style.tags());
            self.out.push(' ');
        }
        self.sync(&tags);
        push_escaped(&mut self.out, ch);
    }

    /// Writes the line breaks due and, at the start of a line, the pending
    /// bullet, for content in `style` (written with `tags`).
    fn start_content(&mut self, tags: &[TgTag], style: &Style) {
        let mut newlines = self.pending_newlines;
        if self.line_has_content {
            newlines = newlines.max(self.pending_break);
        }
        self.pending_newlines = 0;
        self.pending_break = 0;
        if newlines > 0 && self.any_content {
            // Line breaks go outside whatever ends there and whatever
            // starts on the next line, so that a quote or code block holds
            // its own lines only.
            let kept = keep(&self.open, tags);
            self.close_from(kept);
            for _ in 0..newlines {
                self.out.push('\n');
            }
            self.line_has_content = false;
        }
        if !self.line_has_content {
            self.pending_space = None;
            if let Some(marker) = self.pending_marker.take() {
                self.sync(&style.block_tags());
                self.out.push_str(&escape_telegram(&marker));
            }
            self.line_has_content = true;
            self.any_content = true;
        }
    }

    fn sync(&mut self, wanted: &[TgTag]) {
        let kept = keep(&self.open, wanted);
        self.close_from(kept);
        for tag in wanted {
            if !self.open.contains(tag) {
                self.out.push_str(&tag.start());
                self.open.push(tag.clone());
            }
        }
    }

    fn close_from(&mut self, keep: usize) {
        while self.open.len() > keep {
            if let Some(tag) = self.open.pop() {
                self.out.push_str(tag.end());
            }
        }
    }

    /// Writes a list bullet that no content has claimed (an empty item).
    fn flush_marker(&mut self, style: &Style) {
        if self.pending_marker.is_some() {
            self.start_content(&style.tags(), style);
        }
    }
}

#[derive(Debug)]
enum Kind {
    Inline,
    /// A block, and the line breaks around it.
    Block(usize),
    /// Dropped with its content: `mx-reply`, `script`, `style`, `head`...
    Hidden,
    Pre,
    List {
        ordered: bool,
        next: u64,
    },
    Item,
    Link {
        /// [`Converter::content_seen`] when the link started.
        start: usize,
        /// What the link shows if it has no text of its own.
        fallback: String,
    },
}

#[derive(Debug)]
struct Frame {
    name: String,
    style: Style,
    kind: Kind,
    /// Opened inside a hidden element: closing it has no effect either.
    inert: bool,
}

struct Converter<'a> {
    out: Writer,
    frames: Vec<Frame>,
    /// How many open frames are hidden, kept so that each text token needs
    /// no walk over the frames.
    hidden_depth: usize,
    /// Text bytes and start tags read outside hidden elements, to tell
    /// whether a link has any content of its own.
    content_seen: usize,
    pill: &'a dyn Fn(&str) -> Option<i64>,
}

/// How deep elements may nest before further start tags are ignored.
const MAX_DEPTH: usize = 256;

const BLOCKS: &[&str] = &[
    "p",
    "div",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "caption",
    "summary",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "section",
    "article",
    "header",
    "footer",
    "aside",
    "nav",
    "main",
    "address",
    "center",
];

const HIDDEN: &[&str] = &["mx-reply", "script", "style", "head", "title", "template"];

impl Converter<'_> {
    fn style(&self) -> Style {
        self.frames
            .last()
            .map(|frame| frame.style.clone())
            .unwrap_or_default()
    }

    fn hidden(&self) -> bool {
        self.hidden_depth > 0
    }

    /// Closes frames, innermost first, until `len` are left open.
    fn close_to(&mut self, len: usize) {
        while self.frames.len() > len {
            if let Some(frame) = self.frames.pop() {
                if matches!(frame.kind, Kind::Hidden) {
                    self.hidden_depth -= 1;
                }
                self.close(frame);
            }
        }
    }

    fn token(&mut self, token: Token<'_>) {
        match token {
            Token::Text(text) => {
                if self.hidden() {
                    return;
                }
                self.content_seen += text.len();
                let style = self.style();
                if style.pre.is_some() {
                    self.out.verbatim_text(&text, &style);
                } else {
                    self.out.flowing_text(&text, &style);
                }
            }
            Token::End { name } => {
                if let Some(index) = self.frames.iter().rposition(|frame| frame.name == name) {
                    self.close_to(index);
                }
            }
            Token::Start {
                ref name,
                self_closing,
                ..
            } => {
                let name = name.clone();
                if self.hidden() {
                    if !self_closing && !VOID_ELEMENTS.contains(&name.as_str()) {
                        self.push(name, self.style(), Kind::Inline, true);
                    }
                    return;
                }
                self.content_seen += 1;
                self.open(name, &token, self_closing);
            }
        }
    }

    fn push(&mut self, name: String, style: Style, kind: Kind, inert: bool) {
        if self.frames.len() >= MAX_DEPTH {
            // Deeper nesting is ignored: it only costs time, no client
            // sends it, and the text still comes through.
            return;
        }
        if matches!(kind, Kind::Hidden) {
            self.hidden_depth += 1;
        }
        self.frames.push(Frame {
            name,
            style,
            kind,
            inert,
        });
    }

    fn open(&mut self, name: String, tag: &Token<'_>, self_closing: bool) {
        let mut style = self.style();
        match name.as_str() {
            "br" => {
                self.out.pending_newlines += 1;
                return;
            }
            "hr" => {
                self.out.block_break(1);
                let rule = Style {
                    look: Look::default(),
                    ..style
                };
                self.out.flowing_text("———", &rule);
                self.out.block_break(1);
                return;
            }
            "img" => {
                // Inline images are mostly custom emoji: their alt text is
                // what they say (":party:").
                if let Some(alt) = tag.attr("alt") {
                    self.out.flowing_text(alt, &style);
                }
                return;
            }
            _ if VOID_ELEMENTS.contains(&name.as_str()) => return,
            _ => {}
        }
        if self_closing {
            return;
        }
        let look = &mut style.look;
        let kind = match name.as_str() {
            "b" | "strong" => {
                look.bold = true;
                Kind::Inline
            }
            "i" | "em" | "cite" | "var" | "dfn" => {
                look.italic = true;
                Kind::Inline
            }
            "u" | "ins" => {
                look.underline = true;
                Kind::Inline
            }
            "s" | "del" | "strike" => {
                look.strike = true;
                Kind::Inline
            }
            "code" | "tt" | "kbd" | "samp" => {
                look.code = true;
                if style.pre == Some(None) {
                    let language = tag.attr("class").and_then(class_language);
                    style.pre = Some(language.map(Rc::from));
                }
                Kind::Inline
            }
            "font" | "span" => {
                if tag.attr("data-mx-spoiler").is_some() {
                    look.spoiler = true;
                }
                Kind::Inline
            }
            "a" => self.link(tag, &mut style),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                look.bold = true;
                self.out.block_break(2);
                Kind::Block(2)
            }
            "pre" => {
                self.out.block_break(1);
                style.pre.get_or_insert(None);
                Kind::Pre
            }
            "blockquote" | "details" => {
                self.out.block_break(1);
                style.quote.get_or_insert(name == "details");
                Kind::Block(1)
            }
            "ul" | "ol" => {
                self.out.block_break(1);
                let next = tag
                    .attr("start")
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(1);
                Kind::List {
                    ordered: name == "ol",
                    next,
                }
            }
            "li" => {
                self.start_item();
                style = self.style();
                Kind::Item
            }
            "td" | "th" => {
                if self.out.line_has_content && self.out.pending_break == 0 {
                    let cell = Style {
                        look: Look::default(),
                        ..style.clone()
                    };
                    self.out.flowing_text(" |", &cell);
                    self.out.pending_space.get_or_insert(cell);
                }
                Kind::Inline
            }
            _ if HIDDEN.contains(&name.as_str()) => Kind::Hidden,
            _ if BLOCKS.contains(&name.as_str()) => {
                if name == "p" && self.frames.last().is_some_and(|frame| frame.name == "p") {
                    // A <p> cannot hold another: the open one ends here.
                    self.close_to(self.frames.len() - 1);
                    style = self.style();
                }
                // Paragraphs are apart, except in a list item, where they
                // are the item's text (a "loose" Markdown list).
                let in_item = self
                    .frames
                    .last()
                    .is_some_and(|frame| matches!(frame.kind, Kind::Item));
                let breaks = if name == "p" && !in_item { 2 } else { 1 };
                self.out.block_break(breaks);
                Kind::Block(breaks)
            }
            _ => Kind::Inline,
        };
        self.push(name, style, kind, false);
    }

    /// `<a>`: a mention pill, a link Telegram can open, or only its text.
    fn link(&self, tag: &Token<'_>, style: &mut Style) -> Kind {
        if style.look.link.is_some() || style.pre.is_some() {
            return Kind::Inline;
        }
        let href = tag.attr("href").unwrap_or_default();
        let (href, fallback) = match pill_target(href) {
            Some(mxid) => match (self.pill)(&mxid) {
                Some(user_id) => (format!("tg://user?id={user_id}"), mxid),
                None => return Kind::Inline,
            },
            None => match safe_href(href, TELEGRAM_SCHEMES) {
                Some(href) => (href.clone(), href),
                None => return Kind::Inline,
            },
        };
        style.look.link = Some(href.into());
        Kind::Link {
            start: self.content_seen,
            fallback,
        }
    }

    /// `<li>`: ends an item still open in the same list, then queues the
    /// bullet.
    fn start_item(&mut self) {
        let list = self
            .frames
            .iter()
            .rposition(|frame| matches!(frame.kind, Kind::List { .. }));
        let open_item = self
            .frames
            .iter()
            .rposition(|frame| matches!(frame.kind, Kind::Item));
        if let Some(item) = open_item
            && list.is_none_or(|list| item > list)
        {
            self.close_to(item);
        }
        let style = self.style();
        self.out.flush_marker(&style);
        self.out.block_break(1);
        let depth = self
            .frames
            .iter()
            .filter(|frame| matches!(frame.kind, Kind::List { .. }))
            .count();
        let indent = "  ".repeat(depth.saturating_sub(1));
        let bullet = match self
            .frames
            .iter_mut()
            .rev()
            .find_map(|frame| match &mut frame.kind {
                Kind::List { ordered, next } => Some((*ordered, next)),
                _ => None,
            }) {
            Some((true, next)) => {
                let bullet = format!("{next}. ");
                *next = next.saturating_add(1);
                bullet
            }
            _ => "• ".to_owned(),
        };
        self.out.pending_marker = Some(format!("{indent}{bullet}"));
    }

    fn close(&mut self, frame: Frame) {
        if frame.inert {
            return;
        }
        match frame.kind {
            Kind::Inline | Kind::Hidden => {}
            Kind::Block(breaks) => self.out.block_break(breaks),
            Kind::List { .. } => self.out.block_break(1),
            Kind::Pre => {
                // The newline that usually ends a code block's text.
                self.out.pending_newlines = 0;
                self.out.block_break(1);
            }
            Kind::Item => {
                self.out.flush_marker(&frame.style);
                self.out.block_break(1);
            }
            Kind::Link { start, fallback } => {
                if self.content_seen == start {
                    self.out.flowing_text(&fallback, &frame.style);
                }
            }
        }
    }
}
