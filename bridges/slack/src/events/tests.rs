use passerelle_api::{MessageKind, RemoteEventKind};
use serde_json::json;

use super::*;
use crate::mrkdwn::Mention;

struct Names;

impl Resolver for Names {
    fn user(&self, id: &str) -> Option<Mention> {
        (id == "U2").then(|| Mention {
            name: "bob".into(),
            matrix_link: Some("https://matrix.to/#/@_slack_t1_u2:hs".into()),
        })
    }
    fn channel(&self, _: &str) -> Option<Mention> {
        None
    }
}

fn map(event: serde_json::Value) -> Vec<RemoteEvent> {
    let name_of = |u: &str| (u == "U1").then(|| "Ada".to_owned());
    let cx = Context {
        team: "T1",
        bot_user: "UBOT",
        bot_id: "BBOT",
        resolver: &Names,
        name_of: &name_of,
    };
    map_event(&event, &cx)
}

fn only(event: serde_json::Value) -> RemoteEvent {
    let mut events = map(event);
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

#[test]
fn timestamps_become_milliseconds() {
    assert_eq!(ts_ms("1700000000.000100"), 1_700_000_000_000);
    assert_eq!(ts_ms("1700000000.123456"), 1_700_000_000_123);
    assert_eq!(ts_ms("1700000000.5"), 1_700_000_000_500);
    assert_eq!(ts_ms("junk"), 0);
}

#[test]
fn a_message_with_a_mention() {
    let e = only(json!({"type": "message", "channel": "C1", "user": "U1",
        "text": "hi <@U2>", "ts": "1700000000.000100"}));
    assert_eq!(e.portal, ids::portal_key("T1", "C1"));
    assert_eq!(e.sender.id, ids::user_id("T1", "U1"));
    assert_eq!(e.sender.display_name.as_deref(), Some("Ada"));
    assert_eq!(e.remote_id, Some(ids::message_id("1700000000.000100")));
    let RemoteEventKind::Message(c) = e.kind else {
        panic!()
    };
    assert_eq!(c.body, "hi bob");
    assert!(
        c.html
            .unwrap()
            .contains("https://matrix.to/#/@_slack_t1_u2:hs")
    );
    assert_eq!(c.thread_root, None);
}

#[test]
fn thread_replies_and_me_messages() {
    let e = only(
        json!({"type": "message", "channel": "C1", "user": "U1", "text": "in thread",
        "ts": "2.000200", "thread_ts": "1.000100"}),
    );
    let RemoteEventKind::Message(c) = e.kind else {
        panic!()
    };
    assert_eq!(c.thread_root, Some(ids::message_id("1.000100")));
    // The thread's parent itself carries thread_ts == ts: not in a thread.
    let e = only(
        json!({"type": "message", "channel": "C1", "user": "U1", "text": "parent",
        "ts": "1.000100", "thread_ts": "1.000100", "subtype": "me_message"}),
    );
    let RemoteEventKind::Message(c) = e.kind else {
        panic!()
    };
    assert_eq!(c.thread_root, None);
    assert_eq!(c.kind, MessageKind::Emote);
}

#[test]
fn the_bots_own_messages_are_echoes() {
    assert!(
        map(
            json!({"type": "message", "subtype": "bot_message", "channel": "C1",
        "bot_id": "BBOT", "text": "relayed", "ts": "1.1"})
        )
        .is_empty()
    );
    assert!(
        map(json!({"type": "message", "channel": "C1", "user": "UBOT", "text": "x", "ts": "1.1"}))
            .is_empty()
    );
    // Another app's bot is bridged under its bot id.
    let e = only(
        json!({"type": "message", "subtype": "bot_message", "channel": "C1",
        "bot_id": "BOTHER", "username": "CI", "text": "build green", "ts": "1.2"}),
    );
    assert_eq!(e.sender.id, ids::user_id("T1", "BOTHER"));
    assert_eq!(e.sender.display_name.as_deref(), Some("CI"));
}

#[test]
fn edits_and_deletions() {
    let e = only(
        json!({"type": "message", "subtype": "message_changed", "channel": "C1",
        "message": {"user": "U1", "text": "fixed", "ts": "1.1", "edited": {"user": "U1", "ts": "5.5"}},
        "previous_message": {"user": "U1", "text": "fxed", "ts": "1.1"}, "event_ts": "5.5", "ts": "5.5"}),
    );
    assert_eq!(e.remote_id.as_ref().map(|r| r.as_str()), Some("1.1@5.5"));
    let RemoteEventKind::Edit { target, content } = e.kind else {
        panic!()
    };
    assert_eq!(target, ids::message_id("1.1"));
    assert_eq!(content.body, "fixed");

    // An unfurl changes the message but not its text: no edit.
    assert!(
        map(
            json!({"type": "message", "subtype": "message_changed", "channel": "C1",
        "message": {"user": "U1", "text": "see x", "ts": "1.1", "attachments": []},
        "previous_message": {"user": "U1", "text": "see x", "ts": "1.1"}})
        )
        .is_empty()
    );

    let events = map(
        json!({"type": "message", "subtype": "message_deleted", "channel": "C1",
        "deleted_ts": "1.1", "event_ts": "6.6", "ts": "6.6",
        "previous_message": {"user": "U1", "text": "", "ts": "1.1", "files": [{}, {}]}}),
    );
    let targets: Vec<_> = events
        .iter()
        .map(|e| match &e.kind {
            RemoteEventKind::Delete { target } => target.as_str().to_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(targets, ["1.1", "1.1#1"]);
}

#[test]
fn files_become_media_with_the_text_as_caption() {
    let events = map(
        json!({"type": "message", "subtype": "file_share", "channel": "C1", "user": "U1",
        "text": "two pictures", "ts": "3.3", "files": [
            {"id": "F1", "name": "a.png", "mimetype": "image/png", "size": 10,
             "url_private": "https://files.slack.com/a.png"},
            {"id": "F2", "name": "b.pdf", "mimetype": "application/pdf",
             "url_private_download": "https://files.slack.com/b.pdf?dl"}]}),
    );
    assert_eq!(events.len(), 2);
    let RemoteEventKind::Message(first) = &events[0].kind else {
        panic!()
    };
    assert_eq!(first.body, "two pictures");
    let media = first.media.as_ref().unwrap();
    assert_eq!(
        media.remote_ref.as_deref(),
        Some("T1|https://files.slack.com/a.png")
    );
    assert_eq!(media.mime_type.as_deref(), Some("image/png"));
    assert_eq!(events[0].remote_id, Some(ids::message_id("3.3")));
    let RemoteEventKind::Message(second) = &events[1].kind else {
        panic!()
    };
    assert_eq!(second.body, "b.pdf");
    assert_eq!(
        events[1].remote_id.as_ref().map(|r| r.as_str()),
        Some("3.3#1")
    );
    assert_eq!(
        parse_file_ref("T1|https://x/y"),
        Some(("T1", "https://x/y"))
    );
}

#[test]
fn reactions_membership_topic_and_rename() {
    let e = only(
        json!({"type": "reaction_added", "user": "U1", "reaction": "thumbsup::skin-tone-2",
        "item": {"type": "message", "channel": "C1", "ts": "1.1"}, "event_ts": "2.2"}),
    );
    assert_eq!(
        e.kind,
        RemoteEventKind::Reaction {
            target: ids::message_id("1.1"),
            key: "👍🏻".into()
        }
    );
    let e = only(
        json!({"type": "reaction_removed", "user": "U1", "reaction": "partyparrot",
        "item": {"type": "message", "channel": "C1", "ts": "1.1"}, "event_ts": "2.3"}),
    );
    assert_eq!(
        e.kind,
        RemoteEventKind::ReactionRemove {
            target: ids::message_id("1.1"),
            key: ":partyparrot:".into()
        }
    );
    assert!(
        map(
            json!({"type": "reaction_added", "user": "UBOT", "reaction": "+1",
        "item": {"type": "message", "channel": "C1", "ts": "1.1"}})
        )
        .is_empty()
    );

    let e = only(
        json!({"type": "member_joined_channel", "user": "U1", "channel": "C1", "event_ts": "1.0"}),
    );
    assert_eq!(e.kind, RemoteEventKind::Join);
    let e = only(
        json!({"type": "member_left_channel", "user": "U1", "channel": "C1", "event_ts": "1.0"}),
    );
    assert_eq!(e.kind, RemoteEventKind::Leave { reason: None });
    assert!(map(json!({"type": "message", "subtype": "channel_join", "channel": "C1", "user": "U1", "ts": "1.0"})).is_empty());

    let e = only(
        json!({"type": "message", "subtype": "channel_purpose", "channel": "C1", "user": "U1",
        "purpose": "Talk about rust", "ts": "1.0"}),
    );
    assert_eq!(
        e.kind,
        RemoteEventKind::Topic {
            topic: "Talk about rust".into()
        }
    );
    let e = only(
        json!({"type": "channel_rename", "channel": {"id": "C1", "name": "rustaceans"}, "event_ts": "1.0"}),
    );
    assert_eq!(
        e.kind,
        RemoteEventKind::Rename {
            name: "#rustaceans".into()
        }
    );
}
