//! Slack mrkdwn -> a Matrix body and `org.matrix.custom.html`.

use passerelle_api::html::escape;

use super::control::{Sequence, decode, entity_at, format_timestamp, sequence_at};
use super::{Formatted, Mention, Resolver};
use crate::emoji::replace_shortcodes;

/// Converts the `text` of a Slack message to a Matrix message.
///
/// What Slack's mrkdwn means and what it becomes:
/// - `&amp;`, `&lt;`, `&gt;` are decoded (only these: Slack escapes `&`
///   itself, so other references are text); `\r\n` becomes `\n`.
/// - `*bold*`, `_italic_`, `~strike~` become `<b>`, `<i>`, `<del>`, as
///   Slack reads them: the opening marker at the start of the line or after
///   a character that is not a letter or digit, and followed by one that is
///   not a space; the closing one, the first after it on the same line,
///   preceded by a character that is not a space and followed by the end of
///   the line or by one that is not a letter or digit (so `a*b*c` and
///   `snake_case_name` stay text). Different styles nest, a style never
///   nests in itself, and a marker with no partner is text.
/// - `` `code` `` (on one line) becomes `<code>` and ```` ```block``` ````
///   (across lines, anywhere in a line) `<pre><code>`; nothing inside them is
///   formatted and emoji shortcodes stay as they are, but mentions and links
///   inside are shown as their text, as Slack shows them.
/// - A line starting with `&gt;` (or a bare `>`, as bots write it) is a
///   quote, unless it starts inside a code block; consecutive quoted lines
///   make one `<blockquote>`, code blocks included; `&gt;&gt;&gt;` quotes
///   the rest of the message. Quotes do not nest.
/// - `<@U123>` becomes a pill of the Matrix user [`Resolver::user`] gives,
///   showing their name (no `@`, as Matrix clients write pills); one with
///   no Matrix link (or one that is not `http(s)` or `matrix:`) becomes the
///   text `@name`, and one unknown to the resolver `@label` with the
///   `|label` Slack sent, else `@U123`. `<#C123>` likewise, with `#name`
///   and [`Resolver::channel`].
/// - `<!here>`, `<!channel>` and `<!everyone>` become the *text* `@here`,
///   `@channel`, `@everyone`: never `@room`, which would notify the whole
///   Matrix room; whether to notify is the caller's call (`m.mentions`).
///   `<!subteam^S123|@team>` becomes `@team`, `<!date^…|fallback>` its
///   fallback (or the time in UTC when there is none), other `<!…>` their
///   label or `@command`.
/// - `<https://x>` and `<https://x|text>` become links, for `http`,
///   `https` and `mailto` only; other schemes (`tel:`, `slack://`) become
///   their text. A `<` that starts no sequence is text.
/// - Built-in emoji shortcodes (`:tada:`) become emoji; custom ones stay.
///
/// `body` is the message as typed, with the above resolved: mentions as
/// names, links as `text (url)` (just the URL or the text when one says the
/// other), quote lines as `> line`, while the formatting markers stay as
/// they are (`*bold*`, `` `code` ``). `html` is `None` when nothing needs
/// HTML: no formatting, quote, code, pill, or link whose text is not its
/// URL. Otherwise it is balanced HTML with `\n` as `<br>` and runs of spaces
/// kept with `&nbsp;`.
pub fn slack_to_matrix(text: &str, resolver: &dyn Resolver) -> Formatted {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let items = Parser { resolver }.document(&text);
    let mut body = String::with_capacity(text.len());
    body_items(&items, &mut body);
    let mut html = Html {
        out: String::with_capacity(text.len() * 2),
        formatted: false,
        space_collapses: true,
    };
    html.items(&items);
    Formatted {
        body,
        html: html.formatted.then_some(html.out),
    }
}

/// A line-level piece of a message.
#[derive(Debug)]
enum Item {
    Line(Vec<Inline>),
    /// A line break between two lines or blocks.
    Break,
    /// A code block's text, decoded, as it stood between the fences.
    Pre(String),
    /// Quoted lines and code blocks (quotes do not nest).
    Quote(Vec<Item>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Bold,
    Italic,
    Strike,
}

const STYLES: [Style; 3] = [Style::Bold, Style::Italic, Style::Strike];

impl Style {
    fn of(ch: char) -> Option<Style> {
        match ch {
            '*' => Some(Style::Bold),
            '_' => Some(Style::Italic),
            '~' => Some(Style::Strike),
            _ => None,
        }
    }

    fn marker(self) -> char {
        match self {
            Style::Bold => '*',
            Style::Italic => '_',
            Style::Strike => '~',
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Style::Bold => "b",
            Style::Italic => "i",
            Style::Strike => "del",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Debug)]
enum Inline {
    /// Text typed by the Slack user: emoji shortcodes already replaced.
    Text(String),
    /// Text that stands for a mention or a link; shown as it is.
    Plain(String),
    Styled(Style, Vec<Inline>),
    Code(String),
    /// An `http`, `https` or `mailto` link.
    Link {
        href: String,
        label: String,
    },
    /// A mention of a Matrix user or room.
    Pill {
        href: String,
        text: String,
    },
}

impl Inline {
    /// The text a reader sees, without formatting.
    fn plain(&self, out: &mut String) {
        match self {
            Inline::Text(text) | Inline::Plain(text) | Inline::Code(text) => out.push_str(text),
            Inline::Link { label: text, .. } | Inline::Pill { text, .. } => out.push_str(text),
            Inline::Styled(_, children) => children.iter().for_each(|child| child.plain(out)),
        }
    }
}

/// A character of a line, or something already parsed that formatting
/// markers cannot reach into (a control sequence, a code span).
#[derive(Debug)]
enum Unit {
    Char(char),
    Atom(Inline),
}

impl Unit {
    fn is_char(&self, test: impl Fn(char) -> bool) -> bool {
        matches!(self, Unit::Char(c) if test(*c))
    }
}

struct Parser<'r> {
    resolver: &'r dyn Resolver,
}

impl Parser<'_> {
    /// The whole message: runs of quoted and unquoted lines. A line is
    /// quoted when it starts with a quote marker, unless it starts inside a
    /// code block: then it continues the run the block started in (losing
    /// its marker if that run is quoted, so a quoted code block stays one).
    fn document(&self, text: &str) -> Vec<Item> {
        let blocks = code_blocks(text);
        let mut next_block = 0;
        let mut runs: Vec<(bool, String)> = Vec::new();
        let mut quote_rest = false;
        let mut start = 0;
        for line in text.split('\n') {
            while blocks.get(next_block).is_some_and(|&(_, end)| end <= start) {
                next_block += 1;
            }
            let in_block = blocks
                .get(next_block)
                .is_some_and(|&(open, _)| open < start);
            start += line.len() + 1;
            let quoted_run = runs.last().is_some_and(|(quoted, _)| *quoted);
            let (quoted, content) = if quote_rest {
                (true, line)
            } else if in_block && runs.last().is_some() {
                let content = match quoted_run {
                    true => strip_marker(line, "&gt;", ">").unwrap_or(line),
                    false => line,
                };
                (quoted_run, content)
            } else if let Some(content) = strip_marker(line, "&gt;&gt;&gt;", ">>>") {
                quote_rest = true;
                (true, content)
            } else if let Some(content) = strip_marker(line, "&gt;", ">") {
                (true, content)
            } else {
                (false, line)
            };
            match runs.last_mut() {
                Some((run_quoted, run)) if *run_quoted == quoted => {
                    run.push('\n');
                    run.push_str(content);
                }
                _ => runs.push((quoted, content.to_owned())),
            }
        }
        let mut items = Vec::new();
        for (i, (quoted, run)) in runs.iter().enumerate() {
            if i > 0 {
                items.push(Item::Break);
            }
            if *quoted {
                items.push(Item::Quote(self.blocks(run)));
            } else {
                items.extend(self.blocks(run));
            }
        }
        items
    }

    /// Lines and code blocks.
    fn blocks(&self, text: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut rest = text;
        while let Some((start, end)) = code_block(rest) {
            self.lines(&rest[..start], &mut items);
            items.push(Item::Pre(self.plain(&rest[start + 3..end - 3])));
            rest = &rest[end..];
        }
        self.lines(rest, &mut items);
        items
    }

    /// Text between code blocks.
    fn lines(&self, text: &str, items: &mut Vec<Item>) {
        if text.is_empty() {
            return;
        }
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                items.push(Item::Break);
            }
            if !line.is_empty() {
                items.push(Item::Line(self.line(line)));
            }
        }
    }

    /// One line's inline content.
    fn line(&self, raw: &str) -> Vec<Inline> {
        let units = code_spans(self.units(raw));
        let closers = STYLES.map(|style| {
            (0..units.len())
                .filter(|&i| is_closer(&units, i, style))
                .collect::<Vec<_>>()
        });
        let mut out = Vec::new();
        inline(&units, 0, units.len(), [false; 3], &closers, &mut out);
        out
    }

    /// The characters of a line, escapes decoded, control sequences parsed.
    fn units(&self, raw: &str) -> Vec<Unit> {
        let mut units = Vec::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(ch) = rest.chars().next() {
            if ch == '<'
                && let Some((sequence, len)) = sequence_at(rest)
            {
                units.push(Unit::Atom(self.sequence(sequence)));
                rest = &rest[len..];
            } else if let Some((ch, len)) = entity_at(rest) {
                units.push(Unit::Char(ch));
                rest = &rest[len..];
            } else {
                units.push(Unit::Char(ch));
                rest = &rest[ch.len_utf8()..];
            }
        }
        units
    }

    /// Text with no formatting (a code block): escapes decoded, control
    /// sequences as the text they show.
    fn plain(&self, raw: &str) -> String {
        let mut out = String::with_capacity(raw.len());
        for (i, line) in raw.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            for unit in self.units(line) {
                match unit {
                    Unit::Char(ch) => out.push(ch),
                    Unit::Atom(atom) => atom.plain(&mut out),
                }
            }
        }
        out
    }

    fn sequence(&self, sequence: Sequence<'_>) -> Inline {
        match sequence {
            Sequence::User { id, label } => {
                mention(self.resolver.user(&decode(id)), '@', id, label)
            }
            Sequence::Channel { id, label } => {
                mention(self.resolver.channel(&decode(id)), '#', id, label)
            }
            Sequence::Special {
                command,
                args,
                label,
            } => {
                let label = label.map(decode);
                let text = match command {
                    "here" | "channel" | "everyone" => format!("@{command}"),
                    "subteam" => match label {
                        Some(label) if label.starts_with('@') => label.into_owned(),
                        Some(label) => format!("@{label}"),
                        None => format!("@{}", decode(args)),
                    },
                    "date" => label.map(|l| l.into_owned()).unwrap_or_else(|| {
                        let seconds = args.split('^').next().unwrap_or_default();
                        format_timestamp(seconds).unwrap_or_else(|| format!("<!date^{args}>"))
                    }),
                    _ => label.map_or_else(|| format!("@{}", decode(command)), |l| l.into_owned()),
                };
                Inline::Plain(text)
            }
            Sequence::Link { url, label } => {
                let href = decode(url).into_owned();
                let label = label.map(decode);
                if is_safe_href(&href) {
                    let label = label.map_or_else(|| href.clone(), |l| l.into_owned());
                    Inline::Link { href, label }
                } else {
                    Inline::Plain(label.map_or(href, |l| l.into_owned()))
                }
            }
        }
    }
}

/// A user or channel mention: a pill when the resolver gives a Matrix link,
/// else `@name` / `#name` text.
fn mention(found: Option<Mention>, sigil: char, id: &str, label: Option<&str>) -> Inline {
    let fallback = || label.map_or_else(|| decode(id), decode).into_owned();
    let Some(Mention { name, matrix_link }) = found else {
        return Inline::Plain(format!("{sigil}{}", fallback()));
    };
    let name = if name.trim().is_empty() {
        fallback()
    } else {
        name
    };
    let text = match sigil {
        '@' => name.clone(),
        _ => format!("{sigil}{name}"),
    };
    match matrix_link.filter(|link| is_safe_href(link) || link.starts_with("matrix:")) {
        Some(href) => Inline::Pill { href, text },
        None => Inline::Plain(format!("{sigil}{name}")),
    }
}

/// Whether a link may become an `<a href>`: `http`, `https`, `mailto`.
fn is_safe_href(href: &str) -> bool {
    let lower = href.get(..8).unwrap_or(href).to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

/// The content of a line after a quote marker (and one space), if it has one.
fn strip_marker<'a>(line: &'a str, escaped: &str, bare: &str) -> Option<&'a str> {
    let rest = line
        .strip_prefix(escaped)
        .or_else(|| line.strip_prefix(bare))?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// Where the code blocks of `text` start and end.
fn code_blocks(text: &str) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some((start, end)) = code_block(&text[from..]) {
        blocks.push((from + start, from + end));
        from += end;
    }
    blocks
}

/// The next ```` ```code``` ```` block: where its opening fence starts and its
/// closing fence ends. A pair of fences with only whitespace between them is
/// no block; the second may open the next.
fn code_block(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    loop {
        let start = from + text[from..].find("```")?;
        let close = start + 3 + text[start + 3..].find("```")?;
        if text[start + 3..close].trim().is_empty() {
            from = close;
            continue;
        }
        return Some((start, close + 3));
    }
}

/// Turns each pair of backticks with something between them into a code
/// span; a backtick with no partner stays text.
fn code_spans(units: Vec<Unit>) -> Vec<Unit> {
    if !units.iter().any(|u| u.is_char(|c| c == '`')) {
        return units;
    }
    let mut out = Vec::with_capacity(units.len());
    let mut open: Option<Vec<Unit>> = None;
    for unit in units {
        let tick = unit.is_char(|c| c == '`');
        match (&mut open, tick) {
            (None, true) => open = Some(Vec::new()),
            (None, false) => out.push(unit),
            (Some(inside), true) if inside.is_empty() => {
                // "``": the first is text, the second may open a span.
                out.push(Unit::Char('`'));
            }
            (Some(_), true) => {
                let mut code = String::new();
                for unit in open.take().unwrap_or_default() {
                    match unit {
                        Unit::Char(ch) => code.push(ch),
                        Unit::Atom(atom) => atom.plain(&mut code),
                    }
                }
                out.push(Unit::Atom(Inline::Code(code)));
            }
            (Some(inside), false) => inside.push(unit),
        }
    }
    if let Some(inside) = open {
        out.push(Unit::Char('`'));
        out.extend(inside);
    }
    out
}

fn is_opener(units: &[Unit], i: usize, style: Style) -> bool {
    let marker = style.marker();
    let after_boundary = i == 0 || !units[i - 1].is_char(char::is_alphanumeric);
    let next = units.get(i + 1);
    after_boundary && next.is_some_and(|next| !next.is_char(|c| c.is_whitespace() || c == marker))
}

fn is_closer(units: &[Unit], i: usize, style: Style) -> bool {
    let marker = style.marker();
    if i == 0 || !units[i].is_char(|c| c == marker) {
        return false;
    }
    let after_content = !units[i - 1].is_char(|c| c.is_whitespace() || c == marker);
    let before_boundary = units
        .get(i + 1)
        .is_none_or(|next| !next.is_char(char::is_alphanumeric));
    after_content && before_boundary
}

/// Parses `units[start..end]` into inline content, styles in `active`
/// being open around it (they cannot open again). `closers` holds, per
/// style, the sorted positions where it could close.
fn inline(
    units: &[Unit],
    start: usize,
    end: usize,
    active: [bool; 3],
    closers: &[Vec<usize>; 3],
    out: &mut Vec<Inline>,
) {
    let mut text = String::new();
    let mut i = start;
    while i < end {
        match &units[i] {
            Unit::Char(ch) => {
                let styled = Style::of(*ch)
                    .filter(|style| !active[style.index()] && is_opener(units, i, *style))
                    .and_then(|style| {
                        let closers = &closers[style.index()];
                        let next = closers.partition_point(|&at| at <= i + 1);
                        closers
                            .get(next)
                            .filter(|&&close| close < end)
                            .map(|&close| (style, close))
                    });
                if let Some((style, close)) = styled {
                    flush(&mut text, out);
                    let mut inner = active;
                    inner[style.index()] = true;
                    let mut children = Vec::new();
                    inline(units, i + 1, close, inner, closers, &mut children);
                    out.push(Inline::Styled(style, children));
                    i = close + 1;
                    continue;
                }
                text.push(*ch);
            }
            Unit::Atom(atom) => {
                flush(&mut text, out);
                out.push(atom.clone());
            }
        }
        i += 1;
    }
    flush(&mut text, out);
}

fn flush(text: &mut String, out: &mut Vec<Inline>) {
    if !text.is_empty() {
        out.push(Inline::Text(replace_shortcodes(text)));
        text.clear();
    }
}

/// Whether a link's text already says where it goes (`example.com` for
/// `http://example.com/`), so that the body needs no `(url)` after it.
fn label_shows_href(label: &str, href: &str) -> bool {
    fn bare(url: &str) -> &str {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let scheme = ["https://", "http://", "mailto:"]
            .into_iter()
            .find(|scheme| lower.starts_with(scheme))
            .map_or(0, str::len);
        url[scheme..].trim_end_matches('/')
    }
    label == href || bare(label) == bare(href)
}

fn body_items(items: &[Item], out: &mut String) {
    for item in items {
        match item {
            Item::Line(inlines) => body_inlines(inlines, out),
            Item::Break => out.push('\n'),
            Item::Pre(text) => {
                out.push_str("```");
                out.push_str(text);
                out.push_str("```");
            }
            Item::Quote(lines) => {
                let mut quoted = String::new();
                body_items(lines, &mut quoted);
                for (i, line) in quoted.split('\n').enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    out.push_str("> ");
                    out.push_str(line);
                }
            }
        }
    }
}

fn body_inlines(inlines: &[Inline], out: &mut String) {
    for inline in inlines {
        match inline {
            Inline::Text(text) | Inline::Plain(text) => out.push_str(text),
            Inline::Styled(style, children) => {
                out.push(style.marker());
                body_inlines(children, out);
                out.push(style.marker());
            }
            Inline::Code(code) => {
                out.push('`');
                out.push_str(code);
                out.push('`');
            }
            Inline::Link { href, label } if label_shows_href(label, href) => out.push_str(label),
            Inline::Link { href, label } => {
                out.push_str(label);
                out.push_str(" (");
                out.push_str(href);
                out.push(')');
            }
            Inline::Pill { text, .. } => out.push_str(text),
        }
    }
}

struct Html {
    out: String,
    /// Whether anything needed HTML; if not, the message is sent plain.
    formatted: bool,
    /// Whether a space here would be collapsed by an HTML renderer: at the
    /// start of a line or after another space.
    space_collapses: bool,
}

impl Html {
    fn items(&mut self, items: &[Item]) {
        let is_block = |item: Option<&Item>| matches!(item, Some(Item::Pre(_) | Item::Quote(_)));
        for (i, item) in items.iter().enumerate() {
            match item {
                Item::Line(inlines) => self.inlines(inlines),
                Item::Break => {
                    // A block element breaks the line itself.
                    let before = i.checked_sub(1).and_then(|b| items.get(b));
                    if !is_block(before) && !is_block(items.get(i + 1)) {
                        self.tag("<br>");
                    }
                }
                Item::Pre(text) => {
                    let text = text.strip_prefix('\n').unwrap_or(text);
                    let text = text.strip_suffix('\n').unwrap_or(text);
                    self.tag("<pre><code>");
                    self.out.push_str(&escape(text));
                    self.tag("</code></pre>");
                }
                Item::Quote(lines) => {
                    self.tag("<blockquote>");
                    self.items(lines);
                    self.tag("</blockquote>");
                }
            }
        }
    }

    /// A tag that starts a new line.
    fn tag(&mut self, tag: &str) {
        self.formatted |= tag != "<br>";
        self.out.push_str(tag);
        self.space_collapses = true;
    }

    fn inlines(&mut self, inlines: &[Inline]) {
        for inline in inlines {
            match inline {
                Inline::Text(text) | Inline::Plain(text) => self.text(text),
                Inline::Styled(style, children) => {
                    self.formatted = true;
                    self.out.push_str(&format!("<{}>", style.tag()));
                    self.inlines(children);
                    self.out.push_str(&format!("</{}>", style.tag()));
                }
                Inline::Code(code) => {
                    self.formatted = true;
                    self.out.push_str("<code>");
                    self.text(code);
                    self.out.push_str("</code>");
                }
                Inline::Link { href, label } => {
                    self.formatted |= !label_shows_href(label, href);
                    self.link(href, label);
                }
                Inline::Pill { href, text } => {
                    self.formatted = true;
                    self.link(href, text);
                }
            }
        }
    }

    fn link(&mut self, href: &str, text: &str) {
        self.out.push_str(&format!("<a href=\"{}\">", escape(href)));
        self.text(text);
        self.out.push_str("</a>");
    }

    fn text(&mut self, text: &str) {
        for ch in text.chars() {
            match ch {
                '&' => self.out.push_str("&amp;"),
                '<' => self.out.push_str("&lt;"),
                '>' => self.out.push_str("&gt;"),
                '"' => self.out.push_str("&quot;"),
                ' ' if self.space_collapses => self.out.push_str("&nbsp;"),
                _ => self.out.push(ch),
            }
            self.space_collapses = ch == ' ';
        }
    }
}
