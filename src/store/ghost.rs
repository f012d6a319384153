//! Ghosts: the Matrix users that stand for remote users.

use passerelle_api::ids::{NetworkId, RemoteUserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, flag, json_column, json_text};

/// One ghost and the profile last pushed to Matrix, so unchanged profiles are
/// not sent again.
#[derive(Clone, Debug, PartialEq)]
pub struct GhostRow {
    pub network: NetworkId,
    pub remote_id: RemoteUserId,
    pub mxid: String,
    pub display_name: Option<String>,
    /// The module's reference for the avatar (a URL, a file id), to tell
    /// whether it changed without downloading it.
    pub avatar_ref: Option<String>,
    /// The avatar uploaded to Matrix for `avatar_ref`.
    pub avatar_mxc: Option<String>,
    /// Whether the Matrix account exists on the homeserver.
    pub registered: bool,
    /// Module-specific state (never secrets).
    pub metadata: serde_json::Value,
    pub updated_ts: i64,
}

impl GhostRow {
    /// A ghost not yet registered, without a profile.
    pub fn new(
        network: NetworkId,
        remote_id: RemoteUserId,
        mxid: impl Into<String>,
        updated_ts: i64,
    ) -> Self {
        Self {
            network,
            remote_id,
            mxid: mxid.into(),
            display_name: None,
            avatar_ref: None,
            avatar_mxc: None,
            registered: false,
            metadata: serde_json::json!({}),
            updated_ts,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Self {
            network: NetworkId::new(row.try_get::<String, _>("network")?),
            remote_id: RemoteUserId::new(row.try_get::<String, _>("remote_id")?),
            mxid: row.try_get("mxid")?,
            display_name: row.try_get("display_name")?,
            avatar_ref: row.try_get("avatar_ref")?,
            avatar_mxc: row.try_get("avatar_mxc")?,
            registered: flag(row, "registered")?,
            metadata: json_column(row, "metadata")?,
            updated_ts: row.try_get("updated_ts")?,
        })
    }
}

macro_rules! select_ghost {
    ($where:literal) => {
        concat!(
            "SELECT network, remote_id, mxid, display_name, avatar_ref, avatar_mxc, \
             registered, metadata, updated_ts FROM ghost ",
            $where
        )
    };
}

impl Store {
    pub async fn ghost(
        &self,
        network: &NetworkId,
        remote: &RemoteUserId,
    ) -> Result<Option<GhostRow>> {
        sqlx::query(select_ghost!("WHERE network = $1 AND remote_id = $2"))
            .bind(network.as_str())
            .bind(remote.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(GhostRow::from_row)
            .transpose()
    }

    pub async fn ghost_by_mxid(&self, mxid: &str) -> Result<Option<GhostRow>> {
        sqlx::query(select_ghost!("WHERE mxid = $1"))
            .bind(mxid)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(GhostRow::from_row)
            .transpose()
    }

    /// Inserts or updates a ghost (every column).
    pub async fn upsert_ghost(&self, row: &GhostRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO ghost (network, remote_id, mxid, display_name, avatar_ref, \
             avatar_mxc, registered, metadata, updated_ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (network, remote_id) DO UPDATE SET \
             mxid = excluded.mxid, display_name = excluded.display_name, \
             avatar_ref = excluded.avatar_ref, avatar_mxc = excluded.avatar_mxc, \
             registered = excluded.registered, metadata = excluded.metadata, \
             updated_ts = excluded.updated_ts",
        )
        .bind(row.network.as_str())
        .bind(row.remote_id.as_str())
        .bind(row.mxid.as_str())
        .bind(row.display_name.as_deref())
        .bind(row.avatar_ref.as_deref())
        .bind(row.avatar_mxc.as_deref())
        .bind(row.registered)
        .bind(json_text(&row.metadata))
        .bind(row.updated_ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
