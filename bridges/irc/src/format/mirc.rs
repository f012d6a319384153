//! Reading mIRC control codes: a line of IRC text as runs of text, each with
//! the formatting in effect. Both `irc_to_matrix` and the tests that check
//! what an IRC client would show are built on this one reader.

use super::palette::{REVERSE_DEFAULT_BG, REVERSE_DEFAULT_FG, Rgb};

pub(super) const BOLD: u8 = 0x02;
pub(super) const COLOR: u8 = 0x03;
pub(super) const HEX_COLOR: u8 = 0x04;
pub(super) const RESET: u8 = 0x0f;
pub(super) const MONOSPACE: u8 = 0x11;
pub(super) const REVERSE: u8 = 0x16;
pub(super) const ITALIC: u8 = 0x1d;
pub(super) const STRIKETHROUGH: u8 = 0x1e;
pub(super) const UNDERLINE: u8 = 0x1f;

/// A colour as IRC set it: a palette entry (kept as an index so a round trip
/// can keep it) or a `\x04` hex colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Color {
    Palette(u8),
    Hex(Rgb),
}

impl Color {
    fn rgb(self) -> Option<Rgb> {
        match self {
            Color::Palette(index) => Rgb::from_palette(index),
            Color::Hex(rgb) => Some(rgb),
        }
    }
}

/// The formatting in effect at one point of an IRC line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Style {
    pub bold: bool,
    pub italic: bool,
    pub underline: bool,
    pub strike: bool,
    pub mono: bool,
    pub reverse: bool,
    pub fg: Option<Color>,
    pub bg: Option<Color>,
}

impl Style {
    /// Text and background colour as shown: reverse video swaps them, and
    /// falls back to white on black for the sides that have no colour.
    pub(super) fn shown_colors(&self) -> (Option<Rgb>, Option<Rgb>) {
        let fg = self.fg.and_then(Color::rgb);
        let bg = self.bg.and_then(Color::rgb);
        if self.reverse {
            (
                Some(bg.unwrap_or(REVERSE_DEFAULT_FG)),
                Some(fg.unwrap_or(REVERSE_DEFAULT_BG)),
            )
        } else {
            (fg, bg)
        }
    }
}

impl Style {
    /// The codes that put this style in effect at the start of a line (where
    /// IRC starts plain), written before the character `next`: a colour
    /// code right before a comma gets an empty bold pair after it, so the
    /// comma is not read as the start of a background colour.
    pub(crate) fn opening_codes(&self, next: Option<char>) -> String {
        let mut out = String::new();
        let hex = |rgb: Rgb| format!("{:02X}{:02X}{:02X}", rgb.0, rgb.1, rgb.2);
        // A background needs a foreground in the same code: 99 ("default")
        // for the palette; for a hex background, a hex placeholder that the
        // foreground code after it replaces.
        match (self.fg, self.bg) {
            (None, None) => {}
            (Some(Color::Palette(fg)), None) => out.push_str(&format!("\x03{fg:02}")),
            (Some(Color::Hex(fg)), None) => out.push_str(&format!("\x04{}", hex(fg))),
            (fg, Some(Color::Palette(bg))) => match fg {
                Some(Color::Palette(fg)) => out.push_str(&format!("\x03{fg:02},{bg:02}")),
                None => out.push_str(&format!("\x0399,{bg:02}")),
                Some(Color::Hex(fg)) => {
                    out.push_str(&format!("\x0399,{bg:02}\x04{}", hex(fg)));
                }
            },
            (fg, Some(Color::Hex(bg))) => match fg {
                Some(Color::Hex(fg)) => out.push_str(&format!("\x04{},{}", hex(fg), hex(bg))),
                Some(Color::Palette(fg)) => {
                    out.push_str(&format!("\x04000000,{}\x03{fg:02}", hex(bg)));
                }
                None => out.push_str(&format!("\x04000000,{}\x0399", hex(bg))),
            },
        }
        let ends_in_colour = !out.is_empty();
        let toggles = [
            (self.bold, BOLD),
            (self.italic, ITALIC),
            (self.underline, UNDERLINE),
            (self.strike, STRIKETHROUGH),
            (self.mono, MONOSPACE),
            (self.reverse, REVERSE),
        ];
        let mut toggled = false;
        for (on, code) in toggles {
            if on {
                out.push(char::from(code));
                toggled = true;
            }
        }
        if ends_in_colour && !toggled && next == Some(',') {
            out.push_str("\x02\x02");
        }
        out
    }
}

/// The smallest unit of an IRC line that a cut must not go through: one
/// control code with its arguments, or one character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Atom {
    /// Its byte range in the line.
    pub start: usize,
    pub end: usize,
    /// A control code (it shows nothing) rather than a character.
    pub code: bool,
    /// The style in effect once it is read.
    pub style_after: Style,
}

/// One IRC line (no `\n`) as [`Atom`]s, in order; together they cover it.
pub(crate) fn atoms(line: &str) -> Vec<Atom> {
    let bytes = line.as_bytes();
    let mut style = Style::default();
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(&first) = bytes.get(start) {
        let (end, code) = if is_control(first) {
            (
                start + 1 + style.apply_code(first, &bytes[start + 1..]),
                true,
            )
        } else {
            let width = line[start..].chars().next().map_or(1, char::len_utf8);
            (start + width, false)
        };
        out.push(Atom {
            start,
            end,
            code,
            style_after: style,
        });
        start = end;
    }
    out
}

/// One piece of an IRC text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Piece<'a> {
    /// Text without control codes, all in one style.
    Text(&'a str, Style),
    /// A line break. IRC formatting never outlives its line, so the style
    /// starts over after it.
    Newline,
}

/// Splits IRC text into [`Piece`]s. Control codes it does not know (and CR)
/// are dropped; a tab stays text.
pub(super) struct Pieces<'a> {
    rest: &'a str,
    style: Style,
}

pub(super) fn pieces(text: &str) -> Pieces<'_> {
    Pieces {
        rest: text,
        style: Style::default(),
    }
}

fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        loop {
            let bytes = self.rest.as_bytes();
            let first = *bytes.first()?;
            if !is_control(first) {
                // Control codes are ASCII, so the split is on a char boundary.
                let end = bytes
                    .iter()
                    .position(|&b| is_control(b))
                    .unwrap_or(bytes.len());
                let (text, rest) = self.rest.split_at(end);
                self.rest = rest;
                return Some(Piece::Text(text, self.style));
            }
            let consumed = 1 + self.style.apply_code(first, &bytes[1..]);
            self.rest = &self.rest[consumed..];
            if first == b'\n' {
                self.style = Style::default();
                return Some(Piece::Newline);
            }
        }
    }
}

impl Style {
    /// Applies the control code `code`; returns how many bytes of its
    /// arguments (from `args`) it used.
    fn apply_code(&mut self, code: u8, args: &[u8]) -> usize {
        let style = self;
        match code {
            BOLD => style.bold = !style.bold,
            ITALIC => style.italic = !style.italic,
            UNDERLINE => style.underline = !style.underline,
            STRIKETHROUGH => style.strike = !style.strike,
            MONOSPACE => style.mono = !style.mono,
            REVERSE => style.reverse = !style.reverse,
            RESET => *style = Style::default(),
            COLOR => {
                let Some((fg, fg_len)) = palette_number(args) else {
                    // A bare \x03 ends both colours; a comma after it is text.
                    style.fg = None;
                    style.bg = None;
                    return 0;
                };
                style.fg = fg;
                if args.get(fg_len) == Some(&b',')
                    && let Some((bg, bg_len)) = palette_number(&args[fg_len + 1..])
                {
                    style.bg = bg;
                    return fg_len + 1 + bg_len;
                }
                return fg_len;
            }
            HEX_COLOR => {
                let Some(fg) = Rgb::parse_hex6(args) else {
                    style.fg = None;
                    style.bg = None;
                    return 0;
                };
                style.fg = Some(Color::Hex(fg));
                if args.get(6) == Some(&b',')
                    && let Some(bg) = Rgb::parse_hex6(&args[7..])
                {
                    style.bg = Some(Color::Hex(bg));
                    return 13;
                }
                return 6;
            }
            _ => {}
        }
        0
    }
}

/// One or two digits: the colour (`None` for 99, "default") and the length.
fn palette_number(args: &[u8]) -> Option<(Option<Color>, usize)> {
    let digits = args
        .iter()
        .take(2)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    let value = args[..digits].iter().fold(0u8, |n, &d| n * 10 + (d - b'0'));
    let color = Rgb::from_palette(value).map(|_| Color::Palette(value));
    Some((color, digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<(String, Style)> {
        pieces(input)
            .filter_map(|piece| match piece {
                Piece::Text(text, style) => Some((text.to_owned(), style)),
                Piece::Newline => None,
            })
            .collect()
    }

    fn colored(fg: Option<u8>, bg: Option<u8>) -> Style {
        Style {
            fg: fg.map(Color::Palette),
            bg: bg.map(Color::Palette),
            ..Style::default()
        }
    }

    #[test]
    fn colour_argument_table() {
        let cases: &[(&str, &str, Style)] = &[
            ("\x0312x", "x", colored(Some(12), None)),
            ("\x03123", "3", colored(Some(12), None)),
            ("\x031x", "x", colored(Some(1), None)),
            ("\x0304,05x", "x", colored(Some(4), Some(5))),
            ("\x034,5x", "x", colored(Some(4), Some(5))),
            ("\x034,567", "7", colored(Some(4), Some(56))),
            ("\x031,", ",", colored(Some(1), None)),
            ("\x031,x", ",x", colored(Some(1), None)),
            ("\x03,5x", ",5x", colored(None, None)),
            ("\x0399x", "x", colored(None, None)),
            ("\x0398x", "x", colored(Some(98), None)),
            ("\x0399,01x", "x", colored(None, Some(1))),
        ];
        for (input, text, style) in cases {
            assert_eq!(texts(input), vec![(text.to_string(), *style)], "{input:?}");
        }
    }

    #[test]
    fn hex_colour_argument_table() {
        let hex = |fg: u32, bg: Option<u32>| Style {
            fg: Some(Color::Hex(Rgb((fg >> 16) as u8, (fg >> 8) as u8, fg as u8))),
            bg: bg.map(|v| Color::Hex(Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8))),
            ..Style::default()
        };
        let cases: &[(&str, &str, Style)] = &[
            ("\x04FF8800x", "x", hex(0xff8800, None)),
            ("\x04ff8800,000000x", "x", hex(0xff8800, Some(0))),
            ("\x04ff8800,00x", ",00x", hex(0xff8800, None)),
            ("\x04ff88x", "ff88x", Style::default()),
            ("\x04,ff8800", ",ff8800", Style::default()),
        ];
        for (input, text, style) in cases {
            assert_eq!(texts(input), vec![(text.to_string(), *style)], "{input:?}");
        }
    }

    #[test]
    fn a_new_line_starts_plain() {
        let got: Vec<_> = pieces("\x02a\nb").collect();
        let bold = Style {
            bold: true,
            ..Style::default()
        };
        assert_eq!(
            got,
            vec![
                Piece::Text("a", bold),
                Piece::Newline,
                Piece::Text("b", Style::default())
            ]
        );
    }
}
