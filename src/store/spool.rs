//! The remote spool: events a module handed over durably (see
//! `Runtime::enqueue_durable`) until they reach Matrix. The only table that
//! holds message content, and only for as long as delivery takes.

use passerelle_api::ids::NetworkId;

use super::{Result, Store};

/// One spooled event: its order, network and serialised `RemoteEvent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolRow {
    pub seq: i64,
    pub network: NetworkId,
    pub event: String,
}

impl Store {
    /// Stores an event under a module-chosen key. Returns its sequence number,
    /// or `None` when the key is already spooled (a redelivery).
    pub async fn spool_add(
        &self,
        network: &NetworkId,
        key: &str,
        event: &str,
        now_ms: i64,
    ) -> Result<Option<i64>> {
        // fetch_all, not fetch_optional: SQLite must step the statement to
        // its end, or the write stays open and blocks every other writer.
        let seq: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO remote_spool (network, spool_key, event, queued_ts) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING seq",
        )
        .bind(network.as_str())
        .bind(key)
        .bind(event)
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(seq.first().copied())
    }

    /// Deletes a spooled event once it is in Matrix (or failed for good).
    pub async fn spool_remove(&self, seq: i64) -> Result<()> {
        sqlx::query("DELETE FROM remote_spool WHERE seq = $1")
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every spooled event, oldest first.
    pub async fn spooled(&self) -> Result<Vec<SpoolRow>> {
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT seq, network, event FROM remote_spool ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, network, event)| SpoolRow {
                seq,
                network: NetworkId::new(network),
                event,
            })
            .collect())
    }
}
