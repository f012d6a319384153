//! The client-server API client: its configuration, the one request function
//! every call goes through (authentication, masquerading, retries, metrics,
//! logs) and the calls that are not made on behalf of one user.

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use ruma::{OwnedServerName, OwnedUserId, ServerName, UserId};

use super::{Error, Intent, Result};

/// Largest JSON answer we accept. `joined_members` of a big room is the
/// largest one we ask for; a few MiB cover tens of thousands of members.
const MAX_JSON_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// How much of an error body we read: enough for `{"errcode", "error"}`,
/// little enough that a misbehaving proxy's error page costs nothing.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// Longest `retry_after_ms` / `Retry-After` we sleep through inside one
/// call. Beyond it the call fails with the (transient) 429 and the caller's
/// queue decides, instead of a task sleeping for an hour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How many sends whose outcome is unknown are remembered. Only an outage
/// leaves entries behind (each is dropped once its send is settled); past
/// this many the oldest is forgotten, which only loses the check before its
/// next retry.
const MAX_UNSURE_SENDS: usize = 4096;

/// Characters left as they are in a path segment: RFC 3986 "unreserved".
/// Everything else, including `!`, `#`, `@`, `:`, `$` and `/`, is escaped, so
/// an id can never change the shape of the path.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode one path segment (a room id, alias, event id, user id,
/// event type, state key or transaction id).
pub(crate) fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

/// A transaction id unique within this process and, thanks to the time and
/// random parts, across restarts: the homeserver deduplicates sends by
/// (access token, transaction id), and all our users share one token.
pub(crate) fn new_txn_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("psl{millis}.{count}.{:08x}", rand::random::<u32>())
}

/// How often and how patiently a request is retried.
///
/// Retries happen on 429 (waiting what the homeserver asks for), on 500, 502,
/// 503 and 504, and on connection errors; the delay otherwise grows
/// exponentially from `initial_delay` to `max_delay`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included; 0 counts as 1.
    pub max_attempts: u32,
    /// Delay before the first retry, before jitter.
    pub initial_delay: Duration,
    /// Upper bound of the exponential delay. A `retry_after_ms` from the
    /// homeserver is honoured even when longer, up to five minutes; a longer
    /// one fails the call at once.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub const fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// The delays between attempts: `max_attempts - 1` of them.
    fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let retries = self.max_attempts.saturating_sub(1) as usize;
        ExponentialBuilder::default()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay.max(self.initial_delay))
            .with_max_times(retries)
            .with_jitter()
            .build()
    }
}

/// The homeserver's client-server API, authenticated as the application
/// service. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct MatrixClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Homeserver URL without a trailing slash; paths are appended to it.
    base: String,
    /// `Bearer <as_token>`, marked sensitive so that `Debug` never shows it.
    authorization: HeaderValue,
    domain: OwnedServerName,
    retry: RetryPolicy,
    /// Set once end-to-bridge encryption has started.
    encryption: std::sync::OnceLock<Arc<dyn super::RoomEncryption>>,
    /// Key of [`MatrixClient::txn_marker`], derived from the `as_token`.
    marker_key: [u8; 32],
    /// Paths of sends with an attempt that may have reached the homeserver
    /// and no answer since: see [`MatrixClient::execute_unless_done`].
    unsure_sends: Mutex<VecDeque<String>>,
}

impl fmt::Debug for MatrixClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatrixClient")
            .field("homeserver", &self.inner.base)
            .field("domain", &self.inner.domain)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl MatrixClient {
    /// A client for the homeserver at `homeserver_url` (the client-server API
    /// base, e.g. `http://127.0.0.1:8008`, optionally with a path prefix),
    /// authenticating with the registration's `as_token`. `domain` is the
    /// homeserver's server name, the one our bot and ghosts live on.
    pub fn new(
        homeserver_url: Url,
        as_token: String,
        domain: String,
        retry: RetryPolicy,
    ) -> Result<Self> {
        if !matches!(homeserver_url.scheme(), "http" | "https") || homeserver_url.cannot_be_a_base()
        {
            return Err(Error::InvalidInput(format!(
                "homeserver URL must be http or https, not `{}`",
                homeserver_url.scheme()
            )));
        }
        if as_token.is_empty() {
            return Err(Error::InvalidInput("the as_token is empty".to_owned()));
        }
        let mut authorization =
            HeaderValue::try_from(format!("Bearer {as_token}")).map_err(|_| {
                Error::InvalidInput(
                    "the as_token holds characters an HTTP header cannot carry".to_owned(),
                )
            })?;
        authorization.set_sensitive(true);
        let marker_key = Sha256::new()
            .chain_update(b"passerelle txn marker\0")
            .chain_update(as_token.as_bytes())
            .finalize()
            .into();
        let domain = OwnedServerName::try_from(domain)
            .map_err(|e| Error::InvalidInput(format!("invalid homeserver domain: {e}")))?;

        let mut base_url = homeserver_url;
        base_url.set_query(None);
        base_url.set_fragment(None);
        let base = base_url.as_str().trim_end_matches('/').to_owned();

        let http = reqwest::Client::builder()
            .user_agent(concat!("passerelle/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // Per read, so that a large but progressing upload is not cut.
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(Error::http)?;

        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                authorization,
                domain,
                retry,
                encryption: std::sync::OnceLock::new(),
                marker_key,
                unsure_sends: Mutex::new(VecDeque::new()),
            }),
        })
    }

    /// Installs the encryption every send in an encrypted room goes
    /// through; the first one installed stays.
    pub fn set_encryption(&self, encryption: Arc<dyn super::RoomEncryption>) {
        let _ = self.inner.encryption.set(encryption);
    }

    pub(crate) fn encryption(&self) -> Option<&Arc<dyn super::RoomEncryption>> {
        self.inner.encryption.get()
    }

    /// The value of [`super::TXN_MARKER_KEY`] in the content of a send made
    /// with `txn_id`: the same for every attempt, and keyed with the
    /// `as_token` so that, readable in an encrypted event's clear part, it
    /// tells nothing about the remote message a transaction id is made from.
    pub(crate) fn txn_marker(&self, txn_id: &str) -> String {
        let digest = Sha256::new()
            .chain_update(self.inner.marker_key)
            .chain_update(txn_id.as_bytes())
            .finalize();
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// The server name our users live on.
    pub fn domain(&self) -> &ServerName {
        &self.inner.domain
    }

    /// `@<localpart>:<domain>` on our server. The localpart must follow the
    /// current grammar (`a-z 0-9 . _ = - / +`): ids we make are never
    /// historical ones, so a failure here is a missing escape.
    pub fn user_id(&self, localpart: &str) -> Result<OwnedUserId> {
        let invalid = |e: ruma::IdParseError| {
            Error::InvalidInput(format!("invalid localpart `{localpart}`: {e}"))
        };
        let user_id = UserId::parse_with_server_name(localpart, self.domain()).map_err(invalid)?;
        user_id.validate_strict().map_err(invalid)?;
        Ok(user_id)
    }

    /// Acts as the bot, `@<bot_localpart>:<domain>` (the registration's
    /// `sender_localpart`): requests carry no `user_id`, so the homeserver
    /// takes the registration's own user.
    pub fn bot(&self, bot_localpart: &str) -> Result<Intent> {
        Ok(Intent::new(
            self.clone(),
            self.user_id(bot_localpart)?,
            false,
        ))
    }

    /// Acts as `user_id` with `?user_id=` masquerading: a ghost of our
    /// namespace, or the bot itself (masquerading as the registration's own
    /// user is allowed too). The homeserver refuses (403) users outside the
    /// registration's namespaces.
    pub fn intent(&self, user_id: OwnedUserId) -> Intent {
        Intent::new(self.clone(), user_id, true)
    }

    /// `GET /_matrix/client/versions`: the spec versions the homeserver
    /// supports. Retried like any call, so it doubles as "wait until the
    /// homeserver is up" at start-up.
    pub async fn versions(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Versions {
            versions: Vec<String>,
        }
        let request = Request::new(Method::GET, "versions", "/_matrix/client/versions".into());
        let answer: Versions = self.execute(&request, None).await?.parse()?;
        Ok(answer.versions)
    }

    /// `POST /_matrix/client/v1/appservice/{appserviceId}/ping`: asks the
    /// homeserver to call our `/_matrix/app/v1/ping` with `txn_id` and returns
    /// the round trip in milliseconds.
    ///
    /// `Ok(None)` when the homeserver predates the endpoint (404 or 405
    /// `M_UNRECOGNIZED`). Not retried: an `M_CONNECTION_FAILED` (502) or
    /// `M_CONNECTION_TIMEOUT` (504) is the answer, not a hiccup.
    pub async fn ping_appservice(&self, appservice_id: &str, txn_id: &str) -> Result<Option<u64>> {
        #[derive(Deserialize)]
        struct Pong {
            duration_ms: u64,
        }
        let path = format!(
            "/_matrix/client/v1/appservice/{}/ping",
            encode(appservice_id)
        );
        let request = Request::new(Method::POST, "ping", path)
            .json(json!({ "transaction_id": txn_id }))
            .retry(Retry::Never);
        match self.execute(&request, None).await {
            Ok(response) => Ok(Some(response.parse::<Pong>()?.duration_ms)),
            Err(e)
                if matches!(e.status(), Some(404 | 405))
                    && e.errcode() == Some("M_UNRECOGNIZED") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The room version the homeserver gives new rooms
    /// (`GET /_matrix/client/v3/capabilities`, `m.room_versions.default`).
    /// Callers need it to know whether room creators have infinite power
    /// (see [`super::content::creators_are_privileged`]).
    pub async fn default_room_version(&self) -> Result<Option<String>> {
        let request = Request::new(
            Method::GET,
            "capabilities",
            "/_matrix/client/v3/capabilities".into(),
        );
        let answer: Value = self.execute(&request, None).await?.parse()?;
        Ok(answer
            .pointer("/capabilities/m.room_versions/default")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// Sends `request`, as `as_user` when given, retrying as the request and
    /// the [`RetryPolicy`] allow. Non-2xx answers become [`Error::Matrix`].
    pub(crate) async fn execute(
        &self,
        request: &Request,
        as_user: Option<&UserId>,
    ) -> Result<Response> {
        let url = self.url(request, as_user)?;
        let mut delays = self.inner.retry.delays();
        let mut attempt: u32 = 1;
        loop {
            let error = match self.attempt_recorded(request, url.clone(), attempt).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let Some(delay) = self.retry_delay(request, &error, &mut delays, attempt) else {
                return Err(error);
            };
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// [`Self::execute`] for a request the homeserver must act on at most
    /// once although it may forget that it did: a send, whose transaction
    /// id Synapse keeps only in memory for an appservice (a restarted one
    /// makes a second event for the same id).
    ///
    /// After an attempt that may have reached the homeserver (see
    /// [`may_have_acted`]), each further attempt, in this call or in a later
    /// one with the same path (a portal queue's retry), first asks
    /// `already_done`; what it finds is the answer. A failure of
    /// `already_done` counts as a failed attempt when it is transient (the
    /// homeserver is still away); otherwise the request is sent anyway,
    /// which is what happened before there was a check.
    pub(crate) async fn execute_unless_done<T, F>(
        &self,
        request: &Request,
        as_user: Option<&UserId>,
        parse: impl Fn(&Response) -> Result<T>,
        mut already_done: impl FnMut() -> F,
    ) -> Result<T>
    where
        F: Future<Output = Result<Option<T>>>,
    {
        let url = self.url(request, as_user)?;
        let mut delays = self.inner.retry.delays();
        let mut attempt: u32 = 1;
        loop {
            let mut check = Ok(None);
            if self.is_unsure(&request.path) {
                check = already_done().await;
            }
            let error = match check {
                Ok(Some(done)) => {
                    self.settle(&request.path);
                    tracing::info!(
                        endpoint = request.endpoint,
                        path = %request.path,
                        "an earlier attempt had gone through, not sending again"
                    );
                    return Ok(done);
                }
                Err(error) if error.is_transient() => error,
                check => {
                    if let Err(error) = check {
                        tracing::warn!(
                            endpoint = request.endpoint,
                            path = %request.path,
                            %error,
                            "cannot check whether an earlier attempt went through, sending again"
                        );
                    }
                    match self.attempt_recorded(request, url.clone(), attempt).await {
                        Ok(response) => {
                            self.settle(&request.path);
                            return parse(&response);
                        }
                        Err(error) => {
                            if may_have_acted(&error) {
                                self.remember_unsure(&request.path);
                            }
                            error
                        }
                    }
                }
            };
            let Some(delay) = self.retry_delay(request, &error, &mut delays, attempt) else {
                return Err(error);
            };
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn is_unsure(&self, path: &str) -> bool {
        lock(&self.inner.unsure_sends).iter().any(|p| p == path)
    }

    fn remember_unsure(&self, path: &str) {
        let mut unsure = lock(&self.inner.unsure_sends);
        if !unsure.iter().any(|p| p == path) {
            if unsure.len() >= MAX_UNSURE_SENDS {
                unsure.pop_front();
            }
            unsure.push_back(path.to_owned());
        }
    }

    fn settle(&self, path: &str) {
        lock(&self.inner.unsure_sends).retain(|p| p != path);
    }

    /// One attempt, logged and counted in the metrics.
    async fn attempt_recorded(
        &self,
        request: &Request,
        url: Url,
        attempt: u32,
    ) -> Result<Response> {
        let started = Instant::now();
        let outcome = self.attempt(request, url).await;
        let status = match &outcome {
            Ok(response) => response.status.as_str().to_owned(),
            Err(Error::Matrix { status, .. }) => status.to_string(),
            Err(_) => "error".to_owned(),
        };
        record_metrics(request.endpoint, status, started.elapsed());
        if let Ok(response) = &outcome {
            tracing::debug!(
                endpoint = request.endpoint,
                path = %request.path,
                status = response.status.as_u16(),
                attempt,
                "homeserver request done"
            );
        }
        outcome
    }

    /// How long to wait before retrying after `error`; `None` when the
    /// request may not or need not be retried.
    fn retry_delay(
        &self,
        request: &Request,
        error: &Error,
        delays: &mut impl Iterator<Item = Duration>,
        attempt: u32,
    ) -> Option<Duration> {
        if !request.retry.allows(error) {
            return None;
        }
        let Some(backoff) = delays.next() else {
            tracing::warn!(
                endpoint = request.endpoint,
                path = %request.path,
                attempts = attempt,
                %error,
                "homeserver request failed, giving up"
            );
            return None;
        };
        let delay = match error {
            Error::Matrix {
                retry_after: Some(wait),
                ..
            } if *wait > MAX_RETRY_AFTER => {
                tracing::warn!(
                    endpoint = request.endpoint,
                    path = %request.path,
                    wait_s = wait.as_secs(),
                    "homeserver asked for a long wait, not retrying"
                );
                return None;
            }
            Error::Matrix {
                retry_after: Some(wait),
                ..
            } => *wait,
            _ => backoff,
        };
        tracing::warn!(
            endpoint = request.endpoint,
            path = %request.path,
            attempt,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            %error,
            "homeserver request failed, retrying"
        );
        metrics::counter!("passerelle_homeserver_retries_total", "endpoint" => request.endpoint)
            .increment(1);
        Some(delay)
    }

    fn url(&self, request: &Request, as_user: Option<&UserId>) -> Result<Url> {
        let joined = format!("{}{}", self.inner.base, request.path);
        let mut url = Url::parse(&joined)
            .map_err(|e| Error::InvalidInput(format!("cannot build a URL: {e}")))?;
        // The URL parser resolves `.` and `..` segments (even escaped ones):
        // an id or state key of that shape cannot be sent faithfully.
        if !url.path().ends_with(request.path.as_str()) {
            return Err(Error::InvalidInput(format!(
                "path `{}` would be rewritten by URL normalisation",
                request.path
            )));
        }
        if !request.query.is_empty() || as_user.is_some() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in &request.query {
                pairs.append_pair(key, value);
            }
            if let Some(user) = as_user {
                pairs.append_pair("user_id", user.as_str());
            }
        }
        Ok(url)
    }

    async fn attempt(&self, request: &Request, url: Url) -> Result<Response> {
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .header(header::AUTHORIZATION, self.inner.authorization.clone());
        builder = match &request.body {
            Body::Empty => builder,
            Body::Json(value) => builder.json(value),
            Body::Bytes { data, content_type } => builder
                .header(header::CONTENT_TYPE, content_type.as_str())
                .body(data.clone()),
        };
        let mut response = builder.send().await.map_err(Error::http)?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            let body = read_body(&mut response, request.max_response_bytes, false).await?;
            Ok(Response {
                status,
                headers,
                body,
            })
        } else {
            let body = read_body(&mut response, MAX_ERROR_BODY_BYTES, true).await?;
            Err(matrix_error(status, &headers, &body))
        }
    }
}

fn record_metrics(endpoint: &'static str, status: String, elapsed: Duration) {
    metrics::counter!(
        "passerelle_homeserver_requests_total",
        "endpoint" => endpoint,
        "status" => status.clone()
    )
    .increment(1);
    metrics::histogram!(
        "passerelle_homeserver_request_duration_seconds",
        "endpoint" => endpoint,
        "status" => status
    )
    .record(elapsed.as_secs_f64());
}

/// Reads at most `limit` bytes: beyond it, an error, or (`truncate`) the
/// first `limit` bytes.
async fn read_body(response: &mut reqwest::Response, limit: u64, truncate: bool) -> Result<Bytes> {
    let too_large = || Error::InvalidResponse(format!("response body larger than {limit} bytes"));
    if !truncate && response.content_length().is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(Error::http)? {
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(body.len());
        if chunk.len() > room {
            if truncate {
                body.extend_from_slice(&chunk[..room]);
                break;
            }
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Builds [`Error::Matrix`] from a non-2xx answer. Bodies that are not a
/// Matrix error (a proxy's HTML page) give `M_UNKNOWN` and the status text.
fn matrix_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    #[derive(Deserialize, Default)]
    struct MatrixErrorBody {
        errcode: Option<String>,
        error: Option<String>,
        retry_after_ms: Option<u64>,
    }
    let parsed: MatrixErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let header_wait = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Error::Matrix {
        status: status.as_u16(),
        errcode: parsed.errcode.unwrap_or_else(|| "M_UNKNOWN".to_owned()),
        error: parsed
            .error
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned()),
        retry_after: parsed
            .retry_after_ms
            .map(Duration::from_millis)
            .or(header_wait),
    }
}

/// Whether the homeserver may have acted on a request that failed with
/// `error`: the request may have reached it (a connection that broke after
/// connecting, a timeout) or a proxy may have passed it on before failing
/// (500, 502, 503, 504). A failed connect or a 429 surely did nothing.
pub(crate) fn may_have_acted(error: &Error) -> bool {
    match error {
        Error::Matrix { status, .. } => matches!(status, 500 | 502 | 503 | 504),
        Error::Http(e) => !e.is_connect() && !e.is_builder(),
        _ => false,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which failures a request may be retried after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Sending twice does no harm (reads, PUTs with a transaction id, joins):
    /// retry on 429, 500/502/503/504 and any connection error.
    Safe,
    /// Sending twice would do the thing twice (`createRoom`): retry only when
    /// the homeserver surely did not act, i.e. 429 and failed connects.
    Unprocessed,
    /// One attempt: the error itself is the answer (ping).
    Never,
}

impl Retry {
    fn allows(self, error: &Error) -> bool {
        match (self, error) {
            (Self::Never, _) => false,
            (_, Error::Matrix { status: 429, .. }) => true,
            (Self::Safe, Error::Matrix { status, .. }) => matches!(status, 500 | 502 | 503 | 504),
            (Self::Safe, Error::Http(e)) => !e.is_builder(),
            (Self::Unprocessed, Error::Http(e)) => e.is_connect(),
            _ => false,
        }
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Empty,
    Json(Value),
    Bytes { data: Bytes, content_type: String },
}

/// One client-server API call, kept whole so that a retry sends exactly the
/// same thing (same path, hence the same transaction id).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    method: Method,
    /// Low-cardinality name for metrics and logs: "send", "join", ...
    endpoint: &'static str,
    /// Path with every variable segment already percent-encoded.
    path: String,
    query: Vec<(&'static str, String)>,
    body: Body,
    retry: Retry,
    max_response_bytes: u64,
}

impl Request {
    pub(crate) fn new(method: Method, endpoint: &'static str, path: String) -> Self {
        Self {
            method,
            endpoint,
            path,
            query: Vec::new(),
            body: Body::Empty,
            retry: Retry::Safe,
            max_response_bytes: MAX_JSON_RESPONSE_BYTES,
        }
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub(crate) fn json(mut self, value: Value) -> Self {
        self.body = Body::Json(value);
        self
    }

    pub(crate) fn bytes(mut self, data: Bytes, content_type: &str) -> Self {
        self.body = Body::Bytes {
            data,
            content_type: content_type.to_owned(),
        };
        self
    }

    pub(crate) fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub(crate) fn max_response_bytes(mut self, limit: u64) -> Self {
        self.max_response_bytes = limit;
        self
    }
}

/// A 2xx answer, body read in full.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Response {
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::InvalidResponse(format!(
                "unexpected JSON from {}: {e}",
                std::any::type_name::<T>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("response")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::*;
    use crate::matrix::mock::{AS_TOKEN, MockServer};

    #[test]
    fn path_segments_escape_everything_but_unreserved() {
        let cases = [
            ("!abc:example.org", "%21abc%3Aexample.org"),
            ("!abcDEF123", "%21abcDEF123"),
            ("!a-b_c.d~e", "%21a-b_c.d~e"),
            (
                "#_irc_libera_#rust:example.org",
                "%23_irc_libera_%23rust%3Aexample.org",
            ),
            ("$ev/ent?x=1&y", "%24ev%2Fent%3Fx%3D1%26y"),
            ("@ghost:example.org", "%40ghost%3Aexample.org"),
            ("", ""),
            ("é", "%C3%A9"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(encode(raw), encoded, "{raw}");
        }
    }

    #[test]
    fn txn_ids_are_unique_and_path_safe() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_txn_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| encode(id) == *id));
    }

    #[test]
    fn new_rejects_bad_input_and_hides_the_token() {
        let url = Url::parse("http://127.0.0.1:8008").unwrap();
        let new = |url: &Url, token: &str, domain: &str| {
            MatrixClient::new(
                url.clone(),
                token.to_owned(),
                domain.to_owned(),
                RetryPolicy::default(),
            )
        };
        let bad_scheme = Url::parse("ftp://example.org").unwrap();
        assert!(new(&bad_scheme, "t", "example.org").is_err());
        assert!(new(&url, "", "example.org").is_err());
        assert!(new(&url, "a\nb", "example.org").is_err());
        assert!(new(&url, "t", "not a domain").is_err());

        let client = new(&url, "secret-token", "example.org").unwrap();
        assert!(!format!("{client:?}").contains("secret-token"));
        assert_eq!(client.domain().as_str(), "example.org");
        assert_eq!(
            client.user_id("_irc_libera_nick").unwrap().as_str(),
            "@_irc_libera_nick:example.org"
        );
        assert_eq!(
            client.bot("passerelle").unwrap().user_id().as_str(),
            "@passerelle:example.org"
        );
        assert!(client.bot("bad localpart").is_err());
        assert!(client.user_id("Upper").is_err());
    }

    #[tokio::test]
    async fn versions_sends_the_as_token() {
        let server = MockServer::start().await;
        server.mock_versions().ok(&["v1.11", "v1.12"]);

        let versions = server.client().versions().await.unwrap();

        assert_eq!(versions, ["v1.11", "v1.12"]);
        let request = server.single_request();
        assert_eq!(request.path, "/_matrix/client/versions");
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {AS_TOKEN}").as_str())
        );
        assert_eq!(request.query_param("user_id"), None);
    }

    #[tokio::test]
    async fn homeserver_url_path_prefix_is_kept() {
        let server = MockServer::start().await;
        server.mock_versions().ok(&["v1.11"]);
        let mut url = server.url();
        url.set_path("/");
        let client = MatrixClient::new(
            url,
            AS_TOKEN.into(),
            "example.org".to_owned(),
            RetryPolicy::no_retries(),
        )
        .unwrap();

        client.versions().await.unwrap();

        assert_eq!(server.single_request().path, "/_matrix/client/versions");
    }

    #[tokio::test]
    async fn ping_returns_the_duration() {
        let server = MockServer::start().await;
        server.mock_ping("passerelle").ok(42);

        let duration = server
            .client()
            .ping_appservice("passerelle", "txn-1")
            .await
            .unwrap();

        assert_eq!(duration, Some(42));
        let request = server.single_request();
        assert_eq!(request.method, Method::POST);
        assert_eq!(
            request.path,
            "/_matrix/client/v1/appservice/passerelle/ping"
        );
        assert_eq!(request.json(), json!({ "transaction_id": "txn-1" }));
    }

    #[tokio::test]
    async fn ping_on_an_old_homeserver_is_none() {
        let server = MockServer::start().await;
        server.mock_ping("passerelle").error(404, "M_UNRECOGNIZED");

        let duration = server
            .client()
            .ping_appservice("passerelle", "txn-1")
            .await
            .unwrap();

        assert_eq!(duration, None);
    }

    #[tokio::test]
    async fn ping_failure_is_not_retried() {
        let server = MockServer::start().await;
        server
            .mock_ping("passerelle")
            .error(502, "M_CONNECTION_FAILED");

        let error = server
            .client()
            .ping_appservice("passerelle", "txn-1")
            .await
            .unwrap_err();

        assert_eq!(error.errcode(), Some("M_CONNECTION_FAILED"));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn rate_limit_waits_retry_after_ms_then_succeeds() {
        let server = MockServer::start().await;
        server.mock_versions().rate_limited(60).ok(&["v1.11"]);

        let started = Instant::now();
        let versions = server.client().versions().await.unwrap();

        assert_eq!(versions, ["v1.11"]);
        assert_eq!(server.requests().len(), 2);
        assert!(
            started.elapsed() >= Duration::from_millis(60),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn rate_limit_honours_the_retry_after_header() {
        let server = MockServer::start().await;
        server
            .mock_versions()
            .respond_with_header(
                429,
                json!({ "errcode": "M_LIMIT_EXCEEDED" }),
                ("Retry-After", "1"),
            )
            .ok(&["v1.11"]);

        let started = Instant::now();
        server.client().versions().await.unwrap();

        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_very_long_retry_after_fails_at_once() {
        let server = MockServer::start().await;
        server
            .mock_versions()
            .rate_limited(3_600_000)
            .ok(&["v1.11"]);

        let error = server.client().versions().await.unwrap_err();

        assert_eq!(error.errcode(), Some("M_LIMIT_EXCEEDED"));
        assert!(error.is_transient());
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn server_errors_are_retried() {
        let server = MockServer::start().await;
        server
            .mock_versions()
            .error(502, "M_UNKNOWN")
            .respond(503, json!("Service Unavailable"))
            .error(500, "M_UNKNOWN")
            .ok(&["v1.11"]);

        server.client().versions().await.unwrap();

        assert_eq!(server.requests().len(), 4);
    }

    #[tokio::test]
    async fn retries_stop_at_max_attempts() {
        let server = MockServer::start().await;
        let endpoint = server.mock_versions();
        for _ in 0..10 {
            endpoint.clone().error(504, "M_UNKNOWN");
        }

        let error = server.client().versions().await.unwrap_err();

        assert_eq!(error.status(), Some(504));
        assert!(error.is_transient());
        assert_eq!(
            server.requests().len(),
            MockServer::RETRY.max_attempts as usize
        );
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let server = MockServer::start().await;
        server
            .mock_versions()
            .error(403, "M_FORBIDDEN")
            .ok(&["v1.11"]);

        let error = server.client().versions().await.unwrap_err();

        assert_eq!(error.errcode(), Some("M_FORBIDDEN"));
        assert_eq!(error.status(), Some(403));
        assert!(!error.is_transient());
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn non_matrix_error_bodies_become_m_unknown() {
        let server = MockServer::start().await;
        server
            .mock_versions()
            .respond(400, json!("<html>bad</html>"));

        let error = server.client().versions().await.unwrap_err();

        assert_eq!(error.errcode(), Some("M_UNKNOWN"));
        assert_eq!(
            error.to_string(),
            "homeserver answered 400 M_UNKNOWN: Bad Request"
        );
    }

    #[tokio::test]
    async fn connection_errors_are_retried_then_reported_without_query() {
        // A port nothing listens on: bind, note it, close.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let client = MatrixClient::new(
            url,
            AS_TOKEN.into(),
            "example.org".to_owned(),
            MockServer::RETRY,
        )
        .unwrap();

        let error = client
            .intent("@ghost:example.org".try_into().unwrap())
            .joined_rooms()
            .await
            .unwrap_err();

        assert!(matches!(error, Error::Http(_)), "{error:?}");
        assert!(error.is_transient());
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("user_id"), "{shown}");
        assert!(!shown.contains(AS_TOKEN), "{shown}");
    }
}
