//! The provisioning API for integration managers and admin tools, served on
//! its own listener (`provisioning.listen`) under `/_passerelle/provision/v1`:
//! the networks and their health, the portals, linking and unlinking rooms,
//! a user's logins. Every request needs
//! `Authorization: Bearer <provisioning.shared_secret>` (compared in constant
//! time) and then acts with the admin permission level. `docs/provisioning.yaml`
//! describes it; a test keeps the document and [`routes`] in step.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use bytes::Bytes;
use passerelle_api::{
    BridgeError, Capabilities, CommandContext, ErrorKind, LoginState, NetworkId, PermissionLevel,
    PortalKey, PortalKind, RemoteUserId,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::bridge::Bridge;
use crate::store::{LoginRow, PortalRow};

/// Where the API lives on its listener.
pub const PREFIX: &str = "/_passerelle/provision/v1";

/// Request bodies are a few ids; anything larger is a mistake.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The `errcode`s this API answers with: Matrix's names, with their Matrix
/// meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrCode {
    /// 401: no `Authorization: Bearer` header.
    MissingToken,
    /// 403: a secret, but the wrong one.
    UnknownToken,
    /// 400: the body is not JSON.
    NotJson,
    /// 400: JSON of the wrong shape (a missing or unknown field).
    BadJson,
    /// 400: a value that cannot be right (a malformed room or user id).
    InvalidParam,
    /// 413: the body is larger than the API accepts.
    TooLarge,
    /// 404: no such room, portal or enabled network.
    NotFound,
    /// 404 or 405: no such endpoint, or not with this method.
    Unrecognized,
    /// 403: the bridge bot may not join the room.
    Forbidden,
    /// 400: the module refused the link; `error` says why.
    BadState,
    /// 500, or 503 when retrying later can help.
    Unknown,
}

impl ErrCode {
    pub const ALL: [ErrCode; 11] = [
        ErrCode::MissingToken,
        ErrCode::UnknownToken,
        ErrCode::NotJson,
        ErrCode::BadJson,
        ErrCode::InvalidParam,
        ErrCode::TooLarge,
        ErrCode::NotFound,
        ErrCode::Unrecognized,
        ErrCode::Forbidden,
        ErrCode::BadState,
        ErrCode::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrCode::MissingToken => "M_MISSING_TOKEN",
            ErrCode::UnknownToken => "M_UNKNOWN_TOKEN",
            ErrCode::NotJson => "M_NOT_JSON",
            ErrCode::BadJson => "M_BAD_JSON",
            ErrCode::InvalidParam => "M_INVALID_PARAM",
            ErrCode::TooLarge => "M_TOO_LARGE",
            ErrCode::NotFound => "M_NOT_FOUND",
            ErrCode::Unrecognized => "M_UNRECOGNIZED",
            ErrCode::Forbidden => "M_FORBIDDEN",
            ErrCode::BadState => "M_BAD_STATE",
            ErrCode::Unknown => "M_UNKNOWN",
        }
    }
}

/// An error answer: `{"errcode", "error"}` with its status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: ErrCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A store failure: logged, and the caller is told no details.
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "provisioning request failed in the store");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrCode::Unknown,
            "internal database error",
        )
    }

    /// A module's refusal, in its own words (what the command would answer
    /// in the room).
    fn module(e: BridgeError) -> Self {
        let (status, code) = match e.kind {
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, ErrCode::NotFound),
            ErrorKind::Retryable => (StatusCode::SERVICE_UNAVAILABLE, ErrCode::Unknown),
            ErrorKind::NotLoggedIn => (StatusCode::FORBIDDEN, ErrCode::Forbidden),
            _ => (StatusCode::BAD_REQUEST, ErrCode::BadState),
        };
        Self::new(status, code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::appservice::matrix_error(self.status, self.code.as_str(), &self.message)
    }
}

type ApiResult = Result<Response, ApiError>;

/// One endpoint: its method and its path under [`PREFIX`].
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<Arc<Bridge>>,
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, Arc<Bridge>>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum can route");
    Route {
        method,
        path,
        handler: axum::routing::on(filter, handler),
    }
}

/// Every endpoint. The router is built from this list, and a test checks
/// `docs/provisioning.yaml` against it.
pub fn routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/networks", networks),
        route(Method::GET, "/portals", portals),
        route(Method::POST, "/link", link),
        route(Method::POST, "/unlink", unlink),
        route(Method::GET, "/users/{mxid}/logins", logins),
    ]
}

/// The API for `bridge`, behind `shared_secret`.
pub fn router(bridge: Arc<Bridge>, shared_secret: &str) -> Router {
    let api = routes()
        .into_iter()
        .fold(Router::new(), |api, route| {
            api.route(route.path, route.handler)
        })
        .with_state(bridge);
    protect(api, shared_secret)
}

/// Nests `api` under [`PREFIX`] behind the secret. Every answer, errors
/// included, is JSON, and every request is logged by method, path and
/// status: never a header, so never the secret.
fn protect(api: Router, shared_secret: &str) -> Router {
    let secret = Arc::new(Secret::new(shared_secret));
    let api = api
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .nest(PREFIX, api)
        .fallback(unknown_endpoint)
        .layer(middleware::from_fn_with_state(secret, authenticate))
        .layer(middleware::from_fn(log_request))
}

/// Serves the API on `listener` until the bridge shuts down. Does nothing
/// without a `provisioning` section.
pub(crate) fn spawn(bridge: Arc<Bridge>, listener: TcpListener) {
    let Some(config) = bridge.config.provisioning.clone() else {
        return;
    };
    let Some(guard) = bridge.task_guard() else {
        return;
    };
    let mut stop = bridge.shutdown.clone();
    let addr = listener.local_addr().ok();
    let app = router(bridge, &config.shared_secret);
    tokio::spawn(async move {
        tracing::info!(listen = ?addr, "provisioning API listening");
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the provisioning API stopped");
        }
        drop(guard);
    });
}

async fn unknown_endpoint() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrCode::Unrecognized,
        "Unrecognized request",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrCode::Unrecognized,
        "Method not allowed here",
    )
}

/// The shared secret, kept as its SHA-256: comparing digests takes the same
/// time whatever the given secret's length or first wrong byte.
struct Secret([u8; 32]);

impl Secret {
    fn new(secret: &str) -> Self {
        Self(Self::digest(secret))
    }

    fn digest(secret: &str) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(&Sha256::digest(secret.as_bytes()));
        out
    }

    fn matches(&self, given: &str) -> bool {
        Self::digest(given).ct_eq(&self.0).into()
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive); `None` for another scheme or an empty token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn authenticate(State(secret): State<Arc<Secret>>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(token) = token else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrCode::MissingToken,
            "Missing provisioning secret: send Authorization: Bearer <secret>",
        )
        .into_response();
    };
    if !secret.matches(token) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            ErrCode::UnknownToken,
            "Wrong provisioning secret",
        )
        .into_response();
    }
    next.run(request).await
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if status.is_server_error() {
        tracing::warn!(%method, path, status = status.as_u16(), elapsed_ms, "provisioning request");
    } else {
        tracing::info!(%method, path, status = status.as_u16(), elapsed_ms, "provisioning request");
    }
    response
}

/// Reads a JSON body: `M_NOT_JSON` when it is not JSON, `M_BAD_JSON` when
/// it is JSON of the wrong shape.
fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrCode::TooLarge,
                "Request body too large",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrCode::BadJson,
                rejection.body_text(),
            )
        }
    })?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrCode::NotJson,
            format!("Body is not JSON: {e}"),
        )
    })?;
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrCode::BadJson,
            format!("Malformed request: {e}"),
        )
    })
}

fn room_id(room_id: &str) -> Result<ruma::OwnedRoomId, ApiError> {
    ruma::RoomId::parse(room_id).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrCode::InvalidParam,
            "`room_id` is not a Matrix room id",
        )
    })
}

#[derive(Serialize)]
struct NetworkView {
    id: NetworkId,
    display_name: String,
    capabilities: Capabilities,
    health: NetworkHealth,
}

/// What the runtime knows of a network's health without asking the module:
/// modules report no live health through the contract (yet), only the
/// states of their logins.
#[derive(Serialize)]
struct NetworkHealth {
    /// `running` once the module started (the daemon does not run without
    /// every enabled module), `stopping` once shutdown began.
    status: &'static str,
    /// This network's logins by the state its module last stored.
    logins: LoginCounts,
}

#[derive(Default, Serialize)]
struct LoginCounts {
    connecting: usize,
    connected: usize,
    disconnected: usize,
    broken: usize,
}

impl LoginCounts {
    fn of(rows: &[LoginRow]) -> Self {
        let mut counts = Self::default();
        for row in rows {
            *match row.state {
                LoginState::Connecting => &mut counts.connecting,
                LoginState::Connected => &mut counts.connected,
                LoginState::Disconnected => &mut counts.disconnected,
                LoginState::Broken => &mut counts.broken,
            } += 1;
        }
        counts
    }
}

/// `GET /networks`: every enabled network.
async fn networks(State(bridge): State<Arc<Bridge>>) -> ApiResult {
    let status = if bridge.is_shutting_down() {
        "stopping"
    } else {
        "running"
    };
    let mut views = Vec::new();
    for (id, network) in bridge.networks() {
        let info = bridge.info(id).cloned().unwrap_or_else(|| network.info());
        let rows = bridge
            .store
            .logins_on(&info.id)
            .await
            .map_err(ApiError::internal)?;
        views.push(NetworkView {
            id: info.id,
            display_name: info.display_name,
            capabilities: info.capabilities,
            health: NetworkHealth {
                status,
                logins: LoginCounts::of(&rows),
            },
        });
    }
    Ok(Json(json!({ "networks": views })).into_response())
}

#[derive(Serialize)]
struct PortalView {
    key: PortalKey,
    room_id: String,
    kind: PortalKind,
    name: Option<String>,
}

impl PortalView {
    /// `None` for a portal without a room: it bridges nothing yet.
    fn of(row: PortalRow) -> Option<Self> {
        Some(Self {
            room_id: row.room_id?,
            key: row.key,
            kind: row.kind,
            name: row.name,
        })
    }
}

#[derive(Deserialize)]
struct PortalFilter {
    network: Option<String>,
}

/// `GET /portals[?network=]`: the portals that have a room.
async fn portals(
    State(bridge): State<Arc<Bridge>>,
    filter: Result<Query<PortalFilter>, QueryRejection>,
) -> ApiResult {
    let Ok(Query(filter)) = filter else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrCode::InvalidParam,
            "Malformed query string",
        ));
    };
    if let Some(network) = &filter.network
        && bridge.network(network).is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrCode::NotFound,
            format!("network `{network}` is not enabled"),
        ));
    }
    let rows = bridge.store.portals().await.map_err(ApiError::internal)?;
    let views: Vec<PortalView> = rows
        .into_iter()
        .filter(|row| {
            filter
                .network
                .as_deref()
                .is_none_or(|n| row.key.network.as_str() == n)
        })
        .filter_map(PortalView::of)
        .collect();
    Ok(Json(json!({ "portals": views })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    room_id: String,
    network: String,
    /// The remote chat as the `link` command takes it: an IRC channel, a
    /// Telegram chat id.
    remote_id: String,
    /// The account within the network, where the module needs one (the IRC
    /// network name).
    #[serde(default)]
    account: Option<String>,
}

/// `POST /link`: what `link <network> <remote_id> [account]` does in the
/// room, run by the module's own `link` command with the admin level.
async fn link(State(bridge): State<Arc<Bridge>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let request: LinkRequest = json_body(body)?;
    let room = room_id(&request.room_id)?;
    let Some(network) = bridge.network(&request.network).cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrCode::NotFound,
            format!("network `{}` is not enabled", request.network),
        ));
    };
    if !network.commands().iter().any(|c| c.name == "link") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrCode::InvalidParam,
            format!("network `{}` cannot link rooms", request.network),
        ));
    }
    // The module's link joins the room too, but its error cannot tell an
    // unknown room from a refused join; joining first can. Joining a room
    // the bot is in changes nothing.
    if let Err(e) = bridge.bot.join(room.as_str()).await {
        return Err(match e.status() {
            Some(404) => ApiError::new(StatusCode::NOT_FOUND, ErrCode::NotFound, "unknown room"),
            Some(403) => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrCode::Forbidden,
                "the bridge bot cannot join this room: invite it first",
            ),
            _ if e.is_transient() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrCode::Unknown,
                "the homeserver is unavailable; try again later",
            ),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrCode::BadState,
                format!("the bridge bot cannot join this room: {e}"),
            ),
        });
    }
    let existing = bridge
        .store
        .portal_by_room(room.as_str())
        .await
        .map_err(ApiError::internal)?;
    let ctx = CommandContext {
        sender: bridge.bot_user_id(),
        room_id: room.to_string(),
        level: PermissionLevel::Admin,
        portal: existing
            .map(|p| p.key)
            .filter(|k| k.network.as_str() == request.network),
    };
    let mut args = vec![request.remote_id];
    args.extend(request.account);
    tracing::info!(network = %request.network, room_id = %room, "provisioning: link");
    let message = network
        .run_command(ctx, "link", &args)
        .await
        .map_err(ApiError::module)?;
    let linked = bridge
        .store
        .portal_by_room(room.as_str())
        .await
        .map_err(ApiError::internal)?
        .filter(|row| row.key.network.as_str() == request.network);
    Ok(match linked {
        Some(row) => {
            let portal = PortalView::of(row);
            Json(json!({ "portal": portal, "message": message })).into_response()
        }
        // Accepted, not linked yet: the module waits for a confirmation
        // from the remote side.
        None => (
            StatusCode::ACCEPTED,
            Json(json!({ "portal": null, "message": message })),
        )
            .into_response(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlinkRequest {
    room_id: String,
}

/// `POST /unlink`: what the `unlink` command does in the room.
async fn unlink(
    State(bridge): State<Arc<Bridge>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let request: UnlinkRequest = json_body(body)?;
    let room = room_id(&request.room_id)?;
    let Some(portal) = bridge
        .store
        .portal_by_room(room.as_str())
        .await
        .map_err(ApiError::internal)?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrCode::NotFound,
            "this room is not bridged",
        ));
    };
    bridge
        .store
        .delete_portal(&portal.key)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(portal = %portal.key, "provisioning: portal unlinked");
    Ok(Json(json!({ "portal": PortalView::of(portal) })).into_response())
}

#[derive(Serialize)]
struct LoginView {
    network: NetworkId,
    login_id: String,
    remote_user: RemoteUserId,
    state: LoginState,
    /// When the module last stored the login (ms since the Unix epoch).
    updated_ts: i64,
}

/// `GET /users/{mxid}/logins`: never the secret, nor the module's metadata.
async fn logins(
    State(bridge): State<Arc<Bridge>>,
    mxid: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Some(Path(mxid)) = mxid.ok().filter(|Path(m)| ruma::UserId::parse(m).is_ok()) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrCode::InvalidParam,
            "not a Matrix user id",
        ));
    };
    let rows = bridge
        .store
        .logins_of(&mxid)
        .await
        .map_err(ApiError::internal)?;
    let views: Vec<LoginView> = rows
        .into_iter()
        .map(|row| LoginView {
            network: row.network,
            login_id: row.login_id,
            remote_user: row.remote_user_id,
            state: row.state,
            updated_ts: row.updated_ts,
        })
        .collect();
    Ok(Json(json!({ "logins": views })).into_response())
}

#[cfg(test)]
mod tests;
