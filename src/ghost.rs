//! Ghosts: Matrix users in our namespace standing for remote users. Created on
//! first sight; display name and avatar set only when they changed.

use std::sync::Arc;

use anyhow::Context;
use passerelle_api::Sender;
use serde_json::json;

use crate::bridge::{Bridge, now_ms};
use crate::store::GhostRow;

impl Bridge {
    /// Registers the ghost of `sender` if needed and brings its profile up to
    /// date. Returns its user id.
    pub(crate) async fn ensure_ghost(
        self: &Arc<Self>,
        network_id: &str,
        sender: &Sender,
    ) -> anyhow::Result<String> {
        let network = self.network(network_id).context("module")?.clone();
        let mxid = crate::mxid::user_id(&network.ghost_localpart(&sender.id), self.domain());
        let intent = self.intent(&mxid)?;
        let existing = self.store.ghost(&network_id.into(), &sender.id).await?;
        let mut row = match existing {
            Some(row) => row,
            None => GhostRow {
                network: network_id.into(),
                remote_id: sender.id.clone(),
                mxid: mxid.clone(),
                display_name: None,
                avatar_ref: None,
                avatar_mxc: None,
                registered: false,
                metadata: json!({}),
                updated_ts: now_ms(),
            },
        };
        let before = row.clone();
        if !row.registered {
            intent
                .ensure_registered()
                .await
                .context("registering a ghost")?;
            row.registered = true;
        }
        if let Some(name) = &sender.display_name
            && row.display_name.as_ref() != Some(name)
        {
            intent
                .set_displayname(name)
                .await
                .context("setting a ghost's display name")?;
            row.display_name = Some(name.clone());
        }
        if let Some(avatar) = &sender.avatar
            && row.avatar_ref.as_ref() != Some(avatar)
        {
            match network.fetch_media(avatar).await {
                Ok((bytes, mime)) => {
                    let mime = mime.unwrap_or_else(|| "image/png".to_owned());
                    let mxc = self.bot.upload(bytes, &mime, None).await?;
                    intent.set_avatar_url(Some(&mxc)).await?;
                    row.avatar_mxc = Some(mxc.to_string());
                    row.avatar_ref = Some(avatar.clone());
                }
                Err(e) => {
                    tracing::warn!(ghost = %mxid, error = %e, "could not fetch an avatar")
                }
            }
        }
        if row != before {
            row.updated_ts = now_ms();
            self.store.upsert_ghost(&row).await?;
        }
        Ok(mxid)
    }

    /// Brings an existing ghost's profile up to date. False when the user has
    /// no ghost: none is made.
    pub(crate) async fn update_ghost(
        self: &Arc<Self>,
        network_id: &str,
        sender: &Sender,
    ) -> anyhow::Result<bool> {
        if self
            .store
            .ghost(&network_id.into(), &sender.id)
            .await?
            .is_none()
        {
            return Ok(false);
        }
        self.ensure_ghost(network_id, sender).await?;
        Ok(true)
    }

    /// Makes `user_id` a member of `room_id`: joins directly, or gets invited
    /// by the bot first when the room is not public.
    pub(crate) async fn ensure_joined(&self, room_id: &str, user_id: &str) -> anyhow::Result<()> {
        let pair = (room_id.to_owned(), user_id.to_owned());
        if self.joined.lock().expect("joined lock").contains(&pair) {
            return Ok(());
        }
        let intent = self.intent(user_id)?;
        let target = ruma::RoomOrAliasId::parse(room_id).context("room id")?;
        if intent.join(&target).await.is_err() {
            let room = ruma::RoomId::parse(room_id).context("room id")?;
            let user = ruma::UserId::parse(user_id).context("user id")?;
            if let Err(e) = self.bot.invite(&room, &user).await {
                tracing::debug!(room_id, error = %e, "invite before join failed; trying the join anyway");
            }
            intent
                .join(&target)
                .await
                .context("joining a ghost to its portal")?;
        }
        self.joined.lock().expect("joined lock").insert(pair);
        Ok(())
    }

    pub(crate) fn mark_joined(&self, room_id: &str, user_id: &str) {
        self.joined
            .lock()
            .expect("joined lock")
            .insert((room_id.to_owned(), user_id.to_owned()));
    }

    pub(crate) fn forget_joined(&self, room_id: &str, user_id: &str) {
        self.joined
            .lock()
            .expect("joined lock")
            .remove(&(room_id.to_owned(), user_id.to_owned()));
    }
}
