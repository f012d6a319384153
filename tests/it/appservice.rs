//! The appservice API as the homeserver sees it: authentication, errors,
//! replayed transactions, user and alias queries.

use serde_json::{Value, json};

use crate::harness::{RunningBridge, fresh_db, setup};

async fn put_txn(token: Option<&str>, txn: &str, body: Vec<u8>) -> (u16, Value) {
    let setup = setup().await;
    let url = format!(
        "http://127.0.0.1:{}/_matrix/app/v1/transactions/{txn}",
        setup.port
    );
    let mut req = reqwest::Client::new().put(url).body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn wrong_or_missing_token_is_refused_and_bad_bodies_get_matrix_errors() {
    let mut bridge = RunningBridge::start(&fresh_db("auth").await).await;
    let hs_token = setup().await.registration.hs_token.clone();
    let empty = br#"{"events": []}"#.to_vec();

    let (status, body) = put_txn(None, "t1", empty.clone()).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (401, Some("M_UNAUTHORIZED"))
    );
    let (status, body) = put_txn(Some("wrong-token"), "t1", empty.clone()).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (403, Some("M_FORBIDDEN"))
    );
    let (status, body) = put_txn(Some(&hs_token), "t-bad", b"{not json".to_vec()).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_NOT_JSON"))
    );
    let (status, body) = put_txn(Some(&hs_token), "t-shape", br#"{"events": {}}"#.to_vec()).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (400, Some("M_BAD_JSON"))
    );
    let big = format!(r#"{{"events": [], "pad": "{}"}}"#, "x".repeat(70_000)).into_bytes();
    let (status, body) = put_txn(Some(&hs_token), "t-big", big).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (413, Some("M_TOO_LARGE"))
    );
    let (status, _) = put_txn(Some(&hs_token), "t-ok", empty).await;
    assert_eq!(status, 200);

    // The deprecated query-string token is still accepted, and checked.
    let setup = setup().await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}/_matrix/app/v1", setup.port);
    let ok = client
        .post(format!("{base}/ping?access_token={hs_token}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let bad = client
        .post(format!("{base}/ping?access_token=nope"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 403);

    // Third-party lookups: our protocols answer, unknown ones are 404.
    let protocol = client
        .get(format!("{base}/thirdparty/protocol/test"))
        .bearer_auth(&hs_token)
        .send()
        .await
        .unwrap();
    assert_eq!(protocol.status().as_u16(), 200);
    let protocol: Value = protocol.json().await.unwrap();
    assert!(protocol["user_fields"].is_array(), "{protocol}");
    let unknown = client
        .get(format!("{base}/thirdparty/protocol/carrier-pigeon"))
        .bearer_auth(&hs_token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let users = client
        .get(format!("{base}/thirdparty/user/test?nick=x"))
        .bearer_auth(&hs_token)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status().as_u16(), 200);
    // Through the homeserver, as a client sees it.
    let alice = setup.hs.register_user("alice").await;
    let (status, protocols) = alice
        .request(
            reqwest::Method::GET,
            "/_matrix/client/v3/thirdparty/protocols",
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 200);
    assert!(protocols.get("test").is_some(), "{protocols}");
    bridge.stop().await;
}

#[tokio::test]
async fn user_and_alias_queries_create_ghosts_and_portals() {
    let mut bridge = RunningBridge::start(&fresh_db("query").await).await;
    let hs = setup().await.hs;
    let alice = hs.register_user("alice").await;

    // Joining the alias makes Synapse ask us; the portal is created first.
    let room = crate::harness::join_alias(&alice, "#_test_lobby:localhost").await;
    let bridge_state = alice
        .room_state(&room, "m.bridge", "passerelle://test/lobby")
        .await;
    let bridge_state = bridge_state.expect("m.bridge state on the portal");
    assert_eq!(bridge_state["protocol"]["id"], "test");
    assert_eq!(bridge_state["bridgebot"], "@passerelle:localhost");
    assert!(
        alice
            .room_state(&room, "uk.half-shot.bridge", "passerelle://test/lobby")
            .await
            .is_some()
    );

    // An alias the module does not know is a 404 from the homeserver.
    let (status, _) = alice
        .request(
            reqwest::Method::GET,
            "/_matrix/client/v3/directory/room/%23_test_missing1:localhost",
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 404);

    // Inviting an unknown user of our namespace makes Synapse ask us about
    // it; the ghost is then registered with its name.
    let own = alice.create_room(json!({"preset": "private_chat"})).await;
    alice.invite(&own, "@_test_zoe:localhost").await;
    let mut profile = Value::Null;
    for _ in 0..100 {
        let (status, body) = alice
            .request(
                reqwest::Method::GET,
                "/_matrix/client/v3/profile/@_test_zoe:localhost",
                None,
            )
            .await;
        if status.as_u16() == 200 && body["displayname"] == "zoe (Test)" {
            profile = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        profile["displayname"], "zoe (Test)",
        "ghost was not created on the user query"
    );
    bridge.stop().await;
}
