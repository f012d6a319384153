//! Appservice dedupe (transactions and events) and retention purging.
//!
//! The homeserver retries a transaction with the same id until it gets 200,
//! and federation can deliver one event in two transactions: both ids are
//! persisted so a restart does not bridge anything twice.

use super::{Result, Store};

/// How many rows [`Store::purge_before`] removed from each table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub messages: u64,
    pub reactions: u64,
    pub txns: u64,
    pub events: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.messages + self.reactions + self.txns + self.events
    }
}

impl Store {
    pub async fn is_txn_handled(&self, txn_id: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT ts FROM handled_txn WHERE txn_id = $1")
            .bind(txn_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Records a transaction as handled; marking it again is a no-op.
    pub async fn mark_txn_handled(&self, txn_id: &str, now_ms: i64) -> Result<()> {
        sqlx::query("INSERT INTO handled_txn (txn_id, ts) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(txn_id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether an event id was already claimed (see [`Store::claim_event`]).
    pub async fn is_event_handled(&self, event_id: &str) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT ts FROM handled_event WHERE event_id = $1")
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Claims an event for handling: `true` the first time an event id is
    /// seen, `false` ever after (until purged). Atomic, so two concurrent
    /// deliveries of one event cannot both win.
    pub async fn claim_event(&self, event_id: &str, now_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO handled_event (event_id, ts) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(event_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that an acknowledged event still has to reach its module.
    pub async fn add_pending(&self, event_id: &str, room_id: &str, now_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO pending_event (event_id, room_id, received_ts) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(event_id)
        .bind(room_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn is_pending(&self, event_id: &str) -> Result<bool> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT room_id FROM pending_event WHERE event_id = $1")
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Marks a pending event handled: removes it from the pending list and
    /// claims its id, in one transaction.
    pub async fn finish_pending(&self, event_id: &str, now_ms: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO handled_event (event_id, ts) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(event_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM pending_event WHERE event_id = $1")
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events still to deliver, oldest first: `(event_id, room_id)`.
    pub async fn pending_events(&self) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT event_id, room_id FROM pending_event ORDER BY received_ts, event_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Retention: deletes message and reaction map rows and dedupe records
    /// with a timestamp strictly before `cutoff_ms`, in one transaction.
    pub async fn purge_before(&self, cutoff_ms: i64) -> Result<PurgeCounts> {
        let mut tx = self.pool.begin().await?;
        let mut purge = async |sql: &'static str| -> Result<u64> {
            let done = sqlx::query(sql).bind(cutoff_ms).execute(&mut *tx).await?;
            Ok(done.rows_affected())
        };
        let counts = PurgeCounts {
            messages: purge("DELETE FROM message WHERE ts < $1").await?,
            reactions: purge("DELETE FROM reaction WHERE ts < $1").await?,
            txns: purge("DELETE FROM handled_txn WHERE ts < $1").await?,
            events: purge("DELETE FROM handled_event WHERE ts < $1").await?,
        };
        tx.commit().await?;
        Ok(counts)
    }
}
