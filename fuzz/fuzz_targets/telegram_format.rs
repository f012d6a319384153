//! Fuzzes both directions of the Telegram module's entities <-> Matrix HTML
//! conversion. The input's head is read as a list of message entities, the
//! rest as the text they format; the text is also used as Matrix HTML.
//!
//! Invariants: nothing panics; `telegram_to_matrix` keeps the text as the
//! body and writes balanced HTML; `matrix_to_telegram` writes Telegram HTML
//! the Bot API accepts (only its tags, nested as it allows, escaped), from
//! the input as HTML, from the input as a plain body, and from the Matrix
//! HTML `telegram_to_matrix` wrote.

#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_telegram::format::{
    Entity, EntityKind, check_html_nesting, check_telegram_html, matrix_to_telegram,
    telegram_to_matrix, utf16_len,
};

/// Bytes per entity record: kind, offset, length (see [`position`]).
const RECORD: usize = 3;

fn kind(byte: u8) -> EntityKind {
    match byte % 24 {
        0 => EntityKind::Bold,
        1 => EntityKind::Italic,
        2 => EntityKind::Underline,
        3 => EntityKind::Strikethrough,
        4 => EntityKind::Spoiler,
        5 => EntityKind::Code,
        6 => EntityKind::Pre { language: None },
        7 => EntityKind::Pre {
            language: Some("rust".into()),
        },
        8 => EntityKind::Pre {
            language: Some("\"><b x=".into()),
        },
        9 => EntityKind::TextLink {
            url: "https://example.org/?a=1&b=\"2\"<".into(),
        },
        10 => EntityKind::TextLink {
            url: " javascript:alert(1)".into(),
        },
        11 => EntityKind::TextMention { user_id: 42 },
        12 => EntityKind::TextMention { user_id: 7 },
        13 => EntityKind::Mention,
        14 => EntityKind::Url,
        15 => EntityKind::Email,
        16 => EntityKind::PhoneNumber,
        17 => EntityKind::Hashtag,
        18 => EntityKind::Cashtag,
        19 => EntityKind::BotCommand,
        20 => EntityKind::Blockquote,
        21 => EntityKind::ExpandableBlockquote,
        22 => EntityKind::CustomEmoji { id: "1".into() },
        _ => EntityKind::DateTime,
    }
}

/// An offset or length from one byte: 0..=127 spread over the text and
/// just past its end; with the top bit set, near `usize::MAX`.
fn position(byte: u8, text_len: usize) -> usize {
    if byte & 0x80 != 0 {
        usize::MAX - usize::from(byte & 0x7f)
    } else {
        usize::from(byte) * (text_len + 2) / 127
    }
}

/// The Matrix pill of a Telegram user: some have one, some do not.
fn user_link(user_id: i64) -> Option<String> {
    (user_id == 42).then(|| "https://matrix.to/#/@_telegram_42:example.org".to_owned())
}

/// The Telegram user of a Matrix user: some have one, some do not.
fn pill(mxid: &str) -> Option<i64> {
    mxid.starts_with("@a").then_some(7)
}

fn assert_telegram_html(input: &str, telegram: &str) {
    if let Err(e) = check_telegram_html(telegram) {
        panic!("bad Telegram HTML {telegram:?} from {input:?}: {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how many entity records follow.
    let (count, rest) = data.split_first().map_or((0, data), |(n, rest)| {
        (usize::from(*n % 32).min(rest.len() / RECORD), rest)
    });
    let (records, text) = rest.split_at(count * RECORD);
    let text = String::from_utf8_lossy(text);
    let text = text.as_ref();
    let len = utf16_len(text);
    let entities: Vec<Entity> = records
        .chunks_exact(RECORD)
        .map(|r| Entity::new(kind(r[0]), position(r[1], len), position(r[2], len)))
        .collect();

    // Telegram -> Matrix.
    let matrix = telegram_to_matrix(text, &entities, &user_link);
    assert_eq!(matrix.body, text, "body changed for {entities:?}");
    if let Some(html) = &matrix.html
        && let Err(e) = check_html_nesting(html)
    {
        panic!("unbalanced HTML {html:?} from {text:?} {entities:?}: {e}");
    }

    // Matrix -> Telegram, the text as HTML and as a plain body.
    assert_telegram_html(text, &matrix_to_telegram(text, Some(text), &pill));
    assert_telegram_html(text, &matrix_to_telegram(text, None, &pill));

    // And back: what telegram_to_matrix wrote converts to valid Telegram HTML.
    assert_telegram_html(
        text,
        &matrix_to_telegram(&matrix.body, matrix.html.as_deref(), &pill),
    );
});
