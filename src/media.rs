//! Public media links. Current homeservers serve media only to authenticated
//! clients, so a link an IRC user can open must be served by the bridge: a
//! signed, expiring URL that the bridge answers by fetching the file from
//! the homeserver as the bot.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::bridge::Bridge;

/// The path the links point at, under `media.public_url`.
pub const ROUTE: &str = "/_passerelle/media/{token}/{filename}";

/// Signs and checks media tokens: `base64url(<expiry>|<mxc>).base64url(hmac)`.
#[derive(Clone)]
pub struct MediaSigner {
    key: [u8; 32],
}

impl MediaSigner {
    /// The key is derived from the `as_token`, so links survive restarts and
    /// change when the registration is regenerated.
    pub fn new(secret: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"passerelle media links\0");
        hasher.update(secret.as_bytes());
        Self {
            key: hasher.finalize().into(),
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload);
        mac
    }

    /// A token for `mxc` valid until `expires` (seconds since the epoch).
    pub fn sign(&self, mxc: &str, expires: u64) -> String {
        let payload = format!("{expires}|{mxc}");
        let signature = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// The mxc of a valid, unexpired token (signature checked in constant time).
    pub fn verify(&self, token: &str, now: u64) -> Option<String> {
        let (payload, signature) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(&payload).verify_slice(&signature).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let (expires, mxc) = payload.split_once('|')?;
        (expires.parse::<u64>().ok()? >= now && mxc.starts_with("mxc://")).then(|| mxc.to_owned())
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
    let uri: ruma::OwnedMxcUri = mxc.as_str().into();
    match bridge
        .bot
        .download(&uri, bridge.config.media.max_size)
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
}
