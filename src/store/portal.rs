//! Portals: a remote chat and the Matrix room bridged to it.

use passerelle_api::ids::PortalKey;
use passerelle_api::network::PortalKind;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Error, Result, Store, flag, json_column, json_text};

/// One portal. The room name is kept (the room shows it anyway; it is not
/// message content).
#[derive(Clone, Debug, PartialEq)]
pub struct PortalRow {
    pub key: PortalKey,
    /// `None` until the Matrix room exists.
    pub room_id: Option<String>,
    pub kind: PortalKind,
    pub name: Option<String>,
    /// Whether Matrix users without a login may speak through the relay.
    pub relay: bool,
    /// Disappearing-messages timer, if the chat has one.
    pub disappear_after_ms: Option<i64>,
    /// Module-specific state (never secrets).
    pub metadata: serde_json::Value,
    pub created_ts: i64,
}

impl PortalRow {
    /// A portal without a room yet, relay allowed, empty metadata.
    pub fn new(key: PortalKey, kind: PortalKind, created_ts: i64) -> Self {
        Self {
            key,
            room_id: None,
            kind,
            name: None,
            relay: true,
            disappear_after_ms: None,
            metadata: serde_json::json!({}),
            created_ts,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Self> {
        let kind: String = row.try_get("kind")?;
        Ok(Self {
            key: PortalKey::new(
                row.try_get::<String, _>("network")?,
                row.try_get::<String, _>("portal_id")?,
            ),
            room_id: row.try_get("room_id")?,
            kind: PortalKind::parse(&kind).ok_or_else(|| Error::corrupt("portal.kind", kind))?,
            name: row.try_get("name")?,
            relay: flag(row, "relay")?,
            disappear_after_ms: row.try_get("disappear_after_ms")?,
            metadata: json_column(row, "metadata")?,
            created_ts: row.try_get("created_ts")?,
        })
    }
}

macro_rules! select_portal {
    ($where:literal) => {
        concat!(
            "SELECT network, portal_id, room_id, kind, name, relay, disappear_after_ms, \
             metadata, created_ts FROM portal ",
            $where
        )
    };
}

impl Store {
    pub async fn portal(&self, key: &PortalKey) -> Result<Option<PortalRow>> {
        sqlx::query(select_portal!("WHERE network = $1 AND portal_id = $2"))
            .bind(key.network.as_str())
            .bind(key.id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(PortalRow::from_row)
            .transpose()
    }

    pub async fn portal_by_room(&self, room_id: &str) -> Result<Option<PortalRow>> {
        sqlx::query(select_portal!("WHERE room_id = $1"))
            .bind(room_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(PortalRow::from_row)
            .transpose()
    }

    /// Inserts or updates a portal; `created_ts` of an existing one is kept.
    /// Fails with [`Error::is_unique_violation`] if another portal already
    /// has this room.
    pub async fn upsert_portal(&self, row: &PortalRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO portal (network, portal_id, room_id, kind, name, relay, \
             disappear_after_ms, metadata, created_ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (network, portal_id) DO UPDATE SET \
             room_id = excluded.room_id, kind = excluded.kind, name = excluded.name, \
             relay = excluded.relay, disappear_after_ms = excluded.disappear_after_ms, \
             metadata = excluded.metadata",
        )
        .bind(row.key.network.as_str())
        .bind(row.key.id.as_str())
        .bind(row.room_id.as_deref())
        .bind(row.kind.as_str())
        .bind(row.name.as_deref())
        .bind(row.relay)
        .bind(row.disappear_after_ms)
        .bind(json_text(&row.metadata))
        .bind(row.created_ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a portal and its message and reaction map rows (they are
    /// useless without the portal, and keeping them would only keep metadata).
    /// Sets (or clears) a portal's disappearing-messages timer.
    pub async fn set_disappear(&self, key: &PortalKey, after_ms: Option<i64>) -> Result<()> {
        sqlx::query(
            "UPDATE portal SET disappear_after_ms = $1 WHERE network = $2 AND portal_id = $3",
        )
        .bind(after_ms)
        .bind(key.network.as_str())
        .bind(key.id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_portal(&self, key: &PortalKey) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM reaction WHERE network = $1 AND portal_id = $2",
            "DELETE FROM message WHERE network = $1 AND portal_id = $2",
            "DELETE FROM portal WHERE network = $1 AND portal_id = $2",
        ] {
            sqlx::query(sql)
                .bind(key.network.as_str())
                .bind(key.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every portal, ordered by network and id.
    pub async fn portals(&self) -> Result<Vec<PortalRow>> {
        sqlx::query(select_portal!("ORDER BY network, portal_id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(PortalRow::from_row)
            .collect()
    }

    pub async fn count_portals(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM portal")
            .fetch_one(&self.pool)
            .await?)
    }
}
