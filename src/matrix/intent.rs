//! [`Intent`]: the client-server calls made as one user of ours, the bot or
//! a ghost.

use bytes::Bytes;
use http::{Method, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use ruma::{
    EventId, MxcUri, OwnedEventId, OwnedMxcUri, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId,
    RoomOrAliasId, UserId,
};

use super::{
    Error, MatrixClient, Result,
    client::{Request, Response, Retry, encode, new_txn_id},
};

/// Acts as one user of ours: the bot, or a ghost masqueraded with
/// `?user_id=`. Cheap to clone; made by [`MatrixClient::bot`] and
/// [`MatrixClient::intent`].
#[derive(Debug, Clone)]
pub struct Intent {
    client: MatrixClient,
    user_id: OwnedUserId,
    masquerade: bool,
}

/// A user's global profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Profile {
    pub displayname: Option<String>,
    pub avatar_url: Option<OwnedMxcUri>,
}

/// `createRoom` options. Unset fields are left to the homeserver.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CreateRoom {
    pub name: Option<String>,
    pub topic: Option<String>,
    /// Localpart of the canonical alias to create (`room_alias_name`).
    pub alias_localpart: Option<String>,
    pub invite: Vec<OwnedUserId>,
    pub is_direct: bool,
    pub preset: Option<RoomPreset>,
    /// `public` lists the room in the room directory.
    pub visibility: Option<RoomVisibility>,
    /// Empty for the homeserver's default version.
    pub room_version: Option<String>,
    /// Merged by the homeserver over its default `m.room.power_levels`. In
    /// room versions where creators are privileged (12 and later) it must
    /// not list the creator, see [`super::content::creators_are_privileged`].
    pub power_level_content_override: Option<Value>,
    /// State events sent right after the room is made (`m.bridge`, ...).
    pub initial_state: Vec<InitialStateEvent>,
    /// Extra `m.room.create` content (`type`, `additional_creators`, ...).
    pub creation_content: Option<Value>,
}

/// One `initial_state` entry of [`CreateRoom`].
#[derive(Debug, Clone, PartialEq)]
pub struct InitialStateEvent {
    pub event_type: String,
    pub state_key: String,
    pub content: Value,
}

impl InitialStateEvent {
    pub fn new(
        event_type: impl Into<String>,
        state_key: impl Into<String>,
        content: Value,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            state_key: state_key.into(),
            content,
        }
    }
}

/// `createRoom` presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomPreset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

impl RoomPreset {
    fn as_str(self) -> &'static str {
        match self {
            Self::PrivateChat => "private_chat",
            Self::TrustedPrivateChat => "trusted_private_chat",
            Self::PublicChat => "public_chat",
        }
    }
}

/// Whether `createRoom` publishes the room in the room directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomVisibility {
    Public,
    Private,
}

impl CreateRoom {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `createRoom` request body.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        if let Some(name) = &self.name {
            body.insert("name".into(), json!(name));
        }
        if let Some(topic) = &self.topic {
            body.insert("topic".into(), json!(topic));
        }
        if let Some(alias) = &self.alias_localpart {
            body.insert("room_alias_name".into(), json!(alias));
        }
        if !self.invite.is_empty() {
            body.insert("invite".into(), json!(self.invite));
        }
        if self.is_direct {
            body.insert("is_direct".into(), json!(true));
        }
        if let Some(preset) = self.preset {
            body.insert("preset".into(), json!(preset.as_str()));
        }
        if let Some(visibility) = self.visibility {
            let visibility = match visibility {
                RoomVisibility::Public => "public",
                RoomVisibility::Private => "private",
            };
            body.insert("visibility".into(), json!(visibility));
        }
        if let Some(version) = &self.room_version {
            body.insert("room_version".into(), json!(version));
        }
        if let Some(power_levels) = &self.power_level_content_override {
            body.insert("power_level_content_override".into(), power_levels.clone());
        }
        if !self.initial_state.is_empty() {
            let state: Vec<Value> = self
                .initial_state
                .iter()
                .map(|event| {
                    json!({
                        "type": event.event_type,
                        "state_key": event.state_key,
                        "content": event.content,
                    })
                })
                .collect();
            body.insert("initial_state".into(), Value::Array(state));
        }
        if let Some(creation_content) = &self.creation_content {
            body.insert("creation_content".into(), creation_content.clone());
        }
        Value::Object(body)
    }
}

#[derive(Deserialize)]
struct EventIdAnswer {
    event_id: OwnedEventId,
}

#[derive(Deserialize)]
struct RoomIdAnswer {
    room_id: OwnedRoomId,
}

/// How far back a send that may have gone through is looked for, in the
/// sender's own events of that type: only its sends since the failed
/// attempt can be newer.
const SENT_LOOKBACK: u32 = 50;

/// `content` with [`super::TXN_MARKER_KEY`] set to `marker`; content that
/// is not an object (never ours) is sent as it is.
fn with_marker(content: &Value, marker: &str) -> Value {
    let mut content = content.clone();
    if let Value::Object(map) = &mut content {
        map.insert(super::TXN_MARKER_KEY.to_owned(), json!(marker));
    }
    content
}

fn room_path(room: &RoomId, rest: &str) -> String {
    format!("/_matrix/client/v3/rooms/{}/{rest}", encode(room.as_str()))
}

impl Intent {
    pub(crate) fn new(client: MatrixClient, user_id: OwnedUserId, masquerade: bool) -> Self {
        Self {
            client,
            user_id,
            masquerade,
        }
    }

    /// The user this intent acts as.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    async fn call(&self, request: Request) -> Result<Response> {
        let as_user = self.masquerade.then_some(&*self.user_id);
        self.client.execute(&request, as_user).await
    }

    async fn call_for_event_id(&self, request: Request) -> Result<OwnedEventId> {
        Ok(self.call(request).await?.parse::<EventIdAnswer>()?.event_id)
    }

    /// Registers the user (`POST /register` with
    /// `m.login.application_service`); an existing user (`M_USER_IN_USE`)
    /// is success.
    pub async fn ensure_registered(&self) -> Result<()> {
        if self.user_id.server_name() != self.client.domain() {
            return Err(Error::InvalidInput(format!(
                "{} is not on our server {}",
                self.user_id,
                self.client.domain()
            )));
        }
        let request = Request::new(
            Method::POST,
            "register",
            "/_matrix/client/v3/register".into(),
        )
        .json(json!({
            "type": "m.login.application_service",
            "username": self.user_id.localpart(),
            "inhibit_login": true,
        }));
        // No `user_id`: the user may not exist yet, and the username says who.
        match self.client.execute(&request, None).await {
            Ok(_) => {
                tracing::debug!(user_id = %self.user_id, "registered user");
                Ok(())
            }
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET /profile/{userId}` of this user.
    pub async fn profile(&self) -> Result<Profile> {
        #[derive(Deserialize)]
        struct ProfileAnswer {
            displayname: Option<String>,
            avatar_url: Option<String>,
        }
        let path = format!(
            "/_matrix/client/v3/profile/{}",
            encode(self.user_id.as_str())
        );
        let answer: ProfileAnswer = self
            .call(Request::new(Method::GET, "profile", path))
            .await?
            .parse()?;
        Ok(Profile {
            displayname: answer.displayname,
            avatar_url: answer
                .avatar_url
                .filter(|url| !url.is_empty())
                .map(OwnedMxcUri::from),
        })
    }

    pub async fn set_displayname(&self, name: &str) -> Result<()> {
        let path = format!(
            "/_matrix/client/v3/profile/{}/displayname",
            encode(self.user_id.as_str())
        );
        let request =
            Request::new(Method::PUT, "set_displayname", path).json(json!({ "displayname": name }));
        self.call(request).await.map(drop)
    }

    /// Sets the avatar, or removes it with `None`.
    pub async fn set_avatar_url(&self, mxc: Option<&MxcUri>) -> Result<()> {
        let path = format!(
            "/_matrix/client/v3/profile/{}/avatar_url",
            encode(self.user_id.as_str())
        );
        let url = mxc.map_or("", MxcUri::as_str);
        let request =
            Request::new(Method::PUT, "set_avatar_url", path).json(json!({ "avatar_url": url }));
        self.call(request).await.map(drop)
    }

    /// `POST /createRoom`. Retried only when the homeserver surely did not
    /// act (429, failed connect): a retry after a lost answer would make a
    /// second room.
    pub async fn create_room(&self, options: &CreateRoom) -> Result<OwnedRoomId> {
        let request = Request::new(
            Method::POST,
            "create_room",
            "/_matrix/client/v3/createRoom".into(),
        )
        .json(options.to_json())
        .retry(Retry::Unprocessed);
        let room_id = self.call(request).await?.parse::<RoomIdAnswer>()?.room_id;
        tracing::info!(%room_id, user_id = %self.user_id, "created room");
        Ok(room_id)
    }

    /// `POST /join/{roomIdOrAlias}`; joining a room already joined is a
    /// no-op. Takes a room id or alias, as a ruma id or a string (checked).
    pub async fn join(&self, room_id_or_alias: &(impl AsRef<str> + ?Sized)) -> Result<OwnedRoomId> {
        let room = <&RoomOrAliasId>::try_from(room_id_or_alias.as_ref()).map_err(|e| {
            Error::InvalidInput(format!(
                "`{}` is not a room id or alias: {e}",
                room_id_or_alias.as_ref()
            ))
        })?;
        let path = format!("/_matrix/client/v3/join/{}", encode(room.as_str()));
        let request = Request::new(Method::POST, "join", path).json(json!({}));
        Ok(self.call(request).await?.parse::<RoomIdAnswer>()?.room_id)
    }

    pub async fn leave(&self, room: &RoomId) -> Result<()> {
        let request = Request::new(Method::POST, "leave", room_path(room, "leave")).json(json!({}));
        self.call(request).await.map(drop)
    }

    pub async fn invite(&self, room: &RoomId, user: &UserId) -> Result<()> {
        self.membership(room, "invite", user, None).await
    }

    pub async fn kick(&self, room: &RoomId, user: &UserId, reason: Option<&str>) -> Result<()> {
        self.membership(room, "kick", user, reason).await
    }

    pub async fn ban(&self, room: &RoomId, user: &UserId, reason: Option<&str>) -> Result<()> {
        self.membership(room, "ban", user, reason).await
    }

    pub async fn unban(&self, room: &RoomId, user: &UserId, reason: Option<&str>) -> Result<()> {
        self.membership(room, "unban", user, reason).await
    }

    async fn membership(
        &self,
        room: &RoomId,
        action: &'static str,
        user: &UserId,
        reason: Option<&str>,
    ) -> Result<()> {
        let mut body = json!({ "user_id": user });
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        let request = Request::new(Method::POST, action, room_path(room, action)).json(body);
        self.call(request).await.map(drop)
    }

    /// `PUT /rooms/{roomId}/send/{eventType}/{txnId}`, with `?ts=` (remote
    /// time in ms; honoured for appservices) when given. One transaction id
    /// per call, reused by retries, so a retried send is not duplicated.
    pub async fn send(
        &self,
        room: &RoomId,
        event_type: &str,
        content: &Value,
        ts: Option<u64>,
    ) -> Result<OwnedEventId> {
        self.send_with_txn_id(room, event_type, content, ts, &new_txn_id())
            .await
    }

    /// [`Intent::send`] with a caller-chosen transaction id: a caller that
    /// retries on its own (after this client's retries gave up) passes the
    /// same id again, and the event is not made twice.
    ///
    /// The homeserver's own deduplication by transaction id is not enough:
    /// Synapse keeps an appservice's transaction ids in memory only, so a
    /// send it persisted just before a restart, whose answer was lost, is
    /// made again by the retry. The content therefore carries a marker
    /// derived from `txn_id` ([`super::TXN_MARKER_KEY`], in the clear part
    /// of an encrypted event), and a retry after an attempt that may have
    /// gone through first looks for the sender's recent event with that
    /// marker (`GET /messages`) and answers its id instead of sending again.
    pub async fn send_with_txn_id(
        &self,
        room: &RoomId,
        event_type: &str,
        content: &Value,
        ts: Option<u64>,
        txn_id: &str,
    ) -> Result<OwnedEventId> {
        let encrypted = match self.client.encryption() {
            Some(encryption) if event_type != "m.room.encrypted" => {
                encryption
                    .encrypt(room, &self.user_id, event_type, content)
                    .await?
            }
            _ => None,
        };
        let (event_type, content) = match &encrypted {
            Some(encrypted) => ("m.room.encrypted", encrypted),
            None => (event_type, content),
        };
        let marker = self.client.txn_marker(txn_id);
        let path = room_path(
            room,
            &format!("send/{}/{}", encode(event_type), encode(txn_id)),
        );
        let mut request =
            Request::new(Method::PUT, "send", path).json(with_marker(content, &marker));
        if let Some(ts) = ts {
            request = request.query("ts", ts.to_string());
        }
        let as_user = self.masquerade.then_some(&*self.user_id);
        let event_id = self
            .client
            .execute_unless_done(
                &request,
                as_user,
                |response| Ok(response.parse::<EventIdAnswer>()?.event_id),
                || self.find_sent(room, event_type, &marker),
            )
            .await?;
        tracing::debug!(%room, %event_id, event_type, user_id = %self.user_id, "sent event");
        Ok(event_id)
    }

    /// The id of this user's recent `event_type` event in `room` whose
    /// content carries `marker`. One attempt: the send's loop retries.
    async fn find_sent(
        &self,
        room: &RoomId,
        event_type: &str,
        marker: &str,
    ) -> Result<Option<OwnedEventId>> {
        #[derive(Deserialize)]
        struct Messages {
            chunk: Vec<Value>,
        }
        let filter = json!({
            "senders": [self.user_id],
            "types": [event_type],
            "lazy_load_members": true,
        });
        let request = Request::new(Method::GET, "messages", room_path(room, "messages"))
            .query("dir", "b")
            .query("limit", SENT_LOOKBACK.to_string())
            .query("filter", filter.to_string())
            .retry(Retry::Never);
        let answer: Messages = self.call(request).await?.parse()?;
        Ok(answer
            .chunk
            .iter()
            .filter(|event| {
                event.get("sender").and_then(Value::as_str) == Some(self.user_id.as_str())
            })
            .find(|event| {
                event
                    .get("content")
                    .and_then(|content| content.get(super::TXN_MARKER_KEY))
                    .and_then(Value::as_str)
                    == Some(marker)
            })
            .and_then(|event| event.get("event_id").and_then(Value::as_str))
            .and_then(|id| OwnedEventId::try_from(id).ok()))
    }

    /// `PUT /rooms/{roomId}/state/{eventType}/{stateKey}`, with `?ts=` when given.
    pub async fn send_state(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
        content: &Value,
        ts: Option<u64>,
    ) -> Result<OwnedEventId> {
        let path = room_path(
            room,
            &format!("state/{}/{}", encode(event_type), encode(state_key)),
        );
        let mut request = Request::new(Method::PUT, "send_state", path).json(content.clone());
        if let Some(ts) = ts {
            request = request.query("ts", ts.to_string());
        }
        self.call_for_event_id(request).await
    }

    /// The content of a state event, `None` when the room has none (404).
    pub async fn state_event(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>> {
        let path = room_path(
            room,
            &format!("state/{}/{}", encode(event_type), encode(state_key)),
        );
        match self
            .call(Request::new(Method::GET, "get_state", path))
            .await
        {
            Ok(response) => response.parse().map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /rooms/{roomId}/event/{eventId}`: one event as the client API
    /// serves it; `None` when the homeserver does not have it (404).
    pub async fn event(&self, room: &RoomId, event_id: &EventId) -> Result<Option<Value>> {
        let path = room_path(room, &format!("event/{}", encode(event_id.as_str())));
        match self
            .call(Request::new(Method::GET, "get_event", path))
            .await
        {
            Ok(response) => response.parse().map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`; returns the redaction's id.
    pub async fn redact(
        &self,
        room: &RoomId,
        event_id: &EventId,
        reason: Option<&str>,
    ) -> Result<OwnedEventId> {
        let path = room_path(
            room,
            &format!(
                "redact/{}/{}",
                encode(event_id.as_str()),
                encode(&new_txn_id())
            ),
        );
        let body = reason.map_or_else(|| json!({}), |reason| json!({ "reason": reason }));
        self.call_for_event_id(Request::new(Method::PUT, "redact", path).json(body))
            .await
    }

    /// Users joined to `room`. Ids the homeserver sends that do not parse
    /// are skipped (and logged) rather than failing the whole list.
    pub async fn joined_members(&self, room: &RoomId) -> Result<Vec<OwnedUserId>> {
        #[derive(Deserialize)]
        struct Joined {
            joined: Map<String, Value>,
        }
        let request = Request::new(
            Method::GET,
            "joined_members",
            room_path(room, "joined_members"),
        );
        let answer: Joined = self.call(request).await?.parse()?;
        Ok(answer
            .joined
            .into_iter()
            .filter_map(|(user, _)| match OwnedUserId::try_from(user) {
                Ok(user) => Some(user),
                Err(e) => {
                    tracing::warn!(%room, error = %e, "homeserver listed an invalid user id");
                    None
                }
            })
            .collect())
    }

    /// Users joined to or invited into `room`: whom an encrypted message
    /// must be readable by.
    pub async fn joined_and_invited(&self, room: &RoomId) -> Result<Vec<OwnedUserId>> {
        #[derive(Deserialize)]
        struct Members {
            chunk: Vec<Value>,
        }
        let request = Request::new(Method::GET, "members", room_path(room, "members"))
            .query("not_membership", "leave");
        let answer: Members = self.call(request).await?.parse()?;
        Ok(answer
            .chunk
            .iter()
            .filter(|member| {
                matches!(
                    member
                        .pointer("/content/membership")
                        .and_then(Value::as_str),
                    Some("join" | "invite")
                )
            })
            .filter_map(|member| member.get("state_key").and_then(Value::as_str))
            .filter_map(|user| OwnedUserId::try_from(user).ok())
            .collect())
    }

    /// Rooms this user is joined to.
    pub async fn joined_rooms(&self) -> Result<Vec<OwnedRoomId>> {
        #[derive(Deserialize)]
        struct Joined {
            joined_rooms: Vec<OwnedRoomId>,
        }
        let request = Request::new(
            Method::GET,
            "joined_rooms",
            "/_matrix/client/v3/joined_rooms".into(),
        );
        Ok(self.call(request).await?.parse::<Joined>()?.joined_rooms)
    }

    /// `POST /_matrix/media/v3/upload`. Retried like reads: a duplicate
    /// upload only costs storage.
    pub async fn upload(
        &self,
        data: Vec<u8>,
        content_type: &str,
        filename: Option<&str>,
    ) -> Result<OwnedMxcUri> {
        #[derive(Deserialize)]
        struct Uploaded {
            content_uri: OwnedMxcUri,
        }
        let size = data.len();
        let mut request = Request::new(Method::POST, "upload", "/_matrix/media/v3/upload".into())
            .bytes(Bytes::from(data), content_type);
        if let Some(filename) = filename {
            request = request.query("filename", filename);
        }
        let uri = self.call(request).await?.parse::<Uploaded>()?.content_uri;
        if !uri.is_valid() {
            return Err(Error::InvalidResponse(format!(
                "upload answered an invalid content_uri `{uri}`"
            )));
        }
        tracing::debug!(%uri, size, user_id = %self.user_id, "uploaded media");
        Ok(uri)
    }

    /// Authenticated media download
    /// (`GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`), at
    /// most `max_bytes`. Returns the bytes and their `Content-Type`.
    pub async fn download(
        &self,
        mxc: &MxcUri,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, Option<String>)> {
        let (server, media_id) = mxc
            .parts()
            .map_err(|e| Error::InvalidInput(format!("invalid mxc URI `{mxc}`: {e}")))?;
        let path = format!(
            "/_matrix/client/v1/media/download/{}/{}",
            encode(server.as_str()),
            encode(media_id)
        );
        let request = Request::new(Method::GET, "download", path).max_response_bytes(max_bytes);
        let response = self.call(request).await?;
        let content_type = response
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok((response.body.to_vec(), content_type))
    }

    /// Starts (for `timeout_ms`) or stops typing in `room`.
    pub async fn typing(&self, room: &RoomId, typing: bool, timeout_ms: u64) -> Result<()> {
        let path = room_path(room, &format!("typing/{}", encode(self.user_id.as_str())));
        let body = if typing {
            json!({ "typing": true, "timeout": timeout_ms })
        } else {
            json!({ "typing": false })
        };
        self.call(Request::new(Method::PUT, "typing", path).json(body))
            .await
            .map(drop)
    }

    /// Moves both the fully-read marker and the read receipt to `event_id`.
    pub async fn read_marker(&self, room: &RoomId, event_id: &EventId) -> Result<()> {
        let body = json!({ "m.fully_read": event_id, "m.read": event_id });
        let request = Request::new(
            Method::POST,
            "read_markers",
            room_path(room, "read_markers"),
        )
        .json(body);
        self.call(request).await.map(drop)
    }

    /// The room an alias points to, `None` if the alias is unknown.
    pub async fn room_alias(&self, alias: &RoomAliasId) -> Result<Option<OwnedRoomId>> {
        let path = format!(
            "/_matrix/client/v3/directory/room/{}",
            encode(alias.as_str())
        );
        match self
            .call(Request::new(Method::GET, "get_alias", path))
            .await
        {
            Ok(response) => Ok(Some(response.parse::<RoomIdAnswer>()?.room_id)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Points `alias` at `room`. An alias already in use is an error (409).
    pub async fn set_room_alias(&self, alias: &RoomAliasId, room: &RoomId) -> Result<()> {
        let path = format!(
            "/_matrix/client/v3/directory/room/{}",
            encode(alias.as_str())
        );
        let request = Request::new(Method::PUT, "set_alias", path).json(json!({ "room_id": room }));
        self.call(request).await.map(drop)
    }

    /// Removes `alias`; `false` if it did not exist.
    pub async fn delete_room_alias(&self, alias: &RoomAliasId) -> Result<bool> {
        let path = format!(
            "/_matrix/client/v3/directory/room/{}",
            encode(alias.as_str())
        );
        match self
            .call(Request::new(Method::DELETE, "delete_alias", path))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
