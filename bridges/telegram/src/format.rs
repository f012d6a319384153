//! Placeholder until the converter lands (same public surface).

pub struct Entity {
    pub kind: EntityKind,
    pub offset: usize,
    pub length: usize,
}

pub enum EntityKind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    Code,
    Pre { language: Option<String> },
    TextLink { url: String },
    TextMention { user_id: i64 },
    Mention,
    Url,
    Email,
    PhoneNumber,
    Hashtag,
    Cashtag,
    BotCommand,
    Blockquote,
    ExpandableBlockquote,
    CustomEmoji { id: String },
    DateTime,
    Other(String),
}

pub struct Formatted {
    pub body: String,
    pub html: Option<String>,
}

pub fn telegram_to_matrix(
    text: &str,
    _entities: &[Entity],
    _user_link: &dyn Fn(i64) -> Option<String>,
) -> Formatted {
    Formatted {
        body: text.to_owned(),
        html: None,
    }
}

pub fn matrix_to_telegram(
    body: &str,
    _html: Option<&str>,
    _pill: &dyn Fn(&str) -> Option<i64>,
) -> String {
    escape_telegram(body)
}

pub fn escape_telegram(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}
