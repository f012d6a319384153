//! Public media links. Current homeservers serve media only to authenticated
//! clients, so a link an IRC user can open must be served by the bridge: a
//! signed, expiring URL that the bridge answers by fetching the file from
//! the homeserver as the bot.
//!
//! Also media references: what the runtime hands modules as a file's
//! `mxc`. A file of an encrypted room is stored encrypted on the homeserver;
//! its reference carries the key after a `#` ([`encrypted_ref`]), and every
//! download through the runtime decrypts it. Links made from such a
//! reference are encrypted too, so the key never shows in a URL.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use aes::cipher::{KeyIvInit, StreamCipher};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use matrix_sdk_crypto::{AttachmentDecryptor, AttachmentEncryptor, MediaEncryptionInfo};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::bridge::Bridge;
use crate::matrix::Error as MatrixError;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// The path the links point at, under `media.public_url`.
pub const ROUTE: &str = "/_passerelle/media/{token}/{filename}";

/// Signs and checks media tokens:
/// `base64url(<iv> <ciphertext of "<expiry>|<reference>">).base64url(hmac)`,
/// AES-256-CTR then HMAC-SHA-256 over what precedes it. Tokens made before
/// links were encrypted, `base64url(<expiry>|<mxc>).base64url(hmac)`, are
/// still accepted until they expire.
#[derive(Clone)]
pub struct MediaSigner {
    key: [u8; 32],
    cipher_key: [u8; 32],
}

fn derive(label: &[u8], secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(label);
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

impl MediaSigner {
    /// The keys are derived from the `as_token`, so links survive restarts
    /// and change when the registration is regenerated.
    pub fn new(secret: &str) -> Self {
        Self {
            key: derive(b"passerelle media links\0", secret),
            cipher_key: derive(b"passerelle media link encryption\0", secret),
        }
    }

    fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]) {
        Aes256Ctr::new(&self.cipher_key.into(), iv.into()).apply_keystream(data);
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload);
        mac
    }

    /// A token for the media reference `mxc` valid until `expires`
    /// (seconds since the epoch).
    pub fn sign(&self, mxc: &str, expires: u64) -> String {
        let iv: [u8; 16] = rand::random();
        let mut sealed = iv.to_vec();
        let mut payload = format!("{expires}|{mxc}").into_bytes();
        self.apply_keystream(&iv, &mut payload);
        sealed.extend_from_slice(&payload);
        let signature = self.mac(&sealed).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(sealed),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// The media reference of a valid, unexpired token (signature checked
    /// in constant time).
    pub fn verify(&self, token: &str, now: u64) -> Option<String> {
        let (sealed, signature) = token.split_once('.')?;
        let sealed = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(&sealed).verify_slice(&signature).ok()?;
        let payload = match String::from_utf8(sealed.clone()) {
            // A token from before links were encrypted.
            Ok(plain) if plain.contains("|mxc://") => plain,
            _ => {
                let (iv, ciphertext) = sealed.split_at_checked(16)?;
                let mut payload = ciphertext.to_vec();
                self.apply_keystream(iv.try_into().ok()?, &mut payload);
                String::from_utf8(payload).ok()?
            }
        };
        let (expires, mxc) = payload.split_once('|')?;
        (expires.parse::<u64>().ok()? >= now && mxc.starts_with("mxc://")).then(|| mxc.to_owned())
    }
}

/// The media reference of an encrypted file (the `file` object of an
/// event in an encrypted room): its `mxc://` URI, `#`, and its key, iv,
/// hashes and the file's real MIME type, base64url JSON.
pub fn encrypted_ref(file: &Value, mimetype: Option<&str>) -> Option<String> {
    let url = file.get("url")?.as_str()?;
    if !url.starts_with("mxc://") {
        return None;
    }
    let mut keys = file.as_object()?.clone();
    keys.remove("url");
    // Checked here, so a malformed `file` fails at once, not at download.
    serde_json::from_value::<MediaEncryptionInfo>(Value::Object(keys.clone())).ok()?;
    if let Some(mimetype) = mimetype {
        keys.insert("mimetype".to_owned(), json!(mimetype));
    }
    let keys = serde_json::to_vec(&keys).ok()?;
    Some(format!("{url}#{}", URL_SAFE_NO_PAD.encode(keys)))
}

/// What a media reference names: the file on the homeserver, and how to
/// decrypt it when it is encrypted.
struct MediaRef {
    mxc: ruma::OwnedMxcUri,
    encryption: Option<(MediaEncryptionInfo, Option<String>)>,
}

impl MediaRef {
    fn parse(reference: &str) -> Result<Self, MatrixError> {
        let invalid = || MatrixError::InvalidInput("an invalid media reference".to_owned());
        let (mxc, keys) = match reference.split_once('#') {
            Some((mxc, keys)) => (mxc, Some(keys)),
            None => (reference, None),
        };
        let encryption = match keys {
            None => None,
            Some(keys) => {
                let keys: Value = URL_SAFE_NO_PAD
                    .decode(keys)
                    .ok()
                    .and_then(|k| serde_json::from_slice(&k).ok())
                    .ok_or_else(invalid)?;
                let mimetype = keys
                    .get("mimetype")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let info = serde_json::from_value(keys).map_err(|_| invalid())?;
                Some((info, mimetype))
            }
        };
        Ok(Self {
            mxc: mxc.into(),
            encryption,
        })
    }
}

/// An encrypted copy of `bytes` for an encrypted room, and the `file`
/// object (without its `url`, known once uploaded) that opens it.
pub fn encrypt_file(bytes: &[u8]) -> std::io::Result<(Vec<u8>, Value)> {
    let mut reader = bytes;
    let mut encryptor = AttachmentEncryptor::new(&mut reader);
    let mut encrypted = Vec::with_capacity(bytes.len());
    encryptor.read_to_end(&mut encrypted)?;
    let info = serde_json::to_value(encryptor.finish()).map_err(std::io::Error::other)?;
    Ok((encrypted, info))
}

impl Bridge {
    /// Downloads the file a media reference names, as the bot, and
    /// decrypts it when it is encrypted (its hash checked).
    pub async fn download_media(
        &self,
        reference: &str,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, Option<String>), MatrixError> {
        let media = MediaRef::parse(reference)?;
        let (bytes, mime) = self.bot.download(&media.mxc, max_bytes).await?;
        let Some((info, mimetype)) = media.encryption else {
            return Ok((bytes, mime));
        };
        let mut reader = bytes.as_slice();
        let mut clear = Vec::with_capacity(bytes.len());
        AttachmentDecryptor::new(&mut reader, info)
            .map_err(|e| MatrixError::Encryption(format!("cannot decrypt the file: {e}")))?
            .read_to_end(&mut clear)
            .map_err(|e| MatrixError::Encryption(format!("cannot decrypt the file: {e}")))?;
        Ok((clear, mimetype))
    }
}

fn now_secs() -> u64 {
    (crate::bridge::now_ms() / 1000) as u64
}

impl Bridge {
    /// A public link to `mxc`, or `None` without `media.public_url`.
    pub fn media_link(&self, mxc: &str, filename: &str) -> Option<String> {
        let base = self.config.media.public_url.as_ref()?;
        let expires = now_secs() + self.config.media.link_lifetime.as_secs();
        let token = self.media_signer.sign(mxc, expires);
        let name: String = filename
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || ".-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = if name.is_empty() {
            "file".to_owned()
        } else {
            name
        };
        Some(format!(
            "{}/_passerelle/media/{token}/{name}",
            base.as_str().trim_end_matches('/')
        ))
    }
}

/// `GET /_passerelle/media/{token}/{filename}`.
pub async fn serve(
    State(bridge): State<Arc<Bridge>>,
    Path((token, filename)): Path<(String, String)>,
) -> Response {
    let Some(mxc) = bridge.media_signer.verify(&token, now_secs()) else {
        return (
            StatusCode::NOT_FOUND,
            "This link is invalid or has expired.",
        )
            .into_response();
    };
    match bridge
        .download_media(&mxc, bridge.config.media.max_size)
        .await
    {
        Ok((bytes, mime)) => {
            let mime = mime.unwrap_or_else(|| "application/octet-stream".to_owned());
            // Served as an attachment so a browser never renders bridged HTML
            // or SVG in the bridge's origin.
            let disposition = format!("attachment; filename=\"{}\"", filename.replace('"', ""));
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) if e.is_not_found() => (StatusCode::NOT_FOUND, "No such file.").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "media link download failed");
            (
                StatusCode::BAD_GATEWAY,
                "The homeserver did not give the file.",
            )
                .into_response()
        }
    }
}

/// Default lifetime of a link.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_expire() {
        let signer = MediaSigner::new("as-token-1");
        let token = signer.sign("mxc://example.org/abc", 1_000);
        assert_eq!(
            signer.verify(&token, 999).as_deref(),
            Some("mxc://example.org/abc")
        );
        assert_eq!(
            signer.verify(&token, 1_000).as_deref(),
            Some("mxc://example.org/abc")
        );
        assert_eq!(signer.verify(&token, 1_001), None, "expired");
        assert_eq!(
            MediaSigner::new("other").verify(&token, 0),
            None,
            "other key"
        );
        let (payload, signature) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode("9999999999|mxc://example.org/abc");
        assert_eq!(
            signer.verify(&format!("{forged}.{signature}"), 0),
            None,
            "forged payload"
        );
        assert_eq!(signer.verify(payload, 0), None);
        assert_eq!(signer.verify("", 0), None);
    }

    #[test]
    fn links_to_encrypted_files_hide_the_key_and_old_tokens_still_work() {
        let signer = MediaSigner::new("as-token-1");
        let (_, file) = encrypt_file(b"secret minutes").unwrap();
        let mut file = file;
        file["url"] = json!("mxc://example.org/enc");
        let reference = encrypted_ref(&file, Some("text/plain")).unwrap();
        assert!(reference.starts_with("mxc://example.org/enc#"));
        let token = signer.sign(&reference, 1_000);
        assert_eq!(
            signer.verify(&token, 0).as_deref(),
            Some(reference.as_str())
        );
        let key = file["key"]["k"].as_str().unwrap();
        let (sealed, _) = token.split_once('.').unwrap();
        let sealed = URL_SAFE_NO_PAD.decode(sealed).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("mxc://"));
        assert!(!token.contains(key) && !String::from_utf8_lossy(&sealed).contains(key));

        // A token signed before links were encrypted.
        let payload = "1000|mxc://example.org/abc";
        let signature = signer.mac(payload.as_bytes()).finalize().into_bytes();
        let old = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        );
        assert_eq!(
            signer.verify(&old, 0).as_deref(),
            Some("mxc://example.org/abc")
        );
        assert_eq!(signer.verify(&old, 1_001), None);
    }

    #[test]
    fn media_references_of_encrypted_files() {
        let (sealed, mut file) = encrypt_file(b"secret minutes").unwrap();
        assert_ne!(sealed, b"secret minutes");
        file["url"] = json!("mxc://example.org/enc");
        let reference = encrypted_ref(&file, Some("text/plain")).unwrap();
        let parsed = MediaRef::parse(&reference).unwrap();
        assert_eq!(parsed.mxc.as_str(), "mxc://example.org/enc");
        let (info, mime) = parsed.encryption.unwrap();
        assert_eq!(mime.as_deref(), Some("text/plain"));
        let mut reader = sealed.as_slice();
        let mut clear = Vec::new();
        AttachmentDecryptor::new(&mut reader, info)
            .unwrap()
            .read_to_end(&mut clear)
            .unwrap();
        assert_eq!(clear, b"secret minutes");

        let plain = MediaRef::parse("mxc://example.org/abc").unwrap();
        assert!(plain.encryption.is_none());
        assert!(MediaRef::parse("mxc://example.org/abc#not-base64!").is_err());
        // A `file` without its key, or not on a homeserver, is refused.
        let mut keyless = file.clone();
        keyless.as_object_mut().unwrap().remove("key");
        assert_eq!(encrypted_ref(&keyless, None), None);
        file["url"] = json!("https://example.org/enc");
        assert_eq!(encrypted_ref(&file, None), None);
    }
}
