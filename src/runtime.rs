//! The [`Runtime`] handle a module gets at start: its only way to reach the
//! store, the homeserver and the portal queues.

use std::sync::Arc;

use async_trait::async_trait;
use passerelle_api::{
    BridgeError, Login, NetworkId, Pending, PortalInfo, PortalKey, RemoteEvent, RemoteMessageId,
    Runtime,
};

use crate::bridge::Bridge;
use crate::store::LoginRow;

pub struct RuntimeHandle {
    bridge: Arc<Bridge>,
    network: String,
}

impl RuntimeHandle {
    pub fn new(bridge: Arc<Bridge>, network: String) -> Self {
        Self { bridge, network }
    }
}

fn internal(e: impl std::fmt::Display) -> BridgeError {
    tracing::error!(error = %e, "runtime call failed");
    BridgeError::retryable("internal error (the bridge log has details)")
}

#[async_trait]
impl Runtime for RuntimeHandle {
    fn enqueue(&self, event: RemoteEvent) -> Pending {
        if event.portal.network.as_str() != self.network {
            let msg = format!(
                "module {} enqueued an event for {}",
                self.network, event.portal.network
            );
            return Box::pin(async move { Err(BridgeError::permanent(msg)) });
        }
        self.bridge.push_remote(event, None)
    }

    async fn enqueue_durable(
        &self,
        key: &str,
        event: RemoteEvent,
    ) -> Result<Option<Pending>, BridgeError> {
        if event.portal.network.as_str() != self.network {
            return Err(BridgeError::permanent(format!(
                "module {} enqueued an event for {}",
                self.network, event.portal.network
            )));
        }
        let json = serde_json::to_string(&event).map_err(internal)?;
        let Some(seq) = self
            .bridge
            .store
            .spool_add(
                &NetworkId::new(&self.network),
                key,
                &json,
                crate::bridge::now_ms(),
            )
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        Ok(Some(self.bridge.push_remote(event, Some(seq))))
    }

    async fn update_ghost(&self, sender: passerelle_api::Sender) -> Result<bool, BridgeError> {
        self.bridge
            .update_ghost(&self.network, &sender)
            .await
            .map_err(internal)
    }

    fn ghost_mxid(&self, user: &passerelle_api::RemoteUserId) -> String {
        match self.bridge.network(&self.network) {
            Some(module) => {
                crate::mxid::user_id(&module.ghost_localpart(user), self.bridge.domain())
            }
            None => String::new(),
        }
    }

    async fn portals(&self) -> Result<Vec<PortalKey>, BridgeError> {
        let rows = self.bridge.store.portals().await.map_err(internal)?;
        Ok(rows
            .into_iter()
            .filter(|p| p.key.network.as_str() == self.network && p.room_id.is_some())
            .map(|p| p.key)
            .collect())
    }

    fn media_link(&self, mxc: &str, filename: &str) -> Option<String> {
        self.bridge.media_link(mxc, filename)
    }

    async fn portal_room(&self, portal: &PortalKey) -> Result<Option<String>, BridgeError> {
        Ok(self
            .bridge
            .store
            .portal(portal)
            .await
            .map_err(internal)?
            .and_then(|p| p.room_id))
    }

    async fn is_bridged(
        &self,
        portal: &PortalKey,
        remote_id: &RemoteMessageId,
    ) -> Result<bool, BridgeError> {
        Ok(!self
            .bridge
            .store
            .message_by_remote(portal, remote_id)
            .await
            .map_err(internal)?
            .is_empty())
    }

    async fn get_state(
        &self,
        network: &NetworkId,
        key: &str,
    ) -> Result<Option<serde_json::Value>, BridgeError> {
        self.bridge
            .store
            .state(network, key)
            .await
            .map_err(internal)
    }

    async fn set_state(
        &self,
        network: &NetworkId,
        key: &str,
        value: serde_json::Value,
    ) -> Result<(), BridgeError> {
        self.bridge
            .store
            .set_state(network, key, &value)
            .await
            .map_err(internal)
    }

    async fn space(&self, key: &str, name: &str) -> Result<String, BridgeError> {
        let network: NetworkId = self.network.as_str().into();
        let state_key = format!("space:{key}");
        // One at a time, so two portals appearing together make one space.
        let _creating = self.bridge.space_lock.lock().await;
        if let Some(room) = self
            .bridge
            .store
            .state(&network, &state_key)
            .await
            .map_err(internal)?
            .and_then(|v| v.as_str().map(str::to_owned))
        {
            return Ok(room);
        }
        let mut options = crate::matrix::CreateRoom::new();
        options.name = Some(name.to_owned());
        options.creation_content = Some(serde_json::json!({"type": "m.space"}));
        options.invite = self
            .bridge
            .permissions
            .admins()
            .filter_map(|a| ruma::UserId::parse(a).ok())
            .collect();
        let room = self
            .bridge
            .bot
            .create_room(&options)
            .await
            .map_err(internal)?
            .to_string();
        self.bridge
            .store
            .set_state(&network, &state_key, &serde_json::json!(room))
            .await
            .map_err(internal)?;
        tracing::info!(space = %room, "space created");
        Ok(room)
    }

    async fn add_to_space(&self, space_room: &str, portal: &PortalKey) -> Result<(), BridgeError> {
        let Some(room) = self.portal_room(portal).await? else {
            return Ok(());
        };
        let space = ruma::RoomId::parse(space_room).map_err(internal)?;
        let child = ruma::RoomId::parse(&room).map_err(internal)?;
        let via = serde_json::json!({"via": [self.bridge.domain()]});
        self.bridge
            .bot
            .send_state(&space, "m.space.child", &room, &via, None)
            .await
            .map_err(internal)?;
        let mut parent = via.clone();
        parent["canonical"] = serde_json::json!(true);
        self.bridge
            .bot
            .send_state(&child, "m.space.parent", space_room, &parent, None)
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn link_portal(&self, room: &str, info: PortalInfo) -> Result<(), BridgeError> {
        // `room` may be an alias (a static mapping in a module's config).
        // Joining resolves it, and lets the bot in where it was only invited
        // or the room is public: it must be a member to write the bridge
        // state. Joining a room it is already in changes nothing.
        let room_id = self.bridge.bot.join(room).await.map_err(|e| {
            if e.is_transient() {
                BridgeError::retryable("the homeserver is unavailable")
            } else {
                BridgeError::permanent(format!("the bridge bot cannot join {room}: {e}"))
            }
        })?;
        self.bridge
            .link_room(room_id.as_str(), info)
            .await
            .map_err(|e| match e.downcast::<BridgeError>() {
                Ok(be) => be,
                Err(e) => internal(e),
            })
    }

    async fn logins(&self) -> Result<Vec<Login>, BridgeError> {
        let rows = self
            .bridge
            .store
            .logins_on(&self.network.as_str().into())
            .await
            .map_err(internal)?;
        Ok(rows.into_iter().map(login_from_row).collect())
    }

    async fn save_login(&self, login: Login) -> Result<(), BridgeError> {
        let row = LoginRow {
            network: self.network.as_str().into(),
            mxid: login.mxid,
            login_id: login.login_id,
            remote_user_id: login.remote_user,
            state: login.state,
            secret: login.secret,
            metadata: login.metadata,
            updated_ts: crate::bridge::now_ms(),
        };
        self.bridge.store.upsert_login(&row).await.map_err(internal)
    }

    async fn remove_login(&self, mxid: &str, login_id: &str) -> Result<(), BridgeError> {
        self.bridge
            .store
            .delete_login(&self.network.as_str().into(), mxid, login_id)
            .await
            .map_err(internal)
    }

    async fn download_media(
        &self,
        mxc: &str,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, Option<String>), BridgeError> {
        self.bridge
            .download_media(mxc, max_bytes)
            .await
            .map_err(|e| {
                if e.is_transient() {
                    BridgeError::retryable("the homeserver is unavailable")
                } else {
                    BridgeError::permanent(format!("could not download the file: {e}"))
                }
            })
    }

    async fn upload_media(
        &self,
        bytes: Vec<u8>,
        mime: &str,
        filename: &str,
    ) -> Result<String, BridgeError> {
        match self.bridge.bot.upload(bytes, mime, Some(filename)).await {
            Ok(mxc) => Ok(mxc.to_string()),
            Err(e) if e.is_transient() => {
                Err(BridgeError::retryable("the homeserver is unavailable"))
            }
            Err(e) => Err(BridgeError::permanent(format!(
                "could not upload the file: {e}"
            ))),
        }
    }

    async fn portal_notice(&self, portal: &PortalKey, text: &str) {
        if let Ok(Some(row)) = self.bridge.store.portal(portal).await
            && let Some(room) = row.room_id
        {
            self.bridge.notice(&room, text, None).await;
        }
    }

    async fn notify_admins(&self, text: &str) {
        self.bridge.notify_admins(text).await;
    }
}

fn login_from_row(row: LoginRow) -> Login {
    Login {
        mxid: row.mxid,
        login_id: row.login_id,
        remote_user: row.remote_user_id,
        state: row.state,
        secret: row.secret,
        metadata: row.metadata,
    }
}
