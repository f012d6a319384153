//! Errors of the client-server API client.
//!
//! No variant ever holds the `as_token`: it travels in the `Authorization`
//! header only, and the URLs kept inside [`reqwest::Error`] lose their query
//! string before they are wrapped here.

use std::time::Duration;

/// `Result` of the Matrix client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to the homeserver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The homeserver answered with a Matrix error (`{"errcode", "error"}`),
    /// or with a non-2xx status and no Matrix error body (errcode `M_UNKNOWN`).
    #[error("homeserver answered {status} {errcode}: {error}")]
    Matrix {
        /// HTTP status code.
        status: u16,
        /// Matrix error code such as `M_FORBIDDEN`.
        errcode: String,
        /// Human-readable message from the homeserver.
        error: String,
        /// How long the homeserver asked us to wait (429 `retry_after_ms` or
        /// the `Retry-After` header).
        retry_after: Option<Duration>,
    },
    /// The homeserver could not be reached, or the connection broke.
    #[error("could not talk to the homeserver: {0}")]
    Http(#[source] reqwest::Error),
    /// The homeserver answered 2xx with a body we cannot use.
    #[error("invalid response from the homeserver: {0}")]
    InvalidResponse(String),
    /// The client was given an unusable argument or configuration.
    #[error("invalid Matrix client input: {0}")]
    InvalidInput(String),
    /// The room is encrypted and the event could not be encrypted for it;
    /// it is never sent in the clear instead.
    #[error("cannot encrypt for this room: {0}")]
    Encryption(String),
}

impl Error {
    /// The Matrix error code, if the homeserver sent one.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            Self::Matrix { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    /// The HTTP status of a homeserver answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Matrix { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later can help: rate limits, server errors and
    /// connection problems. Callers that queue work (a portal's queue) use it
    /// to keep an item instead of dropping it once the client's own retries
    /// are exhausted.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Matrix { status, .. } => *status == 429 || (500..600).contains(status),
            Self::Http(_) => true,
            Self::InvalidResponse(_) | Self::InvalidInput(_) | Self::Encryption(_) => false,
        }
    }

    /// Whether the homeserver said the thing does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub(crate) fn http(mut err: reqwest::Error) -> Self {
        if let Some(url) = err.url_mut() {
            url.set_query(None);
        }
        Self::Http(err)
    }
}
