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
    irc_module_with(port, json!({}))
}

/// The module with more keys (`extra`, an object) in its network's config.
fn irc_module_with(port: u16, extra: Value) -> Arc<dyn Network> {
    let mut network = json!({
        "host": "127.0.0.1", "port": port, "tls": false, "bot_nick": "bridgebot",
        "flood_burst": 50, "flood_interval": "100ms", "max_lines": 3
    });
    for (key, value) in extra.as_object().expect("an object") {
        network[key] = value.clone();
    }
    let config =
        serde_json::from_value(json!({"enabled": true, "networks": {"local": network}})).unwrap();
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

#[tokio::test]
async fn the_bot_answers_private_messages_once_per_nick_and_never_notices() {
    let ngircd = Ngircd::start();
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("irc-bot-pm").await,
        "",
        vec![irc_module(ngircd.port)],
    )
    .await;
    let engine = Engine::new(EngineConfig::default());
    let mut pmcarol = IrcUser::connect(&engine, ngircd.port, "pmcarol").await;
    pmcarol.handle.join("#pmbot").await.unwrap();
    pmcarol
        .expect("her own JOIN", |m| m.command == "JOIN")
        .await;
    // A bridged channel gives the test a barrier on the bot's connection:
    // Matrix carol (relay only) speaks through the bot.
    let alice = hs.register_user("alice").await;
    let room = crate::harness::join_alias(&alice, "#_irc_local_#pmbot:localhost").await;
    let carol = hs.register_user("carol").await;
    crate::harness::join_alias(&carol, "#_irc_local_#pmbot:localhost").await;
    pmcarol
        .expect("the bot's JOIN", |m| {
            m.command == "JOIN" && m.source_nick() == Some("bridgebot")
        })
        .await;

    // Everything the bot sent pmcarol (NOTICEs, as (target, text)) before
    // a barrier: her channel line reaches Matrix, so the bot has read all
    // she sent before it (and sent any answer); then Matrix carol's line
    // goes out on the bot's connection, after those answers.
    let barrier = async |pmcarol: &mut IrcUser, n: u32| -> Vec<String> {
        let marker = format!("barrier {n}");
        pmcarol.handle.privmsg("#pmbot", &marker).await.unwrap();
        alice
            .wait_for_event(&room, from_ghost("pmcarol", &marker), DEFAULT_TIMEOUT)
            .await;
        carol.send_text(&room, &format!("ack {n}")).await;
        let relayed = format!("<carol> ack {n}");
        let mut notices = Vec::new();
        loop {
            let m = pmcarol
                .expect("the bot's NOTICE or the relayed barrier", |m| {
                    m.source_nick() == Some("bridgebot")
                        && (m.command == "NOTICE"
                            || (m.command == "PRIVMSG" && m.param(1) == Some(&relayed)))
                })
                .await;
            if m.command == "PRIVMSG" {
                return notices;
            }
            notices.push(m.param(1).unwrap_or_default().to_owned());
        }
    };

    // A NOTICE is never answered (it may be another bot's answer), nor is a
    // CTCP query.
    pmcarol.handle.notice("bridgebot", "hello").await.unwrap();
    pmcarol
        .handle
        .privmsg("bridgebot", "\u{1}VERSION\u{1}")
        .await
        .unwrap();
    assert_eq!(barrier(&mut pmcarol, 1).await, Vec::<String>::new());

    // A PRIVMSG is, once per nick for a while.
    pmcarol.handle.privmsg("bridgebot", "hello?").await.unwrap();
    pmcarol
        .handle
        .privmsg("bridgebot", "anyone?")
        .await
        .unwrap();
    let answers = barrier(&mut pmcarol, 2).await;
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert!(
        answers[0].contains("Matrix bridge") && answers[0].contains("alice[m]"),
        "{}",
        answers[0]
    );

    // Another nick gets its own answer.
    pmcarol.handle.nick("pmcarol2").await.unwrap();
    pmcarol
        .handle
        .privmsg("bridgebot", "me again")
        .await
        .unwrap();
    let notice = pmcarol
        .expect("the answer to the new nick", |m| {
            m.command == "NOTICE" && m.source_nick() == Some("bridgebot")
        })
        .await;
    assert_eq!(notice.param(0), Some("pmcarol2"));
    assert_eq!(notice.param(1), Some(answers[0].as_str()));
    bridge.stop().await;
}

#[tokio::test]
async fn static_channel_mappings_are_bridged_at_start() {
    let ngircd = Ngircd::start();
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("irc-static").await,
        "",
        vec![irc_module(ngircd.port)],
    )
    .await;
    let engine = Engine::new(EngineConfig::default());
    let mut carol = IrcUser::connect(&engine, ngircd.port, "carol").await;
    for channel in ["#static-id", "#static-alias"] {
        carol.handle.join(channel).await.unwrap();
        carol
            .expect("her own JOIN", |m| {
                m.command == "JOIN" && m.param(0) == Some(channel)
            })
            .await;
    }

    // Two rooms an operator prepared, the bot with power in both: a public
    // one named in the config by its id, and a private one the bot is
    // invited to, named by its alias. (The bridge runs meanwhile, so the
    // homeserver has somewhere to send their events, then starts again with
    // the mappings in its config.)
    let alice = hs.register_user("alice").await;
    let power = json!({"users": {"@passerelle:localhost": 100}});
    let by_id = alice
        .create_room(json!({"preset": "public_chat", "power_level_content_override": power}))
        .await;
    let by_alias = alice
        .create_room(json!({
            "preset": "private_chat", "room_alias_name": "irc-static-alias",
            "invite": ["@passerelle:localhost"], "power_level_content_override": power
        }))
        .await;
    let channels = json!({"#static-id": by_id, "#static-alias": "#irc-static-alias:localhost"});
    bridge
        .restart_with_modules(vec![irc_module_with(
            ngircd.port,
            json!({"channels": channels}),
        )])
        .await;

    // Both are bridged at start: the bot joins both channels, and messages
    // flow both ways.
    let mut joined = Vec::new();
    while joined.len() < 2 {
        let join = carol
            .expect("the bot joining the mapped channels", |m| {
                m.command == "JOIN" && m.source_nick() == Some("bridgebot")
            })
            .await;
        joined.push(join.param(0).unwrap_or_default().to_owned());
    }
    joined.sort();
    assert_eq!(joined, ["#static-alias", "#static-id"]);
    for (room, channel) in [(&by_id, "#static-id"), (&by_alias, "#static-alias")] {
        let events = alice.messages(room).await;
        let bridged = events.iter().find(|e| e["type"] == "m.bridge");
        assert_eq!(
            bridged.map(|e| &e["content"]["channel"]["id"]),
            Some(&json!(format!("local/{channel}"))),
            "{events:#?}"
        );
    }
    carol
        .handle
        .privmsg("#static-id", "hello by id")
        .await
        .unwrap();
    alice
        .wait_for_event(&by_id, from_ghost("carol", "hello by id"), DEFAULT_TIMEOUT)
        .await;
    carol
        .handle
        .privmsg("#static-alias", "hello by alias")
        .await
        .unwrap();
    alice
        .wait_for_event(
            &by_alias,
            from_ghost("carol", "hello by alias"),
            DEFAULT_TIMEOUT,
        )
        .await;
    alice.send_text(&by_alias, "hi from the mapped room").await;
    carol
        .expect("alice through the alias mapping", |m| {
            m.command == "PRIVMSG"
                && m.source_nick() == Some("alice[m]")
                && m.param(0) == Some("#static-alias")
                && m.param(1) == Some("hi from the mapped room")
        })
        .await;
    bridge.stop().await;
}

#[tokio::test]
async fn an_idle_puppet_quits_and_comes_back_when_its_user_speaks() {
    let ngircd = Ngircd::start();
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("irc-idle").await,
        "",
        vec![irc_module_with(ngircd.port, json!({"idle_timeout": "2s"}))],
    )
    .await;
    let engine = Engine::new(EngineConfig::default());
    let mut carol = IrcUser::connect(&engine, ngircd.port, "carol").await;
    carol.handle.join("#idle").await.unwrap();
    carol.expect("her own JOIN", |m| m.command == "JOIN").await;
    let alice = hs.register_user("alice").await;
    let room = crate::harness::join_alias(&alice, "#_irc_local_#idle:localhost").await;
    alice.send_text(&room, "before the nap").await;
    carol
        .expect("alice's puppet", privmsg_from("alice[m]", "before the nap"))
        .await;

    // Two seconds without a word from alice: her connection quits.
    let quit = carol
        .expect("alice's idle puppet quitting", |m| {
            m.command == "QUIT" && m.source_nick() == Some("alice[m]")
        })
        .await;
    assert!(
        quit.param(0).is_some_and(|r| r.contains("Idle")),
        "{quit:?}"
    );

    // Her next message brings it back, into the channel, message and all.
    alice.send_text(&room, "back again").await;
    carol
        .expect("alice's puppet rejoining", |m| {
            m.command == "JOIN" && m.source_nick() == Some("alice[m]")
        })
        .await;
    carol
        .expect(
            "the message that woke it",
            privmsg_from("alice[m]", "back again"),
        )
        .await;

    // The QUIT was the bridge's own doing: no ghost of alice's nick came or
    // went in the room. The portal queue keeps IRC's order, so once carol's
    // next line is in Matrix, whatever came from the QUIT is there too.
    carol.handle.privmsg("#idle", "welcome back").await.unwrap();
    alice
        .wait_for_event(&room, from_ghost("carol", "welcome back"), DEFAULT_TIMEOUT)
        .await;
    let puppet_ghosts: Vec<Value> = alice
        .messages(&room)
        .await
        .into_iter()
        .filter(|e| {
            e["type"] == "m.room.member"
                && e["state_key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("@_irc_local_alice"))
        })
        .collect();
    assert!(puppet_ghosts.is_empty(), "{puppet_ghosts:#?}");
    bridge.stop().await;
}

#[tokio::test]
async fn a_netsplit_is_one_notice_and_its_users_come_back_with_the_link() {
    let (hub, leaf) = Ngircd::start_linked();
    let hs = setup().await.hs;
    let mut bridge = RunningBridge::start_with_modules(
        &fresh_db("irc-netsplit").await,
        "",
        vec![irc_module(hub.port)],
    )
    .await;
    let engine = Engine::new(EngineConfig::default());
    let mut carol = IrcUser::connect(&engine, hub.port, "carol").await;
    carol.handle.join("#split").await.unwrap();
    carol.expect("her own JOIN", |m| m.command == "JOIN").await;
    // dave and erin are on the other server: carol sees them join once the
    // servers are linked (at once, or when the link comes up).
    let mut behind_the_link = Vec::new();
    for nick in ["dave", "erin"] {
        let user = IrcUser::connect(&engine, leaf.port, nick).await;
        user.handle.join("#split").await.unwrap();
        behind_the_link.push(user);
    }
    let mut joined = Vec::new();
    while joined.len() < 2 {
        let join = carol
            .expect("dave and erin, across the link", |m| {
                m.command == "JOIN" && matches!(m.source_nick(), Some("dave" | "erin"))
            })
            .await;
        joined.push(join.source_nick().unwrap_or_default().to_owned());
    }
    let alice = hs.register_user("alice").await;
    let room = crate::harness::join_alias(&alice, "#_irc_local_#split:localhost").await;
    for ghost in ["dave", "erin"] {
        wait_member(
            &alice,
            &room,
            &format!("@_irc_local_{ghost}:localhost"),
            "join",
        )
        .await;
    }

    // An operator on the bridge's server cuts the link.
    let oper = passerelle_irc::conn::Outgoing::new("OPER")
        .param("oper")
        .param("oper");
    carol.handle.send(oper).await.unwrap();
    carol.expect("RPL_YOUREOPER", |m| m.command == "381").await;
    let squit = passerelle_irc::conn::Outgoing::new("SQUIT")
        .param("irc2.passerelle.test")
        .param("testing a netsplit");
    carol.handle.send(squit).await.unwrap();
    let quit = carol
        .expect("dave lost in the split", |m| {
            m.command == "QUIT" && m.source_nick() == Some("dave")
        })
        .await;
    assert_eq!(
        quit.param(0),
        Some("irc.passerelle.test irc2.passerelle.test")
    );

    // Matrix gets one summary for the room, and the ghosts leave.
    let is_summary = |e: &Value| {
        e["content"]["msgtype"] == "m.notice"
            && e["content"]["body"]
                .as_str()
                .is_some_and(|b| b.starts_with("Netsplit between"))
    };
    let summary = alice
        .wait_for_event(&room, is_summary, DEFAULT_TIMEOUT)
        .await;
    let body = summary["content"]["body"].as_str().unwrap_or_default();
    assert!(
        body.starts_with(
            "Netsplit between irc.passerelle.test and irc2.passerelle.test: 2 user(s) left ("
        ) && body.contains("dave")
            && body.contains("erin"),
        "{body}"
    );
    assert_eq!(summary["sender"], "@passerelle:localhost");
    // The servers link again by themselves, maybe at once: the ghosts'
    // leaving is looked for in the timeline, and being members again now
    // means they came back after it.
    for ghost in ["dave", "erin"] {
        let ghost = format!("@_irc_local_{ghost}:localhost");
        alice
            .wait_for_event(
                &room,
                |e| {
                    e["type"] == "m.room.member"
                        && e["state_key"] == ghost.as_str()
                        && e["content"]["membership"] == "leave"
                },
                DEFAULT_TIMEOUT,
            )
            .await;
        wait_member(&alice, &room, &ghost, "join").await;
    }
    // That summary was the only notice: nothing per user.
    let notices: Vec<Value> = alice
        .messages(&room)
        .await
        .into_iter()
        .filter(|e| e["content"]["msgtype"] == "m.notice")
        .collect();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    drop(behind_the_link);
    bridge.stop().await;
}
