//! Intent calls against the mock homeserver: paths, query, bodies, and the
//! retry behaviour that depends on the call.

use http::Method;
use ruma::{OwnedRoomId, RoomAliasId, RoomId, event_id, mxc_uri, owned_user_id, room_id, user_id};
use serde_json::json;

use super::*;
use crate::matrix::{
    content,
    mock::{AS_TOKEN, MockServer},
};

const GHOST: &str = "@_telegram_42:example.org";

fn ghost(server: &MockServer) -> Intent {
    server.client().intent(GHOST.try_into().unwrap())
}

#[tokio::test]
async fn ghost_requests_carry_the_token_and_masquerade() {
    let server = MockServer::start().await;
    server
        .mock_joined_rooms()
        .ok(&["!abc:example.org", "!abcDEF123"]);

    let rooms = ghost(&server).joined_rooms().await.unwrap();

    assert_eq!(
        rooms,
        [room_id!("!abc:example.org"), room_id!("!abcDEF123")]
    );
    let request = server.single_request();
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {AS_TOKEN}").as_str())
    );
    assert_eq!(request.query_param("user_id"), Some(GHOST));
    assert!(!request.path.contains(AS_TOKEN));
}

#[tokio::test]
async fn bot_requests_do_not_masquerade() {
    let server = MockServer::start().await;
    server.mock_joined_rooms().ok(&[]).ok(&[]);

    server.bot().joined_rooms().await.unwrap();
    // Masquerading as the bot itself is allowed too.
    server
        .client()
        .intent(owned_user_id!("@bot:example.org"))
        .joined_rooms()
        .await
        .unwrap();

    let requests = server.requests();
    assert_eq!(requests[0].query_param("user_id"), None);
    assert_eq!(requests[1].query_param("user_id"), Some("@bot:example.org"));
    assert!(requests.iter().all(|r| r.authorization.is_some()));
}

#[tokio::test]
async fn room_ids_are_percent_encoded_in_paths() {
    let server = MockServer::start().await;
    server.mock_send().ok("$a").ok("$b");
    let intent = ghost(&server);
    let text = content::text("hi", None);

    intent
        .send(room_id!("!abc:example.org"), "m.room.message", &text, None)
        .await
        .unwrap();
    intent
        .send(room_id!("!abcDEF123"), "m.room.message", &text, None)
        .await
        .unwrap();

    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths[0].starts_with("/_matrix/client/v3/rooms/%21abc%3Aexample.org/send/m.room.message/"),
        "{}",
        paths[0]
    );
    assert!(
        paths[1].starts_with("/_matrix/client/v3/rooms/%21abcDEF123/send/m.room.message/"),
        "{}",
        paths[1]
    );
}

#[tokio::test]
async fn send_returns_the_event_id_and_passes_ts() {
    let server = MockServer::start().await;
    server.mock_send().ok("$sent:example.org").ok("$second");
    let intent = ghost(&server);
    let text = content::text("hello", Some("<b>hello</b>"));

    let event_id = intent
        .send(
            room_id!("!abcDEF123"),
            "m.room.message",
            &text,
            Some(1_700_000_000_123),
        )
        .await
        .unwrap();
    intent
        .send(room_id!("!abcDEF123"), "m.room.message", &text, None)
        .await
        .unwrap();

    assert_eq!(event_id, "$sent:example.org");
    let requests = server.requests();
    assert_eq!(requests[0].method, Method::PUT);
    assert_eq!(requests[0].query_param("ts"), Some("1700000000123"));
    assert_eq!(requests[0].query_param("user_id"), Some(GHOST));
    let mut sent = requests[0].json();
    let marker = sent
        .as_object_mut()
        .unwrap()
        .remove(crate::matrix::TXN_MARKER_KEY)
        .unwrap();
    assert_eq!(sent, text, "the content plus the marker, nothing else");
    assert_eq!(marker.as_str().unwrap().len(), 32);
    assert_ne!(
        requests[1].json()[crate::matrix::TXN_MARKER_KEY],
        marker,
        "each send has its own marker"
    );
    assert_eq!(requests[1].query_param("ts"), None);
    assert_ne!(
        requests[0].path, requests[1].path,
        "each send has its own txn id"
    );
}

#[tokio::test]
async fn retried_send_reuses_the_txn_id() {
    let server = MockServer::start().await;
    server
        .mock_send()
        .error(502, "M_UNKNOWN")
        .rate_limited(5)
        .ok("$ev");
    // After the 502 the event may exist: each retry looks for it first.
    server.mock_messages().timeline().timeline();

    let event_id = ghost(&server)
        .send(
            room_id!("!abcDEF123"),
            "m.room.message",
            &content::text("x", None),
            Some(5),
        )
        .await
        .unwrap();

    assert_eq!(event_id, "$ev");
    let requests = server.requests();
    let methods: Vec<_> = requests.iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        methods,
        [
            Method::PUT,
            Method::GET,
            Method::PUT,
            Method::GET,
            Method::PUT
        ]
    );
    let sends: Vec<_> = requests
        .iter()
        .filter(|r| r.method == Method::PUT)
        .collect();
    assert!(sends.iter().all(|r| r.path == sends[0].path));
    assert!(sends.iter().all(|r| r.query_param("ts") == Some("5")));
    assert!(sends.iter().all(|r| r.json() == sends[0].json()));
}

#[tokio::test]
async fn a_send_whose_answer_was_lost_is_found_not_sent_again() {
    // Given a homeserver that persists the event and stops before
    // answering, then forgets the transaction id (Synapse restarted).
    let server = MockServer::start().await;
    server
        .mock_send()
        .recorded_then_closed("$first")
        .ok_recorded("$duplicate");
    server.mock_messages().timeline();

    // When the send is retried.
    let event_id = ghost(&server)
        .send(
            room_id!("!abcDEF123"),
            "m.room.message",
            &content::text("once", None),
            None,
        )
        .await
        .unwrap();

    // Then the first event is the answer, and there is only one.
    assert_eq!(event_id, "$first");
    assert_eq!(server.timeline().len(), 1);
    let lookup = &server.requests()[1];
    assert_eq!(lookup.method, Method::GET);
    assert_eq!(lookup.query_param("dir"), Some("b"));
    assert_eq!(lookup.query_param("user_id"), Some(GHOST));
    let filter: serde_json::Value =
        serde_json::from_str(lookup.query_param("filter").unwrap()).unwrap();
    assert_eq!(filter["senders"], json!([GHOST]));
    assert_eq!(filter["types"], json!(["m.room.message"]));
}

/// Encrypts every send into a fixed ciphertext.
struct FixedCiphertext;

#[async_trait::async_trait]
impl crate::matrix::RoomEncryption for FixedCiphertext {
    async fn encrypt(
        &self,
        _room: &RoomId,
        _sender: &ruma::UserId,
        _event_type: &str,
        _content: &serde_json::Value,
    ) -> crate::matrix::Result<Option<serde_json::Value>> {
        Ok(Some(json!({
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "opaque",
        })))
    }
}

#[tokio::test]
async fn in_an_encrypted_room_the_marker_is_in_the_clear_part() {
    let server = MockServer::start().await;
    server
        .mock_send()
        .recorded_then_closed("$first")
        .ok_recorded("$duplicate");
    server.mock_messages().timeline();
    let client = server.client();
    client.set_encryption(std::sync::Arc::new(FixedCiphertext));

    let event_id = client
        .intent(GHOST.try_into().unwrap())
        .send(
            room_id!("!abcDEF123"),
            "m.room.message",
            &content::text("secret words", None),
            None,
        )
        .await
        .unwrap();

    assert_eq!(event_id, "$first");
    let timeline = server.timeline();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0]["type"], "m.room.encrypted");
    assert_eq!(timeline[0]["content"]["ciphertext"], "opaque");
    assert!(timeline[0]["content"][crate::matrix::TXN_MARKER_KEY].is_string());
    assert!(!timeline[0].to_string().contains("secret words"));
    let filter = server.requests()[1]
        .query_param("filter")
        .unwrap()
        .to_owned();
    assert!(filter.contains("m.room.encrypted"), "{filter}");
}

#[tokio::test]
async fn a_later_call_with_the_same_txn_id_looks_first() {
    // Given a send whose answer was lost, and a homeserver that stays away
    // until this client's retries give up.
    let server = MockServer::start().await;
    server
        .mock_send()
        .recorded_then_closed("$first")
        .ok_recorded("$duplicate");
    let messages = server.mock_messages();
    for _ in 0..MockServer::RETRY.max_attempts {
        messages.clone().error(503, "M_UNKNOWN");
    }
    messages.timeline();
    let intent = ghost(&server);
    let room = room_id!("!abcDEF123");
    let text = content::text("once", None);

    let error = intent
        .send_with_txn_id(room, "m.room.message", &text, Some(7), "r42")
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");

    // When the portal queue retries the same message, once it is back.
    let event_id = intent
        .send_with_txn_id(room, "m.room.message", &text, Some(7), "r42")
        .await
        .unwrap();

    // Then it finds the first event instead of making a second one.
    assert_eq!(event_id, "$first");
    assert_eq!(server.timeline().len(), 1);
    let sends = server
        .requests()
        .iter()
        .filter(|r| r.method == Method::PUT)
        .count();
    assert_eq!(sends, 1);
}

#[tokio::test]
async fn the_marker_is_stable_keyed_and_hides_the_txn_id() {
    let server = MockServer::start().await;
    let client = server.client();
    let other = MatrixClient::new(
        server.url(),
        "another_token".to_owned(),
        "example.org".to_owned(),
        MockServer::RETRY,
    )
    .unwrap();

    let marker = client.txn_marker("r0123456789abcdef");

    assert_eq!(marker, client.txn_marker("r0123456789abcdef"));
    assert_ne!(marker, client.txn_marker("r0123456789abcdeg"));
    assert_ne!(marker, other.txn_marker("r0123456789abcdef"));
    assert!(!marker.contains("0123456789abcdef"));
}

#[tokio::test]
async fn send_forbidden_is_not_retried() {
    let server = MockServer::start().await;
    server.mock_send().error(403, "M_FORBIDDEN").ok("$never");

    let error = ghost(&server)
        .send(
            room_id!("!abcDEF123"),
            "m.room.message",
            &content::text("x", None),
            None,
        )
        .await
        .unwrap_err();

    assert_eq!(error.errcode(), Some("M_FORBIDDEN"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn register_sends_the_appservice_login_type() {
    let server = MockServer::start().await;
    server.mock_register().ok(GHOST);

    ghost(&server).ensure_registered().await.unwrap();

    let request = server.single_request();
    assert_eq!(request.path, "/_matrix/client/v3/register");
    assert_eq!(
        request.json(),
        json!({
            "type": "m.login.application_service",
            "username": "_telegram_42",
            "inhibit_login": true,
        })
    );
    assert_eq!(request.query_param("user_id"), None);
}

#[tokio::test]
async fn register_user_in_use_is_success() {
    let server = MockServer::start().await;
    server.mock_register().user_in_use();

    ghost(&server).ensure_registered().await.unwrap();

    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn register_refuses_users_of_other_servers() {
    let server = MockServer::start().await;

    let error = server
        .client()
        .intent(owned_user_id!("@someone:elsewhere.org"))
        .ensure_registered()
        .await
        .unwrap_err();

    assert!(matches!(error, Error::InvalidInput(_)));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn register_exclusive_error_is_reported() {
    let server = MockServer::start().await;
    server.mock_register().error(400, "M_EXCLUSIVE");

    let error = ghost(&server).ensure_registered().await.unwrap_err();

    assert_eq!(error.errcode(), Some("M_EXCLUSIVE"));
}

#[tokio::test]
async fn profile_read_and_write() {
    let server = MockServer::start().await;
    server
        .mock_profile()
        .ok(Some("Alice"), Some("mxc://example.org/av"))
        .ok(Some("Bob"), Some(""));
    server.mock_set_displayname().ok();
    server.mock_set_avatar_url().ok().ok();
    let intent = ghost(&server);

    let profile = intent.profile().await.unwrap();
    let without_avatar = intent.profile().await.unwrap();
    intent.set_displayname("Alice (Telegram)").await.unwrap();
    intent
        .set_avatar_url(Some(mxc_uri!("mxc://example.org/new")))
        .await
        .unwrap();
    intent.set_avatar_url(None).await.unwrap();

    assert_eq!(profile.displayname.as_deref(), Some("Alice"));
    assert_eq!(
        profile.avatar_url.as_deref(),
        Some(mxc_uri!("mxc://example.org/av"))
    );
    assert_eq!(without_avatar.avatar_url, None);
    let requests = server.requests();
    let user = "%40_telegram_42%3Aexample.org";
    assert_eq!(
        requests[0].path,
        format!("/_matrix/client/v3/profile/{user}")
    );
    assert_eq!(
        requests[2].path,
        format!("/_matrix/client/v3/profile/{user}/displayname")
    );
    assert_eq!(
        requests[2].json(),
        json!({ "displayname": "Alice (Telegram)" })
    );
    assert_eq!(
        requests[3].path,
        format!("/_matrix/client/v3/profile/{user}/avatar_url")
    );
    assert_eq!(
        requests[3].json(),
        json!({ "avatar_url": "mxc://example.org/new" })
    );
    assert_eq!(requests[4].json(), json!({ "avatar_url": "" }));
}

#[tokio::test]
async fn create_room_sends_state_alias_and_power_levels() {
    let server = MockServer::start().await;
    server.mock_create_room().ok("!newroom");
    let bot = owned_user_id!("@bot:example.org");
    let info = content::BridgeInfo::new(
        bot.clone(),
        content::BridgeSection::new("irc", Some("IRC".into())),
        content::BridgeSection::new("#rust", None),
    );
    let power_levels = content::PortalPowerLevels::new(bot, true).to_content();
    let mut options = CreateRoom::new();
    options.name = Some("#rust".into());
    options.topic = Some("Rust talk".into());
    options.alias_localpart = Some("_irc_libera_#rust".into());
    options.invite = vec![owned_user_id!("@admin:example.org")];
    options.preset = Some(RoomPreset::PublicChat);
    options.room_version = Some("12".into());
    options.power_level_content_override = Some(power_levels.clone());
    options.initial_state = content::BRIDGE_EVENT_TYPES
        .iter()
        .map(|t| InitialStateEvent::new(*t, info.state_key(), info.to_content()))
        .collect();
    options.creation_content = Some(json!({ "m.federate": true }));

    let room_id = server.bot().create_room(&options).await.unwrap();

    assert_eq!(room_id, "!newroom");
    let body = server.single_request().json();
    assert_eq!(
        body,
        json!({
            "name": "#rust",
            "topic": "Rust talk",
            "room_alias_name": "_irc_libera_#rust",
            "invite": ["@admin:example.org"],
            "preset": "public_chat",
            "room_version": "12",
            "power_level_content_override": power_levels,
            "initial_state": [
                { "type": "m.bridge", "state_key": "passerelle://irc/%23rust", "content": info.to_content() },
                { "type": "uk.half-shot.bridge", "state_key": "passerelle://irc/%23rust", "content": info.to_content() },
            ],
            "creation_content": { "m.federate": true },
        })
    );
}

#[tokio::test]
async fn create_room_is_not_retried_after_a_server_error() {
    let server = MockServer::start().await;
    server
        .mock_create_room()
        .error(502, "M_UNKNOWN")
        .ok("!second");

    let error = server
        .bot()
        .create_room(&CreateRoom::new())
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(502));
    assert_eq!(
        server.requests().len(),
        1,
        "a retry could create a second room"
    );
}

#[tokio::test]
async fn create_room_is_retried_when_rate_limited() {
    let server = MockServer::start().await;
    server.mock_create_room().rate_limited(1).ok("!room");

    let room_id = server.bot().create_room(&CreateRoom::new()).await.unwrap();

    assert_eq!(room_id, "!room");
    assert_eq!(server.requests().len(), 2);
    assert_eq!(server.requests()[0].json(), json!({}));
}

#[tokio::test]
async fn join_accepts_ids_and_aliases() {
    let server = MockServer::start().await;
    server.mock_join().ok("!abcDEF123").ok("!abc:example.org");
    let intent = ghost(&server);
    let alias = <&RoomAliasId>::try_from("#_irc_libera_#rust:example.org").unwrap();

    let by_id = intent.join(room_id!("!abcDEF123")).await.unwrap();
    let by_alias = intent.join(alias).await.unwrap();
    let error = intent.join("not a room").await.unwrap_err();

    assert_eq!(by_id, "!abcDEF123");
    assert_eq!(by_alias, "!abc:example.org");
    assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
    let requests = server.requests();
    assert_eq!(requests[0].path, "/_matrix/client/v3/join/%21abcDEF123");
    assert_eq!(
        requests[1].path,
        "/_matrix/client/v3/join/%23_irc_libera_%23rust%3Aexample.org"
    );
}

#[tokio::test]
async fn membership_actions() {
    let server = MockServer::start().await;
    for action in ["leave", "invite", "kick", "ban", "unban"] {
        server.mock_room_action(action).ok();
    }
    let bot = server.bot();
    let room = room_id!("!abcDEF123");
    let user = user_id!("@_irc_libera_nick:example.org");

    bot.leave(room).await.unwrap();
    bot.invite(room, user).await.unwrap();
    bot.kick(room, user, Some("netsplit")).await.unwrap();
    bot.ban(room, user, None).await.unwrap();
    bot.unban(room, user, None).await.unwrap();

    let got: Vec<(String, serde_json::Value)> = server
        .requests()
        .into_iter()
        .map(|r| (r.path.clone(), r.json()))
        .collect();
    let base = "/_matrix/client/v3/rooms/%21abcDEF123";
    let user = "@_irc_libera_nick:example.org";
    assert_eq!(
        got,
        [
            (format!("{base}/leave"), json!({})),
            (format!("{base}/invite"), json!({ "user_id": user })),
            (
                format!("{base}/kick"),
                json!({ "user_id": user, "reason": "netsplit" })
            ),
            (format!("{base}/ban"), json!({ "user_id": user })),
            (format!("{base}/unban"), json!({ "user_id": user })),
        ]
    );
}

#[tokio::test]
async fn state_events_round_trip() {
    let server = MockServer::start().await;
    server.mock_send_state().ok("$state");
    server
        .mock_state_event()
        .ok(json!({ "name": "Portal" }))
        .error(404, "M_NOT_FOUND");
    let bot = server.bot();
    let room = room_id!("!abc:example.org");

    let event_id = bot
        .send_state(
            room,
            "m.bridge",
            "passerelle://irc/libera/%23rust",
            &json!({ "a": 1 }),
            Some(7),
        )
        .await
        .unwrap();
    let name = bot.state_event(room, "m.room.name", "").await.unwrap();
    let missing = bot.state_event(room, "m.room.topic", "").await.unwrap();

    assert_eq!(event_id, "$state");
    assert_eq!(name, Some(json!({ "name": "Portal" })));
    assert_eq!(missing, None);
    let requests = server.requests();
    assert_eq!(
        requests[0].path,
        "/_matrix/client/v3/rooms/%21abc%3Aexample.org/state/m.bridge/passerelle%3A%2F%2Firc%2Flibera%2F%2523rust"
    );
    assert_eq!(requests[0].query_param("ts"), Some("7"));
    assert_eq!(
        requests[1].path,
        "/_matrix/client/v3/rooms/%21abc%3Aexample.org/state/m.room.name/"
    );
}

#[tokio::test]
async fn state_key_that_url_normalisation_would_rewrite_is_refused() {
    let server = MockServer::start().await;

    let error = server
        .bot()
        .state_event(room_id!("!abcDEF123"), "m.room.name", "..")
        .await
        .unwrap_err();

    assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn redact_encodes_the_event_id_and_sends_the_reason() {
    let server = MockServer::start().await;
    server.mock_redact().ok("$redaction");

    let redaction = ghost(&server)
        .redact(
            room_id!("!abcDEF123"),
            event_id!("$orig/ev+1"),
            Some("deleted on Telegram"),
        )
        .await
        .unwrap();

    assert_eq!(redaction, "$redaction");
    let request = server.single_request();
    assert!(
        request
            .path
            .starts_with("/_matrix/client/v3/rooms/%21abcDEF123/redact/%24orig%2Fev%2B1/"),
        "{}",
        request.path
    );
    assert_eq!(request.json(), json!({ "reason": "deleted on Telegram" }));
}

#[tokio::test]
async fn joined_members_lists_user_ids() {
    let server = MockServer::start().await;
    server
        .mock_joined_members()
        .ok(&["@bot:example.org", GHOST]);

    let mut members = server
        .bot()
        .joined_members(room_id!("!abcDEF123"))
        .await
        .unwrap();
    members.sort();

    assert_eq!(
        members,
        [
            user_id!("@_telegram_42:example.org"),
            user_id!("@bot:example.org")
        ]
    );
    assert_eq!(
        server.single_request().path,
        "/_matrix/client/v3/rooms/%21abcDEF123/joined_members"
    );
}

#[tokio::test]
async fn upload_then_download() {
    let server = MockServer::start().await;
    server.mock_upload().ok("mxc://example.org/AbC123");
    server.mock_download().ok("image/png", b"\x89PNG data");
    let intent = ghost(&server);

    let uri = intent
        .upload(
            b"\x89PNG data".to_vec(),
            "image/png",
            Some("cat picture.png"),
        )
        .await
        .unwrap();
    let (data, content_type) = intent.download(&uri, 1024).await.unwrap();

    assert_eq!(uri, "mxc://example.org/AbC123");
    assert_eq!(data, b"\x89PNG data");
    assert_eq!(content_type.as_deref(), Some("image/png"));
    let requests = server.requests();
    assert_eq!(requests[0].path, "/_matrix/media/v3/upload");
    assert_eq!(requests[0].query_param("filename"), Some("cat picture.png"));
    assert_eq!(requests[0].query_param("user_id"), Some(GHOST));
    assert_eq!(requests[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(&requests[0].body[..], b"\x89PNG data");
    assert_eq!(
        requests[1].path,
        "/_matrix/client/v1/media/download/example.org/AbC123"
    );
    assert!(requests[1].authorization.is_some());
}

#[tokio::test]
async fn download_larger_than_the_limit_fails() {
    let server = MockServer::start().await;
    server
        .mock_download()
        .ok("application/octet-stream", &[0; 100]);

    let error = ghost(&server)
        .download(mxc_uri!("mxc://example.org/big"), 10)
        .await
        .unwrap_err();

    assert!(matches!(error, Error::InvalidResponse(_)), "{error:?}");
}

#[tokio::test]
async fn download_rejects_invalid_mxc() {
    let server = MockServer::start().await;

    let error = ghost(&server)
        .download(&OwnedMxcUri::from("https://example.org/x"), 10)
        .await
        .unwrap_err();

    assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn typing_and_read_markers() {
    let server = MockServer::start().await;
    server.mock_typing().ok().ok();
    server.mock_room_action("read_markers").ok();
    let intent = ghost(&server);
    let room = room_id!("!abcDEF123");

    intent.typing(room, true, 30_000).await.unwrap();
    intent.typing(room, false, 30_000).await.unwrap();
    intent.read_marker(room, event_id!("$read")).await.unwrap();

    let requests = server.requests();
    assert_eq!(
        requests[0].path,
        "/_matrix/client/v3/rooms/%21abcDEF123/typing/%40_telegram_42%3Aexample.org"
    );
    assert_eq!(
        requests[0].json(),
        json!({ "typing": true, "timeout": 30000 })
    );
    assert_eq!(requests[1].json(), json!({ "typing": false }));
    assert_eq!(
        requests[2].path,
        "/_matrix/client/v3/rooms/%21abcDEF123/read_markers"
    );
    assert_eq!(
        requests[2].json(),
        json!({ "m.fully_read": "$read", "m.read": "$read" })
    );
}

#[tokio::test]
async fn room_aliases() {
    let server = MockServer::start().await;
    server
        .mock_get_alias()
        .ok("!abcDEF123")
        .error(404, "M_NOT_FOUND");
    server.mock_set_alias().ok();
    server.mock_delete_alias().ok().error(404, "M_NOT_FOUND");
    let bot = server.bot();
    let alias = <&RoomAliasId>::try_from("#_irc_libera_#rust:example.org").unwrap();
    let room: &RoomId = room_id!("!abcDEF123");

    let found = bot.room_alias(alias).await.unwrap();
    let missing = bot.room_alias(alias).await.unwrap();
    bot.set_room_alias(alias, room).await.unwrap();
    let deleted = bot.delete_room_alias(alias).await.unwrap();
    let already_gone = bot.delete_room_alias(alias).await.unwrap();

    assert_eq!(found, Some(OwnedRoomId::from(room)));
    assert_eq!(missing, None);
    assert!(deleted);
    assert!(!already_gone);
    let requests = server.requests();
    let path = "/_matrix/client/v3/directory/room/%23_irc_libera_%23rust%3Aexample.org";
    assert!(requests.iter().all(|r| r.path == path));
    assert_eq!(requests[2].method, Method::PUT);
    assert_eq!(requests[2].json(), json!({ "room_id": "!abcDEF123" }));
    assert_eq!(requests[3].method, Method::DELETE);
}

#[tokio::test]
async fn default_room_version_from_capabilities() {
    let server = MockServer::start().await;
    server.mock_capabilities().ok("12");

    let version = server.client().default_room_version().await.unwrap();

    assert_eq!(version.as_deref(), Some("12"));
    assert!(content::creators_are_privileged(
        version.as_deref().unwrap()
    ));
}
