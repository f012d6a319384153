//! What the server says it supports (numeric 005, RPL_ISUPPORT).

/// The ISUPPORT tokens of one connection, with typed getters for the ones the
/// bridge uses. Tokens are kept as sent (value unescaped), so anything else
/// is at hand through [`Isupport::get`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Isupport {
    tokens: Vec<(Box<str>, Box<str>)>,
}

/// How the server compares nicks and channel names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaseMapping {
    Ascii,
    /// `[]\~` are the upper case of `{}|^`; the default when unannounced.
    #[default]
    Rfc1459,
    /// Like `Rfc1459` without `~`/`^`.
    Rfc1459Strict,
}

impl CaseMapping {
    /// The form two names are compared in.
    pub fn fold(self, name: &str) -> String {
        name.chars()
            .map(|c| match (self, c) {
                (_, 'A'..='Z') => c.to_ascii_lowercase(),
                (CaseMapping::Rfc1459 | CaseMapping::Rfc1459Strict, '[') => '{',
                (CaseMapping::Rfc1459 | CaseMapping::Rfc1459Strict, ']') => '}',
                (CaseMapping::Rfc1459 | CaseMapping::Rfc1459Strict, '\\') => '|',
                (CaseMapping::Rfc1459, '~') => '^',
                _ => c,
            })
            .collect()
    }

    pub fn eq(self, a: &str, b: &str) -> bool {
        a.len() == b.len() && self.fold(a) == self.fold(b)
    }
}

/// CHANMODES: which channel modes take a parameter when.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChanModes {
    /// Type A: lists (`b`, `e`, `I`), always a parameter.
    pub list: String,
    /// Type B: always a parameter (`k`).
    pub always: String,
    /// Type C: a parameter when set only (`l`).
    pub on_set: String,
    /// Type D: never a parameter.
    pub never: String,
}

impl Isupport {
    /// Applies the tokens of one 005 line: `<me> TOKEN TOKEN=value -TOKEN :are supported`.
    pub(crate) fn apply(&mut self, params: &[String]) {
        let Some(tokens) = params.get(1..params.len().saturating_sub(1)) else {
            return;
        };
        for token in tokens {
            if let Some(name) = token.strip_prefix('-') {
                self.tokens.retain(|(k, _)| &**k != name);
                continue;
            }
            let (name, value) = token.split_once('=').unwrap_or((token, ""));
            if name.is_empty() {
                continue;
            }
            let value = unescape(value);
            match self.tokens.iter_mut().find(|(k, _)| &**k == name) {
                Some(entry) => entry.1 = value.into(),
                None => self.tokens.push((name.into(), value.into())),
            }
        }
    }

    /// A token's value: `Some("")` for a token without one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| &**v)
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn network(&self) -> Option<&str> {
        self.get("NETWORK").filter(|v| !v.is_empty())
    }

    pub fn nicklen(&self) -> Option<usize> {
        self.get("NICKLEN")?.parse().ok()
    }

    /// Channel prefixes; `#&` when unannounced (RFC 1459).
    pub fn chantypes(&self) -> &str {
        self.get("CHANTYPES").unwrap_or("#&")
    }

    /// (mode, symbol) pairs from the highest rank down; `(ov)@+` when
    /// unannounced.
    pub fn prefix(&self) -> Vec<(char, char)> {
        let raw = self.get("PREFIX").unwrap_or("(ov)@+");
        let Some((modes, symbols)) = raw.strip_prefix('(').and_then(|r| r.split_once(')')) else {
            return Vec::new();
        };
        modes.chars().zip(symbols.chars()).collect()
    }

    pub fn chanmodes(&self) -> Option<ChanModes> {
        let mut parts = self.get("CHANMODES")?.split(',').map(str::to_owned);
        Some(ChanModes {
            list: parts.next().unwrap_or_default(),
            always: parts.next().unwrap_or_default(),
            on_set: parts.next().unwrap_or_default(),
            never: parts.next().unwrap_or_default(),
        })
    }

    /// Maximum line length, CR LF included, tags excluded: LINELEN or 512.
    pub fn linelen(&self) -> usize {
        self.get("LINELEN")
            .and_then(|v| v.parse().ok())
            .filter(|n| *n >= 512)
            .unwrap_or(512)
    }

    pub fn casemapping(&self) -> CaseMapping {
        match self.get("CASEMAPPING") {
            Some("ascii") => CaseMapping::Ascii,
            Some("rfc1459-strict") => CaseMapping::Rfc1459Strict,
            _ => CaseMapping::Rfc1459,
        }
    }

    pub fn is_channel(&self, target: &str) -> bool {
        target
            .chars()
            .next()
            .is_some_and(|c| self.chantypes().contains(c))
    }
}

/// ISUPPORT values escape bytes as `\xHH`.
fn unescape(value: &str) -> String {
    if !value.contains("\\x") {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(byte) = value
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn reads_ngircd_tokens() {
        let mut isupport = Isupport::default();
        isupport.apply(&params("me NETWORK=PasserelleTest :is my network name"));
        isupport.apply(&params(
            "me RFC2812 IRCD=ngIRCd CASEMAPPING=ascii PREFIX=(qaohv)~&@%+ CHANTYPES=#&+ \
             CHANMODES=beI,k,l,imMnOPQRstVz :are supported on this server",
        ));
        isupport.apply(&params("me NICKLEN=30 LINELEN=1024 :are supported"));
        assert_eq!(isupport.network(), Some("PasserelleTest"));
        assert_eq!(isupport.nicklen(), Some(30));
        assert_eq!(isupport.chantypes(), "#&+");
        assert_eq!(isupport.linelen(), 1024);
        assert_eq!(isupport.casemapping(), CaseMapping::Ascii);
        assert_eq!(
            isupport.prefix(),
            [('q', '~'), ('a', '&'), ('o', '@'), ('h', '%'), ('v', '+')]
        );
        let modes = isupport.chanmodes().unwrap();
        assert_eq!(
            (&*modes.list, &*modes.always, &*modes.on_set, &*modes.never),
            ("beI", "k", "l", "imMnOPQRstVz")
        );
        assert_eq!(isupport.get("RFC2812"), Some(""));
        assert!(isupport.is_channel("+chan"));
        assert!(!isupport.is_channel("nick"));
    }

    #[test]
    fn defaults_negation_and_escapes() {
        let mut isupport = Isupport::default();
        assert_eq!(isupport.chantypes(), "#&");
        assert_eq!(isupport.prefix(), [('o', '@'), ('v', '+')]);
        assert_eq!(isupport.linelen(), 512);
        assert_eq!(isupport.casemapping(), CaseMapping::Rfc1459);
        isupport.apply(&params("me NETWORK=Some\\x20Net NICKLEN=9 :are supported"));
        assert_eq!(isupport.network(), Some("Some Net"));
        isupport.apply(&params("me -NICKLEN NICKLEN=16 :are supported"));
        assert_eq!(isupport.nicklen(), Some(16));
        isupport.apply(&params("me -NETWORK :are supported"));
        assert_eq!(isupport.network(), None);
    }

    #[test]
    fn case_mappings() {
        assert!(CaseMapping::Rfc1459.eq("#Foo[]\\~", "#foo{}|^"));
        assert!(!CaseMapping::Rfc1459Strict.eq("a~", "a^"));
        assert!(CaseMapping::Rfc1459Strict.eq("A[", "a{"));
        assert!(!CaseMapping::Ascii.eq("a[", "a{"));
        assert!(CaseMapping::Ascii.eq("#RUST", "#rust"));
    }
}
