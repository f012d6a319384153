//! Matrix `org.matrix.custom.html` -> IRC text with mIRC codes.

use super::mirc::{BOLD, COLOR, ITALIC, MONOSPACE, RESET, STRIKETHROUGH, UNDERLINE};
use super::palette::Rgb;
pub(super) use passerelle_api::html::pill_target;
use passerelle_api::html::{Token, Tokenizer, VOID_ELEMENTS, matrix_to_id};

/// Converts a Matrix message to IRC text, rendering mention pills as their
/// link text. See [`matrix_to_irc_with`].
pub fn matrix_to_irc(html: Option<&str>, body: &str) -> String {
    matrix_to_irc_with(html, body, &|_| None)
}

/// Converts a Matrix message to IRC text with mIRC formatting codes.
///
/// With no `html`, `body` is returned as it is, except that CR and NUL
/// (which IRC cannot carry) become spaces and CRLF becomes LF.
///
/// With `html`, the subset Matrix clients send is rendered:
/// - `<b> <strong>` bold, `<i> <em>` italic, `<u>` underline,
///   `<s> <del> <strike>` strikethrough, inline `<code>` monospace (`\x11`);
///   `<font>`/`<span>` `data-mx-color`/`data-mx-bg-color` (and `color`)
///   become the nearest of the 99 mIRC colours; a spoiler is black on black;
/// - `<pre>` keeps its text and line breaks verbatim, with no formatting;
/// - `<p> <div> <h1>`..., `<br>` and other blocks start new lines (no blank
///   lines between blocks, IRC cannot send an empty line); `<blockquote>`
///   lines start with `> `; list items are `• item` or `1. item` lines,
///   indented two spaces per nesting level;
/// - a link is its text followed by ` <url>` when the text is not the URL
///   itself (angle brackets, not parentheses, because they cannot be part of
///   a URL, so IRC clients never linkify them along with it);
/// - a mention pill (`https://matrix.to/#/@user:server` or `matrix:u/...`)
///   becomes `nick_for(mxid)` when that gives a nick, else its link text;
/// - `<mx-reply>` (the reply fallback), `<script>` and `<style>` are dropped
///   with their content; other unknown tags are dropped, keeping their text;
/// - whitespace collapses as HTML renders it; entities are decoded.
///
/// The result may hold `\n`: the caller splits it into IRC lines. Each line
/// starts unformatted and leaves its formatting open at its end (IRC ends it
/// there), so a caller that cuts a long line in two must repeat the codes in
/// effect, and must not append text to a line. It never holds CR or NUL. It
/// may be empty, for HTML with nothing visible (only a reply fallback, an
/// image without alt text).
pub fn matrix_to_irc_with(
    html: Option<&str>,
    body: &str,
    nick_for: &dyn Fn(&str) -> Option<String>,
) -> String {
    let Some(html) = html else {
        return body.replace("\r\n", "\n").replace(['\r', '\0'], " ");
    };
    let mut converter = Converter {
        out: Writer::default(),
        frames: Vec::new(),
        hidden_depth: 0,
        pre_depth: 0,
        nick_for,
    };
    for token in Tokenizer::new(html) {
        converter.token(token);
    }
    converter.close_to(0);
    converter.out.out
}

/// Formatting as IRC codes can express it: colours are palette indexes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Look {
    bold: bool,
    italic: bool,
    underline: bool,
    strike: bool,
    mono: bool,
    fg: Option<u8>,
    bg: Option<u8>,
}

/// Where the writer stands; saved when a mention pill starts so that the
/// pill's rendered text can be replaced by the nick.
#[derive(Clone, Debug, Default)]
struct Cursor {
    /// The formatting the codes written so far on this line put in effect.
    applied: Look,
    line_has_content: bool,
    any_content: bool,
    /// A collapsible space seen after content, with the look it had.
    pending_space: Option<Look>,
    /// A block boundary: the next content starts a new line.
    pending_break: bool,
    /// Explicit line breaks not yet written (`<br>`, newlines in `<pre>`).
    pending_newlines: usize,
    /// A list item's bullet, written before the item's first content.
    pending_marker: Option<String>,
    out_len: usize,
    visible_len: usize,
}

#[derive(Default)]
struct Writer {
    out: String,
    /// The text written, without codes, prefixes or bullets: what a link's
    /// label is compared with.
    visible: String,
    cursor: Cursor,
    quote_depth: usize,
}

impl Writer {
    /// Text outside `<pre>`: whitespace collapses and is dropped at line ends.
    fn flowing_text(&mut self, text: &str, look: Look) {
        for ch in text.chars() {
            match ch {
                ' ' | '\t' | '\n' | '\r' | '\x0c' | '\0' => {
                    let c = &mut self.cursor;
                    if c.line_has_content && !c.pending_break && c.pending_newlines == 0 {
                        c.pending_space.get_or_insert(look);
                    }
                }
                '\u{a0}' => self.put(' ', look),
                ch if ch.is_control() && ch < '\u{80}' => {}
                ch => self.put(ch, look),
            }
        }
    }

    /// Text inside `<pre>`: kept as it is.
    fn verbatim_text(&mut self, text: &str) {
        for ch in text.chars() {
            match ch {
                '\n' => self.newline(),
                '\t' => self.put('\t', Look::default()),
                '\0' => self.put(' ', Look::default()),
                ch if ch.is_control() && ch < '\u{80}' => {}
                ch => self.put(ch, Look::default()),
            }
        }
    }

    fn newline(&mut self) {
        self.cursor.pending_newlines += 1;
    }

    fn block_break(&mut self) {
        self.cursor.pending_break = true;
    }

    /// Writes one visible character in `look`, after whatever line breaks,
    /// quote prefix, bullet and space are due.
    fn put(&mut self, ch: char, look: Look) {
        self.start_content();
        if let Some(space_look) = self.cursor.pending_space.take() {
            self.apply(space_look, ' ');
            self.push_visible(' ');
        }
        self.apply(look, ch);
        self.push_visible(ch);
    }

    fn push_visible(&mut self, ch: char) {
        self.out.push(ch);
        self.visible.push(ch);
        self.sync_lengths();
    }

    fn sync_lengths(&mut self) {
        self.cursor.out_len = self.out.len();
        self.cursor.visible_len = self.visible.len();
    }

    /// Writes pending line breaks and, at the start of a line, the quote
    /// prefix and the pending bullet.
    fn start_content(&mut self) {
        let c = &mut self.cursor;
        let mut newlines = c.pending_newlines;
        if c.pending_break && c.line_has_content {
            newlines = newlines.max(1);
        }
        c.pending_newlines = 0;
        c.pending_break = false;
        if newlines > 0 && c.any_content {
            for _ in 0..newlines {
                self.out.push('\n');
            }
            self.visible.push('\n');
            let c = &mut self.cursor;
            c.line_has_content = false;
            c.pending_space = None;
            c.applied = Look::default();
        }
        if !self.cursor.line_has_content {
            self.cursor.pending_space = None;
            for _ in 0..self.quote_depth {
                self.out.push_str("> ");
            }
            if let Some(marker) = self.cursor.pending_marker.take() {
                self.out.push_str(&marker);
            }
            self.cursor.line_has_content = true;
            self.cursor.any_content = true;
        }
        self.sync_lengths();
    }

    /// Writes the codes that turn the applied formatting into `want`; `next`
    /// is the character that follows, which decides whether a bare colour
    /// code could swallow it as a colour number.
    fn apply(&mut self, want: Look, next: char) {
        let out = &mut self.out;
        let applied = &mut self.cursor.applied;
        let next_is_argument = next.is_ascii_digit() || next == ',';
        if (want.fg, want.bg) != (applied.fg, applied.bg) {
            match (want.fg, want.bg) {
                (None, None) if next_is_argument => {
                    // "\x03" then a digit would read as a colour: reset all
                    // instead, and let the toggles below come back.
                    out.push(char::from(RESET));
                    *applied = Look::default();
                }
                (None, None) => out.push(char::from(COLOR)),
                (Some(fg), None) => {
                    if applied.bg.is_some() {
                        // "\x03NN" keeps the background: end it first.
                        out.push(char::from(COLOR));
                    }
                    out.push_str(&format!("\x03{fg:02}"));
                    if next == ',' {
                        // An empty bold pair so the comma is not read as
                        // the start of a background colour.
                        out.push_str("\x02\x02");
                    }
                }
                (None, Some(bg)) => out.push_str(&format!("\x0399,{bg:02}")),
                (Some(fg), Some(bg)) => out.push_str(&format!("\x03{fg:02},{bg:02}")),
            }
            applied.fg = want.fg;
            applied.bg = want.bg;
        }
        let toggles = [
            (want.bold, applied.bold, BOLD),
            (want.italic, applied.italic, ITALIC),
            (want.underline, applied.underline, UNDERLINE),
            (want.strike, applied.strike, STRIKETHROUGH),
            (want.mono, applied.mono, MONOSPACE),
        ];
        for (want, have, code) in toggles {
            if want != have {
                out.push(char::from(code));
            }
        }
        *applied = want;
    }

    /// Writes a list bullet that no content has claimed (an empty item).
    fn flush_marker(&mut self) {
        if self.cursor.pending_marker.is_some() {
            self.start_content();
        }
    }

    fn snapshot(&self) -> Cursor {
        self.cursor.clone()
    }

    fn restore(&mut self, cursor: Cursor) {
        self.out.truncate(cursor.out_len);
        self.visible.truncate(cursor.visible_len);
        self.cursor = cursor;
    }

    fn visible_since(&self, cursor: &Cursor) -> &str {
        &self.visible[cursor.visible_len..]
    }
}

#[derive(Debug)]
enum Kind {
    Inline,
    Block,
    /// Dropped with its content: `mx-reply`, `script`, `style`, `head`...
    Hidden,
    Pre,
    Quote,
    List {
        ordered: bool,
        next: u64,
    },
    Item,
    Link {
        href: String,
        start: Cursor,
    },
}

#[derive(Debug)]
struct Frame {
    name: String,
    look: Look,
    kind: Kind,
    /// Opened inside a hidden element: closing it has no effect either.
    inert: bool,
}

struct Converter<'a> {
    out: Writer,
    frames: Vec<Frame>,
    /// How many open frames are hidden / `<pre>`, kept so that each text
    /// token needs no walk over the frames.
    hidden_depth: usize,
    pre_depth: usize,
    nick_for: &'a dyn Fn(&str) -> Option<String>,
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
    "details",
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
    fn look(&self) -> Look {
        self.frames
            .last()
            .map(|frame| frame.look)
            .unwrap_or_default()
    }

    fn hidden(&self) -> bool {
        self.hidden_depth > 0
    }

    fn in_pre(&self) -> bool {
        self.pre_depth > 0
    }

    /// The change one frame makes to the depth counters.
    fn count(&mut self, kind: &Kind, delta: isize) {
        let counter = match kind {
            Kind::Hidden => &mut self.hidden_depth,
            Kind::Pre => &mut self.pre_depth,
            Kind::Quote => &mut self.out.quote_depth,
            _ => return,
        };
        *counter = counter.saturating_add_signed(delta);
    }

    /// Closes frames, innermost first, until `len` are left open.
    fn close_to(&mut self, len: usize) {
        while self.frames.len() > len {
            if let Some(frame) = self.frames.pop() {
                self.count(&frame.kind, -1);
                self.close(frame);
            }
        }
    }

    fn token(&mut self, token: Token<'_>) {
        match token {
            Token::Text(text) => {
                if self.hidden() {
                } else if self.in_pre() {
                    self.out.verbatim_text(&text);
                } else {
                    let look = self.look();
                    self.out.flowing_text(&text, look);
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
                        self.push(name, self.look(), Kind::Inline, true);
                    }
                    return;
                }
                self.open(name, &token, self_closing);
            }
        }
    }

    fn push(&mut self, name: String, look: Look, kind: Kind, inert: bool) {
        if self.frames.len() >= MAX_DEPTH {
            // Deeper nesting is ignored: it only costs time, no client
            // sends it, and the text still comes through.
            return;
        }
        self.count(&kind, 1);
        self.frames.push(Frame {
            name,
            look,
            kind,
            inert,
        });
    }

    fn open(&mut self, name: String, tag: &Token<'_>, self_closing: bool) {
        let mut look = self.look();
        match name.as_str() {
            "br" => {
                self.out.newline();
                return;
            }
            "hr" => {
                self.out.block_break();
                let look = Look::default();
                self.out.flowing_text("---", look);
                self.out.block_break();
                return;
            }
            "img" => {
                // Inline images are mostly custom emoji: their alt text is
                // what they say (":party:").
                if let Some(alt) = tag.attr("alt").or_else(|| tag.attr("title")) {
                    self.out.flowing_text(alt, look);
                }
                return;
            }
            _ if VOID_ELEMENTS.contains(&name.as_str()) => return,
            _ => {}
        }
        if self_closing {
            return;
        }
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
                look.mono = !self.in_pre();
                Kind::Inline
            }
            "font" | "span" => {
                let color = |attr| {
                    tag.attr(attr)
                        .and_then(Rgb::parse_css)
                        .map(Rgb::nearest_palette)
                };
                if let Some(fg) = color("data-mx-color").or_else(|| color("color")) {
                    look.fg = Some(fg);
                }
                if let Some(bg) = color("data-mx-bg-color") {
                    look.bg = Some(bg);
                }
                if tag.attr("data-mx-spoiler").is_some() {
                    // Black on black: hidden until selected, as spoilers are.
                    look.fg = Some(1);
                    look.bg = Some(1);
                }
                Kind::Inline
            }
            "a" => match tag.attr("href") {
                Some(href) => Kind::Link {
                    href: href.to_owned(),
                    start: self.out.snapshot(),
                },
                None => Kind::Inline,
            },
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.out.block_break();
                look.bold = true;
                Kind::Block
            }
            "pre" => {
                self.out.block_break();
                look = Look::default();
                Kind::Pre
            }
            "blockquote" => {
                self.out.block_break();
                Kind::Quote
            }
            "ul" | "ol" => {
                self.out.block_break();
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
                Kind::Item
            }
            "td" | "th" => {
                if self.out.cursor.line_has_content && !self.out.cursor.pending_break {
                    self.out.flowing_text(" |", Look::default());
                    self.out.cursor.pending_space.get_or_insert(Look::default());
                }
                Kind::Inline
            }
            _ if HIDDEN.contains(&name.as_str()) => Kind::Hidden,
            _ if BLOCKS.contains(&name.as_str()) => {
                if name == "p" && self.frames.last().is_some_and(|frame| frame.name == "p") {
                    // A <p> cannot hold another: the open one ends here.
                    self.close_to(self.frames.len() - 1);
                    look = self.look();
                }
                self.out.block_break();
                Kind::Block
            }
            _ => Kind::Inline,
        };
        self.push(name, look, kind, false);
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
        self.out.flush_marker();
        self.out.block_break();
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
        self.out.cursor.pending_marker = Some(format!("{indent}{bullet}"));
    }

    fn close(&mut self, frame: Frame) {
        if frame.inert {
            return;
        }
        match frame.kind {
            Kind::Inline | Kind::Hidden => {}
            Kind::Block | Kind::Quote | Kind::List { .. } => self.out.block_break(),
            Kind::Pre => {
                // The newline that usually ends a code block's text.
                self.out.cursor.pending_newlines = 0;
                self.out.block_break();
            }
            Kind::Item => {
                self.out.flush_marker();
                self.out.block_break();
            }
            Kind::Link { href, start } => self.close_link(&href, start),
        }
    }

    fn close_link(&mut self, href: &str, start: Cursor) {
        let look = self.look();
        if let Some(mxid) = pill_target(href) {
            if let Some(nick) = (self.nick_for)(&mxid) {
                self.out.restore(start);
                self.out.flowing_text(&nick, look);
            }
            return;
        }
        let label = self.out.visible_since(&start).trim();
        if label_is_target(label, href) {
            return;
        }
        // A URL cannot hold spaces or controls: encode them so the URL
        // stays one word (and holds no line break).
        let mut url = String::with_capacity(href.len());
        for c in href.trim().chars() {
            if c.is_whitespace() || c.is_control() {
                let mut buf = [0; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    url.push_str(&format!("%{byte:02X}"));
                }
            } else {
                url.push(c);
            }
        }
        if url.is_empty() {
            return;
        }
        if label.is_empty() {
            self.out.flowing_text(&url, look);
        } else {
            self.out.cursor.pending_space.get_or_insert(look);
            self.out.flowing_text(&format!("<{url}>"), look);
        }
    }
}

/// Whether a link's text already says where it goes, so repeating the URL
/// would only add noise.
fn label_is_target(label: &str, href: &str) -> bool {
    fn bare(url: &str) -> &str {
        let url = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .or_else(|| url.strip_prefix("mailto:"))
            .unwrap_or(url);
        url.trim_end_matches('/')
    }
    label == href
        || bare(label) == bare(href)
        || matrix_to_id(href).is_some_and(|id| id == label || id.split('?').next() == Some(label))
}
