//! A scripted homeserver for unit tests, read as given / when / then:
//!
//! ```ignore
//! let server = MockServer::start().await;
//! server.mock_send().rate_limited(20).ok("$event");        // given
//! let id = server.bot().send(…).await.unwrap();   // when
//! assert_eq!(server.requests().len(), 2);                  // then
//! ```
//!
//! Each `mock_*` call adds a route (method + path pattern, `*` matching one
//! path segment) with a queue of answers, consumed in order. A request takes
//! the next answer of the first matching route whose queue is not empty;
//! with none left it gets 404 `M_UNRECOGNIZED`, like a homeserver lacking the
//! endpoint. Every request is recorded with its raw (still encoded) path.
//!
//! Sends answered with `ok_recorded`/`recorded_then_closed` also land in a
//! small timeline that `mock_messages().timeline()` serves, like a
//! homeserver that persisted them.

use std::{
    collections::VecDeque,
    marker::PhantomData,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::Response,
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use url::Url;

use super::{Intent, MatrixClient, RetryPolicy};

pub(crate) const AS_TOKEN: &str = "as_token_for_tests";
pub(crate) const DOMAIN: &str = "example.org";
pub(crate) const BOT_LOCALPART: &str = "bot";

#[derive(Default)]
struct Shared {
    routes: Vec<Route>,
    requests: Vec<ReceivedRequest>,
    /// Events recorded by sends, oldest first, with their `room_id`.
    timeline: Vec<Value>,
}

struct Route {
    method: Method,
    pattern: String,
    answers: VecDeque<Answer>,
}

#[derive(Clone)]
struct Answer {
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    action: Action,
}

/// What an answer does besides answering.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    None,
    /// A send: record the event in the timeline.
    Record,
    /// A send: record the event, then break the connection instead of
    /// answering, like a homeserver stopped after persisting it.
    RecordThenClose,
    /// `/messages`: answer from the timeline instead of `body`.
    Timeline,
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedRequest {
    pub(crate) method: Method,
    /// Raw path, percent-encoding untouched.
    pub(crate) path: String,
    /// Decoded query pairs.
    pub(crate) query: Vec<(String, String)>,
    pub(crate) authorization: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
}

impl ReceivedRequest {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    pub(crate) fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) struct MockServer {
    url: Url,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MockServer {
    /// Quick retries so that tests stay fast.
    pub(crate) const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        initial_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };

    pub(crate) async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock homeserver");
        let address = listener.local_addr().expect("mock homeserver address");
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("mock homeserver runs");
        });
        Self {
            url: Url::parse(&format!("http://{address}")).expect("mock URL"),
            shared,
            task,
        }
    }

    pub(crate) fn url(&self) -> Url {
        self.url.clone()
    }

    /// A client for this server with [`AS_TOKEN`], [`DOMAIN`] and
    /// [`Self::RETRY`].
    pub(crate) fn client(&self) -> MatrixClient {
        MatrixClient::new(
            self.url(),
            AS_TOKEN.to_owned(),
            DOMAIN.to_owned(),
            Self::RETRY,
        )
        .expect("client for the mock")
    }

    /// The bot (`@bot:example.org`) of [`Self::client`].
    pub(crate) fn bot(&self) -> Intent {
        self.client()
            .bot(BOT_LOCALPART)
            .expect("valid bot localpart")
    }

    /// Every request received so far, in order.
    pub(crate) fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared).requests.clone()
    }

    /// The events recorded by sends, oldest first.
    pub(crate) fn timeline(&self) -> Vec<Value> {
        lock(&self.shared).timeline.clone()
    }

    /// The only request received; panics if there were more or none.
    pub(crate) fn single_request(&self) -> ReceivedRequest {
        let mut requests = self.requests();
        assert_eq!(requests.len(), 1, "expected one request: {requests:#?}");
        requests.remove(0)
    }

    /// A route for `method` and `pattern`, answering nothing until told.
    pub(crate) fn mock<E>(&self, method: Method, pattern: &str) -> MockEndpoint<E> {
        let mut shared = lock(&self.shared);
        shared.routes.push(Route {
            method,
            pattern: pattern.to_owned(),
            answers: VecDeque::new(),
        });
        MockEndpoint {
            shared: self.shared.clone(),
            route: shared.routes.len() - 1,
            kind: PhantomData,
        }
    }

    pub(crate) fn mock_versions(&self) -> MockEndpoint<Versions> {
        self.mock(Method::GET, "/_matrix/client/versions")
    }

    pub(crate) fn mock_capabilities(&self) -> MockEndpoint<Capabilities> {
        self.mock(Method::GET, "/_matrix/client/v3/capabilities")
    }

    pub(crate) fn mock_ping(&self, appservice_id: &str) -> MockEndpoint<Ping> {
        self.mock(
            Method::POST,
            &format!("/_matrix/client/v1/appservice/{appservice_id}/ping"),
        )
    }

    pub(crate) fn mock_register(&self) -> MockEndpoint<Register> {
        self.mock(Method::POST, "/_matrix/client/v3/register")
    }

    pub(crate) fn mock_profile(&self) -> MockEndpoint<Profile> {
        self.mock(Method::GET, "/_matrix/client/v3/profile/*")
    }

    pub(crate) fn mock_set_displayname(&self) -> MockEndpoint<Empty> {
        self.mock(Method::PUT, "/_matrix/client/v3/profile/*/displayname")
    }

    pub(crate) fn mock_set_avatar_url(&self) -> MockEndpoint<Empty> {
        self.mock(Method::PUT, "/_matrix/client/v3/profile/*/avatar_url")
    }

    pub(crate) fn mock_create_room(&self) -> MockEndpoint<RoomIdAnswer> {
        self.mock(Method::POST, "/_matrix/client/v3/createRoom")
    }

    pub(crate) fn mock_join(&self) -> MockEndpoint<RoomIdAnswer> {
        self.mock(Method::POST, "/_matrix/client/v3/join/*")
    }

    /// `leave`, `invite`, `kick`, `ban`, `unban`, `read_markers`.
    pub(crate) fn mock_room_action(&self, action: &str) -> MockEndpoint<Empty> {
        self.mock(
            Method::POST,
            &format!("/_matrix/client/v3/rooms/*/{action}"),
        )
    }

    pub(crate) fn mock_send(&self) -> MockEndpoint<EventIdAnswer> {
        self.mock(Method::PUT, "/_matrix/client/v3/rooms/*/send/*/*")
    }

    pub(crate) fn mock_messages(&self) -> MockEndpoint<Messages> {
        self.mock(Method::GET, "/_matrix/client/v3/rooms/*/messages")
    }

    pub(crate) fn mock_send_state(&self) -> MockEndpoint<EventIdAnswer> {
        self.mock(Method::PUT, "/_matrix/client/v3/rooms/*/state/*/*")
    }

    pub(crate) fn mock_state_event(&self) -> MockEndpoint<StateContent> {
        self.mock(Method::GET, "/_matrix/client/v3/rooms/*/state/*/*")
    }

    pub(crate) fn mock_redact(&self) -> MockEndpoint<EventIdAnswer> {
        self.mock(Method::PUT, "/_matrix/client/v3/rooms/*/redact/*/*")
    }

    pub(crate) fn mock_joined_members(&self) -> MockEndpoint<JoinedMembers> {
        self.mock(Method::GET, "/_matrix/client/v3/rooms/*/joined_members")
    }

    pub(crate) fn mock_joined_rooms(&self) -> MockEndpoint<JoinedRooms> {
        self.mock(Method::GET, "/_matrix/client/v3/joined_rooms")
    }

    pub(crate) fn mock_typing(&self) -> MockEndpoint<Empty> {
        self.mock(Method::PUT, "/_matrix/client/v3/rooms/*/typing/*")
    }

    pub(crate) fn mock_upload(&self) -> MockEndpoint<Upload> {
        self.mock(Method::POST, "/_matrix/media/v3/upload")
    }

    pub(crate) fn mock_download(&self) -> MockEndpoint<Download> {
        self.mock(Method::GET, "/_matrix/client/v1/media/download/*/*")
    }

    pub(crate) fn mock_get_alias(&self) -> MockEndpoint<RoomIdAnswer> {
        self.mock(Method::GET, "/_matrix/client/v3/directory/room/*")
    }

    pub(crate) fn mock_set_alias(&self) -> MockEndpoint<Empty> {
        self.mock(Method::PUT, "/_matrix/client/v3/directory/room/*")
    }

    pub(crate) fn mock_delete_alias(&self) -> MockEndpoint<Empty> {
        self.mock(Method::DELETE, "/_matrix/client/v3/directory/room/*")
    }
}

/// One scripted route. `E` only selects which `ok(...)` fits the endpoint.
pub(crate) struct MockEndpoint<E> {
    shared: Arc<Mutex<Shared>>,
    route: usize,
    kind: PhantomData<E>,
}

impl<E> Clone for MockEndpoint<E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            route: self.route,
            kind: PhantomData,
        }
    }
}

impl<E> MockEndpoint<E> {
    fn push(self, answer: Answer) -> Self {
        lock(&self.shared).routes[self.route]
            .answers
            .push_back(answer);
        self
    }

    /// Answers `status` with a JSON body.
    pub(crate) fn respond(self, status: u16, body: Value) -> Self {
        self.push(Answer {
            status,
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            body: Bytes::from(body.to_string()),
            action: Action::None,
        })
    }

    /// Answers `status` with a JSON body and one extra header.
    pub(crate) fn respond_with_header(
        self,
        status: u16,
        body: Value,
        (name, value): (&str, &str),
    ) -> Self {
        self.push(Answer {
            status,
            content_type: "application/json".to_owned(),
            headers: vec![(name.to_owned(), value.to_owned())],
            body: Bytes::from(body.to_string()),
            action: Action::None,
        })
    }

    /// Answers raw bytes.
    pub(crate) fn respond_bytes(self, status: u16, content_type: &str, body: &[u8]) -> Self {
        self.push(Answer {
            status,
            content_type: content_type.to_owned(),
            headers: Vec::new(),
            body: Bytes::copy_from_slice(body),
            action: Action::None,
        })
    }

    /// A Matrix error.
    pub(crate) fn error(self, status: u16, errcode: &str) -> Self {
        self.respond(
            status,
            json!({ "errcode": errcode, "error": format!("mock {errcode}") }),
        )
    }

    /// 429 `M_LIMIT_EXCEEDED` with `retry_after_ms`.
    pub(crate) fn rate_limited(self, retry_after_ms: u64) -> Self {
        self.respond(
            429,
            json!({
                "errcode": "M_LIMIT_EXCEEDED",
                "error": "Too many requests",
                "retry_after_ms": retry_after_ms,
            }),
        )
    }
}

// Markers for the shape of an endpoint's successful answer.
pub(crate) struct Versions;
pub(crate) struct Capabilities;
pub(crate) struct Ping;
pub(crate) struct Register;
pub(crate) struct Profile;
pub(crate) struct Empty;
pub(crate) struct RoomIdAnswer;
pub(crate) struct EventIdAnswer;
pub(crate) struct Messages;
pub(crate) struct StateContent;
pub(crate) struct JoinedMembers;
pub(crate) struct JoinedRooms;
pub(crate) struct Upload;
pub(crate) struct Download;

impl MockEndpoint<Versions> {
    pub(crate) fn ok(self, versions: &[&str]) -> Self {
        self.respond(200, json!({ "versions": versions }))
    }
}

impl MockEndpoint<Capabilities> {
    pub(crate) fn ok(self, default_room_version: &str) -> Self {
        self.respond(
            200,
            json!({ "capabilities": { "m.room_versions": {
                "default": default_room_version,
                "available": { default_room_version: "stable" },
            } } }),
        )
    }
}

impl MockEndpoint<Ping> {
    pub(crate) fn ok(self, duration_ms: u64) -> Self {
        self.respond(200, json!({ "duration_ms": duration_ms }))
    }
}

impl MockEndpoint<Register> {
    pub(crate) fn ok(self, user_id: &str) -> Self {
        self.respond(200, json!({ "user_id": user_id }))
    }

    pub(crate) fn user_in_use(self) -> Self {
        self.error(400, "M_USER_IN_USE")
    }
}

impl MockEndpoint<Profile> {
    pub(crate) fn ok(self, displayname: Option<&str>, avatar_url: Option<&str>) -> Self {
        let mut body = json!({});
        if let Some(name) = displayname {
            body["displayname"] = json!(name);
        }
        if let Some(url) = avatar_url {
            body["avatar_url"] = json!(url);
        }
        self.respond(200, body)
    }
}

impl MockEndpoint<Empty> {
    pub(crate) fn ok(self) -> Self {
        self.respond(200, json!({}))
    }
}

impl MockEndpoint<RoomIdAnswer> {
    pub(crate) fn ok(self, room_id: &str) -> Self {
        self.respond(200, json!({ "room_id": room_id }))
    }
}

impl MockEndpoint<EventIdAnswer> {
    pub(crate) fn ok(self, event_id: &str) -> Self {
        self.respond(200, json!({ "event_id": event_id }))
    }

    fn with_action(self, event_id: &str, action: Action) -> Self {
        self.push(Answer {
            status: 200,
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            body: Bytes::from(json!({ "event_id": event_id }).to_string()),
            action,
        })
    }

    /// Records the event in the timeline as `event_id` and answers it.
    pub(crate) fn ok_recorded(self, event_id: &str) -> Self {
        self.with_action(event_id, Action::Record)
    }

    /// Records the event as `event_id`, then closes the connection without
    /// an answer.
    pub(crate) fn recorded_then_closed(self, event_id: &str) -> Self {
        self.with_action(event_id, Action::RecordThenClose)
    }
}

impl MockEndpoint<Messages> {
    /// Answers with the recorded events of the room, newest first, as the
    /// `filter`'s `senders` and `types` allow, at most `limit`.
    pub(crate) fn timeline(self) -> Self {
        self.push(Answer {
            status: 200,
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            action: Action::Timeline,
        })
    }
}

impl MockEndpoint<StateContent> {
    pub(crate) fn ok(self, content: Value) -> Self {
        self.respond(200, content)
    }
}

impl MockEndpoint<JoinedMembers> {
    pub(crate) fn ok(self, users: &[&str]) -> Self {
        let joined: serde_json::Map<String, Value> = users
            .iter()
            .map(|user| ((*user).to_owned(), json!({ "display_name": null })))
            .collect();
        self.respond(200, json!({ "joined": joined }))
    }
}

impl MockEndpoint<JoinedRooms> {
    pub(crate) fn ok(self, rooms: &[&str]) -> Self {
        self.respond(200, json!({ "joined_rooms": rooms }))
    }
}

impl MockEndpoint<Upload> {
    pub(crate) fn ok(self, content_uri: &str) -> Self {
        self.respond(200, json!({ "content_uri": content_uri }))
    }
}

impl MockEndpoint<Download> {
    pub(crate) fn ok(self, content_type: &str, data: &[u8]) -> Self {
        self.respond_bytes(200, content_type, data)
    }
}

fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(want, got)| *want == "*" || want == got)
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request = ReceivedRequest {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        authorization: header(header::AUTHORIZATION),
        content_type: header(header::CONTENT_TYPE),
        body,
    };

    let answer = {
        let mut shared = lock(&shared);
        let answer = shared
            .routes
            .iter_mut()
            .filter(|route| route.method == method && matches(&route.pattern, &request.path))
            .find_map(|route| route.answers.pop_front());
        let answer = answer.map(|mut answer| {
            match answer.action {
                Action::Record | Action::RecordThenClose => {
                    let event = recorded_event(&request, &answer.body);
                    shared.timeline.push(event);
                }
                Action::Timeline => {
                    answer.body =
                        Bytes::from(timeline_page(&shared.timeline, &request).to_string());
                }
                Action::None => {}
            }
            answer
        });
        shared.requests.push(request);
        answer
    };
    let answer = answer.unwrap_or_else(|| Answer {
        action: Action::None,
        status: 404,
        content_type: "application/json".to_owned(),
        headers: Vec::new(),
        body: Bytes::from(
            json!({ "errcode": "M_UNRECOGNIZED", "error": "Unrecognized request" }).to_string(),
        ),
    });

    let mut response = Response::builder()
        .status(StatusCode::from_u16(answer.status).expect("valid status"))
        .header(header::CONTENT_TYPE, answer.content_type);
    for (name, value) in answer.headers {
        response = response.header(name, value);
    }
    let body = if answer.action == Action::RecordThenClose {
        // The status line is out, the body fails: hyper drops the
        // connection and the client sees it break mid-answer.
        Body::from_stream(futures::stream::once(async {
            Err::<Bytes, _>(std::io::Error::other("mock homeserver stopped"))
        }))
    } else {
        Body::from(answer.body)
    };
    response.body(body).expect("valid mock response")
}

/// The event a send request makes: `/rooms/{room}/send/{type}/{txn}`, sent
/// by `?user_id=` or the bot, with the event id of the answer.
fn recorded_event(request: &ReceivedRequest, answer: &Bytes) -> Value {
    let decode = |segment: &str| {
        percent_encoding::percent_decode_str(segment)
            .decode_utf8_lossy()
            .into_owned()
    };
    let segments: Vec<&str> = request.path.split('/').collect();
    let answer: Value = serde_json::from_slice(answer).expect("send answer is JSON");
    json!({
        "event_id": answer["event_id"],
        "room_id": decode(segments[5]),
        "type": decode(segments[7]),
        "sender": request
            .query_param("user_id")
            .map_or_else(|| format!("@{BOT_LOCALPART}:{DOMAIN}"), str::to_owned),
        "content": request.json(),
    })
}

/// A `/messages?dir=b` page of `timeline` for the request's room.
fn timeline_page(timeline: &[Value], request: &ReceivedRequest) -> Value {
    let room = percent_encoding::percent_decode_str(request.path.split('/').nth(5).unwrap_or(""))
        .decode_utf8_lossy()
        .into_owned();
    let filter: Value = request.query_param("filter").map_or(Value::Null, |f| {
        serde_json::from_str(f).expect("filter is JSON")
    });
    let allows = |key: &str, value: &Value| {
        filter[key]
            .as_array()
            .is_none_or(|allowed| allowed.contains(value))
    };
    let limit = request
        .query_param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10);
    let chunk: Vec<Value> = timeline
        .iter()
        .rev()
        .filter(|event| event["room_id"] == room.as_str())
        .filter(|event| allows("senders", &event["sender"]) && allows("types", &event["type"]))
        .take(limit)
        .cloned()
        .collect();
    json!({ "chunk": chunk, "start": "s1" })
}
