//! Privacy commands through a real Synapse: disappearing messages and
//! `forget-me`.

use passerelle_api::{Login, LoginState, MatrixEventKind, PortalKey, RemoteMessageId};
use serde_json::{Value, json};

use crate::bridging::portal_with;
use crate::harness::{RunningBridge, fresh_db, setup};
use crate::support::synapse::DEFAULT_TIMEOUT;

/// The remote id the test module gave the Matrix message `body`: it
/// numbers what it receives, in order.
fn remote_id_of(bridge: &RunningBridge, body: &str) -> String {
    let n = bridge
        .net
        .received()
        .iter()
        .position(|e| matches!(&e.kind, MatrixEventKind::Message(c) if c.body == body))
        .expect("received");
    format!("from-matrix-{n}")
}

fn redacts(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["type"] == "m.room.redaction" && e["redacts"] == id
}

#[tokio::test]
async fn disappearing_messages_are_redacted_and_deleted_on_the_remote_side() {
    let mut bridge = RunningBridge::start_with(
        &fresh_db("disappear").await,
        "privacy: {disappear_interval: 300ms}",
    )
    .await;
    let alice = setup().await.hs.register_user("alice").await;
    let room = portal_with(&bridge, "vanish", &alice).await;
    let hello = alice
        .wait_for_event(
            &room,
            |e| e["content"]["body"] == "hello from remote",
            DEFAULT_TIMEOUT,
        )
        .await;
    let mine = alice.send_text(&room, "from Matrix, soon gone").await;
    let delivered = bridge
        .net
        .wait_received("the Matrix message", |e| {
            matches!(&e.kind, MatrixEventKind::Message(c) if c.body == "from Matrix, soon gone")
        })
        .await;
    assert_eq!(delivered.event_id, mine);

    let reply = alice.command(&room, "disappear 2s").await;
    assert!(
        reply.starts_with("Bridged messages in this room now disappear after 2s"),
        "{reply}"
    );
    // Both bridged messages go: redacted in Matrix, deleted remotely.
    alice
        .wait_for_event(
            &room,
            redacts(hello["event_id"].as_str().unwrap()),
            DEFAULT_TIMEOUT,
        )
        .await;
    alice
        .wait_for_event(&room, redacts(&mine), DEFAULT_TIMEOUT)
        .await;
    let mine_remote = remote_id_of(&bridge, "from Matrix, soon gone");
    for target in ["r-hello", mine_remote.as_str()] {
        bridge
            .net
            .wait_received(&format!("the deletion of {target}"), |e| {
                matches!(&e.kind, MatrixEventKind::Redaction { target: t } if t.as_str() == target)
            })
            .await;
    }
    let runtime = bridge.net.runtime();
    let portal = PortalKey::new("test", "vanish");
    assert!(
        !runtime
            .is_bridged(&portal, &RemoteMessageId::new("r-hello"))
            .await
            .unwrap()
    );

    // Off again: a new message stays.
    assert_eq!(
        alice.command(&room, "disappear off").await,
        "Disappearing messages are off in this room."
    );
    let kept = alice.send_text(&room, "this one stays").await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let events = alice.messages(&room).await;
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "m.room.redaction" && e["redacts"] == kept.as_str()),
        "a message sent after `disappear off` was redacted"
    );
    assert_eq!(
        alice.command(&room, "disappear soon").await,
        "Usage: `disappear <7d|12h|30m|off>` in a bridged room."
    );
    bridge.stop().await;
}

#[tokio::test]
async fn forget_me_deletes_every_row_about_the_user() {
    let mut bridge = RunningBridge::start(&fresh_db("forget").await).await;
    let alice = setup().await.hs.register_user("alice").await;
    let room = portal_with(&bridge, "forgetful", &alice).await;
    alice.send_text(&room, "remember me?").await;
    bridge
        .net
        .wait_received(
            "alice's message",
            |e| matches!(&e.kind, MatrixEventKind::Message(c) if c.body == "remember me?"),
        )
        .await;
    let runtime = bridge.net.runtime();
    runtime
        .save_login(Login {
            mxid: alice.user_id().to_owned(),
            login_id: "main".to_owned(),
            remote_user: "alice-remote".into(),
            state: LoginState::Connected,
            secret: Some("s3cret".to_owned()),
            metadata: json!({}),
        })
        .await
        .unwrap();
    let portal = PortalKey::new("test", "forgetful");
    let sent_id = RemoteMessageId::new(remote_id_of(&bridge, "remember me?"));
    assert!(runtime.is_bridged(&portal, &sent_id).await.unwrap());
    assert_eq!(runtime.logins().await.unwrap().len(), 1);

    let reply = alice.command(&room, "forget-me").await;
    assert!(
        reply.starts_with("Done: you are logged out everywhere"),
        "{reply}"
    );
    assert!(
        runtime.logins().await.unwrap().is_empty(),
        "the login and its secret are gone"
    );
    assert!(
        !runtime.is_bridged(&portal, &sent_id).await.unwrap(),
        "the message map row of what alice sent is gone"
    );
    // What others sent stays bridged.
    assert!(
        runtime
            .is_bridged(&portal, &RemoteMessageId::new("r-hello"))
            .await
            .unwrap()
    );
    bridge.stop().await;
}
