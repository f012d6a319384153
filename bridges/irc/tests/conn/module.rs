//! The IRC module (`IrcModule`, its servers and puppets) against the
//! scripted fake server, which offers IRCv3 `message-tags` where ngIRCd has
//! none: the exact lines for Matrix replies and reactions, and IRC replies
//! and reactions turned into Matrix ones. The runtime is a recording fake.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use passerelle_api::{
    BridgeError, ErrorKind, Login, MatrixEvent, MatrixEventKind, MatrixSender, MessageContent,
    Network, PermissionLevel, PortalInfo, PortalKey, RemoteEvent, RemoteEventKind, RemoteMessageId,
    Runtime, Via,
};
use passerelle_irc::IrcModule;
use passerelle_irc::ids::make_channel_portal;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::fake::{FakeClient, FakeServer};

const CHANNEL: &str = "#chan";

/// A runtime that hands every remote event to the test and bridges the
/// channel portal it was told about.
struct RecordingRuntime {
    portals: Vec<PortalKey>,
    events: mpsc::UnboundedSender<RemoteEvent>,
    notices: Mutex<Vec<String>>,
}

#[async_trait]
impl Runtime for RecordingRuntime {
    fn enqueue(&self, event: RemoteEvent) -> passerelle_api::Pending {
        let _ = self.events.send(event);
        Box::pin(async { Ok(Some("$bridged".to_owned())) })
    }

    async fn enqueue_durable(
        &self,
        _key: &str,
        event: RemoteEvent,
    ) -> Result<Option<passerelle_api::Pending>, BridgeError> {
        Ok(Some(self.enqueue(event)))
    }

    async fn update_ghost(&self, _sender: passerelle_api::Sender) -> Result<bool, BridgeError> {
        Ok(false)
    }

    async fn space(&self, _key: &str, _name: &str) -> Result<String, BridgeError> {
        Err(BridgeError::unsupported("no spaces in this test"))
    }

    async fn add_to_space(&self, _space: &str, _portal: &PortalKey) -> Result<(), BridgeError> {
        Ok(())
    }

    fn ghost_mxid(&self, user: &passerelle_api::RemoteUserId) -> String {
        format!("@_irc_{}:localhost", user.as_str())
    }

    async fn portals(&self) -> Result<Vec<PortalKey>, BridgeError> {
        Ok(self.portals.clone())
    }

    fn media_link(&self, _mxc: &str, _filename: &str) -> Option<String> {
        None
    }

    async fn portal_room(&self, _portal: &PortalKey) -> Result<Option<String>, BridgeError> {
        Ok(None)
    }

    async fn is_bridged(
        &self,
        _portal: &PortalKey,
        _remote_id: &RemoteMessageId,
    ) -> Result<bool, BridgeError> {
        Ok(false)
    }

    async fn get_state(
        &self,
        _network: &passerelle_api::NetworkId,
        _key: &str,
    ) -> Result<Option<serde_json::Value>, BridgeError> {
        Ok(None)
    }

    async fn set_state(
        &self,
        _network: &passerelle_api::NetworkId,
        _key: &str,
        _value: serde_json::Value,
    ) -> Result<(), BridgeError> {
        Ok(())
    }

    async fn link_portal(&self, _room_id: &str, _info: PortalInfo) -> Result<(), BridgeError> {
        Ok(())
    }

    async fn logins(&self) -> Result<Vec<Login>, BridgeError> {
        Ok(Vec::new())
    }

    async fn save_login(&self, _login: Login) -> Result<(), BridgeError> {
        Ok(())
    }

    async fn remove_login(&self, _mxid: &str, _login_id: &str) -> Result<(), BridgeError> {
        Ok(())
    }

    async fn download_media(
        &self,
        _mxc: &str,
        _max_bytes: u64,
    ) -> Result<(Vec<u8>, Option<String>), BridgeError> {
        Err(BridgeError::unsupported("no media in these tests"))
    }

    async fn upload_media(
        &self,
        _bytes: Vec<u8>,
        _mime: &str,
        _filename: &str,
    ) -> Result<String, BridgeError> {
        Err(BridgeError::unsupported("no media in these tests"))
    }

    async fn portal_notice(&self, _portal: &PortalKey, text: &str) {
        self.notices.lock().unwrap().push(text.to_owned());
    }

    async fn notify_admins(&self, _text: &str) {}
}

/// The module on network `fake` (the fake server), started with `#chan`
/// bridged, and the bot's connection registered with `caps` offered
/// (`None`: a server without CAP).
async fn start(
    caps: Option<&str>,
) -> (
    FakeServer,
    Arc<IrcModule>,
    FakeClient,
    mpsc::UnboundedReceiver<RemoteEvent>,
) {
    start_with(caps, serde_json::json!({})).await
}

/// [`start`] with more keys in the network's config.
async fn start_with(
    caps: Option<&str>,
    extra: serde_json::Value,
) -> (
    FakeServer,
    Arc<IrcModule>,
    FakeClient,
    mpsc::UnboundedReceiver<RemoteEvent>,
) {
    let server = FakeServer::bind().await;
    let (module, received) = module_on(&server, vec![portal()], extra).await;
    let mut bot = server.accept().await;
    match caps {
        Some(caps) => bot.register_with_caps("bridgebot", caps).await,
        None => bot.register_without_cap("bridgebot").await,
    }
    assert_eq!(bot.expect("JOIN").await, "JOIN #chan");
    bot.send(":bridgebot!bot@fake.test JOIN #chan").await;
    (server, module, bot, received)
}

/// The module started on network `fake` (the fake server) with `portals`
/// bridged and `extra` keys in the network's config; its bot is connecting.
async fn module_on(
    server: &FakeServer,
    portals: Vec<PortalKey>,
    extra: serde_json::Value,
) -> (Arc<IrcModule>, mpsc::UnboundedReceiver<RemoteEvent>) {
    let mut network = serde_json::json!({
        "host": "127.0.0.1", "port": server.port, "tls": false,
        "bot_nick": "bridgebot", "flood_burst": 50, "flood_interval": "10ms"
    });
    for (key, value) in extra.as_object().expect("an object") {
        network[key] = value.clone();
    }
    let config =
        serde_json::from_value(serde_json::json!({"enabled": true, "networks": {"fake": network}}))
            .unwrap();
    let module = Arc::new(IrcModule::new(config));
    let (events, received) = mpsc::unbounded_channel();
    let runtime = Arc::new(RecordingRuntime {
        portals,
        events,
        notices: Mutex::new(Vec::new()),
    });
    module.start(runtime).await.unwrap();
    (module, received)
}

fn portal() -> PortalKey {
    make_channel_portal("fake", CHANNEL)
}

/// A Matrix event in `#chan` from alice (`user`: her own connection) or
/// from dave (`relay`: through the bot).
fn from_matrix(sender: &str, kind: MatrixEventKind) -> MatrixEvent {
    let (level, via) = match sender {
        "alice" => (
            PermissionLevel::User,
            Via::Login {
                login_id: "fake".to_owned(),
            },
        ),
        _ => (PermissionLevel::Relay, Via::Relay),
    };
    MatrixEvent {
        portal: portal(),
        sender: MatrixSender {
            mxid: format!("@{sender}:example.org"),
            display_name: sender.to_owned(),
            avatar_url: None,
            level,
        },
        via,
        event_id: "$event".to_owned(),
        ts: 0,
        kind,
    }
}

fn reply(body: &str, to: &str) -> MatrixEventKind {
    let mut content = MessageContent::text(body);
    content.reply_to = Some(to.into());
    MatrixEventKind::Message(content)
}

fn reaction(to: &str, key: &str) -> MatrixEventKind {
    MatrixEventKind::Reaction {
        target: to.into(),
        key: key.to_owned(),
    }
}

/// Sends alice's first event while the fake server takes her new puppet
/// connection (nick `alice[m]`), and answers the puppet's JOIN.
async fn first_from_alice(
    server: &FakeServer,
    module: &Arc<IrcModule>,
    caps: Option<&str>,
    kind: MatrixEventKind,
) -> (FakeClient, Result<passerelle_api::Delivered, BridgeError>) {
    let sending = tokio::spawn({
        let module = module.clone();
        async move { module.handle_matrix(from_matrix("alice", kind)).await }
    });
    let mut puppet = server.accept().await;
    match caps {
        Some(caps) => puppet.register_with_caps("alice[m]", caps).await,
        None => puppet.register_without_cap("alice[m]").await,
    }
    assert_eq!(puppet.expect("JOIN").await, "JOIN #chan");
    puppet.send(":alice[m]!alice@fake.test JOIN #chan").await;
    let delivered = timeout(Duration::from_secs(10), sending)
        .await
        .expect("the module delivers within 10 s")
        .unwrap();
    (puppet, delivered)
}

/// The next line from the client that is not a repeated `JOIN #chan` (the
/// module joins again when the server's confirmation is still on its way).
async fn next_line(client: &mut FakeClient) -> String {
    loop {
        let line = client.line().await.expect("a line, not EOF");
        if line != "JOIN #chan" {
            return line;
        }
    }
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<RemoteEvent>) -> RemoteEvent {
    timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event for Matrix within 10 s")
        .expect("the runtime is alive")
}

fn message(event: &RemoteEvent) -> &MessageContent {
    match &event.kind {
        RemoteEventKind::Message(content) => content,
        other => panic!("not a message: {other:?}"),
    }
}

#[tokio::test]
async fn matrix_replies_and_reactions_carry_ircv3_tags() {
    let caps = Some("message-tags server-time");
    let (server, module, mut bot, _events) = start(caps).await;

    // A reply from alice's own connection: the tag names the server's msgid
    // of the message replied to, the text still addresses its author.
    let (mut puppet, delivered) =
        first_from_alice(&server, &module, caps, reply("thanks", "m1|bob")).await;
    delivered.unwrap();
    assert_eq!(
        next_line(&mut puppet).await,
        "@+draft/reply=m1 PRIVMSG #chan :bob: thanks"
    );

    // A reaction is a TAGMSG on that msgid.
    module
        .handle_matrix(from_matrix("alice", reaction("m1|bob", "👍")))
        .await
        .unwrap();
    assert_eq!(
        next_line(&mut puppet).await,
        "@+draft/react=👍;+draft/reply=m1 TAGMSG #chan"
    );

    // A reply to a message we only know by our own id (no server msgid):
    // no tag, only the addressing.
    module
        .handle_matrix(from_matrix("alice", reply("ok", "~1700000000000.3|bob")))
        .await
        .unwrap();
    assert_eq!(next_line(&mut puppet).await, "PRIVMSG #chan :bob: ok");

    // Through the relay, the bot carries the tag.
    module
        .handle_matrix(from_matrix("dave", reply("me too", "m1|bob")))
        .await
        .unwrap();
    assert_eq!(
        bot.expect("@").await,
        "@+draft/reply=m1 PRIVMSG #chan :<dave> bob: me too"
    );
}

#[tokio::test]
async fn without_message_tags_replies_are_plain_and_reactions_refused() {
    let (server, module, _bot, _events) = start(None).await;
    let (mut puppet, delivered) =
        first_from_alice(&server, &module, None, reply("thanks", "m1|bob")).await;
    delivered.unwrap();
    assert_eq!(next_line(&mut puppet).await, "PRIVMSG #chan :bob: thanks");

    // The reaction is refused as unsupported (the runtime tells the Matrix
    // user), and nothing goes to IRC: the next line is the next message.
    let refused = module
        .handle_matrix(from_matrix("alice", reaction("m1|bob", "👍")))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Unsupported, "{refused:?}");
    module
        .handle_matrix(from_matrix(
            "alice",
            MatrixEventKind::Message(MessageContent::text("after")),
        ))
        .await
        .unwrap();
    assert_eq!(next_line(&mut puppet).await, "PRIVMSG #chan after");
}

#[tokio::test]
async fn ircv3_replies_and_reactions_reach_matrix_as_replies_and_reactions() {
    let (_server, _module, mut bot, mut events) = start(Some("message-tags server-time")).await;
    bot.send("@msgid=m1 :bob!bob@fake.test PRIVMSG #chan :question?")
        .await;
    bot.send("@msgid=m2;+draft/reply=m1 :carol!carol@fake.test PRIVMSG #chan :answer")
        .await;
    bot.send("@+draft/react=👍;+draft/reply=m1 :carol!carol@fake.test TAGMSG #chan")
        .await;
    // Replies to messages the bridge never saw are plain messages.
    bot.send("@msgid=m3;+draft/reply=unseen :carol!carol@fake.test PRIVMSG #chan :what?")
        .await;

    let question = next_event(&mut events).await;
    assert_eq!(question.portal, portal());
    assert_eq!(question.remote_id, Some("m1|bob".into()));
    assert_eq!(message(&question).body, "question?");
    assert_eq!(message(&question).reply_to, None);

    // The reply points at the remote id the question was recorded under,
    // which the runtime maps to its Matrix event.
    let answer = next_event(&mut events).await;
    assert_eq!(answer.remote_id, Some("m2|carol".into()));
    assert_eq!(message(&answer).body, "answer");
    assert_eq!(message(&answer).reply_to, question.remote_id);

    let reacted = next_event(&mut events).await;
    assert_eq!(reacted.sender.id, "fake/carol".into());
    assert_eq!(
        reacted.kind,
        RemoteEventKind::Reaction {
            target: "m1|bob".into(),
            key: "👍".to_owned()
        }
    );

    let unrelated = next_event(&mut events).await;
    assert_eq!(unrelated.remote_id, Some("m3|carol".into()));
    assert_eq!(message(&unrelated).reply_to, None);
}

#[tokio::test]
async fn an_idle_puppet_quitting_is_not_an_irc_user_leaving() {
    let (server, module, mut bot, mut events) =
        start_with(None, serde_json::json!({"idle_timeout": "1s"})).await;
    let hello = MatrixEventKind::Message(MessageContent::text("hello"));
    let (mut puppet, delivered) = first_from_alice(&server, &module, None, hello).await;
    delivered.unwrap();
    assert_eq!(next_line(&mut puppet).await, "PRIVMSG #chan hello");
    // The bot sees alice's puppet in the channel, as the server tells it.
    bot.send(":alice[m]!alice@fake.test JOIN #chan").await;

    // A second without a word from alice: the bridge disconnects her
    // puppet, and the bot then sees it quit. That is no IRC user leaving:
    // the next event for Matrix is bob's message.
    puppet.expect("QUIT").await;
    bot.send(":alice[m]!alice@fake.test QUIT :Quit: Idle").await;
    bot.send(":bob!bob@fake.test PRIVMSG #chan :still here")
        .await;
    let next = next_event(&mut events).await;
    assert_eq!(next.sender.id, "fake/bob".into(), "{next:?}");
    assert_eq!(message(&next).body, "still here");
}

/// The bot rejoins 100 bridged channels after the server restarted, and the
/// server answers each JOIN (the JOIN, the topic, NAMES) much faster than
/// the flood limit lets the bot's own JOINs out. The bot's event loop must
/// go on taking those answers while the JOINs wait for room in the send
/// queue: when the loop waited for that room itself, the connection waited
/// for the loop in turn, and nothing was bridged again.
#[tokio::test]
async fn rejoining_many_channels_after_a_reconnection_does_not_stall_the_bot() {
    let channels: Vec<String> = (0..100).map(|i| format!("#room{i:02}")).collect();
    let server = FakeServer::bind().await;
    let portals = channels
        .iter()
        .map(|c| make_channel_portal("fake", c))
        .collect();
    // A flood limit like a real network's, only faster: 5 lines at once,
    // then one every 5 ms.
    let extra = serde_json::json!({"flood_burst": 5, "flood_interval": "5ms"});
    let (_module, mut events) = module_on(&server, portals, extra).await;

    // The first connection: the server confirms the JOINs only once the
    // bot's event loop is free (it answers a private message), so this part
    // holds with the deadlock too.
    let mut bot = server.accept().await;
    bot.register_without_cap("bridgebot").await;
    bot.send(":sync!sync@fake.test PRIVMSG bridgebot :done?")
        .await;
    bot.expect("NOTICE sync ").await;
    for channel in &channels {
        bot.send(&format!(":bridgebot!bot@fake.test JOIN {channel}"))
            .await;
    }
    bot.send(":bob!bob@fake.test PRIVMSG #room42 :before").await;
    from_bob(&mut events, "before").await;

    // The server restarts; the bot comes back and rejoins, and every
    // channel is answered as it is asked for.
    drop(bot);
    let mut bot = server.accept().await;
    bot.register_without_cap("bridgebot").await;
    let mut answered = HashSet::new();
    while answered.len() < channels.len() {
        let line = bot.line().await.expect("JOINs, not EOF");
        let Some(params) = line.strip_prefix("JOIN ") else {
            continue;
        };
        let names = params.split(' ').next().unwrap_or_default();
        for channel in names.split(',') {
            if answered.insert(channel.to_owned()) {
                answer_join(&mut bot, channel).await;
            }
        }
    }
    bot.send(":bob!bob@fake.test PRIVMSG #room42 :after").await;
    from_bob(&mut events, "after").await;
}

/// What a server sends when the bot joins `channel`.
async fn answer_join(bot: &mut FakeClient, channel: &str) {
    bot.send(&format!(":bridgebot!bot@fake.test JOIN {channel}"))
        .await;
    bot.send(&format!(
        ":fake.test 332 bridgebot {channel} :About {channel}"
    ))
    .await;
    bot.send(&format!(
        ":fake.test 333 bridgebot {channel} bob!bob@fake.test 1700000000"
    ))
    .await;
    bot.send(&format!(
        ":fake.test 353 bridgebot = {channel} :bridgebot @bob carol"
    ))
    .await;
    bot.send(&format!(
        ":fake.test 366 bridgebot {channel} :End of /NAMES list."
    ))
    .await;
}

/// Waits up to 5 s for bob's message `body` to reach the runtime, past
/// other events (members joining, topics).
async fn from_bob(events: &mut mpsc::UnboundedReceiver<RemoteEvent>, body: &str) {
    let wait = Duration::from_secs(5);
    let found = timeout(wait, async {
        while let Some(event) = events.recv().await {
            if let RemoteEventKind::Message(content) = &event.kind
                && event.sender.id == "fake/bob".into()
                && content.body == body
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "bob's {body:?} not bridged within {wait:?}"
    );
}
