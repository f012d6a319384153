//! Matrix events -> Slack Web API calls: through the bot with the Matrix
//! sender's name and avatar (relay), or with the sender's own user token
//! (`login slack`).

use passerelle_api::{
    BridgeError, Delivered, MatrixEvent, MatrixEventKind, MessageContent, MessageKind, Runtime,
};
use serde_json::{Value, json};

use crate::api::WebApi;
use crate::emoji;
use crate::ids;
use crate::mrkdwn;

/// Matrix files larger than this are refused (Slack allows 1 GB; a bridge
/// holding that in memory is not reasonable).
pub const MAX_UPLOAD: u64 = 100 * 1024 * 1024;

pub struct Outbound<'a> {
    pub api: &'a WebApi,
    pub runtime: &'a dyn Runtime,
    /// The token to act with: the bot's, or the sender's own.
    pub token: &'a str,
    /// Whether this is the relay (show the sender's name and avatar).
    pub relay: bool,
    /// The workspace's bot token (to invite a user into a private channel).
    pub bot_token: &'a str,
    /// The sender's own Slack user id, when they logged in.
    pub user: Option<&'a str>,
}

fn pill(mxid: &str) -> Option<String> {
    let localpart = mxid.strip_prefix('@')?.split(':').next()?;
    let user = ids::parse_ghost_localpart(localpart)?;
    ids::parse_user(&user).map(|(_, u)| u.to_owned())
}

impl Outbound<'_> {
    fn text(&self, event: &MatrixEvent, content: &MessageContent) -> String {
        let text = mrkdwn::matrix_to_slack(&content.body, content.html.as_deref(), &pill);
        if content.kind == MessageKind::Emote && self.relay {
            format!("_{}_ {text}", event.sender.display_name)
        } else {
            text
        }
    }

    fn identity(&self, event: &MatrixEvent, params: &mut Value) {
        if !self.relay {
            return;
        }
        params["username"] = json!(event.sender.display_name);
        if let Some(avatar) = &event.sender.avatar_url
            && let Some(link) = self.runtime.media_link(avatar, "avatar")
        {
            params["icon_url"] = json!(link);
        }
    }

    pub async fn deliver(&self, event: MatrixEvent) -> Result<Delivered, BridgeError> {
        let (_, channel) = ids::parse_portal(&event.portal)
            .ok_or_else(|| BridgeError::not_found("not a Slack portal"))?;
        let channel = channel.to_owned();
        match &event.kind {
            MatrixEventKind::Message(content) => {
                // Slack has threads, not replies: a reply starts or joins the
                // thread of the message replied to.
                let thread = content
                    .thread_root
                    .as_ref()
                    .or(content.reply_to.as_ref())
                    .map(|id| id.as_str().split('#').next().unwrap_or("").to_owned());
                if let Some(media) = &content.media {
                    let mxc = media
                        .mxc
                        .as_deref()
                        .ok_or_else(|| BridgeError::permanent("media without a Matrix URL"))?;
                    if media.size.is_some_and(|s| s > MAX_UPLOAD) {
                        return Err(BridgeError::permanent(format!(
                            "{} is too large to bridge to Slack",
                            media.filename
                        )));
                    }
                    let (bytes, _) = self.runtime.download_media(mxc, MAX_UPLOAD).await?;
                    let mut comment = if content.body != media.filename && !content.body.is_empty()
                    {
                        self.text(&event, content)
                    } else {
                        String::new()
                    };
                    if self.relay {
                        comment = format!("{}: {comment}", event.sender.display_name)
                            .trim_end_matches([' ', ':'])
                            .to_owned();
                    }
                    let mut share = json!({"channel_id": channel, "initial_comment": comment});
                    if let Some(thread) = &thread {
                        share["thread_ts"] = json!(thread);
                    }
                    let done = self
                        .api
                        .upload(self.token, bytes, &media.filename, share)
                        .await
                        .map_err(|e| e.into_bridge("upload the file"))?;
                    let ts = done["files"][0]["shares"]
                        .as_object()
                        .and_then(|shares| shares.values().next())
                        .and_then(|by_channel| by_channel[&channel][0]["ts"].as_str())
                        .map(str::to_owned);
                    return Ok(match ts {
                        Some(ts) => Delivered::with_id(ids::message_id(&ts)),
                        None => Delivered::none(),
                    });
                }
                let mut params = json!({"channel": channel, "text": self.text(&event, content),
                                        "unfurl_links": false, "link_names": false});
                if let Some(thread) = thread {
                    params["thread_ts"] = json!(thread);
                }
                self.identity(&event, &mut params);
                let answer = self
                    .api
                    .call("chat.postMessage", self.token, params)
                    .await
                    .map_err(|e| e.into_bridge("post the message"))?;
                let ts = answer["ts"]
                    .as_str()
                    .ok_or_else(|| BridgeError::permanent("Slack gave no ts"))?;
                Ok(Delivered::with_id(ids::message_id(ts)))
            }
            MatrixEventKind::Edit { target, content } => {
                let params = json!({"channel": channel, "ts": target.as_str(),
                                    "text": self.text(&event, content)});
                self.api
                    .call("chat.update", self.token, params)
                    .await
                    .map_err(|e| e.into_bridge("edit the message"))?;
                Ok(Delivered::none())
            }
            MatrixEventKind::Redaction { target } => {
                let params = json!({"channel": channel, "ts": target.as_str()});
                match self.api.call("chat.delete", self.token, params).await {
                    Ok(_) => Ok(Delivered::none()),
                    Err(e) if e.code() == "message_not_found" => Ok(Delivered::none()),
                    Err(e) => Err(e.into_bridge("delete the message")),
                }
            }
            MatrixEventKind::Reaction { target, key } => {
                let name = emoji::unicode_to_shortcode(key)
                    .or_else(|| {
                        key.strip_prefix(':')
                            .and_then(|k| k.strip_suffix(':'))
                            .map(str::to_owned)
                    })
                    .ok_or_else(|| {
                        BridgeError::unsupported(format!("Slack has no emoji for {key}"))
                    })?;
                let params =
                    json!({"channel": channel, "timestamp": target.as_str(), "name": name});
                match self.api.call("reactions.add", self.token, params).await {
                    Ok(_) => Ok(Delivered::none()),
                    Err(e) if e.code() == "already_reacted" => Ok(Delivered::none()),
                    Err(e) => Err(e.into_bridge("react")),
                }
            }
            MatrixEventKind::ReactionRedaction { target, key } => {
                let Some(name) = emoji::unicode_to_shortcode(key) else {
                    return Ok(Delivered::none());
                };
                let params =
                    json!({"channel": channel, "timestamp": target.as_str(), "name": name});
                match self.api.call("reactions.remove", self.token, params).await {
                    Ok(_) => Ok(Delivered::none()),
                    Err(e) if e.code() == "no_reaction" => Ok(Delivered::none()),
                    Err(e) => Err(e.into_bridge("remove the reaction")),
                }
            }
            MatrixEventKind::Topic { topic } => {
                let params = json!({"channel": channel, "topic": topic});
                self.api
                    .call("conversations.setTopic", self.token, params)
                    .await
                    .map_err(|e| e.into_bridge("change the topic"))?;
                Ok(Delivered::none())
            }
            // A user who logged in joins and leaves the Slack channel with
            // the room; for the relay's users Slack has no membership.
            MatrixEventKind::Join if !self.relay && !is_dm(&channel) => self.join(&channel).await,
            MatrixEventKind::Leave if !self.relay && !is_dm(&channel) => {
                match self
                    .api
                    .call(
                        "conversations.leave",
                        self.token,
                        json!({"channel": channel}),
                    )
                    .await
                {
                    Ok(_) => Ok(Delivered::none()),
                    Err(e) if e.code() == "cant_leave_general" => Ok(Delivered::none()),
                    Err(e) => Err(e.into_bridge("take you out of the channel")),
                }
            }
            MatrixEventKind::Join
            | MatrixEventKind::Leave
            | MatrixEventKind::Typing { .. }
            | MatrixEventKind::PowerLevels { .. } => Ok(Delivered::none()),
            other => Err(BridgeError::unsupported(format!(
                "Slack cannot bridge a {}",
                other.name()
            ))),
        }
    }
}

impl Outbound<'_> {
    /// `conversations.join` for a public channel; a private one needs an
    /// invitation, which the bot (a member) gives. (Slack answers
    /// `channel_not_found` for a private channel the user cannot see, and
    /// `method_not_supported_for_channel_type` for one they can.)
    async fn join(&self, channel: &str) -> Result<Delivered, BridgeError> {
        let joined = self
            .api
            .call(
                "conversations.join",
                self.token,
                json!({"channel": channel}),
            )
            .await;
        match joined {
            Ok(_) => Ok(Delivered::none()),
            Err(e)
                if matches!(
                    e.code(),
                    "method_not_supported_for_channel_type" | "channel_not_found"
                ) =>
            {
                let user = self
                    .user
                    .ok_or_else(|| BridgeError::permanent("your Slack login has no user id"))?;
                let params = json!({"channel": channel, "users": user});
                match self
                    .api
                    .call("conversations.invite", self.bot_token, params)
                    .await
                {
                    Ok(_) => Ok(Delivered::none()),
                    Err(e) if e.code() == "already_in_channel" => Ok(Delivered::none()),
                    Err(e) => Err(e.into_bridge("add you to the private channel")),
                }
            }
            Err(e) => Err(e.into_bridge("add you to the channel")),
        }
    }
}

/// Direct messages (`D…`) have fixed members.
pub fn is_dm(channel: &str) -> bool {
    channel.starts_with('D')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pills_of_slack_ghosts_become_user_ids() {
        assert_eq!(
            pill("@_slack_t1_u2abc:example.org"),
            Some("U2ABC".to_owned())
        );
        assert_eq!(pill("@alice:example.org"), None);
        assert_eq!(pill("@_irc_libera_bob:example.org"), None);
    }
}
