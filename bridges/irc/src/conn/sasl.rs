//! SASL payloads: what follows `AUTHENTICATE <mechanism>`.

use super::Sasl;

/// The largest piece of base64 one AUTHENTICATE line may carry.
const CHUNK: usize = 400;

/// The AUTHENTICATE parameters answering the server's empty challenge (`+`).
pub(crate) fn response_lines(sasl: &Sasl) -> Vec<String> {
    match sasl {
        // authzid NUL authcid NUL password, with authzid = authcid as most
        // clients send it (Atheme, Anope and Ergo accept both forms).
        Sasl::Plain { username, password } => {
            let mut payload = Vec::with_capacity(username.len() * 2 + password.len() + 2);
            payload.extend_from_slice(username.as_bytes());
            payload.push(0);
            payload.extend_from_slice(username.as_bytes());
            payload.push(0);
            payload.extend_from_slice(password.as_bytes());
            chunk(&base64(&payload))
        }
        // The identity comes from the TLS client certificate.
        Sasl::External => vec!["+".to_owned()],
    }
}

/// Splits base64 into AUTHENTICATE lines of 400 bytes; a payload that ends
/// exactly on a chunk boundary is followed by `+` so the server knows it is
/// complete, and an empty payload is a lone `+`.
pub(crate) fn chunk(encoded: &str) -> Vec<String> {
    let mut lines: Vec<String> = encoded
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    if encoded.len().is_multiple_of(CHUNK) {
        lines.push("+".to_owned());
    }
    lines
}

pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let table = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in table {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn plain_payload() {
        let lines = response_lines(&Sasl::Plain {
            username: "jilles".into(),
            password: "sesame".into(),
        });
        // base64("jilles\0jilles\0sesame")
        assert_eq!(lines, ["amlsbGVzAGppbGxlcwBzZXNhbWU="]);
        assert_eq!(response_lines(&Sasl::External), ["+"]);
    }

    #[test]
    fn chunks_of_400_with_a_closing_plus() {
        let exact = "A".repeat(800);
        assert_eq!(
            chunk(&exact),
            ["A".repeat(400), "A".repeat(400), "+".to_owned()]
        );
        let longer = "B".repeat(801);
        assert_eq!(
            chunk(&longer),
            ["B".repeat(400), "B".repeat(400), "B".to_owned()]
        );
        let short = "C".repeat(399);
        assert_eq!(chunk(&short), std::slice::from_ref(&short));
        assert_eq!(chunk(""), ["+"]);
    }

    #[test]
    fn long_password_is_split() {
        let lines = response_lines(&Sasl::Plain {
            username: "u".into(),
            password: "p".repeat(600),
        });
        // 604 bytes -> 808 base64 characters -> 400 + 400 + 8.
        assert_eq!(
            lines.iter().map(String::len).collect::<Vec<_>>(),
            [400, 400, 8]
        );
        let joined: String = lines.concat();
        let mut payload = b"u\0u\0".to_vec();
        payload.extend(std::iter::repeat_n(b'p', 600));
        assert_eq!(joined, base64(&payload));
    }
}
