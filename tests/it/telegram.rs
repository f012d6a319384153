//! The Telegram module against a real Synapse, with Telegram played by the
//! third-party npm package telegram-test-api (the text path) and by the
//! project's own Bot API fake (long polling, media, reactions, channels,
//! forum topics, the kill -9 test).

use std::sync::Arc;
use std::time::Duration;

use passerelle_api::Network;
use serde_json::{Value, json};

use crate::harness::{RunningBridge, fresh_db, setup};
use crate::support::synapse::{DEFAULT_TIMEOUT, TestClient};
use crate::support::telegram_test_api::TelegramTestApi;

const TOKEN: &str = "123456:test-token";
const BOT: &str = "@passerelle:localhost";

fn telegram_module(api_url: &str, extra: Value) -> Arc<dyn Network> {
    let mut config = json!({
        "enabled": true, "bot_token": TOKEN, "api_url": api_url, "poll_timeout": "1s",
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    Arc::new(passerelle_telegram::TelegramModule::new(
        serde_json::from_value(config).unwrap(),
    ))
}

/// A room of `user`'s where the bridge bot has power, linked to `chat`.
async fn linked_room(user: &TestClient, chat: i64) -> String {
    let room = user
        .create_room(json!({
            "preset": "private_chat",
            "invite": [BOT],
            "power_level_content_override": {"users": {BOT: 100}}
        }))
        .await;
    user.wait_for_event(
        &room,
        |e| {
            e["type"] == "m.room.member"
                && e["state_key"] == BOT
                && e["content"]["membership"] == "join"
        },
        DEFAULT_TIMEOUT,
    )
    .await;
    let link = user
        .send_text(&room, &format!("!passerelle link telegram {chat}"))
        .await;
    let reply = user
        .wait_for_event(
            &room,
            |e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == link.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert!(
        reply["content"]["body"]
            .as_str()
            .unwrap()
            .starts_with("This room is now bridged to the Telegram"),
        "{reply}"
    );
    room
}

fn from_ghost<'a>(user: i64, body: &'a str) -> impl Fn(&Value) -> bool + 'a {
    let ghost = format!("@_telegram_{user}:localhost");
    move |e| e["sender"] == ghost.as_str() && e["content"]["body"] == body
}

#[tokio::test]
async fn text_send_edit_and_delete_through_telegram_test_api() {
    let tta = TelegramTestApi::start().await;
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("telegram-tta").await,
        "",
        vec![telegram_module(&tta.api_url(), json!({}))],
    )
    .await;
    let alice = hs.register_user("alice").await;
    let chat = -1001000000001;
    let room = linked_room(&alice, chat).await;

    // Telegram -> Matrix.
    tta.user_sends(TOKEN, chat, 4242, "hello from Telegram")
        .await;
    alice
        .wait_for_event(
            &room,
            from_ghost(4242, "hello from Telegram"),
            DEFAULT_TIMEOUT,
        )
        .await;

    // Matrix -> Telegram, then an edit and a redaction of it.
    let sent = alice.send_text(&room, "hello from Matrix").await;
    let expected = "<b>alice</b>: hello from Matrix";
    let messages = tta
        .wait_for_bot_messages(TOKEN, chat, DEFAULT_TIMEOUT, |m| {
            m.iter().any(|m| m["text"] == expected)
        })
        .await;
    let id = messages.iter().find(|m| m["text"] == expected).unwrap()["message_id"]
        .as_i64()
        .unwrap();
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "* hello again",
                "m.new_content": {"msgtype": "m.text", "body": "hello again"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": sent},
            }),
        )
        .await;
    tta.wait_for_bot_messages(TOKEN, chat, DEFAULT_TIMEOUT, |m| {
        m.iter()
            .any(|m| m["message_id"] == id && m["text"] == "<b>alice</b>: hello again")
    })
    .await;
    alice.redact(&room, &sent).await;
    tta.wait_for_bot_messages(TOKEN, chat, DEFAULT_TIMEOUT, |m| {
        m.iter().all(|m| m["message_id"] != id)
    })
    .await;
    // Exactly one bot message was ever sent to the chat, and it is gone.
    assert!(tta.bot_message(TOKEN, chat, id).await.is_none());
    bridge.stop().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}
