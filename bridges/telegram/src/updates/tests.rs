use passerelle_api::{MessageKind, RemoteEventKind, RemoteMessageId};
use serde_json::{Value, json};

use super::*;

const BOT: u64 = 999;

fn user(id: u64, first: &str) -> Value {
    json!({"id": id, "is_bot": id == BOT, "first_name": first})
}

fn group() -> Value {
    json!({"id": -100, "type": "supergroup", "title": "Friends"})
}

fn message(id: i64, extra: Value) -> Value {
    let mut m =
        json!({"message_id": id, "date": 1_700_000_000, "chat": group(), "from": user(1, "Ada")});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

fn map(update: Value) -> Vec<RemoteEvent> {
    let update: Update = serde_json::from_value(update).expect("valid update");
    let link = |id: i64| Some(format!("https://matrix.to/#/@_telegram_{id}:hs"));
    map_update(
        &update,
        &Context {
            bot_id: BOT,
            user_link: &link,
        },
    )
}

fn only(update: Value) -> RemoteEvent {
    let mut events = map(update);
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

fn msg_id(id: i64) -> RemoteMessageId {
    RemoteMessageId::new(id.to_string())
}

#[test]
fn a_text_message_becomes_a_message_from_its_sender() {
    let e = only(json!({"update_id": 1, "message": message(7, json!({"text": "hello"}))}));
    assert_eq!(e.portal, ids::portal_key(-100));
    assert_eq!(e.sender.id.as_str(), "1");
    assert_eq!(e.sender.display_name.as_deref(), Some("Ada"));
    assert_eq!(e.remote_id, Some(msg_id(7)));
    assert_eq!(e.ts, 1_700_000_000_000);
    let RemoteEventKind::Message(c) = e.kind else {
        panic!()
    };
    assert_eq!(c.body, "hello");
    assert_eq!(c.kind, MessageKind::Text);
    assert_eq!(c.reply_to, None);
}

#[test]
fn full_names_join_first_and_last() {
    let mut m = message(7, json!({"text": "x"}));
    m["from"]["last_name"] = json!("Lovelace");
    let e = only(json!({"update_id": 1, "message": m}));
    assert_eq!(e.sender.display_name.as_deref(), Some("Ada Lovelace"));
}

#[test]
fn the_bots_own_messages_are_echoes() {
    let mut m = message(7, json!({"text": "relayed"}));
    m["from"] = user(BOT, "bridge");
    assert!(map(json!({"update_id": 1, "message": m})).is_empty());
}

#[test]
fn replies_point_at_the_replied_message() {
    let e = only(json!({"update_id": 1, "message": message(8, json!({
        "text": "yes", "reply_to_message": message(7, json!({"text": "q?"}))}))}));
    let RemoteEventKind::Message(c) = e.kind else {
        panic!()
    };
    assert_eq!(c.reply_to, Some(msg_id(7)));
    assert_eq!(c.thread_root, None);
}

#[test]
fn forum_topics_are_threads_and_the_implicit_reply_is_dropped() {
    let root = message(
        5,
        json!({"forum_topic_created": {"name": "Hiking", "icon_color": 1}}),
    );
    let e = only(json!({"update_id": 1, "message": root.clone()}));
    let RemoteEventKind::Message(c) = &e.kind else {
        panic!()
    };
    assert_eq!(c.kind, MessageKind::Notice);
    assert!(c.body.contains("Hiking"));
    assert_eq!(e.remote_id, Some(msg_id(5)));

    let in_topic = message(
        9,
        json!({"text": "who comes?", "message_thread_id": 5,
        "is_topic_message": true, "reply_to_message": root}),
    );
    let e = only(json!({"update_id": 2, "message": in_topic}));
    let RemoteEventKind::Message(c) = e.kind else {
        panic!()
    };
    assert_eq!(c.thread_root, Some(msg_id(5)));
    assert_eq!(c.reply_to, None);

    let reply_in_topic = message(
        10,
        json!({"text": "me", "message_thread_id": 5,
        "is_topic_message": true, "reply_to_message": message(9, json!({"text": "who comes?"}))}),
    );
    let RemoteEventKind::Message(c) = only(json!({"update_id": 3, "message": reply_in_topic})).kind
    else {
        panic!()
    };
    assert_eq!(c.thread_root, Some(msg_id(5)));
    assert_eq!(c.reply_to, Some(msg_id(9)));
}

#[test]
fn channel_posts_come_from_the_channel() {
    let post = json!({"message_id": 3, "date": 1, "text": "news",
        "chat": {"id": -200, "type": "channel", "title": "Announcements"},
        "sender_chat": {"id": -200, "type": "channel", "title": "Announcements"}});
    let e = only(json!({"update_id": 1, "channel_post": post}));
    assert_eq!(e.sender.id.as_str(), "-200");
    assert_eq!(e.sender.display_name.as_deref(), Some("Announcements"));
    assert_eq!(e.portal, ids::portal_key(-200));
}

#[test]
fn edits_target_the_original_and_carry_their_own_id() {
    let edited = message(7, json!({"text": "hello!", "edit_date": 1_700_000_100}));
    let e = only(json!({"update_id": 1, "edited_message": edited}));
    assert_eq!(e.remote_id, Some(ids::edit_id(7, 1_700_000_100)));
    let RemoteEventKind::Edit { target, content } = e.kind else {
        panic!()
    };
    assert_eq!(target, msg_id(7));
    assert_eq!(content.body, "hello!");
}

#[test]
fn reactions_are_the_difference_between_old_and_new() {
    let events = map(json!({"update_id": 1, "message_reaction": {
        "chat": group(), "message_id": 7, "user": user(2, "Bob"), "date": 5,
        "old_reaction": [{"type": "emoji", "emoji": "👍"}, {"type": "emoji", "emoji": "🔥"}],
        "new_reaction": [{"type": "emoji", "emoji": "🔥"}, {"type": "emoji", "emoji": "🎉"},
                         {"type": "custom_emoji", "custom_emoji_id": "123"}]}}));
    let kinds: Vec<_> = events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            RemoteEventKind::ReactionRemove {
                target: msg_id(7),
                key: "👍".into()
            },
            RemoteEventKind::Reaction {
                target: msg_id(7),
                key: "🎉".into()
            },
        ]
    );
    assert!(events.iter().all(|e| e.sender.id.as_str() == "2"));
}

#[test]
fn members_joining_and_leaving() {
    let events = map(json!({"update_id": 1, "message": message(11, json!({
        "new_chat_members": [user(3, "Cy"), user(BOT, "bridge"), user(4, "Di")]}))}));
    let who: Vec<_> = events
        .iter()
        .map(|e| (e.sender.id.as_str(), e.kind.clone()))
        .collect();
    assert_eq!(
        who,
        vec![("3", RemoteEventKind::Join), ("4", RemoteEventKind::Join)]
    );

    let left = only(json!({"update_id": 2, "message": message(12, json!({
        "from": user(3, "Cy"), "left_chat_member": user(3, "Cy")}))}));
    assert_eq!(left.kind, RemoteEventKind::Leave { reason: None });

    let kicked = only(json!({"update_id": 3, "message": message(13, json!({
        "left_chat_member": user(4, "Di")}))}));
    assert_eq!(kicked.sender.id.as_str(), "1");
    assert_eq!(
        kicked.kind,
        RemoteEventKind::Kick {
            target: ids::user_id(4),
            reason: None
        }
    );
}

#[test]
fn chat_member_updates_give_membership_and_rank() {
    let member = |status: &str, id: u64| {
        let mut m = json!({"status": status, "user": user(id, "Eve")});
        if status == "administrator" {
            for k in [
                "can_be_edited",
                "is_anonymous",
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_promote_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
                "can_send_welcome_messages",
            ] {
                m[k] = json!(false);
            }
        }
        if status == "kicked" {
            m["until_date"] = json!(0);
        }
        m
    };
    let update = |old: Value, new: Value| {
        json!({"update_id": 1, "chat_member": {
        "chat": group(), "from": user(1, "Ada"), "date": 9,
        "old_chat_member": old, "new_chat_member": new}})
    };
    let events = map(update(member("left", 5), member("member", 5)));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, RemoteEventKind::Join);
    assert_eq!(events[0].sender.id.as_str(), "5");

    let events = map(update(member("member", 5), member("administrator", 5)));
    assert_eq!(
        events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>(),
        vec![RemoteEventKind::PowerLevel {
            target: ids::user_id(5),
            level: 50
        }]
    );

    let events = map(update(member("member", 5), member("kicked", 5)));
    assert_eq!(
        events[0].kind,
        RemoteEventKind::Kick {
            target: ids::user_id(5),
            reason: None
        }
    );
    assert_eq!(events[0].sender.id.as_str(), "1");
}

#[test]
fn title_photo_and_pins() {
    let e =
        only(json!({"update_id": 1, "message": message(20, json!({"new_chat_title": "Pals"}))}));
    assert_eq!(
        e.kind,
        RemoteEventKind::Rename {
            name: "Pals".into()
        }
    );

    let e = only(
        json!({"update_id": 2, "message": message(21, json!({"new_chat_photo": [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
        {"file_id": "big", "file_unique_id": "b", "width": 640, "height": 640}]}))}),
    );
    assert_eq!(
        e.kind,
        RemoteEventKind::RoomAvatar {
            remote_ref: Some("file:big".into())
        }
    );

    let e =
        only(json!({"update_id": 3, "message": message(22, json!({"delete_chat_photo": true}))}));
    assert_eq!(e.kind, RemoteEventKind::RoomAvatar { remote_ref: None });

    let e = only(json!({"update_id": 4, "message": message(23, json!({
        "pinned_message": message(7, json!({"text": "rules"}))}))}));
    assert_eq!(
        e.kind,
        RemoteEventKind::Pin {
            target: msg_id(7),
            pinned: true
        }
    );
}

#[test]
fn media_carry_a_file_reference_and_the_caption() {
    let e = only(json!({"update_id": 1, "message": message(30, json!({
        "photo": [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90, "file_size": 10},
                  {"file_id": "p2", "file_unique_id": "u2", "width": 1280, "height": 960, "file_size": 999}],
        "caption": "our cat"}))}));
    let RemoteEventKind::Message(c) = e.kind else {
        panic!()
    };
    assert_eq!(c.body, "our cat");
    let media = c.media.unwrap();
    assert_eq!(media.remote_ref.as_deref(), Some("file:p2"));
    assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
    assert_eq!(media.size, Some(999));

    for (field, value, mime, name) in [
        (
            "document",
            json!({"file_id": "d", "file_unique_id": "d", "file_name": "a.pdf", "mime_type": "application/pdf"}),
            "application/pdf",
            "a.pdf",
        ),
        (
            "voice",
            json!({"file_id": "v", "file_unique_id": "v", "duration": 3}),
            "audio/ogg",
            "voice.ogg",
        ),
        (
            "video",
            json!({"file_id": "v", "file_unique_id": "v", "width": 1, "height": 1, "duration": 3}),
            "video/mp4",
            "video.mp4",
        ),
        (
            "sticker",
            json!({"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 512, "height": 512, "is_animated": false, "is_video": false}),
            "image/webp",
            "sticker.webp",
        ),
    ] {
        let e = only(json!({"update_id": 1, "message": message(31, json!({field: value}))}));
        let RemoteEventKind::Message(c) = e.kind else {
            panic!()
        };
        let media = c.media.unwrap_or_else(|| panic!("{field} has media"));
        assert_eq!(media.mime_type.as_deref(), Some(mime), "{field}");
        assert_eq!(media.filename, name, "{field}");
    }
}

#[test]
fn files_a_bot_cannot_download_are_announced_not_dropped() {
    let e = only(json!({"update_id": 1, "message": message(32, json!({
        "document": {"file_id": "d", "file_unique_id": "d", "file_name": "film.mkv", "file_size": 300_000_000u64},
        "caption": "watch this"}))}));
    let RemoteEventKind::Message(c) = e.kind else {
        panic!()
    };
    assert!(c.media.is_none());
    assert!(c.body.starts_with("watch this\n"));
    assert!(c.body.contains("film.mkv is too large"), "{}", c.body);
}

#[test]
fn messages_without_text_or_media_say_what_they_were() {
    let e = only(json!({"update_id": 1, "message": message(33, json!({
        "location": {"latitude": 48.85, "longitude": 2.35}}))}));
    let RemoteEventKind::Message(c) = e.kind else {
        panic!()
    };
    assert_eq!(c.kind, MessageKind::Notice);
    assert_eq!(c.body, "Location: geo:48.85,2.35");
}

#[test]
fn entities_map_to_the_converter() {
    let entities: Vec<MessageEntity> = serde_json::from_value(json!([
        {"type": "bold", "offset": 0, "length": 2},
        {"type": "text_link", "offset": 3, "length": 4, "url": "https://x"},
        {"type": "text_mention", "offset": 8, "length": 3, "user": user(5, "Eve")},
        {"type": "pre", "offset": 12, "length": 3, "language": "rust"},
        {"type": "some_future_kind", "offset": 0, "length": 1}
    ]))
    .unwrap();
    let mapped = entities_of(&entities);
    assert!(matches!(mapped[0].kind, EntityKind::Bold));
    assert!(matches!(&mapped[1].kind, EntityKind::TextLink { url } if url == "https://x"));
    assert!(matches!(
        mapped[2].kind,
        EntityKind::TextMention { user_id: 5 }
    ));
    assert!(matches!(&mapped[3].kind, EntityKind::Pre { language: Some(l) } if l == "rust"));
    assert!(matches!(mapped[4].kind, EntityKind::Other(_)));
    assert_eq!((mapped[1].offset, mapped[1].length), (3, 4));
}
