//! Telegram message entities, independent of any Bot API client crate, and
//! the UTF-16 offsets they are counted in.

/// One Telegram `MessageEntity`: a kind of formatting over a range of the
/// text. `offset` and `length` are in UTF-16 code units, as Telegram sends
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    pub kind: EntityKind,
    pub offset: usize,
    pub length: usize,
}

impl Entity {
    pub fn new(kind: EntityKind, offset: usize, length: usize) -> Self {
        Entity {
            kind,
            offset,
            length,
        }
    }
}

/// The `type` of a Telegram `MessageEntity`, with the fields that belong to
/// it (`url`, `user`, `language`, `custom_emoji_id`, `unix_time`...).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntityKind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    /// Inline monospace.
    Code,
    /// A monospace block, with the language Telegram highlights it in.
    Pre {
        language: Option<String>,
    },
    /// Text that links to `url` (`text_link`).
    TextLink {
        url: String,
    },
    /// A mention of a user without a username (`text_mention`).
    TextMention {
        user_id: i64,
    },
    /// `@username`.
    Mention,
    /// A URL in the text, which is its own target.
    Url,
    Email,
    PhoneNumber,
    Hashtag,
    /// `$USD`.
    Cashtag,
    /// `/start@jobs_bot`.
    BotCommand,
    Blockquote,
    /// A blockquote shown collapsed until tapped.
    ExpandableBlockquote,
    /// A custom emoji sticker; the text it covers is its fallback emoji.
    CustomEmoji {
        id: String,
    },
    /// A date and time clients show in the reader's time zone and locale
    /// (`date_time`); the text it covers is the sender's rendering, which
    /// is what Matrix shows.
    DateTime,
    /// A type this module does not know (a newer Bot API); its text stays
    /// plain.
    Other(String),
}

/// The length of `s` as Telegram counts it: in UTF-16 code units. Its limits
/// (4096 for a message, 1024 for a caption) apply to the text after entity
/// parsing, so they are counted on the plain text, not on the HTML.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Maps UTF-16 offsets in a text to byte offsets.
pub(super) struct Utf16Index {
    /// The UTF-16 offset of each character's start, then the text's length.
    units: Vec<usize>,
    /// The byte offset of each character's start, then the text's length.
    bytes: Vec<usize>,
}

impl Utf16Index {
    pub(super) fn new(text: &str) -> Self {
        let mut units = Vec::with_capacity(text.len() + 1);
        let mut bytes = Vec::with_capacity(text.len() + 1);
        let mut unit = 0;
        for (byte, ch) in text.char_indices() {
            units.push(unit);
            bytes.push(byte);
            unit += ch.len_utf16();
        }
        units.push(unit);
        bytes.push(text.len());
        Utf16Index { units, bytes }
    }

    /// The byte range of the UTF-16 range `offset..offset + length`, clamped
    /// to the text. A bound that falls between the two halves of a surrogate
    /// pair widens the range to the whole character.
    pub(super) fn byte_range(&self, offset: usize, length: usize) -> (usize, usize) {
        let end = offset.saturating_add(length);
        (self.byte_at(offset, false), self.byte_at(end, true))
    }

    fn byte_at(&self, unit: usize, round_up: bool) -> usize {
        match self.units.binary_search(&unit) {
            Ok(i) => self.bytes[i],
            Err(i) if i >= self.units.len() => self.bytes[self.bytes.len() - 1],
            // `units[0]` is 0, so a unit that is not a character start has
            // one before it.
            Err(i) if round_up => self.bytes[i],
            Err(i) => self.bytes[i - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_len_counts_surrogate_pairs_twice() {
        assert_eq!(utf16_len(""), 0);
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("é"), 1);
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(utf16_len("a😀b"), 4);
        assert_eq!(utf16_len("👍🏽"), 4);
    }

    #[test]
    fn byte_range_table() {
        // "a😀é b": a=0, 😀=1..3, é=3, ' '=4, b=5; bytes a=0, 😀=1..5, é=5..7
        let index = Utf16Index::new("a😀é b");
        let cases = [
            ((0, 1), (0, 1)),
            ((1, 2), (1, 5)),
            ((3, 1), (5, 7)),
            ((0, 6), (0, 9)),
            ((1, 1), (1, 5)),
            ((2, 1), (1, 5)),
            ((2, 2), (1, 7)),
            ((2, 0), (1, 5)),
            ((5, 10), (8, 9)),
            ((6, 1), (9, 9)),
            ((100, 1), (9, 9)),
            ((usize::MAX, usize::MAX), (9, 9)),
            ((0, usize::MAX), (0, 9)),
        ];
        for ((offset, length), want) in cases {
            assert_eq!(index.byte_range(offset, length), want, "{offset}+{length}");
        }
        assert_eq!(Utf16Index::new("").byte_range(0, 3), (0, 0));
    }
}
