//! Errors a module returns. They carry what the Matrix user should be told and
//! whether retrying can help; internal details stay in logs.

use std::time::Duration;

/// How the runtime should treat a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Temporary (connection down, rate limited): the runtime retries with
    /// backoff before telling the user.
    Retryable,
    /// Will not succeed if repeated (message too large, not allowed).
    Permanent,
    /// The network cannot do this at all (declared in its capabilities).
    Unsupported,
    /// The sender has no login and the portal does not allow relaying.
    NotLoggedIn,
    /// The portal or target is unknown to the module.
    NotFound,
}

/// A failure with the text the Matrix user will see.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct BridgeError {
    pub kind: ErrorKind,
    /// Shown to the Matrix user in a notice. Must not contain secrets or
    /// internal database details.
    pub message: String,
    /// For `Retryable`: how long the remote side asked us to wait.
    pub retry_after: Option<Duration>,
}

impl BridgeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Retryable, message)
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn not_logged_in(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotLoggedIn, message)
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }
}
