//! The IRC module against a real ngircd and a real Synapse: IRC users are
//! clients of our own connection engine, Matrix users are Synapse users.

use std::sync::Arc;
use std::time::{Duration, Instant};

use passerelle_api::Network;
use passerelle_irc::conn::{ConnectionConfig, Engine, EngineConfig, Event, Handle, IrcMessage};
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;

use crate::harness::{RunningBridge, fresh_db, setup};
use crate::support::ngircd::Ngircd;
use crate::support::synapse::{DEFAULT_TIMEOUT, TestClient};

const ALIAS: &str = "#_irc_local_#test:localhost";

fn irc_module(port: u16) -> Arc<dyn Network> {
    let config = serde_json::from_value(json!({
        "enabled": true,
        "networks": {"local": {
            "host": "127.0.0.1", "port": port, "tls": false, "bot_nick": "bridgebot",
            "flood_burst": 50, "flood_interval": "100ms", "max_lines": 3
        }}
    }))
    .unwrap();
    Arc::new(passerelle_irc::IrcModule::new(config))
}

/// An IRC user: a plain client of our engine.
struct IrcUser {
    handle: Handle,
    events: Receiver<Event>,
}

impl IrcUser {
    async fn connect(engine: &Engine, port: u16, nick: &str) -> IrcUser {
        let mut config = ConnectionConfig::new("127.0.0.1", port, nick);
        config.flood.burst = 50;
        let (handle, mut events) = engine.connect(config).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Some(Event::Registered { .. })) => break,
                Ok(Some(_)) => {}
                other => panic!("{nick} did not register: {other:?}"),
            }
        }
        IrcUser { handle, events }
    }

    /// The next message matching `f`, within 20 s.
    async fn expect(&mut self, what: &str, f: impl Fn(&IrcMessage) -> bool) -> IrcMessage {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(Event::Message(m))) if f(&m) => return *m,
                Ok(Some(Event::Message(m))) => seen.push(format!("{} {:?}", m.command, m.params)),
                Ok(Some(_)) => {}
                _ => panic!("IRC user never got {what}; saw: {seen:#?}"),
            }
        }
    }

    /// Every PRIVMSG arriving within `wait`.
    async fn privmsgs_within(&mut self, wait: Duration) -> Vec<(String, String)> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while let Ok(Some(event)) = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.events.recv(),
        )
        .await
        {
            if let Event::Message(m) = event
                && m.command == "PRIVMSG"
            {
                got.push((
                    m.source_nick().unwrap_or_default().to_owned(),
                    m.param(1).unwrap_or_default().to_owned(),
                ));
            }
        }
        got
    }
}

fn privmsg_from<'a>(nick: &'a str, text: &'a str) -> impl Fn(&IrcMessage) -> bool + 'a {
    move |m| m.command == "PRIVMSG" && m.source_nick() == Some(nick) && m.param(1) == Some(text)
}

async fn wait_member(alice: &TestClient, room: &str, user: &str, membership: &str) {
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    loop {
        let state = alice.room_state(room, "m.room.member", user).await;
        if state.as_ref().and_then(|s| s["membership"].as_str()) == Some(membership) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} never became {membership} in {room}: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn from_ghost<'a>(nick: &'a str, body: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |e| {
        e["sender"] == format!("@_irc_local_{nick}:localhost").as_str()
            && e["content"]["body"] == body
    }
}

#[tokio::test]
async fn irc_and_matrix_talk_both_ways() {
    let ngircd = Ngircd::start();
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("irc").await,
        "",
        vec![irc_module(ngircd.port)],
    )
    .await;
    let engine = Engine::new(EngineConfig::default());
    let mut carol = IrcUser::connect(&engine, ngircd.port, "carol").await;
    carol.handle.join("#test").await.unwrap();
    carol.expect("her own JOIN", |m| m.command == "JOIN").await;

    // Joining the alias creates the portal, and the bot joins the channel.
    let alice = hs.register_user("alice").await;
    let room = crate::harness::join_alias(&alice, ALIAS).await;
    carol
        .expect("the bot's JOIN", |m| {
            m.command == "JOIN" && m.source_nick() == Some("bridgebot")
        })
        .await;
    wait_member(&alice, &room, "@_irc_local_carol:localhost", "join").await;

    // IRC -> Matrix: text with formatting, and /me.
    carol
        .handle
        .privmsg("#test", "hello \u{2}bold\u{2} world")
        .await
        .unwrap();
    let seen = alice
        .wait_for_event(
            &room,
            from_ghost("carol", "hello bold world"),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(seen["content"]["formatted_body"], "hello <b>bold</b> world");
    carol
        .handle
        .privmsg("#test", "\u{1}ACTION waves\u{1}")
        .await
        .unwrap();
    let seen = alice
        .wait_for_event(&room, from_ghost("carol", "waves"), DEFAULT_TIMEOUT)
        .await;
    assert_eq!(seen["content"]["msgtype"], "m.emote");

    // Matrix -> IRC through alice's own connection (nick from the template).
    alice.send_text(&room, "hi from matrix").await;
    carol
        .expect(
            "alice's message",
            privmsg_from("alice[m]", "hi from matrix"),
        )
        .await;
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({"msgtype": "m.emote", "body": "dances"}),
        )
        .await;
    carol
        .expect("alice's action", |m| {
            m.command == "PRIVMSG" && m.param(1) == Some("\u{1}ACTION dances\u{1}")
        })
        .await;
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "*strong*",
                "format": "org.matrix.custom.html", "formatted_body": "<strong>strong</strong>"
            }),
        )
        .await;
    carol
        .expect(
            "formatting (open to the end of the line, as IRC ends it there)",
            privmsg_from("alice[m]", "\u{2}strong"),
        )
        .await;

    // CR/LF from Matrix never becomes a protocol line: only PRIVMSGs arrive.
    alice
        .send_text(&room, "first\r\nQUIT :pwned\rJOIN #evil")
        .await;
    let lines = carol.privmsgs_within(Duration::from_secs(3)).await;
    assert_eq!(
        lines,
        [
            ("alice[m]".to_owned(), "first".to_owned()),
            ("alice[m]".to_owned(), "QUIT :pwned JOIN #evil".to_owned())
        ]
    );
    alice.send_text(&room, "still here").await;
    carol
        .expect(
            "alice still connected",
            privmsg_from("alice[m]", "still here"),
        )
        .await;

    // Long messages: past max_lines the rest is summarised (no public media URL here).
    alice.send_text(&room, "1\n2\n3\n4\n5").await;
    let lines = carol.privmsgs_within(Duration::from_secs(3)).await;
    let texts: Vec<&str> = lines.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["1", "2", "3", "(… 2 more lines not sent)"]);

    // Topic and nick change from IRC (carol joined first, so she has ops).
    carol
        .handle
        .send(
            passerelle_irc::conn::Outgoing::new("TOPIC")
                .param("#test")
                .param("Bridged!"),
        )
        .await
        .unwrap();
    let topic = alice
        .wait_for_event(
            &room,
            |e| e["type"] == "m.room.topic" && e["content"]["topic"] == "Bridged!",
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(topic["sender"], "@passerelle:localhost");
    carol.handle.nick("carolyn").await.unwrap();
    wait_member(&alice, &room, "@_irc_local_carolyn:localhost", "join").await;
    wait_member(&alice, &room, "@_irc_local_carol:localhost", "leave").await;

    // Join, kick and part of other IRC users.
    let dave = IrcUser::connect(&engine, ngircd.port, "dave").await;
    dave.handle.join("#test").await.unwrap();
    wait_member(&alice, &room, "@_irc_local_dave:localhost", "join").await;
    carol
        .handle
        .send(
            passerelle_irc::conn::Outgoing::new("KICK")
                .param("#test")
                .param("dave")
                .param("bye"),
        )
        .await
        .unwrap();
    wait_member(&alice, &room, "@_irc_local_dave:localhost", "leave").await;
    let erin = IrcUser::connect(&engine, ngircd.port, "erin").await;
    erin.handle.join("#test").await.unwrap();
    wait_member(&alice, &room, "@_irc_local_erin:localhost", "join").await;
    erin.handle.part("#test", Some("later")).await.unwrap();
    wait_member(&alice, &room, "@_irc_local_erin:localhost", "leave").await;

    // A private message to alice's nick opens a direct chat with her.
    carol.handle.privmsg("alice[m]", "psst").await.unwrap();
    let key = passerelle_api::PortalKey::new("irc", "local/pm/carolyn/@alice:localhost");
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    let dm = loop {
        if let Some(room) = bridge.net.runtime().portal_room(&key).await.unwrap() {
            break room;
        }
        assert!(
            Instant::now() < deadline,
            "no private chat portal for alice"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A private room: joining works only because the bridge invited her.
    alice.join(&dm).await;
    alice
        .wait_for_event(&dm, from_ghost("carolyn", "psst"), DEFAULT_TIMEOUT)
        .await;
    alice.send_text(&dm, "hello in private").await;
    carol
        .expect("alice's private answer", |m| {
            m.command == "PRIVMSG"
                && m.param(0) == Some("carolyn")
                && m.param(1) == Some("hello in private")
        })
        .await;

    // Third-party lookups through the homeserver find the channel's alias.
    let (status, found) = alice
        .request(
            reqwest::Method::GET,
            "/_matrix/client/v3/thirdparty/location/irc?network=local&channel=%23test",
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{found}");
    assert_eq!(found[0]["alias"], ALIAS, "{found}");
    // The protocol description, asked as the homeserver asks it (Synapse
    // caches it for minutes, across the tests of this process).
    let setup = setup().await;
    let protocol: Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/_matrix/app/v1/thirdparty/protocol/irc",
            setup.port
        ))
        .bearer_auth(&setup.registration.hs_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        protocol["instances"][0]["network_id"], "local",
        "{protocol}"
    );
    assert_eq!(protocol["location_fields"], json!(["network", "channel"]));

    // Ranks both ways: an op on IRC becomes a power level in Matrix, and a
    // power level given in Matrix (by a user whose puppet is op) becomes a mode.
    carol
        .handle
        .send(
            passerelle_irc::conn::Outgoing::new("MODE")
                .param("#test")
                .param("+o")
                .param("alice[m]"),
        )
        .await
        .unwrap();
    let frank = IrcUser::connect(&engine, ngircd.port, "frank").await;
    frank.handle.join("#test").await.unwrap();
    wait_member(&alice, &room, "@_irc_local_frank:localhost", "join").await;
    carol
        .handle
        .send(
            passerelle_irc::conn::Outgoing::new("MODE")
                .param("#test")
                .param("+v")
                .param("frank"),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    let mut power = loop {
        let power = alice
            .room_state(&room, "m.room.power_levels", "")
            .await
            .unwrap();
        if power["users"]["@_irc_local_frank:localhost"] == 1 {
            break power;
        }
        assert!(
            Instant::now() < deadline,
            "voice did not become power level 1: {power}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    power["users"]["@_irc_local_frank:localhost"] = json!(50);
    alice
        .set_state(&room, "m.room.power_levels", "", power)
        .await;
    carol
        .expect("frank opped from Matrix", |m| {
            m.command == "MODE" && m.param(1) == Some("+o") && m.param(2) == Some("frank")
        })
        .await;

    // A topic set in Matrix reaches the channel through alice's (opped) puppet;
    // a ban in Matrix becomes a ban mask and a kick; a QUIT makes the ghost leave.
    alice
        .set_state(
            &room,
            "m.room.topic",
            "",
            json!({"topic": "Set from Matrix"}),
        )
        .await;
    carol
        .expect("the topic from Matrix", |m| {
            m.command == "TOPIC"
                && m.source_nick() == Some("alice[m]")
                && m.param(1) == Some("Set from Matrix")
        })
        .await;
    alice
        .call(
            reqwest::Method::POST,
            &format!(
                "/_matrix/client/v3/rooms/{}/ban",
                crate::support::synapse::enc(&room)
            ),
            Some(json!({"user_id": "@_irc_local_frank:localhost", "reason": "spam"})),
        )
        .await;
    carol
        .expect("the ban mask", |m| {
            m.command == "MODE" && m.param(1) == Some("+b") && m.param(2) == Some("frank!*@*")
        })
        .await;
    carol
        .expect("the kick", |m| {
            m.command == "KICK" && m.param(1) == Some("frank")
        })
        .await;
    let quitter = IrcUser::connect(&engine, ngircd.port, "quitter").await;
    quitter.handle.join("#test").await.unwrap();
    wait_member(&alice, &room, "@_irc_local_quitter:localhost", "join").await;
    quitter.handle.disconnect(Some("gone fishing"));
    wait_member(&alice, &room, "@_irc_local_quitter:localhost", "leave").await;

    // Replies address the author, edits are marked as corrections.
    let from_carol = alice
        .wait_for_event(
            &room,
            from_ghost("carol", "hello bold world"),
            DEFAULT_TIMEOUT,
        )
        .await;
    alice
        .send_event(
            &room,
            "m.room.message",
            json!({
                "msgtype": "m.text", "body": "welcome back",
                "m.relates_to": {"m.in_reply_to": {"event_id": from_carol["event_id"]}}
            }),
        )
        .await;
    carol
        .expect("a reply", privmsg_from("alice[m]", "carol: welcome back"))
        .await;
    bridge.stop().await;
}

#[tokio::test]
async fn an_ircd_restart_brings_puppets_back_without_duplicates_or_notices() {
    let ngircd = Ngircd::start();
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("irc-restart").await,
        "",
        vec![irc_module(ngircd.port)],
    )
    .await;
    let engine = Engine::new(EngineConfig::default());
    let alice = hs.register_user("alice").await;
    let dave = hs.register_user("dave").await;
    let mut carol = IrcUser::connect(&engine, ngircd.port, "carol").await;
    carol.handle.join("#restart").await.unwrap();
    let room = crate::harness::join_alias(&alice, "#_irc_local_#restart:localhost").await;
    dave.join(&room).await;
    alice.send_text(&room, "alice before").await;
    dave.send_text(&room, "dave before").await;
    carol
        .expect("alice's puppet", privmsg_from("alice[m]", "alice before"))
        .await;
    carol
        .expect("dave's puppet", privmsg_from("dave[m]", "dave before"))
        .await;

    ngircd.restart();
    // carol's own client reconnects and rejoins by itself.
    carol
        .expect("carol back in the channel", |m| {
            m.command == "JOIN" && m.source_nick() == Some("carol")
        })
        .await;
    // The bot is back too (it may rejoin before or after carol).

    let sent = Instant::now();
    alice.send_text(&room, "alice after").await;
    carol
        .expect(
            "alice after the restart",
            privmsg_from("alice[m]", "alice after"),
        )
        .await;
    eprintln!(
        "first message after the ircd restart arrived in {:?}",
        sent.elapsed()
    );
    let extra = carol.privmsgs_within(Duration::from_secs(3)).await;
    assert!(extra.is_empty(), "duplicates after the restart: {extra:?}");

    // A restart of passerelle itself: alice's puppet, active recently, comes
    // back and rejoins its channel without alice doing anything.
    bridge
        .restart_with_modules(vec![irc_module(ngircd.port)])
        .await;
    carol
        .expect("alice's puppet back after a bridge restart", |m| {
            m.command == "JOIN" && m.source_nick() == Some("alice[m]")
        })
        .await;

    let events = alice.messages(&room).await;
    let notices: Vec<&Value> = events
        .iter()
        .filter(|e| e["content"]["msgtype"] == "m.notice")
        .collect();
    assert!(
        notices.is_empty(),
        "the restart must not flood the room with notices: {notices:#?}"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn link_an_existing_room_and_start_a_private_chat_from_matrix() {
    let ngircd = Ngircd::start();
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("irc-link").await,
        "",
        vec![irc_module(ngircd.port)],
    )
    .await;
    let engine = Engine::new(EngineConfig::default());
    let mut carol = IrcUser::connect(&engine, ngircd.port, "carol").await;
    carol.handle.join("#linked").await.unwrap();
    carol.expect("her own JOIN", |m| m.command == "JOIN").await;
    let alice = hs.register_user("alice").await;

    // An admin links an existing room, in which the bot has power.
    let room = alice
        .create_room(json!({
            "preset": "public_chat",
            "invite": ["@passerelle:localhost"],
            "power_level_content_override": {"users": {"@passerelle:localhost": 100}}
        }))
        .await;
    wait_member(&alice, &room, "@passerelle:localhost", "join").await;
    let link = alice
        .send_text(&room, "!passerelle link irc #linked local")
        .await;
    let reply = alice
        .wait_for_event(
            &room,
            |e| e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == link.as_str(),
            DEFAULT_TIMEOUT,
        )
        .await;
    assert_eq!(
        reply["content"]["body"],
        "This room is now bridged to #linked on local."
    );
    carol
        .expect("the bot's JOIN", |m| {
            m.command == "JOIN" && m.source_nick() == Some("bridgebot")
        })
        .await;
    carol
        .handle
        .privmsg("#linked", "anyone here?")
        .await
        .unwrap();
    alice
        .wait_for_event(&room, from_ghost("carol", "anyone here?"), DEFAULT_TIMEOUT)
        .await;
    alice.send_text(&room, "yes, from Matrix").await;
    carol
        .expect(
            "alice in the linked room",
            privmsg_from("alice[m]", "yes, from Matrix"),
        )
        .await;

    // Inviting an IRC ghost to a new room opens a private chat with that nick.
    let dm = alice
        .create_room(json!({"is_direct": true, "invite": ["@_irc_local_carol:localhost"], "preset": "trusted_private_chat"}))
        .await;
    wait_member(&alice, &dm, "@_irc_local_carol:localhost", "join").await;
    alice.send_text(&dm, "just for you").await;
    carol
        .expect("a private message", |m| {
            m.command == "PRIVMSG"
                && m.param(0) == Some("carol")
                && m.param(1) == Some("just for you")
        })
        .await;
    carol.handle.privmsg("alice[m]", "thanks").await.unwrap();
    alice
        .wait_for_event(&dm, from_ghost("carol", "thanks"), DEFAULT_TIMEOUT)
        .await;
    bridge.stop().await;
}
