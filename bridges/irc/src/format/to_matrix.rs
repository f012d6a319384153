//! IRC text with mIRC codes -> a Matrix message body and `org.matrix.custom.html`.

use super::mirc::{Piece, Style, pieces};
use super::palette::Rgb;

/// A Matrix text message: the plain `body` and, when the text had any
/// formatting, the `formatted_body` in `org.matrix.custom.html`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formatted {
    pub body: String,
    pub html: Option<String>,
}

/// Converts one IRC message (or several lines joined by `\n`) to Matrix.
///
/// `body` is the text with every control code removed. `html` is `None` when
/// nothing in the text is formatted, so plain messages stay plain; otherwise
/// it is balanced HTML using `<b> <i> <u> <del> <code> <font> <br>`, where a
/// tag that ends out of order is closed and reopened around the others.
/// Formatting ends at each line break, as it does on IRC. URLs stay text:
/// Matrix clients linkify them. Runs of spaces survive in the HTML (`&nbsp;`),
/// because HTML would collapse them.
pub fn irc_to_matrix(text: &str) -> Formatted {
    let mut body = String::with_capacity(text.len());
    let mut html = HtmlWriter::default();
    for piece in pieces(text) {
        match piece {
            Piece::Text(text, style) => {
                body.push_str(text);
                html.text(text, &style);
            }
            Piece::Newline => {
                body.push('\n');
                html.line_break();
            }
        }
    }
    Formatted {
        body,
        html: html.finish(),
    }
}

/// The HTML for text that has no formatting: escaped, with line breaks and
/// runs of spaces kept.
pub(super) fn plain_to_html(text: &str) -> String {
    let mut html = HtmlWriter::default();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            html.line_break();
        }
        html.text(line, &Style::default());
    }
    html.html
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Font { fg: Option<Rgb>, bg: Option<Rgb> },
    Bold,
    Italic,
    Underline,
    Strike,
    Code,
}

impl Tag {
    fn name(self) -> &'static str {
        match self {
            Tag::Font { .. } => "font",
            Tag::Bold => "b",
            Tag::Italic => "i",
            Tag::Underline => "u",
            Tag::Strike => "del",
            Tag::Code => "code",
        }
    }

    /// The tags a style needs, outermost first.
    fn for_style(style: &Style) -> Vec<Tag> {
        let mut tags = Vec::new();
        let (fg, bg) = style.shown_colors();
        if fg.is_some() || bg.is_some() {
            tags.push(Tag::Font { fg, bg });
        }
        let flags = [
            (style.bold, Tag::Bold),
            (style.italic, Tag::Italic),
            (style.underline, Tag::Underline),
            (style.strike, Tag::Strike),
            (style.mono, Tag::Code),
        ];
        tags.extend(flags.into_iter().filter_map(|(on, tag)| on.then_some(tag)));
        tags
    }
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
}

impl HtmlWriter {
    fn text(&mut self, text: &str, style: &Style) {
        if text.is_empty() {
            return;
        }
        self.sync_tags(style);
        for ch in text.chars() {
            let at_line_start = !self.started_line;
            self.started_line = true;
            match ch {
                '&' => self.html.push_str("&amp;"),
                '<' => self.html.push_str("&lt;"),
                '>' => self.html.push_str("&gt;"),
                '"' => self.html.push_str("&quot;"),
                ' ' if at_line_start || self.space_collapses => self.html.push_str("&nbsp;"),
                _ => self.html.push(ch),
            }
            self.space_collapses = ch == ' ';
        }
    }

    fn line_break(&mut self) {
        self.close_from(0);
        self.html.push_str("<br>");
        self.started_line = false;
        self.space_collapses = false;
    }

    /// Makes the open tags match `style`: keeps the longest run of open tags
    /// that is still wanted, closes the rest, opens what is missing.
    fn sync_tags(&mut self, style: &Style) {
        let wanted = Tag::for_style(style);
        let keep = self
            .open
            .iter()
            .take_while(|tag| wanted.contains(tag))
            .count();
        self.close_from(keep);
        for tag in wanted {
            if !self.open.contains(&tag) {
                self.open_tag(tag);
            }
        }
    }

    fn open_tag(&mut self, tag: Tag) {
        self.formatted = true;
        self.html.push('<');
        self.html.push_str(tag.name());
        if let Tag::Font { fg, bg } = tag {
            if let Some(fg) = fg {
                self.html
                    .push_str(&format!(" data-mx-color=\"{}\"", fg.hex()));
            }
            if let Some(bg) = bg {
                self.html
                    .push_str(&format!(" data-mx-bg-color=\"{}\"", bg.hex()));
            }
            // `color` for clients that predate the data-mx-* attributes.
            if let Some(fg) = fg {
                self.html.push_str(&format!(" color=\"{}\"", fg.hex()));
            }
        }
        self.html.push('>');
        self.open.push(tag);
    }

    fn close_from(&mut self, keep: usize) {
        while self.open.len() > keep {
            if let Some(tag) = self.open.pop() {
                self.html.push_str("</");
                self.html.push_str(tag.name());
                self.html.push('>');
            }
        }
    }

    fn finish(mut self) -> Option<String> {
        self.close_from(0);
        self.formatted.then_some(self.html)
    }
}
