//! The Telegram module against a real Synapse, with Telegram played by the
//! third-party npm package telegram-test-api (the text path) and by the
//! project's own Bot API fake (long polling, media, reactions, channels,
//! forum topics, the kill -9 test).

use std::sync::Arc;
use std::time::{Duration, Instant};

use passerelle_api::Network;
use serde_json::{Value, json};

use crate::harness::{RunningBridge, config_text, fresh_db, setup, take_turn};
use crate::support::synapse::{DEFAULT_TIMEOUT, TestClient};
use crate::support::telegram_fake::{ChatKind, FakeTelegram, tiny_png};
use crate::support::telegram_test_api::TelegramTestApi;

pub(crate) const TOKEN: &str = "123456:test-token";
const BOT: &str = "@passerelle:localhost";

pub(crate) fn telegram_module(api_url: &str, extra: Value) -> Arc<dyn Network> {
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
    let room = user.room_with_bot(BOT, json!({})).await;
    let reply = user.command(&room, &format!("link telegram {chat}")).await;
    assert!(
        reply.starts_with("This room is now bridged to the Telegram"),
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

/// The Matrix event that bridged Telegram message `ghost_user`/`body`.
async fn bridged(alice: &TestClient, room: &str, user: i64, body: &str) -> Value {
    alice
        .wait_for_event(room, from_ghost(user, body), DEFAULT_TIMEOUT)
        .await
}

/// Starts the fake with one supergroup and one user, the bot an admin so
/// that reactions and member updates reach it.
pub(crate) async fn fake_with_group(chat: i64, kind: ChatKind) -> FakeTelegram {
    let fake = FakeTelegram::start(TOKEN).await;
    fake.add_user(7, "Ada", Some("Lovelace"), Some("ada"));
    fake.add_chat(chat, kind, "Friends");
    fake.set_member(chat, 7, "member");
    fake.set_member(chat, fake.bot_id(), "administrator");
    fake
}

/// Waits until the module polled once, so its `allowed_updates` are known
/// to the fake (which filters updates when they happen, as Telegram does).
async fn first_poll(fake: &FakeTelegram) {
    fake.wait_call("getUpdates", 1, DEFAULT_TIMEOUT).await;
}

#[tokio::test]
async fn a_group_both_ways_with_replies_edits_reactions_and_media() {
    let chat = -1002000000001;
    let fake = fake_with_group(chat, ChatKind::Supergroup).await;
    let photo = tiny_png(3, 2);
    fake.set_profile_photo(7, tiny_png(5, 5));
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("telegram-group").await,
        "",
        vec![telegram_module(&fake.api_url(), json!({}))],
    )
    .await;
    first_poll(&fake).await;
    let alice = hs.register_user("alice").await;
    let room = linked_room(&alice, chat).await;

    // Telegram -> Matrix: the ghost has the user's name and photo.
    let hello = fake.user_sends(chat, 7, "hello");
    let hello_event = bridged(&alice, &room, 7, "hello").await;
    let hello_event_id = hello_event["event_id"].as_str().unwrap().to_owned();
    let profile = alice
        .call(
            reqwest::Method::GET,
            "/_matrix/client/v3/profile/@_telegram_7:localhost",
            None,
        )
        .await;
    assert_eq!(profile["displayname"], "Ada Lovelace");
    let avatar = profile["avatar_url"].as_str().expect("ghost avatar set");
    assert_eq!(alice.download(avatar).await, tiny_png(5, 5));

    // Entities become Matrix HTML, and Matrix HTML becomes Telegram HTML.
    fake.user_sends_with(
        chat,
        7,
        json!({"text": "bold move", "entities": [{"type": "bold", "offset": 0, "length": 4}]}),
    );
    let bold = bridged(&alice, &room, 7, "bold move").await;
    assert_eq!(bold["content"]["format"], "org.matrix.custom.html");
    assert_eq!(bold["content"]["formatted_body"], "<b>bold</b> move");
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "**hi** <there>", "format": "org.matrix.custom.html",
                   "formatted_body": "<strong>hi</strong> &lt;there&gt;"}),
        )
        .await;
    fake.wait_until("the relayed formatting", DEFAULT_TIMEOUT, |f| {
        f.calls("sendMessage")
            .iter()
            .any(|c| c["text"] == "<b>alice</b>: <b>hi</b> &lt;there&gt;")
    })
    .await;

    // A reply, an edit, a reaction and its removal.
    fake.user_sends_with(
        chat,
        7,
        json!({"text": "replying", "reply_to_message_id": hello}),
    );
    let reply = bridged(&alice, &room, 7, "replying").await;
    assert_eq!(
        reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        hello_event_id.as_str()
    );
    fake.user_edits(chat, hello, "hello, edited");
    let edit = alice
        .wait_for_event(
            &room,
            |e| e["content"]["m.relates_to"]["rel_type"] == "m.replace",
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(
        edit["content"]["m.relates_to"]["event_id"],
        hello_event_id.as_str()
    );
    assert_eq!(edit["content"]["m.new_content"]["body"], "hello, edited");
    fake.user_reacts(chat, hello, 7, &["👍"]);
    let reaction = alice
        .wait_for_event(&room, |e| e["type"] == "m.reaction", DEFAULT_TIMEOUT)
        .await;
    assert_eq!(reaction["sender"], "@_telegram_7:localhost");
    assert_eq!(reaction["content"]["m.relates_to"]["key"], "👍");
    assert_eq!(
        reaction["content"]["m.relates_to"]["event_id"],
        hello_event_id.as_str()
    );
    fake.user_reacts(chat, hello, 7, &[]);
    alice
        .wait_for_event(
            &room,
            |e| e["type"] == "m.room.redaction" && e["redacts"] == reaction["event_id"],
            DEFAULT_TIMEOUT,
        )
        .await;

    // A photo with a caption arrives as an image with the same bytes.
    let file = fake.add_file(photo.clone(), Some("image/png"), None);
    fake.user_sends_with(
        chat,
        7,
        json!({"photo": [{"file_id": file["file_id"], "file_unique_id": file["file_unique_id"],
                          "width": 3, "height": 2, "file_size": photo.len()}],
               "caption": "a tiny picture"}),
    );
    let image = alice
        .wait_for_event(
            &room,
            |e| e["content"]["msgtype"] == "m.image",
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(image["content"]["body"], "a tiny picture");
    let mxc = image["content"]["url"].as_str().unwrap();
    assert_eq!(alice.download(mxc).await, photo);

    // Matrix -> Telegram: text with the sender's name, a reply, a reaction,
    // an image, and a deletion.
    let sent = alice.send_text(&room, "hi from Matrix").await;
    fake.wait_until("the relayed text", DEFAULT_TIMEOUT, |f| {
        f.calls("sendMessage")
            .iter()
            .any(|c| c["text"] == "<b>alice</b>: hi from Matrix")
    })
    .await;
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "answering",
                   "m.relates_to": {"m.in_reply_to": {"event_id": hello_event_id}}}),
        )
        .await;
    fake.wait_until("the relayed reply", DEFAULT_TIMEOUT, |f| {
        f.calls("sendMessage")
            .iter()
            .any(|c| c["reply_parameters"]["message_id"] == hello)
    })
    .await;
    alice
        .send_event(
            &room,
            "m.reaction",
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": hello_event_id, "key": "❤️"}}),
        )
        .await;
    fake.wait_until("the bot's reaction", DEFAULT_TIMEOUT, |f| {
        f.reactions(chat, hello) == ["❤"]
    })
    .await;
    let crab = alice
        .send_event(
            &room,
            "m.reaction",
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": hello_event_id, "key": "🦀"}}),
        )
        .await;
    let refusal = alice
        .wait_for_event(
            &room,
            |e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == crab.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert!(
        refusal["content"]["body"]
            .as_str()
            .unwrap()
            .contains("Telegram bots can only react with"),
        "{refusal}"
    );
    let mxc = alice.upload(photo.clone(), "image/png").await;
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.image", "body": "look", "filename": "pic.png", "url": mxc,
                   "info": {"mimetype": "image/png", "size": photo.len()}}),
        )
        .await;
    let calls = fake.wait_call("sendPhoto", 1, DEFAULT_TIMEOUT).await;
    assert_eq!(calls[0]["caption"], "<b>alice</b>: look");
    assert_eq!(calls[0]["photo"]["file_bytes_len"], photo.len());
    alice.redact(&room, &sent).await;
    fake.wait_call("deleteMessage", 1, DEFAULT_TIMEOUT).await;
    assert!(
        fake.messages(chat)
            .iter()
            .all(|m| m["text"] != "alice: hi from Matrix"),
        "the relayed message is deleted"
    );
    // Nothing was sent twice.
    assert_eq!(
        fake.calls("sendMessage")
            .iter()
            .filter(|c| c["text"] == "<b>alice</b>: hi from Matrix")
            .count(),
        1
    );
    bridge.stop().await;
}

#[tokio::test]
async fn channels_are_read_only_rooms_and_forum_topics_are_threads() {
    let channel = -1002000000002;
    let forum = -1002000000003;
    let fake = FakeTelegram::start(TOKEN).await;
    fake.add_user(7, "Ada", None, None);
    fake.add_chat(channel, ChatKind::Channel, "News");
    fake.add_chat(forum, ChatKind::SupergroupForum, "Clubs");
    fake.set_member(forum, 7, "member");
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("telegram-channel").await,
        "",
        vec![telegram_module(&fake.api_url(), json!({}))],
    )
    .await;
    first_poll(&fake).await;
    let alice = hs.register_user("alice").await;

    // A channel: posts come from the channel's ghost; the room is read-only
    // for everyone but the bridge and room admins, whose posts go out.
    let news = linked_room(&alice, channel).await;
    fake.channel_posts(channel, "breaking news");
    bridged(&alice, &news, channel, "breaking news").await;
    let power = alice
        .room_state(&news, "m.room.power_levels", "")
        .await
        .expect("power levels");
    let events_default = power["events_default"].as_i64().unwrap_or(0);
    let users_default = power["users_default"].as_i64().unwrap_or(0);
    assert!(
        events_default > users_default,
        "ordinary members cannot post: {power}"
    );
    alice.send_text(&news, "statement from the board").await;
    fake.wait_until("the admin's post in the channel", DEFAULT_TIMEOUT, |f| {
        f.calls("sendMessage").iter().any(|c| {
            c["chat_id"] == channel && c["text"] == "<b>alice</b>: statement from the board"
        })
    })
    .await;

    // A forum: a topic is a thread rooted at its first message.
    let clubs = linked_room(&alice, forum).await;
    let topic = fake.add_topic(forum, "Hiking");
    let root = alice
        .wait_for_event(
            &clubs,
            |e| e["content"]["body"] == "Topic created: Hiking",
            DEFAULT_TIMEOUT,
        )
        .await;
    let root_id = root["event_id"].as_str().unwrap().to_owned();
    fake.user_sends_with(
        forum,
        7,
        json!({"text": "who comes on Sunday?", "message_thread_id": topic}),
    );
    let in_topic = bridged(&alice, &clubs, 7, "who comes on Sunday?").await;
    assert_eq!(in_topic["content"]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(
        in_topic["content"]["m.relates_to"]["event_id"],
        root_id.as_str()
    );
    alice
        .send_event(
            &clubs,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "me!",
                   "m.relates_to": {"rel_type": "m.thread", "event_id": root_id,
                                    "is_falling_back": true,
                                    "m.in_reply_to": {"event_id": in_topic["event_id"]}}}),
        )
        .await;
    fake.wait_until("the answer in the topic", DEFAULT_TIMEOUT, |f| {
        f.calls("sendMessage").iter().any(|c| {
            c["chat_id"] == forum
                && c["message_thread_id"] == topic
                && c["text"] == "<b>alice</b>: me!"
        })
    })
    .await;
    bridge.stop().await;
}

/// The bodies of the room's `m.room.message` events, oldest first (up to 500).
async fn bodies(client: &TestClient, room: &str) -> Vec<String> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=500",
        crate::support::synapse::enc(room)
    );
    let (status, answer) = client.request(reqwest::Method::GET, &path, None).await;
    if !status.is_success() {
        return Vec::new();
    }
    let mut out: Vec<String> = answer["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    out.reverse();
    out
}

fn spawn_daemon(config: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_passerelle"))
        .args(["run", "-c"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_burst_loses_and_duplicates_nothing() {
    const BURST: usize = 100;
    let chat = -1002000000004;
    let fake = fake_with_group(chat, ChatKind::Supergroup).await;
    let setup = setup().await;
    let hs = setup.hs;
    let db = fresh_db("telegram-kill").await;
    let _turn = take_turn().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let extra = format!(
        "bridges:\n  telegram: {{enabled: true, bot_token: '{TOKEN}', api_url: '{}', poll_timeout: 1s}}",
        fake.api_url()
    );
    std::fs::write(
        &config,
        config_text(
            setup.port,
            &hs.base_url,
            &setup.registration_path,
            &db,
            &extra,
        ),
    )
    .unwrap();
    let mut first = spawn_daemon(&config);
    first_poll(&fake).await;
    let alice = hs.register_user("alice").await;
    let room = linked_room(&alice, chat).await;

    for i in 0..BURST {
        fake.user_sends(chat, 7, &format!("burst {i}"));
    }
    // Let part of the burst through, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = bodies(&alice, &room)
            .await
            .iter()
            .filter(|b| b.starts_with("burst "))
            .count();
        if n >= 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the burst never started arriving"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = bodies(&alice, &room)
        .await
        .iter()
        .filter(|b| b.starts_with("burst "))
        .count();
    assert!(
        at_kill < BURST,
        "the whole burst was through before the kill; the test proves nothing"
    );
    assert!(
        fake.pending_updates() > 0,
        "unconfirmed updates remain at Telegram after the kill"
    );

    let mut second = spawn_daemon(&config);
    let expected: Vec<String> = (0..BURST).map(|i| format!("burst {i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got: Vec<String> = bodies(&alice, &room)
            .await
            .into_iter()
            .filter(|b| b.starts_with("burst "))
            .collect();
        if got.len() >= BURST {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {BURST} after the restart (killed at {at_kill})",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a duplicate time to show up, and the offset time to be confirmed.
    fake.wait_until("every update confirmed", DEFAULT_TIMEOUT, |f| {
        f.pending_updates() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got: Vec<String> = bodies(&alice, &room)
        .await
        .into_iter()
        .filter(|b| b.starts_with("burst "))
        .collect();
    assert_eq!(
        got, expected,
        "every message once, in order (killed at {at_kill})"
    );
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test]
async fn webhook_mode_checks_the_secret_and_delivers() {
    let chat = -1002000000005;
    let fake = fake_with_group(chat, ChatKind::Supergroup).await;
    let port = crate::support::free_port();
    let secret = "s3cret_Token-1";
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("telegram-webhook").await,
        "",
        vec![telegram_module(
            &fake.api_url(),
            json!({"mode": "webhook", "webhook": {
                "listen": format!("127.0.0.1:{port}"),
                "url": format!("http://127.0.0.1:{port}/telegram"),
                "secret_token": secret,
            }}),
        )],
    )
    .await;
    let registered = fake.wait_call("setWebhook", 1, DEFAULT_TIMEOUT).await;
    assert_eq!(registered[0]["secret_token"], secret);
    assert_eq!(registered[0]["max_connections"], 1);
    assert!(
        fake.calls("getUpdates").is_empty(),
        "no polling in webhook mode"
    );

    // Without the secret, or with a wrong one: refused.
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/telegram");
    let update = json!({"update_id": 1, "message": {"message_id": 1, "date": 1,
        "chat": {"id": chat, "type": "supergroup", "title": "Friends"},
        "from": {"id": 7, "is_bot": false, "first_name": "Mallory"}, "text": "forged"}});
    for header in [None, Some("wrong")] {
        let mut request = http.post(&url).json(&update);
        if let Some(h) = header {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", h);
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), 401);
    }

    let alice = hs.register_user("alice").await;
    let room = linked_room(&alice, chat).await;
    fake.user_sends(chat, 7, "through the webhook");
    bridged(&alice, &room, 7, "through the webhook").await;
    assert!(
        bodies(&alice, &room).await.iter().all(|b| b != "forged"),
        "a request without the secret never reaches Matrix"
    );
    assert_eq!(fake.webhook_info()["pending_update_count"], 0);
    bridge.stop().await;
}

#[tokio::test]
async fn auto_portals_membership_title_photo_pins_and_limits() {
    let chat = -1002000000006;
    let fake = fake_with_group(chat, ChatKind::Supergroup).await;
    fake.add_user(8, "Bea", None, None);
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("telegram-auto").await,
        "",
        vec![telegram_module(
            &fake.api_url(),
            json!({"auto_portals": true, "max_upload_bytes": 1000}),
        )],
    )
    .await;
    first_poll(&fake).await;
    let alice = hs.register_user("alice").await;

    // The first message creates the portal; the bridge admins are invited.
    let since = alice.sync_token().await;
    let first = fake.user_sends(chat, 7, "anyone?");
    let room = alice.wait_invite(&since).await;
    alice.join(&room).await;
    bridged(&alice, &room, 7, "anyone?").await;
    let name = alice.room_state(&room, "m.room.name", "").await.unwrap();
    assert_eq!(name["name"], "Friends");

    // Membership, title, photo and pins.
    fake.member_joins(chat, 8);
    alice
        .wait_for_event(
            &room,
            |e| {
                e["type"] == "m.room.member"
                    && e["state_key"] == "@_telegram_8:localhost"
                    && e["content"]["membership"] == "join"
            },
            DEFAULT_TIMEOUT,
        )
        .await;
    fake.member_leaves(chat, 8);
    alice
        .wait_for_event(
            &room,
            |e| {
                e["type"] == "m.room.member"
                    && e["state_key"] == "@_telegram_8:localhost"
                    && e["content"]["membership"] == "leave"
            },
            DEFAULT_TIMEOUT,
        )
        .await;
    fake.set_title(chat, "Best friends");
    alice
        .wait_for_event(
            &room,
            |e| e["type"] == "m.room.name" && e["content"]["name"] == "Best friends",
            DEFAULT_TIMEOUT,
        )
        .await;
    let photo = tiny_png(4, 4);
    fake.set_chat_photo(chat, photo.clone());
    let avatar = alice
        .wait_for_event(&room, |e| e["type"] == "m.room.avatar", DEFAULT_TIMEOUT)
        .await;
    let url = avatar["content"]["url"].as_str().unwrap();
    assert_eq!(alice.download(url).await, photo);
    fake.pin(chat, first);
    let first_event = bridged(&alice, &room, 7, "anyone?").await;
    let pins = alice
        .wait_for_event(
            &room,
            |e| e["type"] == "m.room.pinned_events",
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(pins["content"]["pinned"], json!([first_event["event_id"]]));

    // A file over max_upload_bytes is refused with a notice, not sent.
    let big = vec![0u8; 5000];
    let mxc = alice.upload(big.clone(), "application/octet-stream").await;
    let file = alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.file", "body": "big.bin", "filename": "big.bin", "url": mxc,
                   "info": {"mimetype": "application/octet-stream", "size": big.len()}}),
        )
        .await;
    let refusal = alice
        .wait_for_event(
            &room,
            |e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == file.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert!(
        refusal["content"]["body"]
            .as_str()
            .unwrap()
            .contains("too large for Telegram"),
        "{refusal}"
    );
    assert!(fake.calls("sendDocument").is_empty());
    bridge.stop().await;
}

#[tokio::test]
async fn a_chat_admin_confirms_a_link_with_a_code() {
    let chat = -1002000000007;
    let fake = fake_with_group(chat, ChatKind::Supergroup).await;
    fake.add_user(9, "Owner", None, None);
    fake.set_member(chat, 9, "creator");
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("telegram-code").await,
        "",
        vec![telegram_module(&fake.api_url(), json!({}))],
    )
    .await;
    first_poll(&fake).await;
    // dave has the `user` permission, not `admin`.
    let dave = hs.register_user("dave").await;
    let room = dave.room_with_bot(BOT, json!({})).await;
    let text = dave.command(&room, &format!("link telegram {chat}")).await;
    let text = text.as_str();
    let code = text
        .split("`/link ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_owned();
    // A plain member's code does nothing; the owner's links the chat.
    fake.user_sends(chat, 7, &format!("/link {code}"));
    fake.wait_until("the refusal", DEFAULT_TIMEOUT, |f| {
        f.calls("sendMessage")
            .iter()
            .any(|c| c["text"] == "Only an admin of this chat can link it.")
    })
    .await;
    fake.user_sends(chat, 9, &format!("/link {code}"));
    fake.wait_until("the confirmation", DEFAULT_TIMEOUT, |f| {
        f.calls("sendMessage")
            .iter()
            .any(|c| c["text"] == "This chat is now bridged to Matrix.")
    })
    .await;
    fake.user_sends(chat, 7, "linked!");
    bridged(&dave, &room, 7, "linked!").await;
    bridge.stop().await;
}
