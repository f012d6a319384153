//! Matrix mention pills: the user a link like `https://matrix.to/#/@u:s`
//! or `matrix:u/u:s` points at. Every converter maps pills to its network's
//! mentions, so they read them the same way.

/// The Matrix user a mention pill's link points at (`@user:server`).
pub fn pill_target(href: &str) -> Option<String> {
    let id = matrix_to_id(href).or_else(|| {
        let rest = href.strip_prefix("matrix:u/")?;
        let user = rest.split(['?', '#']).next().unwrap_or_default();
        Some(format!("@{}", percent_decode(user)))
    })?;
    let (local, server) = id.strip_prefix('@')?.split_once(':')?;
    (!local.is_empty() && !server.is_empty()).then_some(id)
}

/// The identifier of a `https://matrix.to/#/<id>` link, percent-decoded.
pub fn matrix_to_id(href: &str) -> Option<String> {
    let rest = href
        .strip_prefix("https://matrix.to/#/")
        .or_else(|| href.strip_prefix("http://matrix.to/#/"))?;
    let id = rest.split('?').next().unwrap_or_default();
    Some(percent_decode(id))
}

/// `%xx` escapes decoded; malformed ones kept as they are; invalid UTF-8
/// replaced.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) if bytes[i] == b'%' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Elements without an end tag, as HTML defines them.
pub const VOID_ELEMENTS: &[&str] = &[
    "br", "hr", "img", "wbr", "input", "meta", "link", "area", "base", "col", "embed", "source",
    "track", "param",
];
