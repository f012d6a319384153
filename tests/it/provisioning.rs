//! The provisioning API on its own listener: the shared secret, networks,
//! link / portals / unlink through the test module's own `link`, a user's
//! logins.

use passerelle::provisioning::PREFIX;
use passerelle_api::{Login, LoginState};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{RunningBridge, fresh_db, setup};
use crate::support::free_port;
use crate::support::synapse::{TestClient, enc};

const SECRET: &str = "provisioning-test-secret-0123456789abcdef";
const BOT: &str = "@passerelle:localhost";

/// A client of one bridge's provisioning listener.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// Starts a bridge with the provisioning API on a free port.
    async fn start(db: &str) -> (RunningBridge, Api) {
        let port = free_port();
        let extra =
            format!("provisioning:\n  listen: '127.0.0.1:{port}'\n  shared_secret: '{SECRET}'\n");
        let bridge = RunningBridge::start_with(db, &extra).await;
        let api = Api {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        };
        (bridge, api)
    }

    /// Any call; `auth` is the whole `Authorization` header. Returns the
    /// status and the body, raw and as JSON (`Null` when not JSON).
    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        auth: Option<&str>,
    ) -> (u16, String, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("provisioning listener answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, text, json)
    }

    /// With the right secret.
    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, json) = self
            .raw(
                Method::GET,
                &format!("{PREFIX}{path}"),
                None,
                Some(&bearer(SECRET)),
            )
            .await;
        (status, json)
    }

    /// With the right secret.
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_bytes(path, body.to_string().into_bytes()).await
    }

    async fn post_bytes(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let (status, _, json) = self
            .raw(
                Method::POST,
                &format!("{PREFIX}{path}"),
                Some(body),
                Some(&bearer(SECRET)),
            )
            .await;
        (status, json)
    }
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

/// Asserts a Matrix error answer.
#[track_caller]
fn assert_error(answer: (u16, Value), status: u16, errcode: &str) -> String {
    let (got, body) = answer;
    assert_eq!(
        (got, body["errcode"].as_str()),
        (status, Some(errcode)),
        "{body}"
    );
    body["error"].as_str().expect("an `error` text").to_owned()
}

/// A public room the bridge bot may join and write state in (power 100;
/// the creator is privileged by the room version).
async fn linkable_room(owner: &TestClient) -> String {
    owner
        .create_room(json!({
            "preset": "public_chat",
            "power_level_content_override": {"users": {BOT: 100}},
        }))
        .await
}

#[tokio::test]
async fn provisioning_refuses_a_missing_or_wrong_secret() {
    let (mut bridge, api) = Api::start(&fresh_db("prov-auth").await).await;
    let alice = setup().await.hs.register_user("alice").await;
    let room = linkable_room(&alice).await;
    let link = json!({"room_id": room, "network": "test", "remote_id": "never"});
    let calls = [
        (Method::GET, format!("{PREFIX}/networks"), None),
        (Method::GET, format!("{PREFIX}/portals"), None),
        (Method::POST, format!("{PREFIX}/link"), Some(link.clone())),
        (
            Method::POST,
            format!("{PREFIX}/unlink"),
            Some(json!({"room_id": room})),
        ),
        (
            Method::GET,
            format!("{PREFIX}/users/{}/logins", enc("@alice:localhost")),
            None,
        ),
    ];
    let hs_token = &setup().await.registration.hs_token;
    for (method, path, body) in &calls {
        let body = || body.as_ref().map(|b| b.to_string().into_bytes());
        let (status, _, json) = api.raw(method.clone(), path, body(), None).await;
        assert_error((status, json), 401, "M_MISSING_TOKEN");
        let (status, _, json) = api
            .raw(
                method.clone(),
                path,
                body(),
                Some(&format!("Basic {SECRET}")),
            )
            .await;
        assert_error((status, json), 401, "M_MISSING_TOKEN");
        for wrong in [
            &SECRET[..SECRET.len() - 1],
            &format!("{SECRET}0"),
            &SECRET.to_uppercase(),
            hs_token.as_str(),
        ] {
            let (status, text, json) = api
                .raw(method.clone(), path, body(), Some(&bearer(wrong)))
                .await;
            let error = assert_error((status, json), 403, "M_UNKNOWN_TOKEN");
            assert!(
                !text.contains(SECRET) && !error.contains(wrong),
                "{method} {path}: {text}"
            );
        }
    }

    // The refused link did nothing: no portal, no bridge state, the bot
    // never joined.
    assert_eq!(api.get("/portals").await, (200, json!({"portals": []})));
    assert!(
        alice
            .room_state(&room, "m.bridge", "passerelle://test/never")
            .await
            .is_none()
    );
    assert!(!alice.joined_members(&room).await.contains(&BOT.to_owned()));

    // Its own listener: the appservice listener does not serve it, and this
    // one serves nothing else.
    let appservice = format!("http://127.0.0.1:{}{PREFIX}/networks", setup().await.port);
    let answer = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(appservice)
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["errcode"], "M_UNRECOGNIZED");
    assert_error(api.get("/nothing-here").await, 404, "M_UNRECOGNIZED");
    let (status, _, json) = api
        .raw(
            Method::GET,
            "/_matrix/app/v1/ping",
            None,
            Some(&bearer(SECRET)),
        )
        .await;
    assert_error((status, json), 404, "M_UNRECOGNIZED");

    // It stops with the rest of the daemon.
    bridge.stop().await;
    let after = api
        .http
        .get(format!("{}{PREFIX}/networks", api.base))
        .bearer_auth(SECRET)
        .send()
        .await;
    assert!(after.is_err(), "still answering after stop: {after:?}");
}

#[tokio::test]
async fn provisioning_lists_networks_and_links_lists_and_unlinks_portals() {
    let (mut bridge, api) = Api::start(&fresh_db("prov-link").await).await;
    let alice = setup().await.hs.register_user("alice").await;

    let (status, body) = api.get("/networks").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"networks": [{
            "id": "test",
            "display_name": "Test network",
            "capabilities": {
                "edits": true, "redactions": true, "reactions": true, "replies": true,
                "threads": true, "media": true, "typing": true, "logins": false,
            },
            "health": {
                "status": "running",
                "logins": {"connecting": 0, "connected": 0, "disconnected": 0, "broken": 0},
            },
        }]})
    );
    assert_eq!(api.get("/portals").await, (200, json!({"portals": []})));

    // Linked through the module's own `link` command: its answer comes back.
    let room = linkable_room(&alice).await;
    let (status, body) = api
        .post(
            "/link",
            json!({"room_id": room, "network": "test", "remote_id": "prov-chat"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let portal = json!({
        "key": {"network": "test", "id": "prov-chat"},
        "room_id": room,
        "kind": "group",
        "name": null,
    });
    assert_eq!(
        body,
        json!({"portal": portal, "message": "Linked to test chat prov-chat."})
    );
    assert!(
        alice
            .room_state(&room, "m.bridge", "passerelle://test/prov-chat")
            .await
            .is_some(),
        "the room carries the bridge state"
    );
    let hello = alice.send_text(&room, "through a provisioned link").await;
    let got = bridge
        .net
        .wait_received("the message in the provisioned room", |e| {
            e.event_id == hello
        })
        .await;
    assert_eq!(got.portal.id, "prov-chat");

    let listed = json!({"portals": [portal]});
    assert_eq!(api.get("/portals").await, (200, listed.clone()));
    assert_eq!(api.get("/portals?network=test").await, (200, listed));
    let error = assert_error(api.get("/portals?network=irc").await, 404, "M_NOT_FOUND");
    assert!(error.contains("irc"), "{error}");

    // Linking again to the same chat changes nothing; to another is refused
    // with the module's reason.
    let (status, body) = api
        .post(
            "/link",
            json!({"room_id": room, "network": "test", "remote_id": "prov-chat"}),
        )
        .await;
    assert_eq!((status, &body["portal"]), (200, &portal), "{body}");
    let error = assert_error(
        api.post(
            "/link",
            json!({"room_id": room, "network": "test", "remote_id": "other-chat"}),
        )
        .await,
        400,
        "M_BAD_STATE",
    );
    assert!(error.contains("already bridged"), "{error}");

    // Bad requests.
    assert_error(
        api.post_bytes("/link", b"room_id=x".to_vec()).await,
        400,
        "M_NOT_JSON",
    );
    let error = assert_error(
        api.post("/link", json!({"room_id": room})).await,
        400,
        "M_BAD_JSON",
    );
    assert!(error.contains("network"), "{error}");
    assert_error(
        api.post(
            "/link",
            json!({"room_id": room, "network": "test", "remote_id": "x", "colour": "red"}),
        )
        .await,
        400,
        "M_BAD_JSON",
    );
    assert_error(
        api.post(
            "/link",
            json!({"room_id": "not-a-room", "network": "test", "remote_id": "x"}),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        api.post_bytes("/link", vec![b' '; 100 * 1024]).await,
        413,
        "M_TOO_LARGE",
    );
    // The module's own usage check: the test network takes no account.
    let fresh = linkable_room(&alice).await;
    let error = assert_error(
        api.post(
            "/link",
            json!({"room_id": fresh, "network": "test", "remote_id": "x", "account": "acme"}),
        )
        .await,
        400,
        "M_BAD_STATE",
    );
    assert!(error.contains("usage"), "{error}");

    // Unknown things.
    let error = assert_error(
        api.post(
            "/link",
            json!({"room_id": fresh, "network": "slack", "remote_id": "C1"}),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    assert!(error.contains("slack"), "{error}");
    assert_error(
        api.post(
            "/link",
            json!({"room_id": "!no-such-room:localhost", "network": "test", "remote_id": "x"}),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    // A private room the bot was not invited to.
    let private = alice.create_room(json!({"preset": "private_chat"})).await;
    assert_error(
        api.post(
            "/link",
            json!({"room_id": private, "network": "test", "remote_id": "x"}),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    assert_eq!(
        api.get("/portals").await.1["portals"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "refused links left no portal"
    );

    // Unlink.
    assert_eq!(
        api.post("/unlink", json!({"room_id": room})).await,
        (200, json!({"portal": portal}))
    );
    assert_eq!(api.get("/portals").await, (200, json!({"portals": []})));
    let error = assert_error(
        api.post("/unlink", json!({"room_id": room})).await,
        404,
        "M_NOT_FOUND",
    );
    assert!(error.contains("not bridged"), "{error}");
    assert_error(
        api.post("/unlink", json!({"room_id": fresh})).await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        api.post_bytes("/unlink", b"{".to_vec()).await,
        400,
        "M_NOT_JSON",
    );
    assert_error(
        api.post("/unlink", json!({"room": room})).await,
        400,
        "M_BAD_JSON",
    );
    assert_error(
        api.post("/unlink", json!({"room_id": "#alias:localhost"}))
            .await,
        400,
        "M_INVALID_PARAM",
    );
    // The room may be linked again once unlinked.
    let (status, body) = api
        .post(
            "/link",
            json!({"room_id": room, "network": "test", "remote_id": "second-chat"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["portal"]["key"]["id"], "second-chat");
    assert!(
        alice
            .room_state(&room, "m.bridge", "passerelle://test/second-chat")
            .await
            .is_some()
    );
    bridge.stop().await;
}

#[tokio::test]
async fn provisioning_shows_a_users_logins_and_never_their_secret() {
    let (mut bridge, api) = Api::start(&fresh_db("prov-logins").await).await;
    let runtime = bridge.net.runtime();
    let secret = "secret-token-of-dave-4f9c1e";
    for (login_id, state) in [
        ("dave-second", LoginState::Broken),
        ("dave-remote", LoginState::Connected),
    ] {
        runtime
            .save_login(Login {
                mxid: "@dave:localhost".to_owned(),
                login_id: login_id.to_owned(),
                remote_user: format!("{login_id}-user").as_str().into(),
                state,
                secret: Some(secret.to_owned()),
                metadata: json!({"cursor": "private-module-state"}),
            })
            .await
            .unwrap();
    }

    let path = format!("{PREFIX}/users/{}/logins", enc("@dave:localhost"));
    let (status, text, body) = api
        .raw(Method::GET, &path, None, Some(&bearer(SECRET)))
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        !text.contains(secret)
            && !text.contains("secret")
            && !text.contains("private-module-state"),
        "{text}"
    );
    let logins = body["logins"].as_array().expect("a list");
    let summary: Vec<(&str, &str, &str, &str)> = logins
        .iter()
        .map(|l| {
            (
                l["network"].as_str().unwrap(),
                l["login_id"].as_str().unwrap(),
                l["remote_user"].as_str().unwrap(),
                l["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("test", "dave-remote", "dave-remote-user", "connected"),
            ("test", "dave-second", "dave-second-user", "broken"),
        ]
    );
    assert!(logins.iter().all(|l| l["updated_ts"].as_i64().unwrap() > 0));
    assert_eq!(
        logins[0].as_object().unwrap().len(),
        5,
        "network, login_id, remote_user, state, updated_ts only: {}",
        logins[0]
    );
    // The unencoded id works as well.
    let (status, plain) = api.get("/users/@dave:localhost/logins").await;
    assert_eq!((status, &plain), (200, &body));

    // The network's health counts them by state.
    let (_, networks) = api.get("/networks").await;
    assert_eq!(
        networks["networks"][0]["health"]["logins"],
        json!({"connecting": 0, "connected": 1, "disconnected": 0, "broken": 1})
    );

    assert_eq!(
        api.get(&format!("/users/{}/logins", enc("@nobody:localhost")))
            .await,
        (200, json!({"logins": []}))
    );
    assert_error(
        api.get("/users/not-a-user-id/logins").await,
        400,
        "M_INVALID_PARAM",
    );
    bridge.stop().await;
}
