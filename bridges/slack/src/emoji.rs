//! Slack emoji shortcodes <-> Unicode emoji. Pure: no I/O, no state.
//!
//! - [`shortcode_to_unicode`]: a reaction name as `reaction_added` gives it
//!   (`thumbsup::skin-tone-2`) to the emoji a Matrix reaction carries.
//! - [`unicode_to_shortcode`]: a Matrix reaction key to the name
//!   `reactions.add` accepts.
//! - [`replace_shortcodes`]: `:tada:` in message text to `🎉`.
//!
//! Slack names emoji as iamcal/emoji-data does (Slack's emoji picker is built
//! on it), which is *not* gemoji's set: of its 1,967 names, 632 are unknown
//! to gemoji or name another emoji there, and for 596 emoji gemoji's first
//! name is not one Slack knows. So the names come from a table generated from
//! emoji-datasource (`emoji/slack_names.rs`), and the `emojis` crate does the
//! Unicode work: it recognises an emoji however qualified (with or without
//! U+FE0F), tells its skin tone, and puts a tone on it. Differences handled:
//!
//! - Slack-only names: `thumbsup` and `+1` are both 👍 (gemoji has both too),
//!   `flag-fr`, `flag-ca` ... for every flag (gemoji: `fr`, `canada`),
//!   `flag-england`, `flag-sark`, `man-woman-boy`, `woman-running`,
//!   `badminton_racquet_and_shuttlecock`, `admission_tickets` ...
//! - Names both sets have for different emoji: Slack's `bride_with_veil`,
//!   `man_with_turban`, `guardsman` and `ok_woman` are the gender-neutral
//!   emoji (gemoji: the gendered ones); Slack's `satellite` is 🛰 (gemoji:
//!   📡), `umbrella` ☂ (gemoji: ☔), `snowman` ☃ (gemoji: ⛄), `email` ✉
//!   (gemoji: 📧). Slack's meaning wins.
//! - gemoji-only names (`canada`, `badminton`) are *not* recognised: Slack
//!   never sends them for a built-in emoji, so in Slack text they name a
//!   workspace's custom emoji and must stay `:name:`.
//! - `simple_smile`, a Slack built-in with its own picture and no Unicode
//!   emoji, becomes 🙂.
//! - Skin tones: Slack's `skin-tone-2` ... `skin-tone-6` are the Fitzpatrick
//!   modifiers U+1F3FB (type 1-2) ... U+1F3FF (type 6), so `skin-tone-N` is
//!   modifier N - 1 in the `emojis` crate's [`SkinTone`] order. Two-person
//!   emoji take `skin-tone-2-5` (one tone each), or `skin-tone-3` when both
//!   have the same tone (`skin-tone-3-3` is read too). A lone `skin-tone-N`
//!   is the modifier itself, the swatch Slack shows. A tone on an emoji that
//!   takes none is dropped, as Slack draws it.

mod slack_names;

#[cfg(test)]
mod tests;

use emojis::{Emoji, SkinTone};

/// The Fitzpatrick modifiers, Slack's `skin-tone-2` ... `skin-tone-6`.
const MODIFIERS: [&str; 5] = [
    "\u{1f3fb}",
    "\u{1f3fc}",
    "\u{1f3fd}",
    "\u{1f3fe}",
    "\u{1f3ff}",
];

/// Slack built-ins that are not Unicode emoji, with the emoji that looks
/// closest.
const EXTRA: &[(&str, &str)] = &[("simple_smile", "\u{1f642}")];

/// The `emojis` crate's skin tones in its own order: `Default`, the five
/// single tones, then the twenty pairs, first person's tone major.
const TONES: [SkinTone; 26] = [
    SkinTone::Default,
    SkinTone::Light,
    SkinTone::MediumLight,
    SkinTone::Medium,
    SkinTone::MediumDark,
    SkinTone::Dark,
    SkinTone::LightAndMediumLight,
    SkinTone::LightAndMedium,
    SkinTone::LightAndMediumDark,
    SkinTone::LightAndDark,
    SkinTone::MediumLightAndLight,
    SkinTone::MediumLightAndMedium,
    SkinTone::MediumLightAndMediumDark,
    SkinTone::MediumLightAndDark,
    SkinTone::MediumAndLight,
    SkinTone::MediumAndMediumLight,
    SkinTone::MediumAndMediumDark,
    SkinTone::MediumAndDark,
    SkinTone::MediumDarkAndLight,
    SkinTone::MediumDarkAndMediumLight,
    SkinTone::MediumDarkAndMedium,
    SkinTone::MediumDarkAndDark,
    SkinTone::DarkAndLight,
    SkinTone::DarkAndMediumLight,
    SkinTone::DarkAndMedium,
    SkinTone::DarkAndMediumDark,
];

/// The Unicode emoji for a Slack emoji name: `+1`, `thumbsup::skin-tone-3`,
/// `flag-fr`, `skin-tone-4`; outer colons (`:tada:`) are allowed.
///
/// `None` for a name Slack does not have built in, which is a workspace's
/// custom emoji (an image: the caller keeps `:name:` or fetches it).
pub fn shortcode_to_unicode(name: &str) -> Option<String> {
    let name = name.strip_prefix(':').unwrap_or(name);
    let name = name.strip_suffix(':').unwrap_or(name);
    let (base, tone) = match name.split_once("::") {
        Some((base, tone)) => (base, Some(parse_tone(tone)?)),
        None => (name, None),
    };
    if tone.is_none()
        && let Some(modifier) = parse_tone(base).and_then(modifier_for)
    {
        return Some(modifier.to_owned());
    }
    let emoji = base_emoji(base)?;
    let toned = tone
        .and_then(|tone| emojis::get(emoji)?.with_skin_tone(tone))
        .map_or(emoji, Emoji::as_str);
    Some(toned.to_owned())
}

/// The Slack name for a Unicode emoji, with its skin tone as Slack writes it
/// (`👍🏼` -> `+1::skin-tone-3`): what `reactions.add` takes as `name`. The
/// emoji may be written with or without variation selectors.
///
/// `None` for anything Slack has no built-in name for: text that is not one
/// emoji, or an emoji newer than Slack's set.
pub fn unicode_to_shortcode(emoji: &str) -> Option<String> {
    let bare = emoji.replace('\u{fe0f}', "");
    if let Some(index) = MODIFIERS.iter().position(|m| *m == bare) {
        return Some(format!("skin-tone-{}", index + 2));
    }
    let found = emojis::get(emoji).or_else(|| emojis::get(&bare))?;
    let tone = found.skin_tone().filter(|tone| *tone != SkinTone::Default);
    let base = match tone {
        Some(_) => found.skin_tones()?.next()?,
        None => found,
    };
    let name = lookup(slack_names::BY_EMOJI, base.as_str())?;
    Some(match tone.and_then(tone_suffix) {
        Some(suffix) => format!("{name}::{suffix}"),
        None => name.to_owned(),
    })
}

/// Replaces the `:name:` shortcodes of built-in Slack emoji in message text
/// by the emoji, a following `:skin-tone-N:` included (`:+1::skin-tone-2:`
/// -> `👍🏻`). Unknown names, which are custom emoji, stay as they are, and
/// so does everything else (`12:30:45`, `a:b`).
pub fn replace_shortcodes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(colon) = rest.find(':') {
        out.push_str(&rest[..colon]);
        rest = &rest[colon..];
        let Some(name) = shortcode_at(rest) else {
            out.push(':');
            rest = &rest[1..];
            continue;
        };
        let after = &rest[name.len() + 2..];
        let tone = shortcode_at(after).filter(|tone| parse_tone(tone).is_some());
        let toned = tone.and_then(|tone| shortcode_to_unicode(&format!("{name}::{tone}")));
        if let (Some(tone), Some(emoji)) = (tone, toned) {
            out.push_str(&emoji);
            rest = &after[tone.len() + 2..];
        } else if let Some(emoji) = shortcode_to_unicode(name) {
            out.push_str(&emoji);
            rest = after;
        } else {
            // The closing colon may open the next shortcode (`a:b:tada:`).
            out.push(':');
            out.push_str(name);
            rest = &rest[name.len() + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Slack names are short; a longer run is no shortcode, and the cap keeps
/// [`replace_shortcodes`] linear on text full of colons.
const MAX_NAME_LEN: usize = 100;

/// The name of a `:name:` shortcode at the start of `text`.
fn shortcode_at(text: &str) -> Option<&str> {
    let body = text.strip_prefix(':')?;
    let end = body
        .char_indices()
        .take(MAX_NAME_LEN + 1)
        .find(|&(_, c)| !is_name_char(c))
        .map(|(i, _)| i)?;
    (end > 0 && body[end..].starts_with(':')).then(|| &body[..end])
}

/// The characters of Slack emoji names, built-in and custom.
fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '+' | '\'')
}

/// The emoji for a name without a skin tone, spelled as the `emojis` crate
/// spells it.
fn base_emoji(name: &str) -> Option<&'static str> {
    lookup(slack_names::BY_NAME, name).or_else(|| {
        EXTRA
            .iter()
            .find(|(extra, _)| *extra == name)
            .map(|(_, emoji)| *emoji)
    })
}

fn lookup(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .map(|index| table[index].1)
}

/// `skin-tone-N` or `skin-tone-N-M` (N, M from 2 to 6) as a skin tone.
fn parse_tone(tone: &str) -> Option<SkinTone> {
    let digits = tone.strip_prefix("skin-tone-")?;
    let number = |s: &str| match s.as_bytes() {
        [d @ b'2'..=b'6'] => Some(usize::from(d - b'2')),
        _ => None,
    };
    let index = match digits.split_once('-') {
        None => 1 + number(digits)?,
        Some((first, second)) => {
            let (first, second) = (number(first)?, number(second)?);
            if first == second {
                1 + first
            } else {
                // Each first tone has four partners, in order, skipping itself.
                6 + first * 4 + second - usize::from(second > first)
            }
        }
    };
    TONES.get(index).copied()
}

/// `skin-tone-N` or `skin-tone-N-M` for a skin tone other than `Default`.
fn tone_suffix(tone: SkinTone) -> Option<String> {
    let index = TONES.iter().position(|t| *t == tone)?;
    match index {
        0 => None,
        1..=5 => Some(format!("skin-tone-{}", index + 1)),
        _ => {
            let (first, rest) = ((index - 6) / 4, (index - 6) % 4);
            let second = rest + usize::from(rest >= first);
            Some(format!("skin-tone-{}-{}", first + 2, second + 2))
        }
    }
}

/// The modifier a single skin tone stands for.
fn modifier_for(tone: SkinTone) -> Option<&'static str> {
    let index = TONES.iter().position(|t| *t == tone)?;
    MODIFIERS.get(index.checked_sub(1)?).copied()
}
