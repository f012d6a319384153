//! Matrix users of the bridge and their logins on remote networks.

use std::fmt;

use passerelle_api::ids::{NetworkId, RemoteUserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Error, Result, Store, json_column, json_text};

/// A Matrix user who has talked to the bridge.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixUserRow {
    pub mxid: String,
    /// The user's DM with the bot, where every message is a command.
    pub management_room: Option<String>,
    /// Runtime state (never secrets).
    pub metadata: serde_json::Value,
    pub created_ts: i64,
}

impl MatrixUserRow {
    /// A user without a management room, empty metadata.
    pub fn new(mxid: impl Into<String>, created_ts: i64) -> Self {
        Self {
            mxid: mxid.into(),
            management_room: None,
            metadata: serde_json::json!({}),
            created_ts,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Self {
            mxid: row.try_get("mxid")?,
            management_room: row.try_get("management_room")?,
            metadata: json_column(row, "metadata")?,
            created_ts: row.try_get("created_ts")?,
        })
    }
}

pub use passerelle_api::LoginState;

/// A Matrix user's own identity on a network. Tokens and passwords go in
/// `secret`, never in `metadata`; `Debug` does not print the secret.
#[derive(Clone, PartialEq)]
pub struct LoginRow {
    pub network: NetworkId,
    pub mxid: String,
    /// Module-chosen, unique per user and network (e.g. the account name).
    pub login_id: String,
    pub remote_user_id: RemoteUserId,
    pub state: LoginState,
    pub secret: Option<String>,
    /// Module-specific state (never secrets).
    pub metadata: serde_json::Value,
    pub updated_ts: i64,
}

impl LoginRow {
    /// A connecting login without a secret, empty metadata.
    pub fn new(
        network: NetworkId,
        mxid: impl Into<String>,
        login_id: impl Into<String>,
        remote_user_id: RemoteUserId,
        updated_ts: i64,
    ) -> Self {
        Self {
            network,
            mxid: mxid.into(),
            login_id: login_id.into(),
            remote_user_id,
            state: LoginState::Connecting,
            secret: None,
            metadata: serde_json::json!({}),
            updated_ts,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Self> {
        let state: String = row.try_get("state")?;
        Ok(Self {
            network: NetworkId::new(row.try_get::<String, _>("network")?),
            mxid: row.try_get("mxid")?,
            login_id: row.try_get("login_id")?,
            remote_user_id: RemoteUserId::new(row.try_get::<String, _>("remote_user_id")?),
            state: LoginState::parse(&state).ok_or_else(|| Error::corrupt("login.state", state))?,
            secret: row.try_get("secret")?,
            metadata: json_column(row, "metadata")?,
            updated_ts: row.try_get("updated_ts")?,
        })
    }
}

impl fmt::Debug for LoginRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRow")
            .field("network", &self.network)
            .field("mxid", &self.mxid)
            .field("login_id", &self.login_id)
            .field("remote_user_id", &self.remote_user_id)
            .field("state", &self.state)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("metadata", &self.metadata)
            .field("updated_ts", &self.updated_ts)
            .finish()
    }
}

macro_rules! select_login {
    ($where:literal) => {
        concat!(
            "SELECT network, mxid, login_id, remote_user_id, state, secret, metadata, \
             updated_ts FROM login ",
            $where
        )
    };
}

impl Store {
    pub async fn matrix_user(&self, mxid: &str) -> Result<Option<MatrixUserRow>> {
        sqlx::query(
            "SELECT mxid, management_room, metadata, created_ts FROM matrix_user \
             WHERE mxid = $1",
        )
        .bind(mxid)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(MatrixUserRow::from_row)
        .transpose()
    }

    /// Inserts or updates a user; `created_ts` of an existing one is kept.
    pub async fn upsert_matrix_user(&self, row: &MatrixUserRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO matrix_user (mxid, management_room, metadata, created_ts) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (mxid) DO UPDATE SET \
             management_room = excluded.management_room, metadata = excluded.metadata",
        )
        .bind(row.mxid.as_str())
        .bind(row.management_room.as_deref())
        .bind(json_text(&row.metadata))
        .bind(row.created_ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user whose management room this is (the first by mxid, should two
    /// users have recorded the same room).
    pub async fn matrix_user_by_management_room(
        &self,
        room_id: &str,
    ) -> Result<Option<MatrixUserRow>> {
        sqlx::query(
            "SELECT mxid, management_room, metadata, created_ts FROM matrix_user \
             WHERE management_room = $1 ORDER BY mxid LIMIT 1",
        )
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(MatrixUserRow::from_row)
        .transpose()
    }

    /// The user's login on a network; with several, the one with the
    /// smallest `login_id`.
    pub async fn login(&self, network: &NetworkId, mxid: &str) -> Result<Option<LoginRow>> {
        sqlx::query(select_login!(
            "WHERE network = $1 AND mxid = $2 ORDER BY login_id LIMIT 1"
        ))
        .bind(network.as_str())
        .bind(mxid)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(LoginRow::from_row)
        .transpose()
    }

    /// Every login of a Matrix user, ordered by network and login id.
    pub async fn logins_of(&self, mxid: &str) -> Result<Vec<LoginRow>> {
        sqlx::query(select_login!("WHERE mxid = $1 ORDER BY network, login_id"))
            .bind(mxid)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(LoginRow::from_row)
            .collect()
    }

    /// Every login on a network (to reconnect them at start), ordered by
    /// user and login id.
    pub async fn logins_on(&self, network: &NetworkId) -> Result<Vec<LoginRow>> {
        sqlx::query(select_login!("WHERE network = $1 ORDER BY mxid, login_id"))
            .bind(network.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(LoginRow::from_row)
            .collect()
    }

    /// Inserts or updates a login (every column).
    pub async fn upsert_login(&self, row: &LoginRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO login (network, mxid, login_id, remote_user_id, state, secret, \
             metadata, updated_ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (network, mxid, login_id) DO UPDATE SET \
             remote_user_id = excluded.remote_user_id, state = excluded.state, \
             secret = excluded.secret, metadata = excluded.metadata, \
             updated_ts = excluded.updated_ts",
        )
        .bind(row.network.as_str())
        .bind(row.mxid.as_str())
        .bind(row.login_id.as_str())
        .bind(row.remote_user_id.as_str())
        .bind(row.state.as_str())
        .bind(row.secret.as_deref())
        .bind(json_text(&row.metadata))
        .bind(row.updated_ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes every row about a Matrix user: their logins (with secrets),
    /// their user row (management room), and the message and reaction map
    /// rows of what they sent. Returns how many rows went.
    pub async fn forget_user(&self, mxid: &str) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut total = 0;
        for query in [
            "DELETE FROM login WHERE mxid = $1",
            "DELETE FROM matrix_user WHERE mxid = $1",
            "DELETE FROM message WHERE sender_mxid = $1",
            "DELETE FROM reaction WHERE sender = $1",
        ] {
            total += sqlx::query(query)
                .bind(mxid)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(total)
    }

    /// Forgets a login and its secret.
    pub async fn delete_login(
        &self,
        network: &NetworkId,
        mxid: &str,
        login_id: &str,
    ) -> Result<()> {
        sqlx::query("DELETE FROM login WHERE network = $1 AND mxid = $2 AND login_id = $3")
            .bind(network.as_str())
            .bind(mxid)
            .bind(login_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_state_round_trips() {
        for state in [
            LoginState::Connecting,
            LoginState::Connected,
            LoginState::Disconnected,
            LoginState::Broken,
        ] {
            assert_eq!(LoginState::parse(state.as_str()), Some(state));
        }
        assert_eq!(LoginState::parse("bogus"), None);
    }

    #[test]
    fn login_debug_hides_the_secret() {
        let mut login = LoginRow::new("slack".into(), "@a:b", "acme", "U1".into(), 0);
        login.secret = Some("xoxp-very-secret".into());
        let debug = format!("{login:?}");
        assert!(!debug.contains("xoxp-very-secret"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }
}
