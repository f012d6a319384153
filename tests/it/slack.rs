//! The Slack module against a real Synapse, with Slack played by the
//! project's own fake (Web API, Socket Mode, docs/fakes/slack.md).

use std::sync::Arc;
use std::time::Duration;

use passerelle_api::Network;
use serde_json::{Value, json};

use crate::harness::{RunningBridge, fresh_db, setup};
use crate::support::slack_fake::{FakeSlack, tiny_png};
use crate::support::synapse::{DEFAULT_TIMEOUT, TestClient};

const BOT: &str = "@passerelle:localhost";
const GHOST: &str = "@_slack_t0fake_u1:localhost";

fn slack_module(fake: &FakeSlack) -> Arc<dyn Network> {
    let config = json!({
        "enabled": true, "api_url": fake.api_url(),
        "workspaces": {"acme": {"bot_token": fake.bot_token(), "app_token": fake.app_token()}},
    });
    Arc::new(passerelle_slack::SlackModule::new(
        serde_json::from_value(config).unwrap(),
    ))
}

async fn fake_workspace() -> FakeSlack {
    let fake = FakeSlack::start().await;
    fake.add_user("U1", "ada", "Ada", Some(tiny_png(6, 6)));
    fake.add_channel("C1", "general", false);
    fake.join("C1", &fake.bot_user_id());
    fake.join("C1", "U1");
    fake
}

async fn connected(fake: &FakeSlack) {
    fake.wait_until("a Socket Mode connection", DEFAULT_TIMEOUT, |f| {
        f.open_sockets() >= 1
    })
    .await;
}

async fn linked_room(user: &TestClient, channel: &str) -> String {
    let room = user.room_with_bot(BOT, json!({})).await;
    let reply = user.command(&room, &format!("link slack {channel}")).await;
    assert!(
        reply.starts_with("This room is now bridged to #")
            && reply.ends_with(" in the Slack workspace acme."),
        "{reply}"
    );
    room
}

/// `login slack acme <token>` in a new management room (a DM with the bot),
/// which it returns.
async fn log_in(user: &TestClient, token: &str) -> String {
    let dm = user
        .room_with_bot(
            BOT,
            json!({"is_direct": true, "preset": "trusted_private_chat",
                "power_level_content_override": null}),
        )
        .await;
    let sent = user
        .send_text(&dm, &format!("login slack acme {token}"))
        .await;
    let reply = user
        .wait_for_event(
            &dm,
            |e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == sent.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert!(
        reply["content"]["body"]
            .as_str()
            .unwrap()
            .starts_with("Logged in to acme as"),
        "{reply}"
    );
    dm
}

fn from_ghost(body: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["sender"] == GHOST && e["content"]["body"] == body
}

#[tokio::test]
async fn a_channel_both_ways_with_threads_edits_deletions_reactions_and_files() {
    let fake = fake_workspace().await;
    let hs = setup().await.hs;
    let mut bridge =
        RunningBridge::start_with_modules(&fresh_db("slack").await, "", vec![slack_module(&fake)])
            .await;
    connected(&fake).await;
    let alice = hs.register_user("alice").await;
    let room = linked_room(&alice, "C1").await;

    // Slack -> Matrix: mrkdwn, the ghost's profile, a thread, an edit, a
    // reaction, a deletion and a file.
    let root_ts = fake.user_posts("C1", "U1", "hello *world*");
    let root = alice
        .wait_for_event(&room, from_ghost("hello *world*"), DEFAULT_TIMEOUT)
        .await;
    assert_eq!(root["content"]["formatted_body"], "hello <b>world</b>");
    let root_id = root["event_id"].as_str().unwrap().to_owned();
    let profile = alice
        .call(
            reqwest::Method::GET,
            &format!("/_matrix/client/v3/profile/{GHOST}"),
            None,
        )
        .await;
    assert_eq!(profile["displayname"], "Ada");
    fake.user_posts_in_thread("C1", "U1", &root_ts, "in the thread");
    let in_thread = alice
        .wait_for_event(&room, from_ghost("in the thread"), DEFAULT_TIMEOUT)
        .await;
    assert_eq!(in_thread["content"]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(
        in_thread["content"]["m.relates_to"]["event_id"],
        root_id.as_str()
    );
    fake.user_edits("C1", &root_ts, "hello again");
    let edit = alice
        .wait_for_event(
            &room,
            |e| e["content"]["m.relates_to"]["rel_type"] == "m.replace",
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(edit["content"]["m.new_content"]["body"], "hello again");
    assert_eq!(
        edit["content"]["m.relates_to"]["event_id"],
        root_id.as_str()
    );
    fake.user_reacts("C1", &root_ts, "U1", "thumbsup");
    let reaction = alice
        .wait_for_event(&room, |e| e["type"] == "m.reaction", DEFAULT_TIMEOUT)
        .await;
    assert_eq!(reaction["content"]["m.relates_to"]["key"], "👍");
    let doomed_ts = fake.user_posts("C1", "U1", "to be deleted");
    let doomed = alice
        .wait_for_event(&room, from_ghost("to be deleted"), DEFAULT_TIMEOUT)
        .await;
    fake.user_deletes("C1", &doomed_ts);
    alice
        .wait_for_event(
            &room,
            |e| e["type"] == "m.room.redaction" && e["redacts"] == doomed["event_id"],
            DEFAULT_TIMEOUT,
        )
        .await;
    let picture = tiny_png(3, 3);
    fake.user_uploads(
        "C1",
        "U1",
        picture.clone(),
        "pic.png",
        "image/png",
        "a picture",
    );
    let image = alice
        .wait_for_event(
            &room,
            |e| e["content"]["msgtype"] == "m.image",
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(image["content"]["body"], "a picture");
    assert_eq!(
        alice
            .download(image["content"]["url"].as_str().unwrap())
            .await,
        picture
    );

    // Matrix -> Slack: relayed with the sender's name, in the thread, edited,
    // reacted to, deleted, and a file.
    let sent = alice.send_text(&room, "hi from Matrix").await;
    let posted = fake.wait_call("chat.postMessage", 1, DEFAULT_TIMEOUT).await;
    assert_eq!(posted[0]["text"], "hi from Matrix");
    assert_eq!(posted[0]["username"], "alice");
    assert_eq!(posted[0]["_token"], fake.bot_token());
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "threaded answer",
                   "m.relates_to": {"rel_type": "m.thread", "event_id": root_id,
                                    "is_falling_back": true, "m.in_reply_to": {"event_id": root_id}}}),
        )
        .await;
    let posted = fake.wait_call("chat.postMessage", 2, DEFAULT_TIMEOUT).await;
    assert_eq!(posted[1]["thread_ts"], root_ts.as_str());
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "* hi, edited",
                   "m.new_content": {"msgtype": "m.text", "body": "hi, edited"},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": sent}}),
        )
        .await;
    let updated = fake.wait_call("chat.update", 1, DEFAULT_TIMEOUT).await;
    assert_eq!(updated[0]["text"], "hi, edited");
    alice
        .send_event(
            &room,
            "m.reaction",
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": root_id, "key": "🎉"}}),
        )
        .await;
    fake.wait_until("the bot's reaction", DEFAULT_TIMEOUT, |f| {
        f.reactions("C1", &root_ts)
            .iter()
            .any(|(name, users)| name == "tada" && users.contains(&f.bot_user_id()))
    })
    .await;
    let mxc = alice.upload(picture.clone(), "image/png").await;
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.image", "body": "pic.png", "filename": "pic.png", "url": mxc,
                   "info": {"mimetype": "image/png", "size": picture.len()}}),
        )
        .await;
    fake.wait_until("the uploaded file", DEFAULT_TIMEOUT, |f| {
        f.uploaded_files()
            .iter()
            .any(|(name, bytes)| name == "pic.png" && *bytes == picture)
    })
    .await;
    alice.redact(&room, &sent).await;
    fake.wait_call("chat.delete", 1, DEFAULT_TIMEOUT).await;

    // The bot's own posts came back as events: none became a ghost message.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let echoes = alice
        .messages(&room)
        .await
        .into_iter()
        .filter(|e| e["sender"] != alice.user_id() && e["content"]["body"] == "threaded answer")
        .count();
    assert_eq!(echoes, 0, "an echo of the relay reached Matrix");
    bridge.stop().await;
}

#[tokio::test]
async fn redelivered_events_and_reconnects_bridge_each_message_once() {
    let fake = fake_workspace().await;
    fake.set_redelivery(Duration::from_millis(500), &[Duration::from_millis(200)]);
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("slack-redeliver").await,
        "",
        vec![slack_module(&fake)],
    )
    .await;
    connected(&fake).await;
    let alice = hs.register_user("alice").await;
    let room = linked_room(&alice, "C1").await;

    // The first ack is lost: Slack sends the event again.
    fake.drop_acks(1);
    fake.user_posts("C1", "U1", "sent once");
    let event_id = fake.last_event_id().unwrap();
    fake.wait_until("a redelivery", DEFAULT_TIMEOUT, |f| {
        f.deliveries(&event_id) >= 2
    })
    .await;
    // Slack refreshes the connection: the next one opens before the old
    // one closes, and nothing falls in between.
    fake.disconnect_all("warning");
    fake.user_posts("C1", "U1", "after the refresh");
    alice
        .wait_for_event(&room, from_ghost("after the refresh"), DEFAULT_TIMEOUT)
        .await;
    assert_eq!(fake.missed_deliveries(), 0);
    let bodies: Vec<String> = alice
        .messages(&room)
        .await
        .into_iter()
        .filter(|e| e["sender"] == GHOST)
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(bodies, ["sent once", "after the refresh"]);
    bridge.stop().await;
}

#[tokio::test]
async fn logged_in_users_get_their_dms_and_channel_membership_and_profiles_follow() {
    let fake = fake_workspace().await;
    fake.add_user("U5", "dave", "Dave S", None);
    fake.add_user("U6", "erin", "Erin", None);
    fake.add_channel("C2", "random", false);
    fake.join("C2", &fake.bot_user_id());
    fake.join("C2", "U6");
    fake.add_channel("G2", "secret", true);
    fake.join("G2", &fake.bot_user_id());
    fake.add_user_dm("D9", "U5", "U6");
    let dave_token = fake.add_user_token("U5");
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("slack-dms").await,
        "",
        vec![slack_module(&fake)],
    )
    .await;
    connected(&fake).await;
    let admin = hs.register_user("alice").await;
    let public = linked_room(&admin, "C2").await;
    let private = linked_room(&admin, "G2").await;
    let dave = hs.register_user("dave").await;
    log_in(&dave, &dave_token).await;

    // Joining a portal as a logged-in user joins the Slack channel: a public
    // one by conversations.join with her token, a private one by the bot's
    // invitation. Leaving the room leaves the channel.
    for room in [&public, &private] {
        admin.invite(room, dave.user_id()).await;
        dave.join(room).await;
    }
    fake.wait_until("dave in #random and #secret", DEFAULT_TIMEOUT, |f| {
        f.members("C2").contains(&"U5".to_owned()) && f.members("G2").contains(&"U5".to_owned())
    })
    .await;
    let joined = fake.calls("conversations.join");
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert!(joined.iter().all(|c| c["_token"] == dave_token.as_str()));
    let invited = fake.calls("conversations.invite");
    assert_eq!(invited.len(), 1, "{invited:?}");
    assert_eq!(invited[0]["users"], "U5");
    assert_eq!(invited[0]["_token"], fake.bot_token().as_str());
    dave.leave(&public).await;
    fake.wait_until("dave out of #random", DEFAULT_TIMEOUT, |f| {
        !f.members("C2").contains(&"U5".to_owned())
    })
    .await;

    // A DM to her Slack account opens a DM portal he is invited to, named
    // after the other person, with no relay: he answers as himself.
    let since = dave.sync_token().await;
    fake.user_posts("D9", "U6", "hi dave");
    let dm = dave.wait_invite(&since).await;
    dave.join(&dm).await;
    let erin = "@_slack_t0fake_u6:localhost";
    dave.wait_for_event(
        &dm,
        |e| e["sender"] == erin && e["content"]["body"] == "hi dave",
        DEFAULT_TIMEOUT,
    )
    .await;
    let name = dave.room_state(&dm, "m.room.name", "").await;
    assert_eq!(name.as_ref().map(|n| &n["name"]), Some(&json!("Erin")));
    dave.send_text(&dm, "hello erin").await;
    fake.wait_until("the answer in the DM", DEFAULT_TIMEOUT, |f| {
        f.messages("D9").iter().any(|m| m["text"] == "hello erin")
    })
    .await;
    let answer = fake
        .calls("chat.postMessage")
        .into_iter()
        .find(|c| c["channel"] == "D9")
        .expect("posted to the DM");
    assert_eq!(answer["_token"], dave_token.as_str());
    fake.user_posts("D9", "U6", "got it");
    dave.wait_for_event(
        &dm,
        |e| e["sender"] == erin && e["content"]["body"] == "got it",
        DEFAULT_TIMEOUT,
    )
    .await;
    let bodies: Vec<Value> = dave
        .messages(&dm)
        .await
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [json!("hi dave"), json!("hello erin"), json!("got it")],
        "his own answer is not echoed back by a ghost"
    );

    // A user_change renames the ghost at once, without a new message.
    fake.user_changes_name("U6", "Erin B");
    let path = format!("/_matrix/client/v3/profile/{erin}/displayname");
    let deadline = std::time::Instant::now() + DEFAULT_TIMEOUT;
    loop {
        let profile = dave.call(reqwest::Method::GET, &path, None).await;
        if profile["displayname"] == "Erin B" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{profile}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bridge.stop().await;
}

#[tokio::test]
async fn events_acknowledged_to_slack_survive_a_crash_in_the_spool() {
    let fake = fake_workspace().await;
    let hs = setup().await.hs;
    let db = fresh_db("slack-spool").await;
    let mut bridge = RunningBridge::start_with_modules(&db, "", vec![slack_module(&fake)]).await;
    connected(&fake).await;
    let user = hs.register_user("alice").await;
    let room = linked_room(&user, "C1").await;
    fake.user_posts("C1", "U1", "before the crash");
    user.wait_for_event(&room, from_ghost("before the crash"), DEFAULT_TIMEOUT)
        .await;
    bridge.stop().await;
    drop(bridge); // gives up its turn on the appservice port

    // What a crash leaves behind: an event acknowledged to Slack (which will
    // not send it again) that was stored but had not reached Matrix.
    let store = passerelle::store::Store::connect(&db, &Default::default())
        .await
        .unwrap();
    let event = passerelle_api::RemoteEvent::new(
        passerelle_api::PortalKey::new("slack", "T0FAKE/C1"),
        passerelle_api::Sender::new("T0FAKE/U1"),
        1_700_000_000_000,
        passerelle_api::RemoteEventKind::Message(passerelle_api::MessageContent::text(
            "spooled before the crash",
        )),
    )
    .with_remote_id("1700000000.000100");
    let json = serde_json::to_string(&event).unwrap();
    let network = passerelle_api::NetworkId::new("slack");
    assert!(
        store
            .spool_add(&network, "EvCRASH/0", &json, 1)
            .await
            .unwrap()
            .is_some()
    );
    store.close().await;

    let mut bridge = RunningBridge::start_with_modules(&db, "", vec![slack_module(&fake)]).await;
    user.wait_for_event(
        &room,
        from_ghost("spooled before the crash"),
        DEFAULT_TIMEOUT,
    )
    .await;
    // Delivered: the stored copy (its content) is gone.
    let store = passerelle::store::Store::connect(&db, &Default::default())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + DEFAULT_TIMEOUT;
    while !store.spooled().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the spool was not cleared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A live event goes through the spool too and leaves nothing behind.
    fake.user_posts("C1", "U1", "after the restart");
    user.wait_for_event(&room, from_ghost("after the restart"), DEFAULT_TIMEOUT)
        .await;
    fake.wait_until("every event acknowledged", DEFAULT_TIMEOUT, |f| {
        f.unacked() == 0
    })
    .await;
    while !store.spooled().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the spool was not cleared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await;
    bridge.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_reported_and_user_tokens_send_as_the_user() {
    let fake = fake_workspace().await;
    fake.add_user("U2", "dave", "Dave", None);
    fake.join("C1", "U2");
    let dave_token = fake.add_user_token("U2");
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("slack-tokens").await,
        "",
        vec![slack_module(&fake)],
    )
    .await;
    connected(&fake).await;
    let alice = hs.register_user("alice").await;
    let room = linked_room(&alice, "C1").await;

    // alice logs in with her own token, in her management room (a DM with the bot).
    let dm = log_in(&alice, &dave_token).await;
    alice.send_text(&room, "as myself").await;
    let posted = fake.wait_call("chat.postMessage", 1, DEFAULT_TIMEOUT).await;
    assert_eq!(posted[0]["_token"], dave_token.as_str());
    assert!(
        posted[0]["username"].is_null(),
        "no relay name with a user token"
    );

    // The workspace token is revoked: a relayed sender is told, and the
    // admins hear about it in their management room.
    fake.revoke(&fake.bot_token());
    let dave = hs.register_user("dave").await;
    alice.invite(&room, dave.user_id()).await;
    dave.join(&room).await;
    let relayed = dave.send_text(&room, "relayed after the revocation").await;
    let notice = alice
        .wait_for_event(
            &room,
            |e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == relayed.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert!(
        notice["content"]["body"]
            .as_str()
            .unwrap()
            .contains("refused the token"),
        "{notice}"
    );
    let told = alice
        .wait_for_event(
            &dm,
            |e| {
                e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("Slack refused the token of workspace acme"))
            },
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(told["sender"], BOT);
    bridge.stop().await;
}

#[tokio::test]
async fn the_events_api_over_http_is_signed_and_rate_limits_are_waited_out() {
    let fake = fake_workspace().await;
    let port = crate::support::free_port();
    let config = json!({
        "enabled": true, "api_url": fake.api_url(),
        "events_listen": format!("127.0.0.1:{port}"),
        "workspaces": {"acme": {"bot_token": fake.bot_token(), "mode": "http",
                                "signing_secret": fake.signing_secret()}},
    });
    let module: Arc<dyn Network> = Arc::new(passerelle_slack::SlackModule::new(
        serde_json::from_value(config).unwrap(),
    ));
    let hs = setup().await.hs;
    let mut bridge =
        RunningBridge::start_with_modules(&fresh_db("slack-http").await, "", vec![module]).await;
    fake.events_via_http(&format!("http://127.0.0.1:{port}/slack/acme"));
    fake.wait_until("the url_verification challenge", DEFAULT_TIMEOUT, |f| {
        f.http_url_verified()
    })
    .await;
    let alice = hs.register_user("alice").await;
    let room = linked_room(&alice, "C1").await;

    // A request with a wrong signature, or too old, is refused.
    let body = json!({"type": "event_callback", "team_id": fake.team_id(), "event_id": "EvForged",
        "event": {"type": "message", "channel": "C1", "user": "U1", "text": "forged", "ts": "1.1"}})
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(
        fake.post_event_raw(&body, now, "v0=deadbeef").await,
        Some(401)
    );
    let stale = fake.sign(now - 600, &body);
    assert_eq!(
        fake.post_event_raw(&body, now - 600, &stale).await,
        Some(401)
    );

    fake.user_posts("C1", "U1", "over HTTP");
    alice
        .wait_for_event(&room, from_ghost("over HTTP"), DEFAULT_TIMEOUT)
        .await;
    assert!(
        alice
            .messages(&room)
            .await
            .iter()
            .all(|e| e["content"]["body"] != "forged"),
        "an unsigned event reached Matrix"
    );

    // chat.postMessage is rate limited once: the bridge waits and posts once.
    fake.rate_limit_next("chat.postMessage", 1, 1);
    alice.send_text(&room, "patience").await;
    fake.wait_until("the post after the wait", DEFAULT_TIMEOUT, |f| {
        f.messages("C1").iter().any(|m| m["text"] == "patience")
    })
    .await;
    assert_eq!(
        fake.messages("C1")
            .iter()
            .filter(|m| m["text"] == "patience")
            .count(),
        1
    );
    bridge.stop().await;
}

#[tokio::test]
async fn private_channels_are_bridged_automatically_with_auto_bridge() {
    let fake = fake_workspace().await;
    fake.add_channel("G1", "secret-plans", true);
    fake.join("G1", &fake.bot_user_id());
    fake.join("G1", "U1");
    let config = json!({
        "enabled": true, "api_url": fake.api_url(),
        "workspaces": {"acme": {"bot_token": fake.bot_token(), "app_token": fake.app_token(),
                                "auto_bridge": true}},
    });
    let module: Arc<dyn Network> = Arc::new(passerelle_slack::SlackModule::new(
        serde_json::from_value(config).unwrap(),
    ));
    let hs = setup().await.hs;
    let mut bridge =
        RunningBridge::start_with_modules(&fresh_db("slack-auto").await, "", vec![module]).await;
    connected(&fake).await;
    let alice = hs.register_user("alice").await;
    let since = alice.sync_token().await;
    fake.user_posts("G1", "U1", "psst");
    let room = alice.wait_invite(&since).await;
    alice.join(&room).await;
    alice
        .wait_for_event(&room, from_ghost("psst"), DEFAULT_TIMEOUT)
        .await;
    let name = alice.room_state(&room, "m.room.name", "").await.unwrap();
    assert_eq!(name["name"], "#secret-plans");
    // The workspace is a space holding the portal; the admins are invited.
    let parent = alice
        .wait_for_event(&room, |e| e["type"] == "m.space.parent", DEFAULT_TIMEOUT)
        .await;
    let space = parent["state_key"].as_str().unwrap().to_owned();
    alice.join(&space).await;
    let create = alice.room_state(&space, "m.room.create", "").await.unwrap();
    assert_eq!(create["type"], "m.space");
    let child = alice
        .room_state(&space, "m.space.child", &room)
        .await
        .unwrap();
    assert_eq!(child["via"], json!(["localhost"]));
    alice.send_text(&room, "understood").await;
    fake.wait_until("the answer in the private channel", DEFAULT_TIMEOUT, |f| {
        f.messages("G1").iter().any(|m| m["text"] == "understood")
    })
    .await;
    bridge.stop().await;
}
