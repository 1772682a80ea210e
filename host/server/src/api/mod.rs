//! The HTTP server: fs-bucket objects under `/obs/`, `/metrics`,
//! `/healthz`, `/readyz`, `/openapi.json`, the AK/SK-signed
//! `/v1/{project_id}/…` API, and the console.

pub mod auth;
pub mod callbacks;
pub mod domains;
pub mod error;
pub mod functions;
pub mod guard;
pub mod key_chain;
mod params;
pub mod snapshot;
pub mod sources;
pub mod streams;
pub mod usage;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State as AxState};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::json;

use crate::app::State;
use crate::config::credentials::Secret;
use crate::control::projects::{self, Tenant};
use crate::limiter::client_key;
use auth::{AuthError, Checked, SignedRequest};
use error::{ApiError, codes};
use guard::Guard;

/// Largest API request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The OpenAPI document of the API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Runs `f` (the database, compiling a component) off the async executor.
async fn run_blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?.map_err(Into::into)
}

/// The routes.
pub fn router(state: Arc<State>) -> Router {
    let api = Router::new()
        .route(
            "/v1/{project_id}/stream/snapshot",
            get(snapshot::query).post(snapshot::create).put(snapshot::modify).delete(snapshot::delete),
        )
        .route("/v2/{project_id}/stats/snapshot", get(usage::snapshots))
        .route("/v1/{project_id}/domain", get(domains::show).post(domains::create).put(domains::update).delete(domains::delete))
        .route("/v1/{project_id}/obs/authority", axum::routing::put(domains::authority))
        .route("/v1/{project_id}/sources", get(sources::list))
        .route("/v1/{project_id}/sources/{domain}/{app}/{stream}", axum::routing::put(sources::put).delete(sources::delete))
        .route("/v1/{project_id}/realtime/streams", get(streams::online))
        .route("/v1/{project_id}/streams", get(streams::list))
        .route("/v1/{project_id}/streams/{domain}/{app}/{stream}/snapshot", axum::routing::post(streams::snapshot))
        .route("/v1/{project_id}/streams/{domain}/{app}/{stream}/latest.jpg", get(streams::latest))
        .route("/v1/{project_id}/guard/key-chain", get(key_chain::show).put(key_chain::update).delete(key_chain::delete))
        .route("/v1/{project_id}/callbacks", get(callbacks::list))
        .route("/v1/{project_id}/functions", get(functions::list))
        .route("/v1/{project_id}/functions/{name}", get(functions::inspect).put(functions::upload).delete(functions::delete))
        .route("/v1/{project_id}/callbacks/{id}/redeliver", axum::routing::post(callbacks::redeliver))
        // `authenticate` reads bodies with each route's own limit; the
        // extractors' default 2 MB must not refuse uploads it let through.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let guard = Arc::new(Guard::new(&state.config().runtime.http));
    Router::new()
        .route("/obs/{bucket}/{*object}", get(object))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .merge(api)
        .merge(crate::console::router())
        .fallback(http_trigger)
        .layer(Extension(guard.failures.clone()))
        .layer(Extension(guard))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// The id of the request being answered (also its `X-Request-Id`).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Gives every response an `X-Request-Id` (as Huawei's gateway does; the
/// SDK reads it into its responses and exceptions), logged with failures.
async fn request_id(mut request: Request, next: Next) -> Response {
    let mut id = [0u8; 16];
    let _ = getrandom::fill(&mut id);
    let id = hex::encode(id);
    request.extensions_mut().insert(RequestId(id.clone()));
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let mut response = next.run(request).await;
    if response.status().is_server_error() {
        tracing::warn!(request_id = %id, %method, %path, status = response.status().as_u16(), "API request failed");
    }
    if let Ok(value) = header::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Largest request body a `[[trigger.http]]` component gets.
const MAX_TRIGGER_BODY: usize = 1 << 20;

/// Requests no built-in route takes go to the best-matching
/// `[[trigger.http]]` route's component.
async fn http_trigger(AxState(state): AxState<Arc<State>>, Extension(guard): Extension<Arc<Guard>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let Some(component) = state.http_route(&path) else {
        return error(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such resource");
    };
    let (parts, body) = request.into_parts();
    let body = match guard.read_body(body, MAX_TRIGGER_BODY, &guard.trigger_bodies).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let request = http::Request::from_parts(parts, body);
    let kv: Arc<dyn crate::state::KeyValueTable> = state.db().clone();
    let limits = crate::runtime::CallLimits { timeout: std::time::Duration::from_secs(10), memory: 128 << 20 };
    let st = state.clone();
    let name = component.name.clone();
    let result = tokio::task::spawn_blocking(move || st.runtime().serve_http(&component, kv, request, limits)).await;
    match result {
        Ok(Ok(reply)) => {
            let mut response = Response::builder().status(reply.status);
            for (k, v) in reply.headers {
                response = response.header(k, v);
            }
            response.body(Body::from(reply.body)).unwrap_or_else(|_| error(StatusCode::BAD_GATEWAY, codes::INTERNAL, "invalid response"))
        }
        Ok(Err(e)) => {
            if let Some((stage, component, kind)) = e.call_site() {
                state.metrics().component_error(&stage.to_string(), component, kind);
            }
            tracing::error!(%path, component = %name, "HTTP component failed: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "the component failed")
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Checks the credentials in the headers, then reads the body (with the
/// route's limit, in time) and checks the signature over it. Addresses that
/// failed too often get 429 until their window passes.
async fn authenticate(
    AxState(state): AxState<Arc<State>>,
    Extension(guard): Extension<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = client_key(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    if let Some(left) = guard.failures.blocked(client, Instant::now()) {
        return throttled(left);
    }
    let (parts, body) = request.into_parts();
    let refuse = |reason: AuthError| {
        tracing::warn!(method = %parts.method, path = %parts.uri.path(), %client, "API request refused: {reason}");
        if guard.failures.failed(client, Instant::now()) {
            tracing::warn!(%client, "too many failed authentications: the address gets 429 for the rest of the window");
        }
        ApiError::unauthorized(reason.to_string()).into_response()
    };
    let now = SystemTime::now();
    // Nothing of the body is read for a request that cannot be authentic.
    let checked = match auth::check_headers(guard.policy, &parts.headers, now) {
        Ok(checked) => checked,
        Err(reason) => return refuse(reason),
    };
    let (tenant, secret_key) = match lookup(&state, &checked).await {
        Ok(Ok(found)) => found,
        Ok(Err(reason)) => return refuse(reason),
        Err(e) => return e.into_response(),
    };
    // As the gateway does: credentials are good for their own project's
    // paths only, and the answer is the same whether the path's exists.
    if path_project(parts.uri.path()) != Some(tenant.project_id.as_str()) {
        let path = path_project(parts.uri.path()).unwrap_or_default().to_string();
        return refuse(AuthError::OtherProject(path));
    }
    let limit = body_limit(&parts.method, parts.uri.path());
    let bytes = match guard.read_body(body, limit, &guard.uploads).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    if let Checked::Signed(pending) = &checked {
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body: &bytes,
        };
        if let Err(reason) = pending.verify(secret_key.as_ref().expect("a signature's project has a secret key"), &signed) {
            return refuse(reason);
        }
        // A captured state-changing request must not work twice; reads may.
        if matches!(parts.method, Method::POST | Method::PUT | Method::DELETE | Method::PATCH) {
            // Several nodes share the record of used signatures; one node keeps it in memory.
            let first_use = if state.node().shared() {
                let (st, signature) = (state.clone(), pending.signature().to_string());
                let ms = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
                let (expires, at) = (ms(pending.date() + auth::MAX_SKEW), ms(now));
                match run_blocking(move || st.db().first_use(&signature, expires, at).map_err(crate::control::ControlError::from)).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(AuthError::Replayed),
                    Err(e) => return e.into_response(),
                }
            } else {
                guard.replays.first_use(pending.signature(), pending.date(), now)
            };
            match first_use {
                Ok(()) => {}
                Err(AuthError::ReplayCacheFull) => return ApiError::busy(AuthError::ReplayCacheFull.to_string()).into_response(),
                Err(reason) => return refuse(reason),
            }
        }
    }
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(tenant);
    next.run(request).await
}

/// The project a token or access key belongs to (and, for a signature, its
/// secret key); an unknown one reads as a bad token or signature.
async fn lookup(state: &Arc<State>, checked: &Checked) -> Result<Result<(Tenant, Option<Secret>), AuthError>, ApiError> {
    let st = state.clone();
    match checked {
        Checked::Token(token) => {
            let token = token.clone();
            let found = run_blocking(move || projects::by_token(&st, &token)).await?;
            Ok(found.map(|t| (t, None)).ok_or(AuthError::BadToken))
        }
        Checked::Signed(pending) => {
            let access_key = pending.access_key().to_string();
            let found = run_blocking(move || projects::by_access_key(&st, &access_key)).await?;
            Ok(found.map(|(t, sk)| (t, Some(sk))).ok_or(AuthError::BadSignature))
        }
    }
}

/// The `{project_id}` of `/v1/{project_id}/…` or `/v2/{project_id}/…`.
fn path_project(path: &str) -> Option<&str> {
    let mut segments = path.split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some(""), Some("v1" | "v2"), Some(project)) if !project.is_empty() => Some(project),
        _ => None,
    }
}

/// The largest body a request may have: a module for
/// `PUT /v1/{project_id}/functions/{name}`, [`MAX_BODY`] for the rest.
fn body_limit(method: &Method, path: &str) -> usize {
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["", "v1", _, "functions", name] if method == Method::PUT && !name.is_empty() => functions::MAX_MODULE,
        _ => MAX_BODY,
    }
}

/// 429 with Huawei's gateway code, for the rest of the window.
fn throttled(left: std::time::Duration) -> Response {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let mut response = ApiError::throttled(format!(
        "The throttling threshold has been reached: too many failed authentications from this address; retry in {secs} s"
    ))
    .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    response
}

/// A Huawei-style error body.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error_code": code, "error_msg": message}))).into_response()
}

async fn object(AxState(state): AxState<Arc<State>>, Path((bucket, object)): Path<(String, String)>) -> Response {
    let buckets = state.buckets().clone();
    let key = object.clone();
    let result = tokio::task::spawn_blocking(move || buckets.get_served(&bucket, &key)).await;
    match result {
        Ok(Ok(Some(data))) => {
            let content_type =
                if object.ends_with(".jpg") || object.ends_with(".jpeg") { "image/jpeg" } else { "application/octet-stream" };
            // Instant-mode objects change in place: a viewer must revalidate.
            ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], data).into_response()
        }
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such object"),
        Ok(Err(e @ crate::storage::StorageError::UnknownBucket(_))) => error(StatusCode::NOT_FOUND, codes::NOT_FOUND, &e.to_string()),
        Ok(Err(e @ crate::storage::StorageError::BadKey { .. })) => error(StatusCode::BAD_REQUEST, codes::INVALID, &e.to_string()),
        Ok(Err(e)) => {
            tracing::error!("serving an object: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "could not read the object")
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "could not read the object"),
    }
}

/// Ready when the state database answers (for load balancers and
/// Kubernetes' readiness probe); `/healthz` only says the process serves.
async fn readyz(AxState(state): AxState<Arc<State>>) -> Response {
    let st = state.clone();
    match tokio::task::spawn_blocking(move || st.db().counts()).await {
        Ok(Ok(_)) => (StatusCode::OK, axum::Json(json!({"status": "ready"}))).into_response(),
        Ok(Err(e)) => {
            tracing::warn!("not ready: the state database did not answer: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "the state database did not answer"}))).into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "busy"}))).into_response(),
    }
}

async fn metrics(AxState(state): AxState<Arc<State>>) -> Response {
    let delivered = state.pipeline().delivery_stats();
    let st = state.clone();
    let (pending, failed) = tokio::task::spawn_blocking(move || st.db().counts().unwrap_or_default()).await.unwrap_or_default();
    let body = state.metrics().render(state.streams().len(), delivered.ok, delivered.failed, pending, failed);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}
