//! The message and reaction maps: remote ids <-> Matrix event ids, kept for
//! edits, replies, reactions and deletions. Ids, senders and times only:
//! never a body.

use passerelle_api::ids::{PortalKey, RemoteMessageId};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store};

/// One Matrix event of a bridged message. A remote message that became
/// several Matrix events (text plus attachments) has one row per `part`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRow {
    pub portal: PortalKey,
    pub remote_id: RemoteMessageId,
    /// 0 for the first (or only) event of the message.
    pub part: i32,
    pub room_id: String,
    pub event_id: String,
    pub sender_mxid: String,
    pub ts: i64,
    pub reply_to_event: Option<String>,
    pub thread_root_event: Option<String>,
}

impl MessageRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Self {
            portal: PortalKey::new(
                row.try_get::<String, _>("network")?,
                row.try_get::<String, _>("portal_id")?,
            ),
            remote_id: RemoteMessageId::new(row.try_get::<String, _>("remote_id")?),
            part: row.try_get("part")?,
            room_id: row.try_get("room_id")?,
            event_id: row.try_get("event_id")?,
            sender_mxid: row.try_get("sender_mxid")?,
            ts: row.try_get("ts")?,
            reply_to_event: row.try_get("reply_to_event")?,
            thread_root_event: row.try_get("thread_root_event")?,
        })
    }
}

/// One reaction, bridged either way. There is one row per target message,
/// sender and key: reacting again with the same key replaces the row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionRow {
    pub portal: PortalKey,
    pub target_remote_id: RemoteMessageId,
    /// A remote user id or an mxid, whichever side the reaction came from.
    pub sender: String,
    /// The reaction key (an emoji or a network's shortcode).
    pub key: String,
    pub event_id: String,
    /// The reaction's own remote id, for networks that have one.
    pub remote_id: Option<String>,
    pub ts: i64,
}

impl ReactionRow {
    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Self {
            portal: PortalKey::new(
                row.try_get::<String, _>("network")?,
                row.try_get::<String, _>("portal_id")?,
            ),
            target_remote_id: RemoteMessageId::new(row.try_get::<String, _>("target_remote_id")?),
            sender: row.try_get("sender")?,
            key: row.try_get("reaction_key")?,
            event_id: row.try_get("event_id")?,
            remote_id: row.try_get("remote_id")?,
            ts: row.try_get("ts")?,
        })
    }
}

macro_rules! select_message {
    ($where:literal) => {
        concat!(
            "SELECT network, portal_id, remote_id, part, room_id, event_id, sender_mxid, ts, \
             reply_to_event, thread_root_event FROM message ",
            $where
        )
    };
}

macro_rules! select_reaction {
    ($where:literal) => {
        concat!(
            "SELECT network, portal_id, target_remote_id, sender, reaction_key, event_id, \
             remote_id, ts FROM reaction ",
            $where
        )
    };
}

impl Store {
    /// Records one part of a bridged message. Recording the same part again
    /// is a no-op (redelivery); a different part with an already mapped
    /// `event_id` fails with [`super::Error::is_unique_violation`].
    pub async fn insert_message(&self, row: &MessageRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO message (network, portal_id, remote_id, part, room_id, event_id, \
             sender_mxid, ts, reply_to_event, thread_root_event) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (network, portal_id, remote_id, part) DO NOTHING",
        )
        .bind(row.portal.network.as_str())
        .bind(row.portal.id.as_str())
        .bind(row.remote_id.as_str())
        .bind(row.part)
        .bind(row.room_id.as_str())
        .bind(row.event_id.as_str())
        .bind(row.sender_mxid.as_str())
        .bind(row.ts)
        .bind(row.reply_to_event.as_deref())
        .bind(row.thread_root_event.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every part of a remote message, in part order (empty if unknown).
    pub async fn message_by_remote(
        &self,
        portal: &PortalKey,
        remote_id: &RemoteMessageId,
    ) -> Result<Vec<MessageRow>> {
        sqlx::query(select_message!(
            "WHERE network = $1 AND portal_id = $2 AND remote_id = $3 ORDER BY part"
        ))
        .bind(portal.network.as_str())
        .bind(portal.id.as_str())
        .bind(remote_id.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(MessageRow::from_row)
        .collect()
    }

    pub async fn message_by_event(&self, event_id: &str) -> Result<Option<MessageRow>> {
        sqlx::query(select_message!("WHERE event_id = $1"))
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(MessageRow::from_row)
            .transpose()
    }

    /// Forgets every part of a message. Reactions to it stay until
    /// retention purges them.
    pub async fn delete_message(
        &self,
        portal: &PortalKey,
        remote_id: &RemoteMessageId,
    ) -> Result<()> {
        sqlx::query("DELETE FROM message WHERE network = $1 AND portal_id = $2 AND remote_id = $3")
            .bind(portal.network.as_str())
            .bind(portal.id.as_str())
            .bind(remote_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The oldest message parts of a portal with `ts < cutoff_ms`, at most
    /// `limit`, oldest first (disappearing messages work through them in
    /// batches).
    pub async fn messages_older_than(
        &self,
        portal: &PortalKey,
        cutoff_ms: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>> {
        sqlx::query(select_message!(
            "WHERE network = $1 AND portal_id = $2 AND ts < $3 \
             ORDER BY ts, remote_id, part LIMIT $4"
        ))
        .bind(portal.network.as_str())
        .bind(portal.id.as_str())
        .bind(cutoff_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(MessageRow::from_row)
        .collect()
    }

    /// Records a reaction; one that replaces an earlier reaction with the
    /// same target, sender and key takes its place.
    pub async fn insert_reaction(&self, row: &ReactionRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO reaction (network, portal_id, target_remote_id, sender, reaction_key, \
             event_id, remote_id, ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (network, portal_id, target_remote_id, sender, reaction_key) \
             DO UPDATE SET event_id = excluded.event_id, remote_id = excluded.remote_id, \
             ts = excluded.ts",
        )
        .bind(row.portal.network.as_str())
        .bind(row.portal.id.as_str())
        .bind(row.target_remote_id.as_str())
        .bind(row.sender.as_str())
        .bind(row.key.as_str())
        .bind(row.event_id.as_str())
        .bind(row.remote_id.as_deref())
        .bind(row.ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn reaction(
        &self,
        portal: &PortalKey,
        target: &RemoteMessageId,
        sender: &str,
        key: &str,
    ) -> Result<Option<ReactionRow>> {
        sqlx::query(select_reaction!(
            "WHERE network = $1 AND portal_id = $2 AND target_remote_id = $3 \
             AND sender = $4 AND reaction_key = $5"
        ))
        .bind(portal.network.as_str())
        .bind(portal.id.as_str())
        .bind(target.as_str())
        .bind(sender)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(ReactionRow::from_row)
        .transpose()
    }

    pub async fn reaction_by_event(&self, event_id: &str) -> Result<Option<ReactionRow>> {
        sqlx::query(select_reaction!("WHERE event_id = $1"))
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(ReactionRow::from_row)
            .transpose()
    }

    pub async fn delete_reaction_by_event(&self, event_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM reaction WHERE event_id = $1")
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
