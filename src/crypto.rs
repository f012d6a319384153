//! End-to-bridge encryption: one Olm machine (matrix-sdk-crypto) for the
//! bot's device. It is fed from the transactions the homeserver pushes
//! (MSC3202 device lists, one-time-key counts and unused fallback keys;
//! MSC4203 to-device events), decrypts what Matrix users send in encrypted
//! rooms, and encrypts what the bot sends there. A ghost that speaks in an
//! encrypted room gets a device of its own, made then (MSC4190) with an Olm
//! machine and a cross-signing identity of its own, so clients see each
//! message encrypted by its sender's device; ghosts that never speak there
//! get none, so clients do not share keys with a thousand lurkers. The
//! state lives in a crypto store of its own (`encryption.store`: the bot's
//! in the folder, each speaking ghost's under `ghosts/`), whatever database
//! the rest uses.
//!
//! Nothing here logs message content or key material: ids and counts only.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::Method;
use matrix_sdk_crypto::store::CryptoStore;
use matrix_sdk_crypto::types::events::room::encrypted::EncryptedEvent;
use matrix_sdk_crypto::types::requests::{AnyOutgoingRequest, ToDeviceRequest};
use matrix_sdk_crypto::{
    CollectStrategy, DecryptionSettings, EncryptionSettings, EncryptionSyncChanges, MegolmError,
    OlmMachine, TrustRequirement,
};
use matrix_sdk_sqlite::{SqliteCryptoStore, SqliteStoreConfig};
use ruma::api::IncomingResponse;
use ruma::api::client::keys::{claim_keys, get_keys, upload_keys, upload_signatures};
use ruma::api::client::sync::sync_events::DeviceLists;
use ruma::api::client::to_device::send_event_to_device;
use ruma::events::AnyToDeviceEvent;
use ruma::events::room::encryption::RoomEncryptionEventContent;
use ruma::events::room::history_visibility::HistoryVisibility;
use ruma::serde::Raw;
use ruma::{OneTimeKeyAlgorithm, OwnedDeviceId, OwnedRoomId, RoomId, TransactionId, UInt, UserId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{EncryptionConfig, KeySharing};
use crate::matrix::{DeviceApi, Error as MatrixError, Intent, MatrixClient, RoomEncryption};

/// What the homeserver pushed for our devices in one transaction.
#[derive(Debug, Default)]
pub struct CryptoPush {
    pub to_device: Vec<Value>,
    pub device_lists: Option<Value>,
    pub one_time_key_counts: Option<Value>,
    pub unused_fallback_keys: Option<Value>,
}

impl CryptoPush {
    fn is_empty(&self) -> bool {
        self.to_device.is_empty()
            && self.device_lists.is_none()
            && self.one_time_key_counts.is_none()
            && self.unused_fallback_keys.is_none()
    }
}

/// The outcome of decrypting one `m.room.encrypted` event.
#[derive(Debug)]
pub enum Decryption {
    /// The event with its clear type and content (id, sender, room, time kept).
    Decrypted(Value),
    /// Its room key has not reached us (yet): keys travel as to-device
    /// events, which may come in a later transaction than the message.
    MissingKey,
    /// It cannot be decrypted; the reason is safe to show.
    Failed(String),
}

/// How long a ghost whose device could not be made speaks through the
/// bot's device before making it is tried again.
const GHOST_DEVICE_RETRY: Duration = Duration::from_secs(600);

/// One device of ours (the bot's, or a ghost's) and its Olm machine.
struct Device {
    machine: OlmMachine,
    api: DeviceApi,
    /// One round of outgoing key requests at a time.
    requests: tokio::sync::Mutex<()>,
    /// Room keys are shared and events encrypted one at a time, so two
    /// sends never race to make two sessions for one room.
    encrypting: tokio::sync::Mutex<()>,
    /// Whether it is cross-signed; when that failed at its start, the next
    /// event it encrypts tries again first.
    cross_signed: std::sync::atomic::AtomicBool,
}

/// The bot's device, the devices of the ghosts that spoke in encrypted
/// rooms, and what they know of rooms.
pub struct Crypto {
    bot_device: Arc<Device>,
    client: MatrixClient,
    bot: Intent,
    sharing: KeySharing,
    /// Where ghosts' stores go, the key of every store, and the id and
    /// name of every device.
    store: std::path::PathBuf,
    store_key: [u8; 32],
    device_id: OwnedDeviceId,
    display_name: String,
    /// Ghosts' devices, opened when a ghost first speaks in an encrypted
    /// room (since the start). A ghost whose device could not be made
    /// speaks through the bot's device until the time given here, when
    /// making it is tried again.
    ghosts: tokio::sync::Mutex<HashMap<ruma::OwnedUserId, Result<Arc<Device>, Instant>>>,
    /// `m.room.encryption` of the rooms seen (`None`: not encrypted).
    rooms: Mutex<HashMap<OwnedRoomId, Option<RoomEncryptionEventContent>>>,
    /// Woken whenever room keys arrive.
    room_keys: tokio::sync::Notify,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypto")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

fn store_error(e: impl std::fmt::Display) -> MatrixError {
    MatrixError::Encryption(e.to_string())
}

/// The key that encrypts the secrets inside the crypto store.
fn store_key(config: &EncryptionConfig, as_token: &str) -> [u8; 32] {
    let secret = if config.pickle_key.is_empty() {
        as_token
    } else {
        &config.pickle_key
    };
    let mut hasher = Sha256::new();
    hasher.update(b"passerelle crypto store\0");
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

/// The folder of a ghost's crypto store, under the bot's: named by a hash,
/// since a user id may hold characters a file name cannot.
fn ghost_store(root: &std::path::Path, ghost: &UserId) -> std::path::PathBuf {
    let hash = Sha256::digest(ghost.as_bytes());
    let name: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    root.join("ghosts").join(name)
}

fn parse<R: IncomingResponse>(body: Bytes) -> Result<R, MatrixError> {
    let response = http::Response::builder()
        .status(200)
        .body(body)
        .map_err(|e| MatrixError::InvalidResponse(e.to_string()))?;
    R::try_from_http_response(response).map_err(|e| MatrixError::InvalidResponse(e.to_string()))
}

impl Device {
    /// Opens the crypto store at `path`, makes the device (a fresh store
    /// gets a fresh device: a device of the same id left by a lost store
    /// holds keys nobody has any more), uploads its keys and cross-signs
    /// it.
    async fn open(
        path: &std::path::Path,
        key: &[u8; 32],
        api: DeviceApi,
        user: &UserId,
        display_name: &str,
    ) -> anyhow::Result<Self> {
        let device_id = api.device_id().to_owned();
        // The low-memory settings (a pool of one connection per CPU, a
        // 500 KB page cache each): one store per speaking ghost adds up.
        let settings = SqliteStoreConfig::with_low_memory_config(path).key(Some(key));
        let store = SqliteCryptoStore::open_with_config(&settings)
            .await
            .with_context(|| {
                format!(
                    "opening the crypto store {} (encryption.store; a changed \
                     encryption.pickle_key or as_token cannot open it)",
                    path.display()
                )
            })?;
        let account = store
            .load_account()
            .await
            .context("reading the crypto store")?;
        match &account {
            Some(account) if account.device_id() != device_id => anyhow::bail!(
                "problem with `encryption.device_id`: the crypto store {} belongs to device {}",
                path.display(),
                account.device_id()
            ),
            Some(_) => {}
            None => {
                api.delete()
                    .await
                    .context("removing a device left by an earlier crypto store")?;
                tracing::info!(user = %user, device_id = %device_id, "new crypto store: making a device");
            }
        }
        api.create(display_name).await.context(
            "creating a device (PUT /devices: is io.element.msc4190 in the registration?)",
        )?;
        let machine = OlmMachine::with_store(user, &device_id, store, None)
            .await
            .context("loading the device's encryption keys")?;
        let device = Self {
            machine,
            api,
            requests: tokio::sync::Mutex::new(()),
            encrypting: tokio::sync::Mutex::new(()),
            cross_signed: false.into(),
        };
        device
            .process_outgoing()
            .await
            .context("uploading the device's keys")?;
        device.ensure_cross_signed().await;
        Ok(device)
    }

    fn user_id(&self) -> &UserId {
        self.machine.user_id()
    }

    fn device_id(&self) -> &ruma::DeviceId {
        self.api.device_id()
    }

    /// [`Device::cross_sign`] unless done; a failure is logged, and the
    /// next call tries again.
    async fn ensure_cross_signed(&self) {
        use std::sync::atomic::Ordering;
        if self.cross_signed.load(Ordering::Relaxed) {
            return;
        }
        match self.cross_sign().await {
            Ok(()) => self.cross_signed.store(true, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(user = %self.user_id(), error = %e, "could not cross-sign a device; trying again at its next message");
            }
        }
    }

    /// Gives the user a cross-signing identity (once) and signs this device
    /// with it, so clients show the device as verified by its owner.
    /// Appservices upload cross-signing keys without interactive auth.
    async fn cross_sign(&self) -> Result<(), MatrixError> {
        let status = self.machine.cross_signing_status().await;
        let own_device = self
            .machine
            .get_device(self.user_id(), self.device_id(), None)
            .await
            .map_err(store_error)?;
        if status.has_master
            && status.has_self_signing
            && own_device.is_some_and(|d| d.is_cross_signed_by_owner())
        {
            return Ok(());
        }
        let requests = self
            .machine
            .bootstrap_cross_signing(false)
            .await
            .map_err(store_error)?;
        if let Some(upload) = &requests.upload_keys_req {
            self.send(upload.request_id(), upload.request()).await?;
        }
        let keys = &requests.upload_signing_keys_req;
        let mut body = serde_json::Map::new();
        for (name, key) in [
            ("master_key", &keys.master_key),
            ("self_signing_key", &keys.self_signing_key),
            ("user_signing_key", &keys.user_signing_key),
        ] {
            if let Some(key) = key {
                body.insert(
                    name.to_owned(),
                    serde_json::to_value(key).map_err(store_error)?,
                );
            }
        }
        self.api
            .call(
                Method::POST,
                "keys_device_signing_upload",
                "/_matrix/client/v3/keys/device_signing/upload".into(),
                Some(Value::Object(body)),
            )
            .await?;
        let signatures = AnyOutgoingRequest::SignatureUpload(requests.upload_signatures_req);
        self.send(&TransactionId::new(), &signatures).await?;
        tracing::info!(user = %self.user_id(), "device cross-signed");
        Ok(())
    }

    /// Feeds what a transaction carried for this device, then sends what
    /// the machine wants sent (key uploads, queries). The number of room
    /// keys that came.
    async fn receive(
        &self,
        to_device: &[Value],
        changed: &DeviceLists,
        one_time_key_counts: Option<&Value>,
        unused_fallback_keys: Option<&Value>,
    ) -> Result<usize, MatrixError> {
        let user = self.user_id().as_str();
        let device = self.device_id().as_str();
        let to_device: Vec<Raw<AnyToDeviceEvent>> = to_device
            .iter()
            .filter(|event| {
                event.get("to_user_id").and_then(Value::as_str) == Some(user)
                    && event.get("to_device_id").and_then(Value::as_str) == Some(device)
            })
            .filter_map(|event| serde_json::value::to_raw_value(event).ok())
            .map(Raw::from_json)
            .collect();
        let ours = |value: Option<&Value>| value.and_then(|v| v.get(user)?.get(device).cloned());
        let counts = ours(one_time_key_counts);
        let fallback = ours(unused_fallback_keys);
        // Nothing for this device (most transactions, for most ghosts).
        if to_device.is_empty()
            && changed.changed.is_empty()
            && changed.left.is_empty()
            && counts.is_none()
            && fallback.is_none()
        {
            return Ok(0);
        }
        let counts: BTreeMap<OneTimeKeyAlgorithm, UInt> = counts
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let fallback: Option<Vec<OneTimeKeyAlgorithm>> =
            fallback.and_then(|v| serde_json::from_value(v).ok());
        let to_device_count = to_device.len();
        let (_, room_keys) = self
            .machine
            .receive_sync_changes(
                EncryptionSyncChanges {
                    to_device_events: to_device,
                    changed_devices: changed,
                    one_time_keys_counts: &counts,
                    unused_fallback_keys: fallback.as_deref(),
                    next_batch_token: None,
                },
                &decryption_settings(),
            )
            .await
            .map_err(store_error)?;
        tracing::debug!(
            user,
            to_device = to_device_count,
            changed_users = changed.changed.len(),
            room_keys = room_keys.len(),
            "encryption state from a transaction"
        );
        self.process_outgoing().await?;
        Ok(room_keys.len())
    }

    /// Sends every request the machine has queued, until it has none left
    /// (a few rounds at most: answers can queue more).
    async fn process_outgoing(&self) -> Result<(), MatrixError> {
        let _one_round = self.requests.lock().await;
        for _ in 0..4 {
            let requests = self
                .machine
                .outgoing_requests()
                .await
                .map_err(store_error)?;
            if requests.is_empty() {
                break;
            }
            for request in requests {
                self.send(request.request_id(), request.request()).await?;
            }
        }
        Ok(())
    }

    /// Sends one request as our device and hands the answer to the machine.
    async fn send(
        &self,
        id: &TransactionId,
        request: &AnyOutgoingRequest,
    ) -> Result<(), MatrixError> {
        let machine = &self.machine;
        let post = |endpoint: &'static str, path: &str, body: Value| {
            self.api
                .call(Method::POST, endpoint, path.to_owned(), Some(body))
        };
        let handed = match request {
            AnyOutgoingRequest::KeysUpload(r) => {
                let mut body = json!({
                    "one_time_keys": r.one_time_keys,
                    "fallback_keys": r.fallback_keys,
                });
                if let Some(keys) = &r.device_keys {
                    body["device_keys"] = serde_json::to_value(keys).map_err(store_error)?;
                }
                let answer = post("keys_upload", "/_matrix/client/v3/keys/upload", body).await?;
                let response: upload_keys::v3::Response = parse(answer)?;
                machine.mark_request_as_sent(id, &response).await
            }
            AnyOutgoingRequest::KeysQuery(r) => {
                let body = json!({"device_keys": r.device_keys, "timeout": 10_000});
                let answer = post("keys_query", "/_matrix/client/v3/keys/query", body).await?;
                let response: get_keys::v3::Response = parse(answer)?;
                machine.mark_request_as_sent(id, &response).await
            }
            AnyOutgoingRequest::KeysClaim(r) => {
                let body = json!({"one_time_keys": r.one_time_keys, "timeout": 10_000});
                let answer = post("keys_claim", "/_matrix/client/v3/keys/claim", body).await?;
                let response: claim_keys::v3::Response = parse(answer)?;
                machine.mark_request_as_sent(id, &response).await
            }
            AnyOutgoingRequest::ToDeviceRequest(r) => return self.send_to_device(r).await,
            AnyOutgoingRequest::SignatureUpload(r) => {
                let body = serde_json::to_value(&r.signed_keys).map_err(store_error)?;
                let answer = post(
                    "keys_signatures_upload",
                    "/_matrix/client/v3/keys/signatures/upload",
                    body,
                )
                .await?;
                let response: upload_signatures::v3::Response = parse(answer)?;
                machine.mark_request_as_sent(id, &response).await
            }
            AnyOutgoingRequest::RoomMessage(r) => {
                // In-room verification requests: not answered (the bot's
                // device is trusted through cross-signing instead).
                tracing::debug!(room_id = %r.room_id, "ignoring an in-room verification request");
                let response = ruma::api::client::message::send_message_event::v3::Response::new(
                    ruma::OwnedEventId::try_from("$unsent:passerelle.invalid")
                        .map_err(store_error)?,
                );
                machine.mark_request_as_sent(id, &response).await
            }
        };
        handed.map_err(store_error)
    }

    async fn send_to_device(&self, request: &ToDeviceRequest) -> Result<(), MatrixError> {
        self.api
            .send_to_device(
                &request.event_type.to_string(),
                request.txn_id.as_str(),
                json!({ "messages": request.messages }),
            )
            .await?;
        self.machine
            .mark_request_as_sent(&request.txn_id, &send_event_to_device::v3::Response::new())
            .await
            .map_err(store_error)
    }

    /// Shares this device's room key with the devices of `members` that
    /// `sharing` allows, then encrypts the event with it.
    async fn encrypt(
        &self,
        room: &RoomId,
        members: &[ruma::OwnedUserId],
        settings: EncryptionSettings,
        event_type: &str,
        content: &Value,
    ) -> Result<Value, MatrixError> {
        let _one_at_a_time = self.encrypting.lock().await;
        self.ensure_cross_signed().await;
        self.machine
            .update_tracked_users(members.iter().map(AsRef::as_ref))
            .await
            .map_err(store_error)?;
        // Queries the devices of new members.
        self.process_outgoing().await?;
        if let Some((id, claim)) = self
            .machine
            .get_missing_sessions(members.iter().map(AsRef::as_ref))
            .await
            .map_err(store_error)?
        {
            self.send(&id, &AnyOutgoingRequest::KeysClaim(claim))
                .await?;
        }
        let shares = self
            .machine
            .share_room_key(room, members.iter().map(AsRef::as_ref), settings)
            .await
            .map_err(store_error)?;
        for share in shares {
            self.send_to_device(&share).await?;
        }
        let raw = serde_json::value::to_raw_value(content).map_err(store_error)?;
        let encrypted = self
            .machine
            .encrypt_room_event_raw(room, event_type, &Raw::from_json(raw))
            .await
            .map_err(store_error)?;
        serde_json::to_value(&encrypted.content).map_err(store_error)
    }
}

impl Crypto {
    /// Opens the bot's crypto store and device (see [`Device::open`]).
    pub async fn start(
        config: &EncryptionConfig,
        as_token: &str,
        client: &MatrixClient,
        bot: Intent,
        display_name: &str,
    ) -> anyhow::Result<Arc<Self>> {
        let device_id: OwnedDeviceId = config.device_id.as_str().into();
        let key = store_key(config, as_token);
        let api = DeviceApi::new(client.clone(), bot.user_id().to_owned(), device_id.clone());
        let bot_device =
            Arc::new(Device::open(&config.store, &key, api, bot.user_id(), display_name).await?);
        tracing::info!(device_id = %device_id, "end-to-bridge encryption ready");
        Ok(Arc::new(Self {
            bot_device,
            client: client.clone(),
            bot,
            sharing: config.share_keys,
            store: config.store.clone(),
            store_key: key,
            device_id,
            display_name: display_name.to_owned(),
            ghosts: tokio::sync::Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            room_keys: tokio::sync::Notify::new(),
        }))
    }

    pub fn device_id(&self) -> &ruma::DeviceId {
        &self.device_id
    }

    /// Feeds what a transaction carried to the bot's device and to the
    /// ghosts' devices opened so far. What comes for a ghost device not
    /// opened since the start is left: ghosts never read, and a device
    /// opened later asks for every device list afresh.
    pub async fn receive(&self, push: CryptoPush) -> Result<(), MatrixError> {
        if push.is_empty() {
            return Ok(());
        }
        let changed: DeviceLists = push
            .device_lists
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let room_keys = self
            .bot_device
            .receive(
                &push.to_device,
                &changed,
                push.one_time_key_counts.as_ref(),
                push.unused_fallback_keys.as_ref(),
            )
            .await?;
        if room_keys > 0 {
            self.room_keys.notify_waiters();
        }
        let ghosts: Vec<Arc<Device>> = self
            .ghosts
            .lock()
            .await
            .values()
            .filter_map(|device| device.as_ref().ok())
            .cloned()
            .collect();
        for ghost in ghosts {
            if let Err(e) = ghost
                .receive(
                    &push.to_device,
                    &changed,
                    push.one_time_key_counts.as_ref(),
                    push.unused_fallback_keys.as_ref(),
                )
                .await
            {
                tracing::warn!(user = %ghost.user_id(), error = %e, "a ghost's device missed a transaction's keys");
            }
        }
        Ok(())
    }

    /// The device `sender` encrypts with: the bot's, or the ghost's own
    /// (opened, or made, on its first message in an encrypted room since
    /// the start). When a ghost's device cannot be made, the bot's device
    /// encrypts for it: clients then warn that the sender's device is not
    /// the sender's, but the message is not lost.
    async fn device_for(&self, sender: &UserId) -> Arc<Device> {
        if sender == self.bot.user_id() {
            return self.bot_device.clone();
        }
        let mut ghosts = self.ghosts.lock().await;
        match ghosts.get(sender) {
            Some(Ok(device)) => return device.clone(),
            Some(Err(retry_at)) if Instant::now() < *retry_at => return self.bot_device.clone(),
            _ => {}
        }
        let api = DeviceApi::new(
            self.client.clone(),
            sender.to_owned(),
            self.device_id.clone(),
        );
        let path = ghost_store(&self.store, sender);
        let opened = match Device::open(&path, &self.store_key, api, sender, &self.display_name)
            .await
        {
            Ok(device) => {
                // Device lists may have changed while it was closed.
                if let Err(e) = device.machine.mark_all_tracked_users_as_dirty().await {
                    tracing::warn!(user = %sender, error = %e, "could not refresh a ghost's device lists");
                }
                Ok(Arc::new(device))
            }
            Err(e) => {
                tracing::warn!(user = %sender, error = format!("{e:#}"), "could not make a ghost's device; the bot's device encrypts for it for 10 minutes");
                Err(Instant::now() + GHOST_DEVICE_RETRY)
            }
        };
        ghosts.insert(sender.to_owned(), opened.clone());
        opened.unwrap_or_else(|_| self.bot_device.clone())
    }

    /// Acts as `user`: the bot, or a ghost (which may be in rooms the bot
    /// is not in).
    fn intent(&self, user: &UserId) -> Intent {
        if user == self.bot.user_id() {
            self.bot.clone()
        } else {
            self.client.intent(user.to_owned())
        }
    }

    /// A room's `m.room.encryption` as `user` sees it, asked once and then
    /// kept up to date by [`Crypto::room_encrypted`].
    async fn room_encryption(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<RoomEncryptionEventContent>, MatrixError> {
        if let Some(known) = self.rooms.lock().expect("rooms lock").get(room) {
            return Ok(known.clone());
        }
        let state = self
            .intent(user)
            .state_event(room, "m.room.encryption", "")
            .await?;
        let content = state.and_then(|s| serde_json::from_value(s).ok());
        self.rooms
            .lock()
            .expect("rooms lock")
            .insert(room.to_owned(), content.clone());
        Ok(content)
    }

    /// Whether `room` is encrypted, as `user` sees it.
    pub async fn is_encrypted(&self, room: &RoomId, user: &UserId) -> Result<bool, MatrixError> {
        Ok(self.room_encryption(room, user).await?.is_some())
    }

    /// An `m.room.encryption` event passed by: the room is encrypted now.
    pub fn room_encrypted(&self, room: &RoomId, content: &Value) {
        if let Ok(content) = serde_json::from_value::<RoomEncryptionEventContent>(content.clone()) {
            self.rooms
                .lock()
                .expect("rooms lock")
                .insert(room.to_owned(), Some(content));
        }
    }

    /// Decrypts one `m.room.encrypted` event of `room`.
    pub async fn decrypt(&self, event: &Value, room: &RoomId) -> Decryption {
        let raw = match serde_json::value::to_raw_value(event) {
            Ok(raw) => Raw::<EncryptedEvent>::from_json(raw),
            Err(_) => return Decryption::Failed("the event is not valid JSON".to_owned()),
        };
        match self
            .bot_device
            .machine
            .decrypt_room_event(&raw, room, &decryption_settings())
            .await
        {
            Ok(decrypted) => {
                let Ok(clear) = decrypted.event.deserialize_as_unchecked::<Value>() else {
                    return Decryption::Failed("the decrypted event is not JSON".to_owned());
                };
                let mut event = event.clone();
                event["type"] = clear.get("type").cloned().unwrap_or(Value::Null);
                event["content"] = clear.get("content").cloned().unwrap_or_else(|| json!({}));
                Decryption::Decrypted(event)
            }
            Err(MegolmError::MissingRoomKey(None)) => Decryption::MissingKey,
            Err(MegolmError::MissingRoomKey(Some(code))) => {
                Decryption::Failed(format!("the sender withheld the key ({code})"))
            }
            Err(e) => {
                tracing::debug!(%room, error = %e, "decryption failed");
                Decryption::Failed("the message could not be decrypted".to_owned())
            }
        }
    }

    /// [`Crypto::decrypt`] again each time room keys arrive, until the key
    /// of this event came or `patience` ran out.
    pub async fn decrypt_when_key_arrives(
        &self,
        event: &Value,
        room: &RoomId,
        patience: Duration,
    ) -> Decryption {
        let deadline = Instant::now() + patience;
        loop {
            let notified = self.room_keys.notified();
            match self.decrypt(event, room).await {
                Decryption::MissingKey if Instant::now() < deadline => {}
                outcome => return outcome,
            }
            // Keys can also arrive between the attempt and this wait: poll
            // once a second as well.
            let _ = tokio::time::timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(1)),
                notified,
            )
            .await;
        }
    }

    async fn encrypt_for(
        &self,
        room: &RoomId,
        sender: &UserId,
        settings: RoomEncryptionEventContent,
        event_type: &str,
        content: &Value,
    ) -> Result<Value, MatrixError> {
        let members = self.intent(sender).joined_and_invited(room).await?;
        let strategy = match self.sharing {
            KeySharing::All => CollectStrategy::AllDevices,
            KeySharing::CrossSigned => CollectStrategy::IdentityBasedStrategy,
            KeySharing::Verified => CollectStrategy::OnlyTrustedDevices,
        };
        let settings = EncryptionSettings::new(settings, HistoryVisibility::Shared, strategy);
        self.device_for(sender)
            .await
            .encrypt(room, &members, settings, event_type, content)
            .await
    }
}

fn decryption_settings() -> DecryptionSettings {
    DecryptionSettings {
        sender_device_trust_requirement: TrustRequirement::Untrusted,
    }
}

#[async_trait::async_trait]
impl RoomEncryption for Crypto {
    async fn encrypt(
        &self,
        room: &RoomId,
        sender: &UserId,
        event_type: &str,
        content: &Value,
    ) -> Result<Option<Value>, MatrixError> {
        let Some(settings) = self.room_encryption(room, sender).await? else {
            return Ok(None);
        };
        let encrypted = self
            .encrypt_for(room, sender, settings, event_type, content)
            .await?;
        metrics::counter!("passerelle_events_encrypted_total").increment(1);
        Ok(Some(encrypted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_key_depends_on_the_pickle_key_else_the_token() {
        let mut config = EncryptionConfig::default();
        let from_token = store_key(&config, "token-a");
        assert_ne!(from_token, store_key(&config, "token-b"));
        config.pickle_key = "my pickle key".to_owned();
        assert_eq!(store_key(&config, "token-a"), store_key(&config, "token-b"));
        assert_ne!(store_key(&config, "token-a"), from_token);
    }

    #[test]
    fn a_push_without_crypto_fields_is_empty() {
        assert!(CryptoPush::default().is_empty());
        let push = CryptoPush {
            to_device: vec![json!({"type": "m.room_key"})],
            ..CryptoPush::default()
        };
        assert!(!push.is_empty());
    }
}
