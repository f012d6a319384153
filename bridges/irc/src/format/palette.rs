//! The mIRC colour palette and the colour arithmetic both directions share.

/// A colour as red, green and blue bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Rgb(pub u8, pub u8, pub u8);

/// What reverse video shows when no colour is set: the common light theme's
/// pair, inverted (white text on black).
pub(super) const REVERSE_DEFAULT_FG: Rgb = Rgb(0xff, 0xff, 0xff);
pub(super) const REVERSE_DEFAULT_BG: Rgb = Rgb(0x00, 0x00, 0x00);

/// Colours 0-15 are mIRC's classic set, 16-98 the extended set as documented
/// by modern.ircdocs.horse; 99 means "default" and has no value.
const PALETTE: [u32; 99] = [
    0xffffff, 0x000000, 0x00007f, 0x009300, 0xff0000, 0x7f0000, 0x9c009c, 0xfc7f00, // 0-7
    0xffff00, 0x00fc00, 0x009393, 0x00ffff, 0x0000fc, 0xff00ff, 0x7f7f7f, 0xd2d2d2, // 8-15
    0x470000, 0x472100, 0x474700, 0x324700, 0x004700, 0x00472c, 0x004747, 0x002747, // 16-23
    0x000047, 0x2e0047, 0x470047, 0x47002a, 0x740000, 0x743a00, 0x747400, 0x517400, // 24-31
    0x007400, 0x007449, 0x007474, 0x004074, 0x000074, 0x4b0074, 0x740074, 0x740045, // 32-39
    0xb50000, 0xb56300, 0xb5b500, 0x7db500, 0x00b500, 0x00b571, 0x00b5b5, 0x0063b5, // 40-47
    0x0000b5, 0x7500b5, 0xb500b5, 0xb5006b, 0xff0000, 0xff8c00, 0xffff00, 0xb2ff00, // 48-55
    0x00ff00, 0x00ffa0, 0x00ffff, 0x008cff, 0x0000ff, 0xa500ff, 0xff00ff, 0xff0098, // 56-63
    0xff5959, 0xffb459, 0xffff71, 0xcfff60, 0x6fff6f, 0x65ffc9, 0x6dffff, 0x59b4ff, // 64-71
    0x5959ff, 0xc459ff, 0xff66ff, 0xff59bc, 0xff9c9c, 0xffd39c, 0xffff9c, 0xe2ff9c, // 72-79
    0x9cff9c, 0x9cffdb, 0x9cffff, 0x9cd3ff, 0x9c9cff, 0xdc9cff, 0xff9cff, 0xff94d3, // 80-87
    0x000000, 0x131313, 0x282828, 0x363636, 0x4d4d4d, 0x656565, 0x818181, 0x9f9f9f, // 88-95
    0xbcbcbc, 0xe2e2e2, 0xffffff, // 96-98
];

impl Rgb {
    const fn from_u32(v: u32) -> Rgb {
        Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8)
    }

    /// The palette entry `index`; `None` for 99 ("default") and beyond.
    pub(super) fn from_palette(index: u8) -> Option<Rgb> {
        PALETTE.get(usize::from(index)).map(|&v| Rgb::from_u32(v))
    }

    /// `#rrggbb`, lowercase, the form `data-mx-color` requires.
    pub(super) fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Exactly six hex digits, no `#` (the argument of mIRC's `\x04`).
    pub(super) fn parse_hex6(s: &[u8]) -> Option<Rgb> {
        let digits = s.get(..6)?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let text = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(text, 16).ok().map(Rgb::from_u32)
    }

    /// A colour as HTML attributes write it: `#rrggbb`, `#rgb` or one of the
    /// basic colour names old clients put in `<font color>`.
    pub(super) fn parse_css(value: &str) -> Option<Rgb> {
        let value = value.trim();
        if let Some(hex) = value.strip_prefix('#') {
            return match hex.len() {
                6 => Rgb::parse_hex6(hex.as_bytes()),
                3 if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    let v = u32::from_str_radix(hex, 16).ok()?;
                    let (r, g, b) = ((v >> 8) & 0xf, (v >> 4) & 0xf, v & 0xf);
                    Some(Rgb::from_u32(
                        ((r * 0x11) << 16) | ((g * 0x11) << 8) | (b * 0x11),
                    ))
                }
                _ => None,
            };
        }
        let named = match value.to_ascii_lowercase().as_str() {
            "black" => 0x000000,
            "white" => 0xffffff,
            "red" => 0xff0000,
            "lime" => 0x00ff00,
            "green" => 0x008000,
            "blue" => 0x0000ff,
            "yellow" => 0xffff00,
            "cyan" | "aqua" => 0x00ffff,
            "magenta" | "fuchsia" => 0xff00ff,
            "gray" | "grey" => 0x808080,
            "silver" => 0xc0c0c0,
            "maroon" => 0x800000,
            "navy" => 0x000080,
            "olive" => 0x808000,
            "purple" => 0x800080,
            "teal" => 0x008080,
            "orange" => 0xffa500,
            "brown" => 0xa52a2a,
            "pink" => 0xffc0cb,
            _ => return None,
        };
        Some(Rgb::from_u32(named))
    }

    /// The palette index that looks closest, by the "redmean" weighted
    /// distance (cheap and much closer to perception than plain RGB distance).
    /// Ties go to the lowest index, so exact colours that appear twice in the
    /// palette (black, white, pure red...) map to the classic 0-15 entry that
    /// every client supports.
    pub(super) fn nearest_palette(self) -> u8 {
        let mut best = (0u8, i64::MAX);
        for (index, &value) in (0u8..).zip(PALETTE.iter()) {
            let distance = self.distance(Rgb::from_u32(value));
            if distance < best.1 {
                best = (index, distance);
            }
        }
        best.0
    }

    fn distance(self, other: Rgb) -> i64 {
        let (r1, g1, b1) = (i64::from(self.0), i64::from(self.1), i64::from(self.2));
        let (r2, g2, b2) = (i64::from(other.0), i64::from(other.1), i64::from(other.2));
        let mean_red = (r1 + r2) / 2;
        let (dr, dg, db) = (r1 - r2, g1 - g2, b1 - b2);
        (((512 + mean_red) * dr * dr) >> 8) + 4 * dg * dg + (((767 - mean_red) * db * db) >> 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_palette_colour_maps_back_to_an_entry_of_the_same_value() {
        for index in 0..99u8 {
            let rgb = Rgb::from_palette(index).unwrap();
            let back = rgb.nearest_palette();
            assert_eq!(Rgb::from_palette(back), Some(rgb), "colour {index}");
            assert!(back <= index, "colour {index} maps to later entry {back}");
        }
        assert_eq!(Rgb::from_palette(99), None);
    }

    #[test]
    fn nearest_colour_table() {
        let cases: &[(&str, u8)] = &[
            ("#ff0000", 4),
            ("#000000", 1),
            ("#ffffff", 0),
            ("#fe0101", 4),
            ("#0000fc", 12),
            ("#0000ff", 60),
            ("#0000f0", 12),
            ("#808080", 14),
            ("#d3d3d3", 15),
            ("#ff8c00", 53),
            ("#470000", 16),
            ("#123", 90),
            ("red", 4),
            ("Navy", 2),
        ];
        for &(css, want) in cases {
            let rgb = Rgb::parse_css(css).unwrap_or_else(|| panic!("{css} parses"));
            assert_eq!(rgb.nearest_palette(), want, "{css}");
        }
    }

    #[test]
    fn css_colour_parsing_table() {
        let cases: &[(&str, Option<Rgb>)] = &[
            ("#a1B2c3", Some(Rgb(0xa1, 0xb2, 0xc3))),
            (" #fff ", Some(Rgb(0xff, 0xff, 0xff))),
            ("#f0a", Some(Rgb(0xff, 0x00, 0xaa))),
            ("#ff", None),
            ("#gggggg", None),
            ("#+12345", None),
            ("#ééé", None),
            ("ff0000", None),
            ("teal", Some(Rgb(0x00, 0x80, 0x80))),
            ("rebeccapurple", None),
            ("", None),
        ];
        for (css, want) in cases {
            assert_eq!(Rgb::parse_css(css), *want, "{css:?}");
        }
    }
}
