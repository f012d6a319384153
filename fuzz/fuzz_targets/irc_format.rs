//! Fuzzes both directions of the IRC module's mIRC <-> Matrix HTML
//! conversion. The input is used as IRC text and as Matrix HTML alike.
//!
//! Invariants: nothing panics; `irc_to_matrix` leaves no control code in the
//! body and writes balanced HTML; `matrix_to_irc*` never writes CR or NUL;
//! Matrix HTML that `irc_to_matrix` wrote converts back without them too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_irc::format::{
    check_html_nesting, irc_mention_to_matrix, irc_to_matrix, matrix_to_irc,
    matrix_to_irc_addressed, matrix_to_irc_with, nick_mention_at_start, pill_at_start,
};

fn nick_for(mxid: &str) -> Option<String> {
    // Some users have a nick, some do not; the nick may hold odd bytes too.
    mxid.starts_with("@a")
        .then(|| mxid[1..].split(':').next().unwrap_or_default().to_owned())
}

fn assert_irc_safe(input: &str, irc: &str) {
    assert!(
        !irc.contains(['\r', '\0']),
        "CR or NUL in {irc:?} from {input:?}"
    );
}

fn assert_balanced(input: &str, html: &str) {
    if let Err(e) = check_html_nesting(html) {
        panic!("unbalanced HTML {html:?} from {input:?}: {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let input = input.as_ref();

    // IRC -> Matrix.
    let matrix = irc_to_matrix(input);
    assert!(
        !matrix
            .body
            .contains(|c: char| c.is_ascii_control() && c != '\n' && c != '\t'),
        "control code left in body {:?} from {input:?}",
        matrix.body
    );
    if let Some(html) = &matrix.html {
        assert_balanced(input, html);
    }
    if let Some(mention) = nick_mention_at_start(input, ["a", "nick", "[x]"]) {
        let addressed = irc_mention_to_matrix(&mention, "@a:b", "Name <&>");
        assert_balanced(input, addressed.html.as_deref().unwrap_or_default());
    }

    // Matrix -> IRC, the input as HTML.
    assert_irc_safe(input, &matrix_to_irc(Some(input), input));
    assert_irc_safe(input, &matrix_to_irc(None, input));
    assert_irc_safe(input, &matrix_to_irc_with(Some(input), input, &nick_for));
    assert_irc_safe(
        input,
        &matrix_to_irc_addressed(Some(input), input, &nick_for),
    );
    let _ = pill_at_start(input);

    // And back: what irc_to_matrix wrote converts to IRC safely.
    assert_irc_safe(input, &matrix_to_irc(matrix.html.as_deref(), &matrix.body));
});
