//! The connection engine against a real ngIRCd (started by scripts/ngircd)
//! and, for what ngIRCd cannot do, a scripted fake server; the module over
//! it where only the fake server can show the wire (IRCv3 tags).

#[path = "conn/fake.rs"]
mod fake;
#[path = "conn/module.rs"]
mod module;
#[path = "conn/ngircd.rs"]
mod ngircd;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use passerelle_irc::conn::{
    ConnectionConfig, DisconnectReason, Engine, EngineConfig, Event, FloodConfig, Handle,
    IrcMessage, Prefix, Sasl, SendError, TlsRoots,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, sleep, timeout};

use fake::FakeServer;
use ngircd::Ngircd;

const WAIT: Duration = Duration::from_secs(15);

fn config(port: u16, nick: &str) -> ConnectionConfig {
    let mut config = ConnectionConfig::new("127.0.0.1", port, nick);
    config.flood = FloodConfig::unlimited();
    config.backoff.initial = Duration::from_millis(100);
    config.backoff.max = Duration::from_millis(500);
    config
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default())
}

/// Receives events until `pick` returns something; panics after 15 s with
/// what was seen.
async fn wait_for<T>(
    events: &mut Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let event = match timeout(deadline - Instant::now(), events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("events ended while waiting for {what}; seen: {seen:#?}"),
            Err(_) => panic!("no {what} within {WAIT:?}; seen: {seen:#?}"),
        };
        if let Some(found) = pick(&event) {
            return found;
        }
        seen.push(event);
    }
}

async fn registered(events: &mut Receiver<Event>) -> String {
    wait_for(events, "Registered", |e| match e {
        Event::Registered { nick, .. } => Some(nick.clone()),
        _ => None,
    })
    .await
}

fn message(event: &Event) -> Option<&IrcMessage> {
    match event {
        Event::Message(msg) => Some(msg),
        _ => None,
    }
}

/// Waits for the server's confirmation that `nick` joined `channel`.
async fn joined(events: &mut Receiver<Event>, nick: &str, channel: &str) {
    wait_for(events, &format!("{nick} JOIN {channel}"), |e| {
        message(e).filter(|m| {
            m.command == "JOIN" && m.source_nick() == Some(nick) && m.param(0) == Some(channel)
        })?;
        Some(())
    })
    .await
}

/// (source nick, target, text) of a PRIVMSG event.
fn privmsg(event: &Event) -> Option<(String, String, String)> {
    let msg = message(event).filter(|m| m.command == "PRIVMSG")?;
    Some((
        msg.source_nick()?.to_owned(),
        msg.param(0)?.to_owned(),
        msg.param(1)?.to_owned(),
    ))
}

async fn connect(engine: &Engine, config: ConnectionConfig) -> (Handle, Receiver<Event>) {
    let (handle, mut events) = engine.connect(config).expect("a valid config");
    registered(&mut events).await;
    (handle, events)
}

#[tokio::test]
async fn two_clients_register_and_talk_in_a_channel() {
    let server = Ngircd::start();
    let engine = engine();
    let (alice, mut alice_events) = engine.connect(config(server.port, "alice")).unwrap();
    let (caps, isupport) = wait_for(&mut alice_events, "Registered", |e| match e {
        Event::Registered {
            nick,
            caps,
            isupport,
        } => {
            assert_eq!(nick, "alice");
            Some((caps.clone(), Arc::clone(isupport)))
        }
        _ => None,
    })
    .await;
    // ngIRCd offers multi-prefix only, and we want it.
    assert_eq!(caps, ["multi-prefix"]);
    assert_eq!(isupport.network(), Some("PasserelleTest"));
    assert_eq!(isupport.nicklen(), Some(30));
    assert_eq!(isupport.chantypes(), "#&+");
    assert_eq!(isupport.prefix()[0], ('q', '~'));
    assert!(isupport.chanmodes().unwrap().always.contains('k'));
    let state = alice.state();
    assert!(state.connected);
    assert_eq!(state.nick, "alice");
    assert_eq!(state.caps, ["multi-prefix"]);

    let (bob, mut bob_events) = connect(&engine, config(server.port, "bob")).await;
    bob.join("#room").await.unwrap();
    joined(&mut bob_events, "bob", "#room").await;
    alice.join("#room").await.unwrap();
    joined(&mut alice_events, "alice", "#room").await;
    assert_eq!(alice.state().channels, ["#room"]);

    alice.privmsg("#room", "hello, bob").await.unwrap();
    let msg = wait_for(&mut bob_events, "alice's PRIVMSG", |e| {
        message(e).filter(|m| m.command == "PRIVMSG").cloned()
    })
    .await;
    assert_eq!(
        msg.prefix,
        Some(Prefix::Nickname(
            "alice".into(),
            "~alice".into(),
            "127.0.0.1".into()
        ))
    );
    assert_eq!(msg.params, ["#room", "hello, bob"]);

    alice.part("#room", Some("bye")).await.unwrap();
    wait_for(&mut alice_events, "PART", |e| {
        message(e).filter(|m| m.command == "PART").map(|_| ())
    })
    .await;
    assert!(alice.state().channels.is_empty());
}

#[tokio::test]
async fn nick_collision_gets_an_alternative() {
    let server = Ngircd::start();
    let engine = engine();
    let (_first, _first_events) = connect(&engine, config(server.port, "dup")).await;
    let (second, mut events) = engine.connect(config(server.port, "dup")).unwrap();
    let rejected = wait_for(&mut events, "NickUnavailable", |e| match e {
        Event::NickUnavailable {
            nick,
            code,
            retry_with,
        } => Some((nick.clone(), *code, retry_with.clone())),
        _ => None,
    })
    .await;
    assert_eq!(rejected, ("dup".into(), 433, Some("dup_".into())));
    assert_eq!(registered(&mut events).await, "dup_");
    assert_eq!(second.state().nick, "dup_");
}

#[tokio::test]
async fn restart_reconnects_and_rejoins_without_duplicates() {
    let server = Ngircd::start();
    let engine = engine();
    let (alice, mut alice_events) = connect(&engine, config(server.port, "alice")).await;
    let (bob, mut bob_events) = connect(&engine, config(server.port, "bob")).await;
    for (handle, events, nick) in [
        (&alice, &mut alice_events, "alice"),
        (&bob, &mut bob_events, "bob"),
    ] {
        handle.join("#r").await.unwrap();
        joined(events, nick, "#r").await;
    }
    let mut received = Vec::new();
    alice.privmsg("#r", "before").await.unwrap();
    received.push(wait_for(&mut bob_events, "before", privmsg).await.2);

    server.restart();
    for events in [&mut alice_events, &mut bob_events] {
        let reason = wait_for(events, "Disconnected", |e| match e {
            Event::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
        assert!(
            matches!(
                reason,
                DisconnectReason::Closed | DisconnectReason::ServerError(_)
            ),
            "{reason:?}"
        );
    }
    assert!(!alice.state().connected);
    assert!(matches!(
        alice.privmsg("#r", "lost").await,
        Err(SendError::NotConnected)
    ));
    registered(&mut alice_events).await;
    joined(&mut alice_events, "alice", "#r").await;
    // Bob's own rejoin; Alice's JOIN may come before or after it.
    wait_for(&mut bob_events, "bob rejoining", |e| {
        if let Some(text) = privmsg(e).map(|p| p.2) {
            received.push(text);
        }
        matches!(e, Event::Registered { .. }).then_some(())
    })
    .await;
    joined(&mut bob_events, "bob", "#r").await;
    assert_eq!(bob.state().channels, ["#r"]);

    alice.privmsg("#r", "after").await.unwrap();
    let deadline = Instant::now() + Duration::from_millis(700);
    while let Ok(Some(event)) = timeout(deadline - Instant::now(), bob_events.recv()).await {
        if let Some((_, _, text)) = privmsg(&event) {
            received.push(text);
        }
    }
    assert_eq!(received, ["before", "after"]);
}

#[tokio::test]
async fn a_parameter_with_crlf_arrives_as_exactly_one_privmsg() {
    let server = Ngircd::start();
    let engine = engine();
    let (alice, mut alice_events) = connect(&engine, config(server.port, "alice")).await;
    let (_bob, mut bob_events) = connect(&engine, config(server.port, "bob")).await;

    alice.privmsg("bob", "a\r\nQUIT :x").await.unwrap();
    alice.privmsg("bob", "b\0\nJOIN #evil").await.unwrap();
    alice.privmsg("bob", "end").await.unwrap();
    let mut texts = Vec::new();
    wait_for(&mut bob_events, "the last PRIVMSG", |e| {
        let (from, target, text) = privmsg(e)?;
        assert_eq!((from.as_str(), target.as_str()), ("alice", "bob"));
        texts.push(text);
        (texts.len() == 3).then_some(())
    })
    .await;
    assert_eq!(texts, ["aQUIT :x", "bJOIN #evil", "end"]);
    // Alice neither quit nor joined anything.
    assert!(alice.state().connected);
    assert!(alice.state().channels.is_empty());
    while let Ok(event) = alice_events.try_recv() {
        assert!(!matches!(event, Event::Disconnected { .. }), "{event:?}");
    }
}

#[tokio::test]
async fn non_utf8_lines_are_decoded_with_the_fallback() {
    let server = Ngircd::start();
    let engine = engine();
    let (_alice, mut events) = connect(&engine, config(server.port, "alice")).await;
    // A legacy client speaking latin1 over a raw socket.
    let mut legacy = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    legacy
        .write_all(b"NICK old\r\nUSER old 0 * :Old\r\nPRIVMSG alice :caf\xe9 cr\xe8me \x80\r\n")
        .await
        .unwrap();
    let (from, _, text) = wait_for(&mut events, "the latin1 PRIVMSG", privmsg).await;
    assert_eq!(from, "old");
    assert_eq!(text, "café crème €");
}

#[tokio::test]
async fn tls_with_a_custom_root_store() {
    let server = Ngircd::start_with_tls();
    let mut engine_config = EngineConfig::default();
    engine_config.tls_roots = TlsRoots::Custom(server.root_store());
    let engine = Engine::new(engine_config);
    let mut config = config(server.tls_port.unwrap(), "secure");
    config.tls = true;
    let (secure, _events) = connect(&engine, config).await;
    assert!(secure.state().connected);

    // An engine that does not trust this self-signed certificate refuses it.
    let mut config = self::config(server.tls_port.unwrap(), "insecure");
    config.tls = true;
    let (_handle, mut events) = engine_trusting_nothing().connect(config).unwrap();
    let reason = wait_for(&mut events, "Disconnected", |e| match e {
        Event::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(&reason, DisconnectReason::Connect(e) if e.contains("TLS")),
        "{reason:?}"
    );
}

fn engine_trusting_nothing() -> Engine {
    let mut config = EngineConfig::default();
    config.tls_roots = TlsRoots::Custom(Arc::new(rustls::RootCertStore::empty()));
    Engine::new(config)
}

#[tokio::test]
async fn flood_limit_paces_lines() {
    let server = Ngircd::start();
    let engine = engine();
    let mut slow = config(server.port, "slow");
    slow.flood = FloodConfig {
        burst: 2,
        interval: Duration::from_millis(300),
    };
    let (sender, _sender_events) = connect(&engine, slow).await;
    let (_reader, mut events) = connect(&engine, config(server.port, "reader")).await;
    for i in 0..6 {
        sender
            .privmsg("reader", &format!("line {i}"))
            .await
            .unwrap();
    }
    let mut arrivals = Vec::new();
    wait_for(&mut events, "6 lines", |e| {
        privmsg(e)?;
        arrivals.push(Instant::now());
        (arrivals.len() == 6).then_some(())
    })
    .await;
    // 2 at once, then one every 300 ms: 4 intervals from the first to the last.
    let spread = arrivals[5] - arrivals[0];
    assert!(spread >= Duration::from_millis(1100), "{spread:?}");
    assert!(spread < Duration::from_millis(3000), "{spread:?}");
}

#[tokio::test]
async fn disconnect_sends_quit_and_stops_for_good() {
    let server = Ngircd::start();
    let engine = engine();
    let (alice, mut alice_events) = connect(&engine, config(server.port, "alice")).await;
    let (bob, mut bob_events) = connect(&engine, config(server.port, "bob")).await;
    for (handle, events, nick) in [
        (&alice, &mut alice_events, "alice"),
        (&bob, &mut bob_events, "bob"),
    ] {
        handle.join("#q").await.unwrap();
        joined(events, nick, "#q").await;
    }
    alice.disconnect(Some("see you"));
    let quit = wait_for(&mut bob_events, "alice's QUIT", |e| {
        message(e)
            .filter(|m| m.command == "QUIT" && m.source_nick() == Some("alice"))
            .cloned()
    })
    .await;
    assert!(quit.params[0].contains("see you"), "{:?}", quit.params);
    wait_for(&mut alice_events, "Disconnected", |e| {
        matches!(
            e,
            Event::Disconnected {
                reason: DisconnectReason::Requested
            }
        )
        .then_some(())
    })
    .await;
    assert!(
        timeout(WAIT, alice_events.recv()).await.unwrap().is_none(),
        "the event stream ends"
    );
    assert!(alice.is_closed());
    assert_eq!(alice.privmsg("#q", "x").await, Err(SendError::Closed));
}

#[tokio::test]
async fn ping_timeout_is_detected_and_lag_measured() {
    let server = FakeServer::bind().await;
    let engine = engine();
    let mut config = config(server.port, "alice");
    config.ping_interval = Duration::from_millis(200);
    config.ping_timeout = Duration::from_millis(400);
    let (handle, mut events) = engine.connect(config).unwrap();
    let mut client = server.accept().await;
    client.register_without_cap("alice").await;
    registered(&mut events).await;

    // The first keepalive PING is answered...
    let ping = client.expect("PING ").await;
    let token = ping.trim_start_matches("PING ").trim_start_matches(':');
    sleep(Duration::from_millis(50)).await;
    client
        .send(&format!(":fake.test PONG fake.test :{token}"))
        .await;
    // ...the next one is not.
    client.expect("PING ").await;
    let started = Instant::now();
    let lag = handle.state().lag.expect("lag measured");
    assert!(lag >= Duration::from_millis(50), "{lag:?}");
    let reason = wait_for(&mut events, "Disconnected", |e| match e {
        Event::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, DisconnectReason::PingTimeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        handle.state().lag,
        None,
        "lag belongs to the lost connection"
    );
    wait_for(&mut events, "Reconnecting", |e| {
        matches!(e, Event::Reconnecting { .. }).then_some(())
    })
    .await;
    // And it comes back.
    let mut again = server.accept().await;
    again.register_without_cap("alice").await;
    registered(&mut events).await;
}

#[tokio::test]
async fn server_pings_are_answered() {
    let server = FakeServer::bind().await;
    let engine = engine();
    let (_handle, mut events) = engine.connect(config(server.port, "alice")).unwrap();
    let mut client = server.accept().await;
    client.register_without_cap("alice").await;
    registered(&mut events).await;
    client.send("PING :are-you-there").await;
    assert_eq!(client.expect("PONG").await, "PONG are-you-there");
}

#[tokio::test]
async fn global_limiter_caps_concurrent_attempts() {
    let server = Arc::new(FakeServer::bind().await);
    let mut engine_config = EngineConfig::default();
    engine_config.max_concurrent_connects = 2;
    let engine = Engine::new(engine_config);
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));

    // The server registers each client 150 ms after it connected, and counts
    // the connections not registered yet.
    let acceptor = {
        let (server, current, peak) =
            (Arc::clone(&server), Arc::clone(&current), Arc::clone(&peak));
        tokio::spawn(async move {
            let mut clients = Vec::new();
            for _ in 0..10 {
                let mut client = server.accept().await;
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let current = Arc::clone(&current);
                clients.push(tokio::spawn(async move {
                    let nick = client.expect("NICK ").await[5..].to_owned();
                    client.expect("USER ").await;
                    sleep(Duration::from_millis(150)).await;
                    current.fetch_sub(1, Ordering::SeqCst);
                    client.send(":fake.test 421 * CAP :Unknown command").await;
                    client.welcome(&nick).await;
                    // Keep the connection open.
                    while client.line().await.is_some() {}
                }));
            }
            clients
        })
    };

    let mut connections = Vec::new();
    for i in 0..10 {
        connections.push(
            engine
                .connect(config(server.port, &format!("p{i}")))
                .unwrap(),
        );
    }
    let sampler = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut max = 0;
            for _ in 0..200 {
                max = max.max(engine.attempts_in_flight());
                sleep(Duration::from_millis(5)).await;
            }
            max
        })
    };
    let started = Instant::now();
    for (_, events) in &mut connections {
        registered(events).await;
    }
    // 10 registrations of 150 ms, 2 at a time: at least 5 rounds.
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert!(sampler.await.unwrap() <= 2);
    assert_eq!(engine.attempts_in_flight(), 0);
    drop(acceptor);
}

#[tokio::test]
async fn sasl_plain_against_a_scripted_server() {
    let server = FakeServer::bind().await;
    let engine = engine();
    let mut config = config(server.port, "alice");
    config.sasl = Some(Sasl::Plain {
        username: "alice".into(),
        password: "sesame".into(),
    });
    config.server_password = Some("server pass".into());
    let (handle, mut events) = engine.connect(config).unwrap();
    let mut client = server.accept().await;
    let opening = [
        client.line().await.unwrap(),
        client.line().await.unwrap(),
        client.line().await.unwrap(),
        client.line().await.unwrap(),
    ];
    assert_eq!(
        opening,
        [
            "PASS :server pass",
            "CAP LS 302",
            "NICK alice",
            "USER alice 0 * alice"
        ]
    );
    client
        .send(":fake.test CAP * LS * :sasl=PLAIN,EXTERNAL draft/foo")
        .await;
    client
        .send(":fake.test CAP * LS :server-time message-tags")
        .await;
    assert_eq!(
        client.line().await.unwrap(),
        "CAP REQ :sasl server-time message-tags"
    );
    client
        .send(":fake.test CAP alice ACK :sasl server-time message-tags")
        .await;
    assert_eq!(client.line().await.unwrap(), "AUTHENTICATE PLAIN");
    client.send("AUTHENTICATE +").await;
    // base64("alice\0alice\0sesame")
    assert_eq!(
        client.line().await.unwrap(),
        "AUTHENTICATE YWxpY2UAYWxpY2UAc2VzYW1l"
    );
    client
        .send(":fake.test 900 alice alice!a@h alice :You are now logged in as alice")
        .await;
    client
        .send(":fake.test 903 alice :SASL authentication successful")
        .await;
    assert_eq!(client.line().await.unwrap(), "CAP END");
    client.welcome("alice").await;
    let caps = wait_for(&mut events, "Registered", |e| match e {
        Event::Registered { caps, .. } => Some(caps.clone()),
        _ => None,
    })
    .await;
    assert_eq!(caps, ["sasl", "server-time", "message-tags"]);
    assert_eq!(handle.state().account.as_deref(), Some("alice"));

    // server-time and tags reach the events; tags can be sent.
    client
        .send("@time=2024-01-01T00:00:00.250Z;msgid=m1 :bob!b@h PRIVMSG alice :hi")
        .await;
    let msg = wait_for(&mut events, "tagged PRIVMSG", |e| {
        message(e).filter(|m| m.command == "PRIVMSG").cloned()
    })
    .await;
    assert_eq!(msg.server_time_ms, Some(1_704_067_200_250));
    assert_eq!(msg.tag("msgid"), Some("m1"));
    let react = vec![
        passerelle_irc::conn::Tag("+draft/react".into(), Some("👍".into())),
        passerelle_irc::conn::Tag("+draft/reply".into(), Some("m1".into())),
    ];
    handle.tagmsg("bob", react).await.unwrap();
    assert_eq!(
        client.expect("@").await,
        "@+draft/react=👍;+draft/reply=m1 TAGMSG bob"
    );
}

#[tokio::test]
async fn sasl_failure_is_reported_and_registration_goes_on() {
    let server = FakeServer::bind().await;
    let engine = engine();
    let mut config = config(server.port, "alice");
    config.sasl = Some(Sasl::Plain {
        username: "alice".into(),
        password: "wrong".into(),
    });
    let (handle, mut events) = engine.connect(config).unwrap();
    let mut client = server.accept().await;
    client.expect("USER ").await;
    client.send(":fake.test CAP * LS :sasl").await;
    assert_eq!(client.line().await.unwrap(), "CAP REQ sasl");
    client.send(":fake.test CAP * ACK :sasl").await;
    assert_eq!(client.line().await.unwrap(), "AUTHENTICATE PLAIN");
    client.send("AUTHENTICATE +").await;
    client.expect("AUTHENTICATE ").await;
    client
        .send(":fake.test 904 alice :SASL authentication failed")
        .await;
    assert_eq!(client.line().await.unwrap(), "CAP END");
    let failure = wait_for(&mut events, "SaslFailed", |e| match e {
        Event::SaslFailed { code, reason } => Some((*code, reason.clone())),
        _ => None,
    })
    .await;
    assert_eq!(failure, (904, "SASL authentication failed".to_owned()));
    client.welcome("alice").await;
    registered(&mut events).await;
    assert_eq!(handle.state().account, None);
}

#[tokio::test]
async fn nickserv_identify_when_the_server_has_no_sasl() {
    let server = FakeServer::bind().await;
    let engine = engine();
    let mut config = config(server.port, "alice");
    config.nickserv_password = Some("s3cret".into());
    let (_handle, mut events) = engine.connect(config).unwrap();
    let mut client = server.accept().await;
    client.register_without_cap("alice").await;
    registered(&mut events).await;
    assert_eq!(
        client.expect("PRIVMSG").await,
        "PRIVMSG NickServ :IDENTIFY s3cret"
    );
}

#[tokio::test]
async fn dropping_every_handle_quits() {
    let server = FakeServer::bind().await;
    let engine = engine();
    let (handle, mut events) = engine.connect(config(server.port, "alice")).unwrap();
    let mut client = server.accept().await;
    client.register_without_cap("alice").await;
    registered(&mut events).await;
    drop(handle);
    assert_eq!(client.expect("QUIT").await, "QUIT");
    assert_eq!(client.line().await, None);
}
