//! The bot: management rooms, commands and their permission levels.

use serde_json::json;

use crate::harness::{RunningBridge, fresh_db, setup};
use crate::support::synapse::DEFAULT_TIMEOUT;

fn bot_reply_to(event_id: &str) -> impl Fn(&serde_json::Value) -> bool + '_ {
    move |e| {
        e["sender"] == "@passerelle:localhost"
            && e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id
    }
}

#[tokio::test]
async fn management_room_answers_commands_and_link_needs_admin() {
    let mut bridge = RunningBridge::start(&fresh_db("cmd").await).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;
    let dave = hs.register_user("dave").await;

    // A DM with the bot becomes alice's management room.
    let dm = alice.create_room(json!({"is_direct": true, "invite": ["@passerelle:localhost"], "preset": "trusted_private_chat"})).await;
    alice
        .wait_for_event(
            &dm,
            |e| e["sender"] == "@passerelle:localhost" && e["content"]["msgtype"] == "m.notice",
            DEFAULT_TIMEOUT,
        )
        .await;
    let help = alice.send_text(&dm, "help").await;
    let reply = alice
        .wait_for_event(&dm, bot_reply_to(&help), DEFAULT_TIMEOUT)
        .await;
    let body = reply["content"]["body"].as_str().unwrap();
    assert!(
        body.contains("link test <chat id>") && body.contains("ping") && body.contains("unlink"),
        "{body}"
    );
    let version = alice.send_text(&dm, "version").await;
    let reply = alice
        .wait_for_event(&dm, bot_reply_to(&version), DEFAULT_TIMEOUT)
        .await;
    assert!(
        reply["content"]["body"]
            .as_str()
            .unwrap()
            .starts_with("Passerelle ")
    );
    let ping = alice.send_text(&dm, "ping").await;
    let reply = alice
        .wait_for_event(&dm, bot_reply_to(&ping), DEFAULT_TIMEOUT)
        .await;
    assert!(
        reply["content"]["body"]
            .as_str()
            .unwrap()
            .starts_with("Pong")
    );

    // In another room the prefix is needed; `link` is for admins only.
    let room = dave.create_room(json!({"preset": "public_chat", "invite": ["@passerelle:localhost", "@alice:localhost"]})).await;
    alice.join(&room).await;
    // Without power the bot cannot mark the room as bridged, and says so.
    let early = alice.send_text(&room, "!passerelle link test chat-9").await;
    let reply = alice
        .wait_for_event(&room, bot_reply_to(&early), DEFAULT_TIMEOUT)
        .await;
    assert!(
        reply["content"]["body"]
            .as_str()
            .unwrap()
            .contains("power level"),
        "{reply}"
    );
    let mut power = dave
        .room_state(&room, "m.room.power_levels", "")
        .await
        .unwrap();
    power["users"]["@passerelle:localhost"] = json!(100);
    dave.set_state(&room, "m.room.power_levels", "", power)
        .await;
    let denied = dave.send_text(&room, "!passerelle link test chat-9").await;
    let reply = dave
        .wait_for_event(&room, bot_reply_to(&denied), DEFAULT_TIMEOUT)
        .await;
    assert!(
        reply["content"]["body"]
            .as_str()
            .unwrap()
            .contains("`admin` permission"),
        "{reply}"
    );
    let linked = alice.send_text(&room, "!passerelle link test chat-9").await;
    let reply = alice
        .wait_for_event(&room, bot_reply_to(&linked), DEFAULT_TIMEOUT)
        .await;
    assert_eq!(reply["content"]["body"], "Linked to test chat chat-9.");
    assert!(
        alice
            .room_state(&room, "m.bridge", "passerelle://test/chat-9")
            .await
            .is_some()
    );

    // The linked room now bridges.
    let hello = dave.send_text(&room, "to chat 9").await;
    let got = bridge
        .net
        .wait_received("dave's message in the linked room", |e| e.event_id == hello)
        .await;
    assert_eq!(got.portal.id, "chat-9");
    assert_eq!(got.via, passerelle_api::Via::Relay);

    // `login` in a shared room is refused, and the credentials are redacted.
    let exposed = dave
        .send_text(&room, "!passerelle login test dave-remote")
        .await;
    let reply = dave
        .wait_for_event(&room, bot_reply_to(&exposed), DEFAULT_TIMEOUT)
        .await;
    assert!(
        reply["content"]["body"]
            .as_str()
            .unwrap()
            .contains("management room"),
        "{reply}"
    );
    let redacted = dave
        .wait_for_event(
            &room,
            |e| {
                e["event_id"] == exposed.as_str()
                    && e["content"].as_object().is_some_and(|c| c.is_empty())
            },
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(
        redacted["unsigned"]["redacted_because"]["sender"],
        "@passerelle:localhost"
    );

    // With a login, dave speaks as himself; after logout, through the relay again.
    let dave_dm = dave
        .create_room(json!({"is_direct": true, "invite": ["@passerelle:localhost"], "preset": "trusted_private_chat"}))
        .await;
    dave.wait_for_event(
        &dave_dm,
        |e| e["sender"] == "@passerelle:localhost",
        DEFAULT_TIMEOUT,
    )
    .await;
    let login = dave.send_text(&dave_dm, "login test dave-remote").await;
    let reply = dave
        .wait_for_event(&dave_dm, bot_reply_to(&login), DEFAULT_TIMEOUT)
        .await;
    assert_eq!(reply["content"]["body"], "Logged in as dave-remote.");
    let own = dave.send_text(&room, "as myself").await;
    let got = bridge
        .net
        .wait_received("dave's message with a login", |e| e.event_id == own)
        .await;
    assert_eq!(
        got.via,
        passerelle_api::Via::Login {
            login_id: "dave-remote".to_owned()
        }
    );
    let logout = dave.send_text(&dave_dm, "logout test").await;
    let reply = dave
        .wait_for_event(&dave_dm, bot_reply_to(&logout), DEFAULT_TIMEOUT)
        .await;
    assert_eq!(reply["content"]["body"], "Logged out (1 login(s)).");
    let relayed = dave.send_text(&room, "relayed again").await;
    let got = bridge
        .net
        .wait_received("dave's message after logout", |e| e.event_id == relayed)
        .await;
    assert_eq!(got.via, passerelle_api::Via::Relay);
    bridge.stop().await;
}

#[tokio::test]
async fn invites_from_users_without_permission_are_refused() {
    let mut bridge = RunningBridge::start(&fresh_db("invite").await).await;
    let hs = setup().await.hs;
    let mallory = hs.register_user("mallory").await;
    let room = mallory
        .create_room(json!({"invite": ["@passerelle:localhost"]}))
        .await;
    let mut left = false;
    for _ in 0..100 {
        let state = mallory
            .room_state(&room, "m.room.member", "@passerelle:localhost")
            .await;
        if state.as_ref().and_then(|s| s["membership"].as_str()) == Some("leave") {
            left = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(left, "the bot should reject the invite");
    bridge.stop().await;
}
