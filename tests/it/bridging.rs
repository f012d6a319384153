//! Messages both ways through a real Synapse.

use std::time::Duration;

use passerelle_api::{MatrixEventKind, MessageContent, RemoteEventKind, Via};
use serde_json::{Value, json};

use crate::harness::{RunningBridge, fresh_db, remote, setup};
use crate::support::synapse::DEFAULT_TIMEOUT;

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A portal for `chat` with `user` invited and joined; returns the room id.
pub(crate) async fn portal_with(
    bridge: &RunningBridge,
    chat: &str,
    user: &crate::support::synapse::TestClient,
) -> String {
    bridge
        .net
        .invite
        .lock()
        .unwrap()
        .push(user.user_id().to_owned());
    let ts = now_ms() - 60_000;
    let hello = remote(
        chat,
        "bob",
        ts,
        RemoteEventKind::Message(MessageContent::text("hello from remote")),
    )
    .with_remote_id("r-hello");
    bridge
        .net
        .push(hello)
        .await
        .expect("first remote message bridged");
    let room = bridge
        .net
        .runtime()
        .portal_room(&passerelle_api::PortalKey::new("test", chat))
        .await
        .unwrap();
    let room = room.expect("portal room");
    user.join(&room).await;
    room
}

async fn put_txn(txn: &str, events: Vec<Value>) -> u16 {
    let setup = setup().await;
    let url = format!(
        "http://127.0.0.1:{}/_matrix/app/v1/transactions/{txn}",
        setup.port
    );
    reqwest::Client::new()
        .put(url)
        .bearer_auth(&setup.registration.hs_token)
        .json(&json!({"events": events}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn remote_message_creates_ghost_and_portal_with_the_remote_timestamp() {
    let mut bridge = RunningBridge::start(&fresh_db("remote").await).await;
    let alice = setup().await.hs.register_user("alice").await;
    bridge
        .net
        .invite
        .lock()
        .unwrap()
        .push(alice.user_id().to_owned());
    let ts = now_ms() - 3_600_000;
    let event = remote(
        "general",
        "bob",
        ts,
        RemoteEventKind::Message(MessageContent::text("first words")),
    )
    .with_remote_id("r1");
    let event_id = bridge.net.push(event).await.unwrap().expect("an event id");

    let room = bridge
        .net
        .runtime()
        .portal_room(&passerelle_api::PortalKey::new("test", "general"))
        .await
        .unwrap()
        .unwrap();
    alice.join(&room).await;
    let seen = alice
        .wait_for_event(
            &room,
            |e| e["event_id"] == event_id.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(seen["sender"], "@_test_bob:localhost");
    assert_eq!(seen["content"]["body"], "first words");
    assert_eq!(
        seen["origin_server_ts"].as_u64(),
        Some(ts),
        "remote timestamp kept"
    );
    let (_, profile) = alice
        .request(
            reqwest::Method::GET,
            "/_matrix/client/v3/profile/@_test_bob:localhost",
            None,
        )
        .await;
    assert_eq!(profile["displayname"], "bob (Test)");
    assert_eq!(
        alice.room_state(&room, "m.room.name", "").await.unwrap()["name"],
        "Test general"
    );

    // A chat the module does not bridge is refused, not created.
    let refused = bridge
        .net
        .push(remote(
            "unbridged-1",
            "bob",
            ts,
            RemoteEventKind::Message(MessageContent::text("x")),
        ))
        .await;
    assert!(refused.is_err());

    // Replies and the same remote id twice (a redelivery) are handled.
    let mut reply = MessageContent::text("a reply");
    reply.reply_to = Some("r1".into());
    let reply_id = bridge
        .net
        .push(
            remote("general", "eve", ts + 1, RemoteEventKind::Message(reply)).with_remote_id("r2"),
        )
        .await
        .unwrap()
        .unwrap();
    let seen = alice
        .wait_for_event(
            &room,
            |e| e["event_id"] == reply_id.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(
        seen["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        event_id.as_str()
    );
    let again = bridge
        .net
        .push(
            remote(
                "general",
                "bob",
                ts,
                RemoteEventKind::Message(MessageContent::text("first words")),
            )
            .with_remote_id("r1"),
        )
        .await
        .unwrap();
    assert_eq!(
        again, None,
        "a redelivered remote message is not sent twice"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn matrix_message_reaches_the_module_once_across_replays_and_restarts() {
    let mut bridge = RunningBridge::start(&fresh_db("once").await).await;
    let alice = setup().await.hs.register_user("alice").await;
    let room = portal_with(&bridge, "once", &alice).await;

    let event_id = alice.send_text(&room, "hello remote").await;
    let got = bridge
        .net
        .wait_received("alice's message", |e| e.event_id == event_id)
        .await;
    assert_eq!(got.sender.mxid, "@alice:localhost");
    assert_eq!(got.via, Via::Relay);
    assert!(matches!(&got.kind, MatrixEventKind::Message(c) if c.body == "hello remote"));

    // The homeserver retries a transaction, or sends the event again in
    // another one: neither reaches the module a second time.
    let event = alice
        .wait_for_event(
            &room,
            |e| e["event_id"] == event_id.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(put_txn("replay-1", vec![event.clone()]).await, 200);
    assert_eq!(put_txn("replay-1", vec![event.clone()]).await, 200);
    assert_eq!(put_txn("replay-2", vec![event.clone()]).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let count = bridge
        .net
        .received()
        .iter()
        .filter(|e| e.event_id == event_id)
        .count();
    assert_eq!(count, 1, "delivered once");

    // After a restart, on the same database, still nothing twice.
    bridge.restart().await;
    assert_eq!(put_txn("replay-1", vec![event.clone()]).await, 200);
    assert_eq!(put_txn("replay-3", vec![event]).await, 200);
    let second = alice.send_text(&room, "after restart").await;
    bridge
        .net
        .wait_received("the message sent after the restart", |e| {
            e.event_id == second
        })
        .await;
    assert!(
        bridge.net.received().iter().all(|e| e.event_id != event_id),
        "replayed event re-delivered after restart"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn edits_redactions_and_reactions_map_both_ways() {
    let mut bridge = RunningBridge::start(&fresh_db("edits").await).await;
    let alice = setup().await.hs.register_user("alice").await;
    let room = portal_with(&bridge, "edits", &alice).await;
    let original = alice
        .wait_for_event(
            &room,
            |e| e["content"]["body"] == "hello from remote",
            DEFAULT_TIMEOUT,
        )
        .await;
    let original_id = original["event_id"].as_str().unwrap().to_owned();
    let ts = now_ms();

    // Remote -> Matrix: edit, reaction, delete.
    let edit = RemoteEventKind::Edit {
        target: "r-hello".into(),
        content: MessageContent::text("hello, edited"),
    };
    let edit_id = bridge
        .net
        .push(remote("edits", "bob", ts, edit))
        .await
        .unwrap()
        .unwrap();
    let seen = alice
        .wait_for_event(
            &room,
            |e| e["event_id"] == edit_id.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(seen["content"]["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(
        seen["content"]["m.relates_to"]["event_id"],
        original_id.as_str()
    );
    assert_eq!(seen["content"]["m.new_content"]["body"], "hello, edited");

    let react = RemoteEventKind::Reaction {
        target: "r-hello".into(),
        key: "👍".into(),
    };
    let react_id = bridge
        .net
        .push(remote("edits", "eve", ts, react))
        .await
        .unwrap()
        .unwrap();
    let seen = alice
        .wait_for_event(
            &room,
            |e| e["event_id"] == react_id.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(seen["content"]["m.relates_to"]["key"], "👍");

    bridge
        .net
        .push(remote(
            "edits",
            "bob",
            ts,
            RemoteEventKind::Delete {
                target: "r-hello".into(),
            },
        ))
        .await
        .unwrap();
    alice
        .wait_for_event(
            &room,
            |e| {
                e["event_id"] == original_id.as_str()
                    && e["content"].as_object().is_some_and(|c| c.is_empty())
            },
            DEFAULT_TIMEOUT,
        )
        .await;

    // Matrix -> remote: edit, reaction, redaction, with remote ids resolved.
    let mine = alice.send_text(&room, "typo").await;
    let delivered = bridge
        .net
        .wait_received("alice's message", |e| e.event_id == mine)
        .await;
    let _ = delivered;
    let remote_id_of_mine = bridge
        .net
        .received()
        .iter()
        .position(|e| e.event_id == mine)
        .map(|n| format!("from-matrix-{n}"))
        .unwrap();
    let edit_event = alice
        .send_event(
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "* fixed",
                "m.new_content": {"msgtype": "m.text", "body": "fixed"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": mine}
            }),
        )
        .await;
    let got = bridge
        .net
        .wait_received("the edit", |e| e.event_id == edit_event)
        .await;
    match &got.kind {
        MatrixEventKind::Edit { target, content } => {
            assert_eq!(target.as_str(), remote_id_of_mine);
            assert_eq!(content.body, "fixed");
        }
        other => panic!("expected an edit, got {other:?}"),
    }
    let reaction = alice
        .send_event(
            &room,
            "m.reaction",
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": mine, "key": "🎉"}}),
        )
        .await;
    let got = bridge
        .net
        .wait_received("the reaction", |e| e.event_id == reaction)
        .await;
    assert!(matches!(&got.kind, MatrixEventKind::Reaction { key, .. } if key == "🎉"));
    let redaction = alice.redact(&room, &mine).await;
    let got = bridge
        .net
        .wait_received("the redaction", |e| e.event_id == redaction)
        .await;
    assert!(
        matches!(&got.kind, MatrixEventKind::Redaction { target } if target.as_str() == remote_id_of_mine)
    );
    bridge.stop().await;
}

#[tokio::test]
async fn undeliverable_messages_and_missing_permissions_are_reported_in_the_room() {
    let mut bridge = RunningBridge::start(&fresh_db("perm").await).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let carol = hs.register_user("carol").await;
    let mallory = hs.register_user("mallory").await;
    let room = portal_with(&bridge, "perm", &alice).await;
    // Portals created from the remote side are invite-only; alice brings the others.
    alice.invite(&room, carol.user_id()).await;
    alice.invite(&room, mallory.user_id()).await;
    carol.join(&room).await;
    mallory.join(&room).await;

    let failing = alice.send_text(&room, "please fail now").await;
    let notice = alice
        .wait_for_event(
            &room,
            |e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == failing.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(notice["sender"], "@passerelle:localhost");
    assert_eq!(notice["content"]["msgtype"], "m.notice");
    let text = notice["content"]["body"].as_str().unwrap();
    assert!(
        text.contains("Not delivered") && text.contains("refused"),
        "{text}"
    );

    let from_mallory = mallory.send_text(&room, "let me in").await;
    let notice = alice
        .wait_for_event(
            &room,
            |e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == from_mallory.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert!(
        notice["content"]["body"]
            .as_str()
            .unwrap()
            .contains("not allowed")
    );

    let from_carol = carol.send_text(&room, "relay me").await;
    let got = bridge
        .net
        .wait_received("carol's relayed message", |e| e.event_id == from_carol)
        .await;
    assert_eq!(got.via, Via::Relay);
    assert!(
        bridge
            .net
            .received()
            .iter()
            .all(|e| e.event_id != from_mallory && e.event_id != failing)
    );
    bridge.stop().await;
}

#[tokio::test]
async fn ghost_invites_make_private_chats_and_ranks_become_power_levels() {
    let mut bridge = RunningBridge::start(&fresh_db("dm").await).await;
    let alice = setup().await.hs.register_user("alice").await;

    // Inviting a ghost to a new room makes it a private chat with that user.
    let dm = alice
        .create_room(json!({"is_direct": true, "invite": ["@_test_zoe:localhost"], "preset": "trusted_private_chat"}))
        .await;
    let mut joined = false;
    for _ in 0..100 {
        if alice
            .joined_members(&dm)
            .await
            .iter()
            .any(|m| m == "@_test_zoe:localhost")
        {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(joined, "the ghost joins the private chat");
    let hello = alice.send_text(&dm, "hi zoe").await;
    let got = bridge
        .net
        .wait_received("the private message", |e| e.event_id == hello)
        .await;
    assert_eq!(got.portal.id, "pm/zoe/@alice:localhost");

    // A user the module declines: the ghost leaves again.
    let other = alice
        .create_room(json!({"invite": ["@_test_shy:localhost"]}))
        .await;
    let mut left = false;
    for _ in 0..100 {
        let member = alice
            .room_state(&other, "m.room.member", "@_test_shy:localhost")
            .await;
        if member.as_ref().and_then(|m| m["membership"].as_str()) == Some("leave") {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left, "a declined ghost invite is rejected");

    // An op on the remote side becomes a power level on the ghost.
    let room = portal_with(&bridge, "ranks", &alice).await;
    let op = RemoteEventKind::PowerLevel {
        target: "bob".into(),
        level: 50,
    };
    bridge
        .net
        .push(remote("ranks", "bob", now_ms(), op))
        .await
        .unwrap();
    let power = alice
        .room_state(&room, "m.room.power_levels", "")
        .await
        .unwrap();
    assert_eq!(power["users"]["@_test_bob:localhost"], 50, "{power}");
    let deop = RemoteEventKind::PowerLevel {
        target: "bob".into(),
        level: 0,
    };
    bridge
        .net
        .push(remote("ranks", "bob", now_ms(), deop))
        .await
        .unwrap();
    let power = alice
        .room_state(&room, "m.room.power_levels", "")
        .await
        .unwrap();
    assert!(
        power["users"].get("@_test_bob:localhost").is_none(),
        "{power}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn media_links_serve_matrix_files_to_outsiders_and_refuse_forgeries() {
    let setup = setup().await;
    let extra = format!("media: {{public_url: 'http://127.0.0.1:{}'}}", setup.port);
    let mut bridge = RunningBridge::start_with(&fresh_db("media").await, &extra).await;
    let alice = setup.hs.register_user("alice").await;
    let upload = reqwest::Client::new()
        .post(format!(
            "{}/_matrix/media/v3/upload?filename=notes.txt",
            setup.hs.base_url
        ))
        .bearer_auth(alice.access_token())
        .header("content-type", "text/plain")
        .body("line one\nline two\n")
        .send()
        .await
        .unwrap();
    let mxc = upload.json::<Value>().await.unwrap()["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();

    let link = bridge
        .net
        .runtime()
        .media_link(&mxc, "notes.txt")
        .expect("a link with media.public_url set");
    assert!(
        link.starts_with(&format!(
            "http://127.0.0.1:{}/_passerelle/media/",
            setup.port
        )),
        "{link}"
    );
    let fetched = reqwest::get(&link).await.unwrap();
    assert_eq!(fetched.status().as_u16(), 200);
    assert!(
        fetched.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(fetched.text().await.unwrap(), "line one\nline two\n");

    let forged = link.replacen("/media/", "/media/x", 1);
    assert_eq!(reqwest::get(&forged).await.unwrap().status().as_u16(), 404);
    bridge.stop().await;
}

#[tokio::test]
async fn events_not_delivered_at_shutdown_are_delivered_after_the_restart() {
    let mut bridge = RunningBridge::start(&fresh_db("pending").await).await;
    let alice = setup().await.hs.register_user("alice").await;
    let room = portal_with(&bridge, "pending", &alice).await;
    bridge
        .net
        .offline
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let stuck = alice.send_text(&room, "while the network is down").await;
    for _ in 0..100 {
        if bridge
            .net
            .attempts
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        bridge
            .net
            .attempts
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0,
        "delivery attempted"
    );
    // Stop while the module keeps saying "later": the event stays pending…
    bridge.restart().await;
    // …and the fresh module (online) gets it once, fetched from the homeserver.
    let got = bridge
        .net
        .wait_received("the pending event after the restart", |e| {
            e.event_id == stuck
        })
        .await;
    assert!(
        matches!(&got.kind, MatrixEventKind::Message(c) if c.body == "while the network is down")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bridge
            .net
            .received()
            .iter()
            .filter(|e| e.event_id == stuck)
            .count(),
        1
    );
    let notices = alice.messages(&room).await;
    assert!(
        !notices.iter().any(|e| e["content"]["body"]
            .as_str()
            .is_some_and(|b| b.contains("Not delivered"))),
        "no failure notice for an event that was only delayed"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn what_cannot_be_bridged_is_explained_and_echoes_are_dropped() {
    let mut bridge = RunningBridge::start(&fresh_db("refuse").await).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let carol = hs.register_user("carol").await;
    let room = portal_with(&bridge, "refuse", &alice).await;
    alice.invite(&room, carol.user_id()).await;
    carol.join(&room).await;
    let reply_text = |id: String| {
        move |e: &Value| {
            e["sender"] == "@passerelle:localhost"
                && e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == id.as_str()
        }
    };

    // Editing someone else's message.
    let mine = alice.send_text(&room, "alice's words").await;
    bridge
        .net
        .wait_received("alice's message", |e| e.event_id == mine)
        .await;
    let forged = carol
        .send_event(
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "* carol's words",
                "m.new_content": {"msgtype": "m.text", "body": "carol's words"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": mine}
            }),
        )
        .await;
    let notice = alice
        .wait_for_event(&room, reply_text(forged.clone()), DEFAULT_TIMEOUT)
        .await;
    assert!(
        notice["content"]["body"]
            .as_str()
            .unwrap()
            .contains("Only the author"),
        "{notice}"
    );

    // A message type no network can carry.
    let location = alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.location", "body": "here", "geo_uri": "geo:0,0"}),
        )
        .await;
    let notice = alice
        .wait_for_event(&room, reply_text(location.clone()), DEFAULT_TIMEOUT)
        .await;
    assert!(
        notice["content"]["body"]
            .as_str()
            .unwrap()
            .contains("m.location"),
        "{notice}"
    );

    // Encrypted events: said once, plainly.
    let encrypted = alice
        .send_event(&room, "m.room.encrypted", json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AAAA", "session_id": "s", "sender_key": "k", "device_id": "D"}))
        .await;
    let notice = alice
        .wait_for_event(&room, reply_text(encrypted.clone()), DEFAULT_TIMEOUT)
        .await;
    assert!(
        notice["content"]["body"]
            .as_str()
            .unwrap()
            .contains("encrypted"),
        "{notice}"
    );

    let received = bridge.net.received();
    assert!(
        received
            .iter()
            .all(|e| e.event_id != forged && e.event_id != location && e.event_id != encrypted)
    );
    // The ghost's own message (the first remote message) never came back to the module.
    assert!(
        received
            .iter()
            .all(|e| !e.sender.mxid.starts_with("@_test_")),
        "echo reached the module"
    );

    // The alias of a portal made from a remote message still resolves.
    let by_alias = crate::harness::join_alias(&alice, "#_test_refuse:localhost").await;
    assert_eq!(by_alias, room);
    bridge.stop().await;
}
