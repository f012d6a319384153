//! Entry points for the cargo-fuzz targets in `fuzz/` (not an API): the
//! pure parts of handling a homeserver transaction, run on arbitrary bytes.

use serde_json::Value;

use crate::appservice::Transaction;
use crate::inbound::message_content;

/// Parses a transaction body as `PUT /transactions` does and reads every
/// event's message content as the router does (reply fallbacks stripped,
/// media fields read). Must never panic; returns how many events parsed as
/// messages.
pub fn transaction(body: &[u8]) -> usize {
    let Ok(txn) = Transaction::parse(body) else {
        return 0;
    };
    txn.events
        .iter()
        .chain(txn.ephemeral.iter())
        .filter_map(|event| {
            let content = event.get("content").unwrap_or(&Value::Null);
            let relates = content
                .pointer("/m.relates_to/rel_type")
                .and_then(Value::as_str);
            let new_content = content.get("m.new_content");
            // Edits are read from their new content, as the router does.
            let parsed = match (relates, new_content) {
                (Some("m.replace"), Some(new)) => message_content(new),
                _ => message_content(content),
            }?;
            if let Some(html) = &parsed.html {
                passerelle_api::html::Tokenizer::new(html).for_each(drop);
            }
            Some(())
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_router_reads_and_survives_garbage() {
        let body = br#"{"events": [
            {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "> <@a:b> hi\n\nyes",
             "format": "org.matrix.custom.html", "formatted_body": "<mx-reply>x</mx-reply><b>yes</b>"}},
            {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "* fixed",
             "m.new_content": {"msgtype": "m.text", "body": "fixed"},
             "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}},
            {"type": "m.room.member", "content": {"membership": "join"}}
        ]}"#;
        assert_eq!(transaction(body), 2);
        for garbage in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"events\": [1]}",
            b"\xff\xfe",
            b"{\"events\": [{\"content\": 5}]}",
        ] {
            assert_eq!(transaction(garbage), 0);
        }
    }
}
