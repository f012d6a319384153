//! A Matrix user's own identity on a network (their IRC connection, their
//! Slack user token), as the runtime stores it for the module.

use serde::{Deserialize, Serialize};

use crate::ids::RemoteUserId;

/// Where a login stands, as last seen by its module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginState {
    /// Being established (first connect, or reconnecting with backoff).
    Connecting,
    Connected,
    /// Lost for a reason that retrying can fix (network, server restart).
    Disconnected,
    /// Needs the user: credentials refused or revoked.
    Broken,
}

impl LoginState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginState::Connecting => "connecting",
            LoginState::Connected => "connected",
            LoginState::Disconnected => "disconnected",
            LoginState::Broken => "broken",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "connecting" => Some(LoginState::Connecting),
            "connected" => Some(LoginState::Connected),
            "disconnected" => Some(LoginState::Disconnected),
            "broken" => Some(LoginState::Broken),
            _ => None,
        }
    }
}

/// One login. `secret` holds tokens or passwords and is never logged or put
/// in `metadata`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub mxid: String,
    /// Module-chosen, unique per user and network (an account name).
    pub login_id: String,
    pub remote_user: RemoteUserId,
    pub state: LoginState,
    pub secret: Option<String>,
    pub metadata: serde_json::Value,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("mxid", &self.mxid)
            .field("login_id", &self.login_id)
            .field("remote_user", &self.remote_user)
            .field("state", &self.state)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}
