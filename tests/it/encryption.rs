//! End-to-bridge encryption against a real Synapse (MSC3202, MSC4203 and
//! MSC4190 on) with a real end-to-end client, matrix-sdk: an encrypted DM
//! with the bot, and an encrypted portal both ways across a restart.

use matrix_sdk::ruma::{OwnedRoomId, UserId};
use passerelle_api::{MatrixEventKind, MessageContent, PortalKey, RemoteEventKind};

use crate::bridging::now_ms;
use crate::e2e_client::E2eClient;
use crate::harness::{RunningBridge, fresh_db, remote, setup};
use crate::support::synapse::TestClient;

/// Encryption on, with a crypto store of this test's own; portals of the
/// test network are created encrypted.
async fn encrypted_config(name: &str) -> String {
    encrypted_config_with(name, "{allow: true, default: true}").await
}

/// [`encrypted_config`] with another `bridges.test.encryption`.
async fn encrypted_config_with(name: &str, policy: &str) -> String {
    let store = setup()
        .await
        .hs
        .dir
        .join(format!("crypto-{name}-{}", rand::random::<u32>()));
    format!(
        "encryption: {{allow: true, store: '{}'}}\n\
         bridges: {{test: {{encryption: {policy}}}}}",
        store.display()
    )
}

fn bot_id() -> String {
    format!("@passerelle:{}", crate::harness::DOMAIN)
}

/// The event types `user` sees in `room`, oldest first.
async fn event_types(user: &TestClient, room: &str) -> Vec<String> {
    user.messages(room)
        .await
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn e2be_bot_answers_help_in_an_encrypted_dm() {
    let db = fresh_db("e2be_dm").await;
    let extra = encrypted_config("dm").await;
    let mut bridge = RunningBridge::start_with(&db, &extra).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let e2e = E2eClient::login(&hs.base_url, &alice).await;
    let bot = UserId::parse(bot_id()).unwrap();

    // Element-like: a direct chat, encrypted from its creation.
    let room = e2e.client.create_dm(&bot).await.expect("create the DM");
    let room_id = room.room_id().to_owned();
    assert!(
        alice
            .room_state(room_id.as_str(), "m.room.encryption", "")
            .await
            .is_some()
    );
    // The bot joins and greets, encrypted for alice's device.
    e2e.wait_message(&room_id, &bot, |b| b.contains("management room"))
        .await;

    e2e.send_text(&room_id, "help").await;
    let help = e2e
        .wait_message(&room_id, &bot, |b| b.contains("unlink"))
        .await;
    assert!(help.body.contains("help"), "{}", help.body);
    e2e.assert_sent_by_own_signed_device(&help, "PASSERELLE")
        .await;

    // Nothing went through the room in the clear.
    let types = event_types(&alice, room_id.as_str()).await;
    assert!(
        !types.iter().any(|t| t == "m.room.message"),
        "a message in the clear: {types:?}"
    );
    assert!(types.iter().filter(|t| *t == "m.room.encrypted").count() >= 3);
    bridge.stop().await;
}

/// The remote user "bob" of `chat`: one per chat, so each test's ghost
/// has a device and identity of its own (a ghost whose crypto store is new
/// replaces its device and identity, which other tests' clients may be
/// reading at the same moment).
fn bob_name(chat: &str) -> String {
    let hash = chat
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    format!("bob{hash}")
}

/// Bob, on the test network, says `body` in `chat`.
async fn bob_says(bridge: &RunningBridge, chat: &str, body: &str, remote_id: &str) {
    bridge
        .net
        .push(
            remote(
                chat,
                &bob_name(chat),
                now_ms(),
                RemoteEventKind::Message(MessageContent::text(body)),
            )
            .with_remote_id(remote_id),
        )
        .await
        .unwrap_or_else(|e| panic!("bob's {remote_id:?} not bridged: {e:?}"));
}

/// The ghost of [`bob_name`].
fn bob(chat: &str) -> matrix_sdk::ruma::OwnedUserId {
    UserId::parse(format!(
        "@_test_{}:{}",
        bob_name(chat),
        crate::harness::DOMAIN
    ))
    .unwrap()
}

/// The portal of `chat`, created by a first remote message, with alice's
/// e2e client joined.
async fn encrypted_portal(
    bridge: &RunningBridge,
    chat: &str,
    alice: &TestClient,
    e2e: &E2eClient,
) -> OwnedRoomId {
    portal_with(bridge, chat, &[(alice, e2e)]).await
}

/// The portal of `chat`, created by a first remote message, with each
/// member's e2e client joined.
async fn portal_with(
    bridge: &RunningBridge,
    chat: &str,
    members: &[(&TestClient, &E2eClient)],
) -> OwnedRoomId {
    bridge
        .net
        .invite
        .lock()
        .unwrap()
        .extend(members.iter().map(|(user, _)| user.user_id().to_owned()));
    bob_says(bridge, chat, "portal opened", &format!("{chat}-r0")).await;
    let room = bridge
        .net
        .runtime()
        .portal_room(&PortalKey::new("test", chat))
        .await
        .unwrap()
        .expect("portal room");
    let room = OwnedRoomId::try_from(room).unwrap();
    for (_, e2e) in members {
        e2e.client.join_room_by_id(&room).await.expect("join");
        e2e.joined_room(&room).await;
    }
    room
}

#[tokio::test]
async fn e2be_encrypted_portal_both_ways_across_a_restart() {
    let db = fresh_db("e2be_portal").await;
    let extra = encrypted_config("portal").await;
    let mut bridge = RunningBridge::start_with(&db, &extra).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let e2e = E2eClient::login(&hs.base_url, &alice).await;
    let chat = format!("e2be-{}", rand::random::<u32>());
    let room = encrypted_portal(&bridge, &chat, &alice, &e2e).await;
    assert!(
        alice
            .room_state(room.as_str(), "m.room.encryption", "")
            .await
            .is_some(),
        "the portal was created encrypted (encryption.default)"
    );
    let bob = bob(&chat);

    // Remote -> Matrix: the ghost's message is encrypted, alice reads it.
    bob_says(&bridge, &chat, "hello, encrypted alice", "e2be-r1").await;
    let hello = e2e
        .wait_message(&room, &bob, |b| b == "hello, encrypted alice")
        .await;
    // Encrypted by the ghost's own device, which its identity signed: no
    // warning that the sender and the device's owner differ.
    e2e.assert_sent_by_own_signed_device(&hello, "PASSERELLE")
        .await;

    // Matrix -> remote: the bridge decrypts alice's message.
    e2e.send_text(&room, "hello, bob").await;
    bridge
        .net
        .wait_received(
            "alice's decrypted message",
            |e| matches!(&e.kind, MatrixEventKind::Message(m) if m.body == "hello, bob"),
        )
        .await;

    // A restart: the bot's keys and sessions come back from its store.
    bridge.restart().await;
    e2e.send_text(&room, "still there?").await;
    bridge
        .net
        .wait_received(
            "a message decrypted after the restart",
            |e| matches!(&e.kind, MatrixEventKind::Message(m) if m.body == "still there?"),
        )
        .await;
    bob_says(&bridge, &chat, "yes, after the restart", "e2be-r2").await;
    let after = e2e
        .wait_message(&room, &bob, |b| b == "yes, after the restart")
        .await;
    // The ghost's device, reopened after the restart.
    e2e.assert_sent_by_own_signed_device(&after, "PASSERELLE")
        .await;

    let types = event_types(&alice, room.as_str()).await;
    assert!(
        !types.iter().any(|t| t == "m.room.message"),
        "a message in the clear: {types:?}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn e2be_bot_device_is_cross_signed() {
    let db = fresh_db("e2be_xsign").await;
    let extra = encrypted_config("xsign").await;
    let mut bridge = RunningBridge::start_with(&db, &extra).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let answer = alice
        .call(
            reqwest::Method::POST,
            "/_matrix/client/v3/keys/query",
            Some(serde_json::json!({"device_keys": {bot_id(): []}})),
        )
        .await;
    let device = &answer["device_keys"][bot_id()]["PASSERELLE"];
    assert!(device.is_object(), "the bot's device keys: {answer}");
    let master = &answer["master_keys"][bot_id()];
    let self_signing = &answer["self_signing_keys"][bot_id()];
    assert!(master.is_object() && self_signing.is_object(), "{answer}");
    let self_signing_key = self_signing["keys"]
        .as_object()
        .and_then(|k| k.keys().next().cloned())
        .expect("a self-signing key");
    assert!(
        device["signatures"][bot_id()][&self_signing_key].is_string(),
        "the device is signed by the self-signing key: {device}"
    );
    // A restart keeps the same device and identity.
    bridge.restart().await;
    let again = alice
        .call(
            reqwest::Method::POST,
            "/_matrix/client/v3/keys/query",
            Some(serde_json::json!({"device_keys": {bot_id(): []}})),
        )
        .await;
    assert_eq!(again["master_keys"][bot_id()], *master);
    assert_eq!(
        again["device_keys"][bot_id()]["PASSERELLE"]["keys"],
        device["keys"]
    );
    bridge.stop().await;
}

#[tokio::test]
async fn e2be_require_refuses_to_link_an_unencrypted_room() {
    let db = fresh_db("e2be_require").await;
    let extra = encrypted_config_with("require", "{allow: true, require: true}").await;
    let mut bridge = RunningBridge::start_with(&db, &extra).await;
    let alice = setup().await.hs.register_user("alice").await;
    let room = alice
        .create_room(serde_json::json!({"preset": "private_chat", "invite": [bot_id()]}))
        .await;
    for _ in 0..100 {
        if alice.joined_members(&room).await.contains(&bot_id()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reply = alice.command(&room, "link test chat-require").await;
    assert!(reply.contains("only bridges encrypted rooms"), "{reply}");
    assert!(
        bridge
            .net
            .runtime()
            .portal_room(&PortalKey::new("test", "chat-require"))
            .await
            .unwrap()
            .is_none()
    );
    bridge.stop().await;
}

#[tokio::test]
async fn e2be_telegram_chat_linked_from_an_encrypted_room_across_a_restart() {
    use crate::support::telegram_fake::ChatKind;
    use crate::telegram::{fake_with_group, telegram_module};

    let chat = -1002000000777;
    let fake = fake_with_group(chat, ChatKind::Supergroup).await;
    let module = || telegram_module(&fake.api_url(), serde_json::json!({}));
    let extra = encrypted_config_with("telegram", "{allow: true}")
        .await
        .replace(
            "bridges: {",
            "bridges: {telegram: {encryption: {allow: true}}, ",
        );
    let mut bridge =
        RunningBridge::start_with_modules(&fresh_db("e2be_telegram").await, &extra, vec![module()])
            .await;
    fake.wait_call("getUpdates", 1, std::time::Duration::from_secs(20))
        .await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let e2e = E2eClient::login(&hs.base_url, &alice).await;
    let room = alice
        .create_room(serde_json::json!({
            "preset": "private_chat",
            "invite": [bot_id()],
            "power_level_content_override": {"users": {bot_id(): 100}},
            "initial_state": [{"type": "m.room.encryption", "state_key": "",
                               "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        }))
        .await;
    let room = OwnedRoomId::try_from(room).unwrap();
    for _ in 0..100 {
        if alice
            .joined_members(room.as_str())
            .await
            .contains(&bot_id())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let bot = UserId::parse(bot_id()).unwrap();
    // The command itself is encrypted: the bot decrypts it to run it.
    e2e.send_text(&room, &format!("!passerelle link telegram {chat}"))
        .await;
    e2e.wait_message(&room, &bot, |b| b.starts_with("This room is now bridged"))
        .await;

    let ghost = UserId::parse("@_telegram_7:localhost").unwrap();
    fake.user_sends(chat, 7, "hello from Telegram");
    e2e.wait_message(&room, &ghost, |b| b == "hello from Telegram")
        .await;
    e2e.send_text(&room, "hello from Matrix").await;
    let relayed = |text: &'static str| {
        move |f: &crate::support::telegram_fake::FakeTelegram| {
            f.calls("sendMessage").iter().any(|c| c["text"] == text)
        }
    };
    fake.wait_until(
        "the decrypted message relayed",
        std::time::Duration::from_secs(20),
        relayed("<b>alice</b>: hello from Matrix"),
    )
    .await;

    bridge.restart_with_modules(vec![module()]).await;
    e2e.send_text(&room, "after the restart").await;
    fake.wait_until(
        "a message decrypted after the restart",
        std::time::Duration::from_secs(20),
        relayed("<b>alice</b>: after the restart"),
    )
    .await;
    fake.user_sends(chat, 7, "and back");
    e2e.wait_message(&room, &ghost, |b| b == "and back").await;

    let types = event_types(&alice, room.as_str()).await;
    assert!(
        !types.iter().any(|t| t == "m.room.message"),
        "a message in the clear: {types:?}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn e2be_a_portal_switched_to_encrypted_keeps_bridging() {
    let db = fresh_db("e2be_switch").await;
    let extra = encrypted_config_with("switch", "{allow: true}").await;
    let mut bridge = RunningBridge::start_with(&db, &extra).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let e2e = E2eClient::login(&hs.base_url, &alice).await;
    let chat = format!("e2be-switch-{}", rand::random::<u32>());
    let room = encrypted_portal(&bridge, &chat, &alice, &e2e).await;
    assert!(
        alice
            .room_state(room.as_str(), "m.room.encryption", "")
            .await
            .is_none(),
        "without encryption.default the portal starts in the clear"
    );

    alice
        .set_state(
            room.as_str(),
            "m.room.encryption",
            "",
            serde_json::json!({"algorithm": "m.megolm.v1.aes-sha2"}),
        )
        .await;
    // Once the bridge decrypted this, it has seen the switch too (events
    // come in order).
    e2e.send_text(&room, "now encrypted").await;
    bridge
        .net
        .wait_received(
            "the first encrypted message",
            |e| matches!(&e.kind, MatrixEventKind::Message(m) if m.body == "now encrypted"),
        )
        .await;
    let bob = bob(&chat);
    bob_says(&bridge, &chat, "encrypted too", "e2be-switch-r1").await;
    e2e.wait_message(&room, &bob, |b| b == "encrypted too")
        .await;
    let events = alice.messages(room.as_str()).await;
    let last = events
        .iter()
        .rev()
        .find(|e| e["sender"] == bob.as_str())
        .expect("the ghost's message");
    assert_eq!(last["type"], "m.room.encrypted", "{last}");
    bridge.stop().await;
}

/// `encryption.share_keys` decides which devices get the room keys of what
/// the bridge sends: with `cross-signed` a device its owner did not sign
/// gets none, with `verified` only devices the bot trusts (none here) do.
#[tokio::test]
async fn e2be_room_keys_go_only_to_the_devices_share_keys_allows() {
    let hs = setup().await.hs;
    // alice signed her device with her cross-signing identity, carol has none.
    let alice = hs.register_unique_user("xs_alice").await;
    let carol = hs.register_unique_user("xs_carol").await;
    let alice_e2e = E2eClient::login(&hs.base_url, &alice).await;
    alice_e2e.bootstrap_cross_signing(&alice).await;
    let carol_e2e = E2eClient::login(&hs.base_url, &carol).await;

    for (policy, alice_reads, carol_reads) in [
        ("all", true, true),
        ("cross-signed", true, false),
        ("verified", false, false),
    ] {
        let name = format!("share_{}", policy.replace('-', "_"));
        let extra = encrypted_config(&name).await.replacen(
            "encryption: {allow: true,",
            &format!("encryption: {{allow: true, share_keys: {policy},"),
            1,
        );
        let mut bridge = RunningBridge::start_with(&fresh_db(&name).await, &extra).await;
        let chat = format!("e2be-{name}-{}", rand::random::<u32>());
        let bob = bob(&chat);
        let room = portal_with(
            &bridge,
            &chat,
            &[(&alice, &alice_e2e), (&carol, &carol_e2e)],
        )
        .await;
        let body = format!("for the devices {policy} allows");
        bob_says(&bridge, &chat, &body, &format!("{chat}-r1")).await;

        for (who, e2e, reads) in [
            ("alice", &alice_e2e, alice_reads),
            ("carol", &carol_e2e, carol_reads),
        ] {
            if reads {
                e2e.wait_message(&room, &bob, |b| b == body).await;
            } else {
                e2e.wait_undecryptable(&room, &bob).await;
                // A key that comes late would still open it: give it time.
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                assert!(
                    !e2e.has_message(&room, |b| b == body),
                    "with share_keys: {policy}, {who}'s device got the room key"
                );
            }
        }
        bridge.stop().await;
    }
}

/// A message whose room key never reaches the bridge waits 30 s for it,
/// across a restart, and then its sender is told it was not handled.
#[tokio::test]
async fn e2be_a_message_whose_key_never_comes_gets_a_notice() {
    use matrix_sdk_crypto::vodozemac::megolm::{GroupSession, SessionConfig};
    use matrix_sdk_crypto::vodozemac::{Curve25519PublicKey, Curve25519SecretKey};

    let db = fresh_db("e2be_nokey").await;
    let extra = encrypted_config("nokey").await;
    let mut bridge = RunningBridge::start_with(&db, &extra).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let e2e = E2eClient::login(&hs.base_url, &alice).await;
    let chat = format!("e2be-nokey-{}", rand::random::<u32>());
    let room = encrypted_portal(&bridge, &chat, &alice, &e2e).await;

    // A well-formed Megolm message of a session nobody ever shared.
    let mut session = GroupSession::new(SessionConfig::version_1());
    let clear = serde_json::json!({
        "type": "m.room.message",
        "room_id": room.as_str(),
        "content": {"msgtype": "m.text", "body": "you will never read this"},
    });
    let content = serde_json::json!({
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": Curve25519PublicKey::from(&Curve25519SecretKey::new()).to_base64(),
        "session_id": session.session_id(),
        "device_id": "NOSUCHDEVICE",
        "ciphertext": session.encrypt(clear.to_string()).to_base64(),
    });
    let event_id = alice
        .send_event(room.as_str(), "m.room.encrypted", content)
        .await;
    // Recorded as pending, then a restart: the next start waits again.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    bridge.restart().await;

    let bot = UserId::parse(bot_id()).unwrap();
    let notice = e2e
        .wait_message_within(std::time::Duration::from_secs(60), &room, &bot, |b| {
            b.contains("could not decrypt")
        })
        .await;
    assert!(
        notice.body.contains("never reached the bridge"),
        "{}",
        notice.body
    );
    let events = alice.messages(room.as_str()).await;
    let reply = events
        .iter()
        .find(|e| {
            e["sender"] == bot_id()
                && e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id
        })
        .unwrap_or_else(|| panic!("no notice in reply to {event_id}: {events:#?}"));
    assert_eq!(
        reply["type"], "m.room.encrypted",
        "the notice is encrypted: {reply}"
    );
    let handled: Vec<_> = bridge
        .net
        .received()
        .into_iter()
        .filter(|e| matches!(e.kind, MatrixEventKind::Message(_)))
        .collect();
    assert!(
        handled.is_empty(),
        "a message reached the network: {handled:?}"
    );
    bridge.stop().await;
}

/// Files in an encrypted portal are encrypted files: what a Matrix user
/// sends reaches the network decrypted (its hash checked), and a remote
/// file is uploaded encrypted, never in the clear.
#[tokio::test]
async fn e2be_files_in_an_encrypted_portal_are_encrypted_both_ways() {
    use matrix_sdk::ruma::events::room::MediaSource;
    use matrix_sdk::ruma::events::room::message::MessageType;
    use passerelle_api::RemoteMedia;

    let db = fresh_db("e2be_files").await;
    let setup = setup().await;
    let extra = format!(
        "{}\nmedia: {{public_url: 'http://127.0.0.1:{}'}}",
        encrypted_config("files").await,
        setup.port
    );
    let mut bridge = RunningBridge::start_with(&db, &extra).await;
    let hs = &setup.hs;
    let alice = hs.register_user("alice").await;
    let e2e = E2eClient::login(&hs.base_url, &alice).await;
    let chat = format!("e2be-files-{}", rand::random::<u32>());
    let room = encrypted_portal(&bridge, &chat, &alice, &e2e).await;

    // Matrix -> remote: the module gets a reference that the runtime
    // downloads and decrypts.
    let secret = b"the minutes of the meeting".to_vec();
    e2e.send_file(&room, "minutes.txt", &mime::TEXT_PLAIN, secret.clone())
        .await;
    let event = bridge
        .net
        .wait_received(
            "alice's encrypted file",
            |e| matches!(&e.kind, MatrixEventKind::Message(m) if m.media.is_some()),
        )
        .await;
    let MatrixEventKind::Message(message) = event.kind else {
        unreachable!()
    };
    let media = message.media.expect("media");
    assert_eq!(media.filename, "minutes.txt");
    let reference = media.mxc.expect("a media reference");
    let runtime = bridge.net.runtime();
    let (bytes, mime) = runtime
        .download_media(&reference, 1 << 20)
        .await
        .expect("the runtime decrypts the file");
    assert_eq!(bytes, secret);
    assert_eq!(mime.as_deref(), Some("text/plain"));
    // What the homeserver holds is not the file.
    let stored = alice.download(reference.split('#').next().unwrap()).await;
    assert_ne!(stored, secret, "the homeserver got the file in the clear");
    // A public link (for IRC) hides the key.
    let link = runtime
        .media_link(&reference, "minutes.txt")
        .expect("a link");
    let sent = e2e
        .wait_message(&room, &UserId::parse(alice.user_id()).unwrap(), |b| {
            b == "minutes.txt"
        })
        .await;
    let key = match sent.content.unwrap().msgtype {
        MessageType::File(f) => match f.source {
            MediaSource::Encrypted(file) => serde_json::to_value(&file).unwrap()["key"]["k"]
                .as_str()
                .unwrap()
                .to_owned(),
            other => panic!("alice's client sent {other:?}"),
        },
        other => panic!("not a file: {other:?}"),
    };
    assert!(!link.contains(&key), "{link}");
    let fetched = reqwest::get(&link).await.unwrap();
    assert_eq!(fetched.status().as_u16(), 200, "{link}");
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), secret);

    // Remote -> Matrix: uploaded encrypted, alice's client decrypts it.
    let mut file = MessageContent::text("report.txt");
    file.media = Some(RemoteMedia {
        filename: "report.txt".to_owned(),
        mime_type: Some("text/plain".to_owned()),
        size: None,
        mxc: None,
        remote_ref: Some("text:the report from bob".to_owned()),
    });
    bridge
        .net
        .push(
            remote(
                &chat,
                &bob_name(&chat),
                now_ms(),
                RemoteEventKind::Message(file),
            )
            .with_remote_id(format!("{chat}-file")),
        )
        .await
        .expect("bob's file bridged");
    let got = e2e
        .wait_message(&room, &bob(&chat), |b| b == "report.txt")
        .await;
    let MessageType::File(file) = got.content.unwrap().msgtype else {
        panic!("not a file")
    };
    let MediaSource::Encrypted(encrypted) = &file.source else {
        panic!("bob's file was uploaded in the clear: {:?}", file.source)
    };
    let stored = alice.download(encrypted.url.as_str()).await;
    assert_ne!(stored, b"the report from bob".to_vec());
    let opened = e2e
        .client
        .media()
        .get_file(&file, false)
        .await
        .expect("downloading bob's file")
        .expect("a file");
    assert_eq!(opened, b"the report from bob".to_vec());
    bridge.stop().await;
}

/// With encryption off, an encrypted DM with the bot gets a plain answer
/// that it cannot read the room, once, instead of silence.
#[tokio::test]
async fn e2be_off_the_bot_says_it_cannot_read_an_encrypted_dm() {
    let db = fresh_db("e2be_off").await;
    let mut bridge = RunningBridge::start(&db).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let e2e = E2eClient::login(&hs.base_url, &alice).await;
    let bot = UserId::parse(bot_id()).unwrap();
    let room = e2e.client.create_dm(&bot).await.expect("create the DM");
    let room_id = room.room_id().to_owned();
    e2e.wait_message(&room_id, &bot, |b| b.contains("management room"))
        .await;

    e2e.send_text(&room_id, "help").await;
    let told = e2e
        .wait_message(&room_id, &bot, |b| b.contains("cannot read"))
        .await;
    assert!(told.body.contains("encryption.allow"), "{}", told.body);
    assert!(
        told.encryption.is_none(),
        "the bot has no device to encrypt with"
    );
    // Once per room: a second message gets no second notice, and no answer.
    e2e.send_text(&room_id, "help again").await;
    e2e.wait_message(&room_id, &UserId::parse(alice.user_id()).unwrap(), |b| {
        b == "help again"
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let from_bot: Vec<_> = alice
        .messages(room_id.as_str())
        .await
        .into_iter()
        .filter(|e| e["sender"] == bot_id() && e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        from_bot
            .iter()
            .filter(|b| b.contains("cannot read"))
            .count(),
        1,
        "{from_bot:?}"
    );
    assert!(
        !from_bot.iter().any(|b| b.contains("unlink")),
        "{from_bot:?}"
    );
    bridge.stop().await;
}
