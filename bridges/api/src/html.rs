//! Pure helpers the format converters of every module share: a forgiving
//! tokenizer for the HTML Matrix clients send, entity decoding and escaping,
//! and a strict checker for the HTML a converter writes (tests, fuzz targets).

mod check;
mod pill;
mod tokenizer;

pub use check::{HtmlNestingError, check_html_nesting};
pub use pill::{VOID_ELEMENTS, matrix_to_id, percent_decode, pill_target};
pub use tokenizer::{Token, Tokenizer, decode_entities, escape};
