//! Table tests for the emoji names, the generated table's invariants and
//! round trips over every emoji Slack knows.

use super::slack_names::{BY_EMOJI, BY_NAME};
use super::*;

#[test]
fn shortcode_to_unicode_table() {
    let cases: &[(&str, Option<&str>)] = &[
        ("+1", Some("👍")),
        ("thumbsup", Some("👍")),
        (":+1:", Some("👍")),
        ("-1", Some("👎")),
        ("tada", Some("🎉")),
        ("heart", Some("❤\u{fe0f}")),
        ("thumbsup::skin-tone-2", Some("👍🏻")),
        ("thumbsup::skin-tone-3", Some("👍🏼")),
        ("+1::skin-tone-6", Some("👍🏿")),
        ("wave::skin-tone-4", Some("👋🏽")),
        // The tone follows the person in a ZWJ sequence.
        ("man-raising-hand::skin-tone-5", Some("🙋🏾\u{200d}♂\u{fe0f}")),
        // Two people: one tone for both, or one each.
        (
            "people_holding_hands::skin-tone-2",
            Some("🧑🏻\u{200d}🤝\u{200d}🧑🏻"),
        ),
        (
            "people_holding_hands::skin-tone-2-2",
            Some("🧑🏻\u{200d}🤝\u{200d}🧑🏻"),
        ),
        (
            "people_holding_hands::skin-tone-2-6",
            Some("🧑🏻\u{200d}🤝\u{200d}🧑🏿"),
        ),
        (
            "people_holding_hands::skin-tone-6-5",
            Some("🧑🏿\u{200d}🤝\u{200d}🧑🏾"),
        ),
        ("handshake::skin-tone-3", Some("🤝🏼")),
        // A tone on an emoji that takes none is dropped.
        ("joy::skin-tone-3", Some("😂")),
        // The lone modifiers.
        ("skin-tone-2", Some("\u{1f3fb}")),
        ("skin-tone-6", Some("\u{1f3ff}")),
        ("skin-tone-1", None),
        ("skin-tone-7", None),
        // Flags: Slack's `flag-xx` for all, the old short names for ten.
        ("flag-fr", Some("🇫🇷")),
        ("fr", Some("🇫🇷")),
        ("flag-ca", Some("🇨🇦")),
        (
            "flag-england",
            Some("🏴\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}"),
        ),
        ("uk", Some("🇬🇧")),
        // Slack and gemoji disagree: Slack's meaning wins.
        ("satellite", Some("🛰\u{fe0f}")),
        ("snowman", Some("☃\u{fe0f}")),
        ("bride_with_veil", Some("👰")),
        ("simple_smile", Some("🙂")),
        ("slightly_smiling_face", Some("🙂")),
        ("badminton_racquet_and_shuttlecock", Some("🏸")),
        // gemoji-only names are custom emoji on Slack.
        ("canada", None),
        ("badminton", None),
        // Custom and malformed names.
        ("partyparrot", None),
        ("partyparrot::skin-tone-2", None),
        ("+1::skin-tone-9", None),
        ("+1::", None),
        ("+1::bogus", None),
        ("", None),
        ("::", None),
        (":", None),
        ("👍", None),
    ];
    for (name, want) in cases {
        assert_eq!(
            shortcode_to_unicode(name).as_deref(),
            *want,
            "shortcode_to_unicode({name:?})"
        );
    }
}

#[test]
fn unicode_to_shortcode_table() {
    let cases: &[(&str, Option<&str>)] = &[
        ("👍", Some("+1")),
        ("👍\u{fe0f}", Some("+1")),
        ("👍🏼", Some("+1::skin-tone-3")),
        ("👍🏻", Some("+1::skin-tone-2")),
        ("👍🏿", Some("+1::skin-tone-6")),
        ("❤\u{fe0f}", Some("heart")),
        ("❤", Some("heart")),
        ("🎉", Some("tada")),
        ("🙂", Some("slightly_smiling_face")),
        ("🇫🇷", Some("fr")),
        ("🇨🇦", Some("flag-ca")),
        ("🏸", Some("badminton_racquet_and_shuttlecock")),
        ("🛰\u{fe0f}", Some("satellite")),
        ("📡", Some("satellite_antenna")),
        ("🙋🏾\u{200d}♂\u{fe0f}", Some("man-raising-hand::skin-tone-5")),
        (
            "🧑🏻\u{200d}🤝\u{200d}🧑🏻",
            Some("people_holding_hands::skin-tone-2"),
        ),
        (
            "🧑🏻\u{200d}🤝\u{200d}🧑🏿",
            Some("people_holding_hands::skin-tone-2-6"),
        ),
        ("\u{1f3fc}", Some("skin-tone-3")),
        ("#\u{fe0f}\u{20e3}", Some("hash")),
        ("#\u{20e3}", Some("hash")),
        ("", None),
        ("x", None),
        ("+1", None),
        ("👍👍", None),
        ("👍 ", None),
    ];
    for (emoji, want) in cases {
        assert_eq!(
            unicode_to_shortcode(emoji).as_deref(),
            *want,
            "unicode_to_shortcode({emoji:?})"
        );
    }
}

#[test]
fn replace_shortcodes_table() {
    let cases: &[(&str, &str)] = &[
        (":tada: done", "🎉 done"),
        ("done:tada:", "done🎉"),
        (":+1::skin-tone-2:", "👍🏻"),
        (":+1: :skin-tone-2:", "👍 \u{1f3fb}"),
        (":joy::skin-tone-3:", "😂"),
        ("tone :skin-tone-3:", "tone \u{1f3fc}"),
        (":partyparrot: yay", ":partyparrot: yay"),
        (":partyparrot::skin-tone-2:", ":partyparrot:\u{1f3fb}"),
        ("see:foo:tada:", "see:foo🎉"),
        (":b:", "🅱\u{fe0f}"),
        (":tada::tada:", "🎉🎉"),
        ("12:30:45", "12:30:45"),
        ("at 10:100:", "at 10💯"),
        ("::", "::"),
        (":::", ":::"),
        (":", ":"),
        ("", ""),
        ("no colons", "no colons"),
        (":Tada:", ":Tada:"),
        (":ta da:", ":ta da:"),
        (":tada", ":tada"),
        ("é:tada:é", "é🎉é"),
        (":flag-fr::flag-de:", "🇫🇷🇩🇪"),
        (":man-woman-boy:", "👨\u{200d}👩\u{200d}👦"),
        (":simple_smile:", "🙂"),
        (":canada:", ":canada:"),
    ];
    for (text, want) in cases {
        assert_eq!(
            replace_shortcodes(text),
            *want,
            "replace_shortcodes({text:?})"
        );
    }
    let long = format!(":{}:", "a".repeat(200));
    assert_eq!(replace_shortcodes(&long), long);
}

#[test]
fn tables_are_sorted_and_consistent() {
    assert!(
        BY_NAME.windows(2).all(|w| w[0].0 < w[1].0),
        "BY_NAME unsorted"
    );
    assert!(
        BY_EMOJI.windows(2).all(|w| w[0].0 < w[1].0),
        "BY_EMOJI unsorted"
    );
    for (name, emoji) in BY_NAME {
        assert!(name.chars().all(is_name_char), "{name:?}");
        let found = emojis::get(emoji).unwrap_or_else(|| panic!("{name:?}: {emoji:?}"));
        assert_eq!(
            found.as_str(),
            *emoji,
            "{name:?} is not spelled as the crate does"
        );
    }
    for (emoji, name) in BY_EMOJI {
        assert_eq!(lookup(BY_NAME, name), Some(*emoji), "{name:?}");
    }
}

#[test]
fn every_slack_emoji_round_trips_with_every_tone() {
    let mut toned = 0;
    for (emoji, name) in BY_EMOJI {
        assert_eq!(unicode_to_shortcode(emoji).as_deref(), Some(*name));
        assert_eq!(shortcode_to_unicode(name).as_deref(), Some(*emoji));
        let Some(variants) = emojis::get(emoji).and_then(Emoji::skin_tones) else {
            continue;
        };
        for variant in variants.skip(1) {
            let code = unicode_to_shortcode(variant.as_str())
                .unwrap_or_else(|| panic!("no name for {variant:?}"));
            assert!(code.starts_with(&format!("{name}::skin-tone-")), "{code}");
            assert_eq!(
                shortcode_to_unicode(&code).as_deref(),
                Some(variant.as_str()),
                "{code}"
            );
            assert_eq!(replace_shortcodes(&format!(":{code}:")), variant.as_str());
            toned += 1;
        }
    }
    // 5 tones on ~300 emoji and 25 on the two-person ones, at the least.
    assert!(toned > 1_800, "only {toned} toned variants");
}

#[test]
fn every_name_with_any_tone_round_trips() {
    for (name, emoji) in BY_NAME {
        assert_eq!(
            shortcode_to_unicode(name).as_deref(),
            Some(*emoji),
            "{name}"
        );
        for tone in ["", "::skin-tone-2", "::skin-tone-6", "::skin-tone-3-5"] {
            let code = format!("{name}{tone}");
            let emoji = shortcode_to_unicode(&code).unwrap_or_else(|| panic!("{code}"));
            let back = unicode_to_shortcode(&emoji).unwrap_or_else(|| panic!("{code}"));
            assert_eq!(
                shortcode_to_unicode(&back).as_deref(),
                Some(emoji.as_str()),
                "{code} -> {emoji} -> {back}"
            );
        }
    }
}

#[test]
fn tone_numbering_round_trips() {
    for (index, tone) in TONES.iter().enumerate().skip(1) {
        let suffix = tone_suffix(*tone).expect("a suffix");
        assert_eq!(parse_tone(&suffix), Some(*tone), "{index}: {suffix}");
    }
    assert_eq!(tone_suffix(SkinTone::Default), None);
    assert_eq!(
        tone_suffix(SkinTone::LightAndMediumLight).as_deref(),
        Some("skin-tone-2-3")
    );
    assert_eq!(
        tone_suffix(SkinTone::DarkAndMediumDark).as_deref(),
        Some("skin-tone-6-5")
    );
    for bad in [
        "skin-tone-",
        "skin-tone-2-",
        "skin-tone-22",
        "skin-tone-2-3-4",
        "tone-2",
    ] {
        assert_eq!(parse_tone(bad), None, "{bad}");
    }
}
