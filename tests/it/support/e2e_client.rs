//! [`E2eClient`]: a Matrix client that none of us wrote and that does
//! end-to-end encryption (matrix-sdk, with an in-memory store), logged in as
//! a test user. It syncs in the background and keeps every message it could
//! decrypt, so a test can wait for one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::EncryptionInfo;
use matrix_sdk::ruma::api::client::uiaa;
use matrix_sdk::ruma::events::room::encrypted::OriginalSyncRoomEncryptedEvent;
use matrix_sdk::ruma::events::room::message::{
    OriginalSyncRoomMessageEvent, RoomMessageEventContent,
};
use matrix_sdk::ruma::{OwnedRoomId, RoomId, UserId};
use matrix_sdk::{Client, Room, RoomState};

use crate::support::synapse::{DEFAULT_TIMEOUT, TestClient};

/// One message as the client decrypted it.
#[derive(Debug, Clone)]
pub struct Received {
    pub room_id: OwnedRoomId,
    pub sender: String,
    pub body: String,
    /// The decrypted content (`None` for what could not be decrypted).
    pub content: Option<RoomMessageEventContent>,
    /// How it was encrypted: by which device, and what the client thinks
    /// of that device (`None` for a message in the clear).
    pub encryption: Option<EncryptionInfo>,
}

pub struct E2eClient {
    pub client: Client,
    received: Arc<Mutex<Vec<Received>>>,
    /// Encrypted messages it could not decrypt (their bodies empty).
    undecryptable: Arc<Mutex<Vec<Received>>>,
    sync: tokio::task::JoinHandle<()>,
}

impl Drop for E2eClient {
    fn drop(&mut self) {
        self.sync.abort();
    }
}

impl E2eClient {
    /// Logs in as `user` (a new device with its own keys) and starts syncing.
    pub async fn login(base_url: &str, user: &TestClient) -> E2eClient {
        let client = Client::builder()
            .homeserver_url(base_url)
            .build()
            .await
            .expect("building the matrix-sdk client");
        client
            .matrix_auth()
            .login_username(user.user_id(), user.password())
            .initial_device_display_name("passerelle e2e test")
            .send()
            .await
            .expect("matrix-sdk login");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        client.add_event_handler(
            move |event: OriginalSyncRoomMessageEvent,
                  room: Room,
                  encryption: Option<EncryptionInfo>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(Received {
                        room_id: room.room_id().to_owned(),
                        sender: event.sender.to_string(),
                        body: event.content.body().to_owned(),
                        content: Some(event.content),
                        encryption,
                    });
                }
            },
        );
        // Events whose decryption failed reach handlers still encrypted.
        let undecryptable = Arc::new(Mutex::new(Vec::new()));
        let sink = undecryptable.clone();
        client.add_event_handler(move |event: OriginalSyncRoomEncryptedEvent, room: Room| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(Received {
                    room_id: room.room_id().to_owned(),
                    sender: event.sender.to_string(),
                    body: String::new(),
                    content: None,
                    encryption: None,
                });
            }
        });
        // The first sync uploads the device's keys.
        client
            .sync_once(SyncSettings::default())
            .await
            .expect("first sync");
        let syncing = client.clone();
        let sync = tokio::spawn(async move {
            let settings = SyncSettings::default().timeout(Duration::from_millis(500));
            let _ = syncing.sync(settings).await;
        });
        E2eClient {
            client,
            received,
            undecryptable,
            sync,
        }
    }

    /// Gives the user a cross-signing identity and signs this device with
    /// it (with the password when the homeserver asks for it).
    pub async fn bootstrap_cross_signing(&self, user: &TestClient) {
        let encryption = self.client.encryption();
        if let Err(e) = encryption.bootstrap_cross_signing(None).await {
            let response = e
                .as_uiaa_response()
                .unwrap_or_else(|| panic!("bootstrapping cross-signing: {e}"));
            let mut password = uiaa::Password::new(
                uiaa::UserIdentifier::Matrix(uiaa::MatrixUserIdentifier::new(
                    user.user_id().to_owned(),
                )),
                user.password().to_owned(),
            );
            password.session = response.session.clone();
            encryption
                .bootstrap_cross_signing(Some(uiaa::AuthData::Password(password)))
                .await
                .expect("bootstrapping cross-signing with the password");
        }
    }

    /// Waits until the client knows `room` as joined.
    pub async fn joined_room(&self, room: &RoomId) -> Room {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        loop {
            if let Some(found) = self.client.get_room(room)
                && found.state() == RoomState::Joined
            {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "the e2e client never saw {room} as joined"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a file (encrypted, with the event, when the room is).
    pub async fn send_file(&self, room: &RoomId, filename: &str, mime: &mime::Mime, data: Vec<u8>) {
        self.joined_room(room)
            .await
            .send_attachment(filename, mime, data, Default::default())
            .await
            .expect("matrix-sdk send_attachment");
    }

    /// Sends a plain text message (encrypted when the room is).
    pub async fn send_text(&self, room: &RoomId, body: &str) {
        self.joined_room(room)
            .await
            .send(RoomMessageEventContent::text_plain(body))
            .await
            .expect("matrix-sdk send");
    }

    /// Waits for a message in `room` from `sender` that the client decrypted
    /// (or received in the clear) and whose body matches.
    pub async fn wait_message(
        &self,
        room: &RoomId,
        sender: &UserId,
        matches: impl Fn(&str) -> bool,
    ) -> Received {
        self.wait_message_within(Duration::from_secs(40), room, sender, matches)
            .await
    }

    /// [`E2eClient::wait_message`] with a deadline of its own.
    pub async fn wait_message_within(
        &self,
        patience: Duration,
        room: &RoomId,
        sender: &UserId,
        matches: impl Fn(&str) -> bool,
    ) -> Received {
        wait_in(&self.received, patience, room, sender, matches, "message").await
    }

    /// Waits for an encrypted message in `room` from `sender` that the
    /// client could not decrypt.
    pub async fn wait_undecryptable(&self, room: &RoomId, sender: &UserId) -> Received {
        let patience = Duration::from_secs(40);
        wait_in(
            &self.undecryptable,
            patience,
            room,
            sender,
            |_| true,
            "undecryptable event",
        )
        .await
    }

    /// Checks that `message` was encrypted by `device` of its sender, a
    /// device its owner cross-signed, and not by a device of someone else
    /// (which clients mark with a red warning). How the client judged it
    /// at decryption depends on whether it had the sender's keys yet, so
    /// the device's signature is read from the client afterwards too.
    pub async fn assert_sent_by_own_signed_device(&self, message: &Received, device: &str) {
        use matrix_sdk::deserialized_responses::{VerificationLevel, VerificationState};
        let info = message.encryption.as_ref().expect("an encrypted message");
        assert_ne!(
            info.verification_state,
            VerificationState::Unverified(VerificationLevel::MismatchedSender),
            "{message:?} was encrypted by a device that is not its sender's"
        );
        if let Some(sent_by) = &info.sender_device {
            assert_eq!(sent_by.as_str(), device, "{message:?}");
        }
        let sender = UserId::parse(&message.sender).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let known = self
                .client
                .encryption()
                .get_device(&sender, device.into())
                .await
                .expect("the client's crypto store");
            if known.is_some_and(|d| d.is_cross_signed_by_owner()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sender}'s device {device} is not signed by its owner's identity"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether the client decrypted a message in `room` whose body matches.
    pub fn has_message(&self, room: &RoomId, matches: impl Fn(&str) -> bool) -> bool {
        self.received
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.room_id == room && matches(&m.body))
    }
}

async fn wait_in(
    seen: &Mutex<Vec<Received>>,
    patience: Duration,
    room: &RoomId,
    sender: &UserId,
    matches: impl Fn(&str) -> bool,
    what: &str,
) -> Received {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(found) = seen
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.room_id == room && m.sender == sender.as_str() && matches(&m.body))
        {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no matching {what} from {sender} in {room}; the e2e client has: {:#?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
