//! A Matrix message (`org.matrix.custom.html`) -> Slack mrkdwn.

use passerelle_api::html::{Token, Tokenizer, VOID_ELEMENTS, pill_target};

/// Converts a Matrix message to the `text` of a Slack message.
///
/// With no `html`, `body` is sent as it is, escaped (`&`, `<`, `>` as
/// `&amp;`, `&lt;`, `&gt;`), CRLF as LF. The caller strips a plain-text
/// reply fallback first: only it knows whether the event is a reply.
///
/// With `html`, the subset Matrix clients send is rendered:
/// - `<b> <strong>` as `*…*`, `<i> <em>` as `_…_`, `<del> <s> <strike>` as
///   `~…~`, inline `<code>` as `` `…` ``; each line of a styled run is
///   wrapped on its own (Slack formatting ends at a line break), spaces at
///   the edges of a run go outside the markers (Slack ignores `* x*`), a
///   style never nests in itself, and nothing is formatted inside code;
/// - `<pre>` as a ```` ``` ```` block on its own lines, verbatim;
/// - `<blockquote>` lines start with `> ` (Slack has one level of quote);
///   list items are `• item` or `1. item` lines, indented four spaces per
///   nesting level; headings are bold lines; `<p>` ends with a blank line,
///   `<br>` and other blocks with a line break; table cells are joined by
///   ` | `; `<hr>` is a `───` line; an image is its alt text;
/// - a link to `http`, `https` or `mailto` becomes `<url|text>`, or `<url>`
///   when the text is the URL or empty; its text is plain (Slack does not
///   format link text); other links are their text;
/// - a mention pill (`https://matrix.to/#/@user:server` or `matrix:u/...`)
///   becomes `<@U…>` when `pill(mxid)` gives a Slack user id, else the
///   pill's text;
/// - `<mx-reply>` (the reply fallback), `<script>` and `<style>` are dropped
///   with their content; other tags (`<u>`, `<font>`, `<span>`, spoilers) are
///   dropped keeping their text; whitespace collapses as HTML renders it.
///
/// Safety: every `<` and `>` of the Matrix text is escaped, so the result
/// holds no control sequence but the `<@U…>` of pills (with an id of
/// letters and digits, else the pill's text is used) and the links above
/// (their URL percent-encoded where it holds `<`, `>`, `|` or whitespace).
/// A Matrix user typing `<!channel>` sends the text `&lt;!channel&gt;`.
/// Text like `@channel` stays text as long as the caller posts with
/// `link_names` off and `parse` at `none`, as it should.
///
/// Not handled: Slack has no escape for `*`, `_`, `~` and `` ` ``, so such
/// characters in plain text may still format there; a style that starts or
/// ends inside a word (`<b>foo</b>bar`) does not show on Slack, which wants
/// word boundaries; a `` ` `` inside code or ```` ``` ```` inside a code
/// block ends it early.
pub fn matrix_to_slack(
    body: &str,
    html: Option<&str>,
    pill: &dyn Fn(&str) -> Option<String>,
) -> String {
    let Some(html) = html else {
        return escape(&body.replace("\r\n", "\n"));
    };
    let tree = build_tree(html);
    let mut converter = Converter {
        out: Writer::default(),
        lists: Vec::new(),
        in_pre: false,
        pre_fresh: false,
        pill,
    };
    converter.children(&tree.children, Look::default());
    converter.out.finish()
}

/// Escapes text for Slack: `&`, `<` and `>` are its control characters.
fn escape(text: &str) -> String {
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
        _ => out.push(ch),
    }
}

/// An element of the Matrix HTML, as far as Slack can show it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// The document, and unknown or unrenderable elements: their content.
    Inline,
    /// Dropped with its content: `mx-reply`, `script`, `style`...
    Hidden,
    Bold,
    Italic,
    Strike,
    Code,
    Pre,
    Quote,
    List {
        ordered: bool,
        start: u64,
    },
    Item,
    /// A block; `blank`: a blank line around it (`<p>`).
    Block {
        blank: bool,
    },
    Heading,
    Link {
        href: String,
    },
    Cell,
    Br,
    Hr,
    Image {
        alt: String,
    },
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    children: Vec<Child>,
}

#[derive(Debug)]
enum Child {
    Text(String),
    Node(Node),
}

/// How deep elements may nest before further start tags are ignored.
const MAX_DEPTH: usize = 256;

const HIDDEN: &[&str] = &["mx-reply", "script", "style", "head", "title", "template"];

const BLOCKS: &[&str] = &[
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

/// The element a start tag opens.
fn kind_of(name: &str, tag: &Token<'_>) -> Kind {
    match name {
        "b" | "strong" => Kind::Bold,
        "i" | "em" | "cite" | "var" | "dfn" => Kind::Italic,
        "s" | "del" | "strike" => Kind::Strike,
        "code" | "tt" | "kbd" | "samp" => Kind::Code,
        "pre" => Kind::Pre,
        "blockquote" => Kind::Quote,
        "ul" | "ol" => Kind::List {
            ordered: name == "ol",
            start: tag
                .attr("start")
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1),
        },
        "li" => Kind::Item,
        "p" => Kind::Block { blank: true },
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => Kind::Heading,
        "a" => match tag.attr("href") {
            Some(href) => Kind::Link {
                href: href.to_owned(),
            },
            None => Kind::Inline,
        },
        "td" | "th" => Kind::Cell,
        "br" => Kind::Br,
        "hr" => Kind::Hr,
        "img" => Kind::Image {
            alt: tag
                .attr("alt")
                .or_else(|| tag.attr("title"))
                .unwrap_or_default()
                .to_owned(),
        },
        _ if HIDDEN.contains(&name) => Kind::Hidden,
        _ if BLOCKS.contains(&name) => Kind::Block { blank: false },
        _ => Kind::Inline,
    }
}

/// Reads the HTML into a tree the way a browser would, roughly: an end tag
/// closes the innermost open element of its name and those inside it, an
/// end tag that matches nothing is ignored, a `<p>` or `<li>` closes the
/// one still open, and what is open at the end is closed.
fn build_tree(html: &str) -> Node {
    let mut stack: Vec<(String, Node)> = vec![(
        String::new(),
        Node {
            kind: Kind::Inline,
            children: Vec::new(),
        },
    )];
    fn close_to(stack: &mut Vec<(String, Node)>, len: usize) {
        while stack.len() > len.max(1) {
            if let Some((_, node)) = stack.pop()
                && let Some((_, parent)) = stack.last_mut()
            {
                parent.children.push(Child::Node(node));
            }
        }
    }
    for token in Tokenizer::new(html) {
        match token {
            Token::Text(text) => {
                let Some((_, top)) = stack.last_mut() else {
                    continue;
                };
                match top.children.last_mut() {
                    Some(Child::Text(last)) => last.push_str(&text),
                    _ => top.children.push(Child::Text(text.into_owned())),
                }
            }
            Token::End { name } => {
                if let Some(index) = stack.iter().skip(1).rposition(|(open, _)| *open == name) {
                    close_to(&mut stack, index + 1);
                }
            }
            Token::Start {
                ref name,
                self_closing,
                ..
            } => {
                let kind = kind_of(name, &token);
                let void = VOID_ELEMENTS.contains(&name.as_str());
                if name == "p" && stack.last().is_some_and(|(open, _)| open == "p") {
                    let top = stack.len() - 1;
                    close_to(&mut stack, top);
                }
                if name == "li" {
                    let list = stack
                        .iter()
                        .rposition(|(_, node)| matches!(node.kind, Kind::List { .. }));
                    let item = stack.iter().rposition(|(_, node)| node.kind == Kind::Item);
                    if let Some(item) = item
                        && list.is_none_or(|list| item > list)
                    {
                        close_to(&mut stack, item);
                    }
                }
                let node = Node {
                    kind,
                    children: Vec::new(),
                };
                if void || self_closing {
                    if let Some((_, top)) = stack.last_mut() {
                        top.children.push(Child::Node(node));
                    }
                } else if stack.len() <= MAX_DEPTH {
                    // Deeper nesting is ignored: no client sends it, and the
                    // text still comes through.
                    stack.push((name.clone(), node));
                }
            }
        }
    }
    close_to(&mut stack, 1);
    stack.pop().map(|(_, root)| root).unwrap_or(Node {
        kind: Kind::Inline,
        children: Vec::new(),
    })
}

/// The text a reader sees in a node, without formatting: a link's label.
fn visible_text(children: &[Child], out: &mut String) {
    for child in children {
        match child {
            Child::Text(text) => out.push_str(text),
            Child::Node(node) => match &node.kind {
                Kind::Hidden => {}
                Kind::Br => out.push(' '),
                Kind::Image { alt } => out.push_str(alt),
                _ => visible_text(&node.children, out),
            },
        }
    }
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Formatting as Slack can show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Look {
    bold: bool,
    italic: bool,
    strike: bool,
    code: bool,
}

impl Look {
    /// The markers this look needs, outermost first: code last, since
    /// nothing formats inside it.
    fn markers(self) -> impl Iterator<Item = char> {
        [
            (self.bold, '*'),
            (self.italic, '_'),
            (self.strike, '~'),
            (self.code, '`'),
        ]
        .into_iter()
        .filter_map(|(on, marker)| on.then_some(marker))
    }
}

#[derive(Clone, Debug)]
enum Piece {
    Char(char, Look),
    /// Already mrkdwn (`<@U123>`, `<url|text>`, a fence).
    Raw(String, Look),
}

impl Piece {
    fn look(&self) -> Look {
        match self {
            Piece::Char(_, look) | Piece::Raw(_, look) => *look,
        }
    }
}

/// Writes lines of pieces; formatting markers are placed when a line ends.
#[derive(Default)]
struct Writer {
    out: String,
    /// The current line: its prefix (quote marker, indentation, bullet)
    /// and content.
    prefix: String,
    line: Vec<Piece>,
    line_has_content: bool,
    any_content: bool,
    /// A collapsible space seen after content, with the look it had.
    pending_space: Option<Look>,
    /// A block boundary: 1 for a new line, 2 for a blank line before the
    /// next content.
    pending_break: usize,
    /// Explicit line breaks not yet written (`<br>`, newlines in `<pre>`).
    pending_newlines: usize,
    /// A list item's bullet, written before the item's first content.
    pending_marker: Option<String>,
    quote_depth: usize,
}

impl Writer {
    /// Text outside `<pre>`: whitespace collapses and is dropped at line ends.
    fn flowing_text(&mut self, text: &str, look: Look) {
        for ch in text.chars() {
            match ch {
                ' ' | '\t' | '\n' | '\r' | '\x0c' => {
                    if self.line_has_content
                        && self.pending_break == 0
                        && self.pending_newlines == 0
                    {
                        self.pending_space.get_or_insert(look);
                    }
                }
                '\u{a0}' => self.put(Piece::Char(' ', look)),
                ch if ch.is_control() => {}
                ch => self.put(Piece::Char(ch, look)),
            }
        }
    }

    /// Text inside `<pre>`: kept as it is.
    fn verbatim_text(&mut self, text: &str) {
        for ch in text.chars() {
            match ch {
                '\n' => self.pending_newlines += 1,
                '\t' => self.put(Piece::Char('\t', Look::default())),
                ch if ch.is_control() => {}
                ch => self.put(Piece::Char(ch, Look::default())),
            }
        }
    }

    fn block_break(&mut self, lines: usize) {
        self.pending_break = self.pending_break.max(lines);
    }

    /// Writes one piece, after whatever line breaks, prefix and space are due.
    fn put(&mut self, piece: Piece) {
        self.start_content();
        if let Some(look) = self.pending_space.take() {
            self.line.push(Piece::Char(' ', look));
        }
        self.line.push(piece);
    }

    fn start_content(&mut self) {
        let mut newlines = self.pending_newlines;
        if self.line_has_content {
            newlines = newlines.max(self.pending_break);
        }
        self.pending_newlines = 0;
        self.pending_break = 0;
        if newlines > 0 && self.any_content {
            self.end_line();
            for _ in 1..newlines {
                self.out.push('\n');
                if self.quote_depth > 0 {
                    self.out.push('>');
                }
            }
            self.out.push('\n');
            self.line_has_content = false;
        }
        if !self.line_has_content {
            self.pending_space = None;
            if self.quote_depth > 0 {
                self.prefix.push_str("> ");
            }
            if let Some(marker) = self.pending_marker.take() {
                self.prefix.push_str(&marker);
            }
            self.line_has_content = true;
            self.any_content = true;
        }
    }

    /// Writes a list bullet that no content has claimed (an empty item).
    fn flush_marker(&mut self) {
        if self.pending_marker.is_some() {
            self.start_content();
        }
    }

    /// Writes the current line with its formatting markers.
    fn end_line(&mut self) {
        self.out.push_str(&std::mem::take(&mut self.prefix));
        let line = std::mem::take(&mut self.line);
        write_line(&mut self.out, &line);
    }

    fn finish(mut self) -> String {
        self.end_line();
        self.out
    }
}

/// Writes a line's pieces with the markers their looks need. Spaces are
/// written outside the markers around them, since Slack wants a marker next
/// to the text it formats; the markers open at the next piece that is not a
/// space and close after the last one.
fn write_line(out: &mut String, pieces: &[Piece]) {
    let mut open: Vec<char> = Vec::new();
    let mut current = Look::default();
    let mut spaces = String::new();
    // Inside a code run the other styles stay as they were at its start:
    // markers there would be text.
    let mut code_look: Option<Look> = None;
    for piece in pieces {
        let mut look = piece.look();
        if look.code {
            look = *code_look.get_or_insert(look);
        } else {
            code_look = None;
        }
        if let Piece::Char(ch, _) = piece
            && ch.is_whitespace()
            && !look.code
        {
            spaces.push(*ch);
            continue;
        }
        if look != current {
            let wanted: Vec<char> = look.markers().collect();
            let keep = open
                .iter()
                .take_while(|marker| wanted.contains(marker))
                .count();
            while open.len() > keep {
                if let Some(marker) = open.pop() {
                    out.push(marker);
                }
            }
            out.push_str(&spaces);
            for marker in wanted {
                if !open.contains(&marker) {
                    out.push(marker);
                    open.push(marker);
                }
            }
            current = look;
        } else {
            out.push_str(&spaces);
        }
        spaces.clear();
        match piece {
            Piece::Char(ch, _) => push_escaped(out, *ch),
            Piece::Raw(raw, _) => out.push_str(raw),
        }
    }
    while let Some(marker) = open.pop() {
        out.push(marker);
    }
}

struct Converter<'a> {
    out: Writer,
    /// The open lists, innermost last: ordered or not, and the next number.
    lists: Vec<(bool, u64)>,
    in_pre: bool,
    /// In `<pre>`, before its first text.
    pre_fresh: bool,
    pill: &'a dyn Fn(&str) -> Option<String>,
}

impl Converter<'_> {
    fn children(&mut self, children: &[Child], look: Look) {
        for child in children {
            match child {
                Child::Text(text) if self.in_pre => {
                    // A newline right at the start of a block is not
                    // content, as in HTML.
                    let text = match std::mem::take(&mut self.pre_fresh) {
                        true => text.strip_prefix('\n').unwrap_or(text),
                        false => text,
                    };
                    self.out.verbatim_text(text);
                }
                Child::Text(text) => self.out.flowing_text(text, look),
                Child::Node(node) => self.node(node, look),
            }
        }
    }

    fn node(&mut self, node: &Node, mut look: Look) {
        let children = &node.children;
        match &node.kind {
            Kind::Hidden => {}
            Kind::Inline => self.children(children, look),
            Kind::Bold | Kind::Italic | Kind::Strike | Kind::Code if self.in_pre || look.code => {
                self.children(children, look)
            }
            Kind::Bold => self.children(children, Look { bold: true, ..look }),
            Kind::Italic => self.children(
                children,
                Look {
                    italic: true,
                    ..look
                },
            ),
            Kind::Strike => self.children(
                children,
                Look {
                    strike: true,
                    ..look
                },
            ),
            Kind::Code => self.children(children, Look { code: true, ..look }),
            Kind::Pre => self.pre(children),
            Kind::Quote => {
                self.out.block_break(1);
                self.out.quote_depth += 1;
                self.children(children, look);
                self.out.quote_depth -= 1;
                self.out.block_break(1);
            }
            Kind::List { ordered, start } => {
                self.out.block_break(1);
                self.lists.push((*ordered, *start));
                self.children(children, look);
                self.lists.pop();
                self.out.block_break(1);
            }
            Kind::Item => {
                self.start_item();
                self.children(children, look);
                self.out.flush_marker();
                self.out.block_break(1);
            }
            Kind::Block { blank } => {
                let lines = if *blank { 2 } else { 1 };
                self.out.block_break(lines);
                self.children(children, look);
                self.out.block_break(lines);
            }
            Kind::Heading => {
                self.out.block_break(1);
                look.bold = true;
                self.children(children, look);
                self.out.block_break(1);
            }
            Kind::Link { href } => self.link(href, children, look),
            Kind::Cell => {
                if self.out.line_has_content && self.out.pending_break == 0 {
                    self.out.flowing_text(" |", Look::default());
                    self.out.pending_space = Some(Look::default());
                }
                self.children(children, look);
            }
            Kind::Br => self.out.pending_newlines += 1,
            Kind::Hr => {
                self.out.block_break(1);
                self.out.flowing_text("───", Look::default());
                self.out.block_break(1);
            }
            Kind::Image { alt } => self.out.flowing_text(alt, look),
        }
    }

    fn pre(&mut self, children: &[Child]) {
        let mut text = String::new();
        visible_text(children, &mut text);
        if self.in_pre || text.trim().is_empty() {
            self.children(children, Look::default());
            return;
        }
        self.out.block_break(1);
        self.out.put(Piece::Raw("```".into(), Look::default()));
        self.out.pending_newlines = 1;
        self.in_pre = true;
        self.pre_fresh = true;
        self.children(children, Look::default());
        self.in_pre = false;
        // The newline that usually ends a code block's text.
        self.out.pending_newlines = 1;
        self.out.put(Piece::Raw("```".into(), Look::default()));
        self.out.block_break(1);
    }

    /// `<li>`: queues the bullet, indented by the list's depth.
    fn start_item(&mut self) {
        self.out.flush_marker();
        self.out.block_break(1);
        let indent = "    ".repeat(self.lists.len().saturating_sub(1));
        let bullet = match self.lists.last_mut() {
            Some((true, next)) => {
                let bullet = format!("{next}. ");
                *next = next.saturating_add(1);
                bullet
            }
            _ => "• ".to_owned(),
        };
        self.out.pending_marker = Some(format!("{indent}{bullet}"));
    }

    fn link(&mut self, href: &str, children: &[Child], look: Look) {
        let mut label = String::new();
        visible_text(children, &mut label);
        let label = collapse_whitespace(&label);
        if self.in_pre {
            self.children(children, look);
            return;
        }
        if let Some(mxid) = pill_target(href) {
            match (self.pill)(&mxid).filter(|id| is_slack_id(id)) {
                Some(id) => self.out.put(Piece::Raw(format!("<@{id}>"), look)),
                None if label.is_empty() => self.out.flowing_text(&mxid, look),
                None => self.out.flowing_text(&label, look),
            }
            return;
        }
        let href = href.trim();
        if !is_web_href(href) {
            self.children(children, look);
            return;
        }
        let url = encode_url(href);
        let raw = if label.is_empty() || label == href {
            format!("<{url}>")
        } else {
            format!("<{url}|{}>", escape(&label))
        };
        self.out.put(Piece::Raw(raw, look));
    }
}

/// Slack user ids are letters and digits (`U123ABC`, `W123`).
fn is_slack_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_web_href(href: &str) -> bool {
    let lower = href.get(..8).unwrap_or(href).to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme) && href.len() > scheme.len())
}

/// A URL as a Slack link target: the scheme in lowercase, `&` escaped, and
/// what would end the target or the sequence (`|`, `<`, `>`, whitespace,
/// controls) percent-encoded.
fn encode_url(href: &str) -> String {
    let mut url = String::with_capacity(href.len());
    let (scheme, rest) = href.split_once(':').unwrap_or(("", href));
    url.push_str(&scheme.to_ascii_lowercase());
    url.push(':');
    for ch in rest.chars() {
        match ch {
            '&' => url.push_str("&amp;"),
            '|' | '<' | '>' => url.push_str(&format!("%{:02X}", u32::from(ch))),
            ch if ch.is_whitespace() || ch.is_control() => {
                let mut buf = [0; 4];
                for byte in ch.encode_utf8(&mut buf).bytes() {
                    url.push_str(&format!("%{byte:02X}"));
                }
            }
            ch => url.push(ch),
        }
    }
    url
}
