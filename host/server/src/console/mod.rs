//! The web console at `/console`: the Snapshot Capturing guide's steps in a
//! browser. Server-rendered pages (maud, escaped by construction) over the
//! same control layer and error messages as the API, one small script for
//! the live thumbnails, assets embedded in the binary. Signed in with a
//! project's `project_id` and token; the browser keeps only a session
//! cookie (HttpOnly, SameSite=Strict), and every request re-checks the
//! token, so a rotated or deleted project's sessions end at once.

mod callbacks;
mod domains;
mod functions;
mod streams;
mod templates;
mod usage;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, State as AxState};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::app::State;
use crate::config::credentials::Secret;
use crate::control::projects::{self, Tenant};
use crate::control::{ControlError, Page};
use crate::limiter::{FailureLimiter, client_key};

/// A session ends after this long without a request.
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// Sessions of one project at most (the least recently seen go first).
const MAX_SESSIONS_PER_PROJECT: usize = 50;
const COOKIE: &str = "livesnap_console";

/// Signed-in browsers, kept in the state database (so every node knows
/// them) by the SHA-256 of their session id, with the SHA-256 of the token
/// they signed in with: neither the id nor the token is stored.
mod sessions {
    use super::{IDLE, MAX_SESSIONS_PER_PROJECT};
    use crate::app::State;
    use crate::control::ControlError;
    use crate::project::token_hash;

    fn now_ms() -> i64 {
        crate::time::unix_ms() as i64
    }

    fn idle_before() -> i64 {
        now_ms() - IDLE.as_millis() as i64
    }

    /// A new session for `token`; its id (the cookie). Blocking.
    pub fn open(state: &State, token: &str) -> Result<String, ControlError> {
        let mut id = [0u8; 32];
        let _ = getrandom::fill(&mut id);
        let id = hex::encode(id);
        state.db().open_session(&token_hash(&id), &token_hash(token), now_ms(), idle_before(), MAX_SESSIONS_PER_PROJECT)?;
        Ok(id)
    }

    /// The token hash of a live session. Blocking.
    pub fn token_hash_of(state: &State, id: &str) -> Result<Option<String>, ControlError> {
        Ok(state.db().session(&token_hash(id), now_ms(), idle_before())?)
    }

    /// Ends a session. Blocking.
    pub fn close(state: &State, id: &str) -> Result<(), ControlError> {
        Ok(state.db().close_session(&token_hash(id))?)
    }
}

/// The console's routes (under `/console`).
pub fn router() -> Router<Arc<State>> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/domains") }))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        // Browsers ask for it beside a bare image (a snapshot opened full size).
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/console/assets/console.css", get(|| async { asset("text/css", include_str!("assets/console.css")) }))
        .route("/console/assets/console.js", get(|| async { asset("text/javascript", include_str!("assets/console.js")) }))
        .merge(domains::routes())
        .merge(templates::routes())
        .merge(streams::routes())
        .merge(usage::routes())
        .merge(callbacks::routes())
        .merge(functions::routes())
        .layer(middleware::from_fn(same_origin))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// A state-changing request must come from the console's own pages: its
/// `Origin` (or, without one, its `Referer`) must be this host; a missing
/// or opaque (`null`) one is refused too. The cookie is SameSite=Strict as
/// well; this also stops a cross-site sign-in into someone else's project.
async fn same_origin(request: axum::extract::Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let headers = request.headers();
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        let origin_host = match (text(header::ORIGIN), text(header::REFERER)) {
            (Some(origin), _) => origin.split_once("://").map(|(_, h)| h),
            (None, Some(referer)) => referer.split_once("://").and_then(|(_, rest)| rest.split('/').next()),
            (None, None) => None,
        };
        if host.is_empty() || origin_host != Some(host) {
            return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
        }
    }
    next.run(request).await
}

/// The signed-in project of a console request; without a valid session the
/// request is sent to the sign-in page.
pub struct Session {
    /// The project.
    pub tenant: Tenant,
}

impl FromRequestParts<Arc<State>> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, Response> {
        let to_login = || Redirect::to("/console/login").into_response();
        let id = cookie(&parts.headers).ok_or_else(to_login)?;
        let st = state.clone();
        // The token is checked again on every request: a rotated or deleted
        // project's sessions end with it.
        let tenant = blocking(move || {
            let Some(hash) = sessions::token_hash_of(&st, &id)? else { return Ok(None) };
            let tenant = projects::by_token_hash(&st, &hash)?;
            if tenant.is_none() {
                sessions::close(&st, &id)?;
            }
            Ok(tenant)
        })
        .await;
        match tenant {
            Ok(Some(tenant)) => Ok(Self { tenant }),
            _ => Err(to_login()),
        }
    }
}

/// The client's address (unspecified when the server did not record it).
struct Peer(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Self(ip))
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_string))
}

#[derive(Deserialize)]
struct LoginForm {
    project_id: String,
    token: String,
}

async fn login_page() -> Html<String> {
    login_view(None, "")
}

fn login_view(error: Option<&str>, project_id: &str) -> Html<String> {
    Html(layout(
        "Sign in",
        None,
        "",
        html! {
            p { "Sign in with your project's ID and token (" code { "livesnap project create --json" } " prints them; the default project's are in "
                code { ".livesnap/api-credentials.toml" } ")." }
            form.card method="post" action="/console/login" {
                (alert(error))
                label for="project_id" { "Project ID" }
                input #project_id name="project_id" required autocomplete="username" value=(project_id);
                label for="token" { "Token" }
                input #token name="token" type="password" required autocomplete="current-password";
                button type="submit" { "Sign in" }
            }
        },
    ).into_string())
}

async fn login(
    AxState(state): AxState<Arc<State>>,
    Extension(failures): Extension<Arc<FailureLimiter>>,
    Peer(peer): Peer,
    Form(form): Form<LoginForm>,
) -> Response {
    let client = client_key(peer);
    if failures.blocked(client, Instant::now()).is_some() {
        let page = login_view(Some("Too many failed sign-ins from this address; try again later."), &form.project_id);
        return (StatusCode::TOO_MANY_REQUESTS, page).into_response();
    }
    let token = Secret::new(form.token.trim());
    let st = state.clone();
    let project_id = form.project_id.trim().to_string();
    // A session only for the right project's token.
    let signed_in = blocking(move || match projects::by_token(&st, &token)? {
        Some(tenant) if tenant.project_id == project_id => Ok(Some((tenant, sessions::open(&st, token.expose())?))),
        _ => Ok(None),
    })
    .await;
    match signed_in {
        Ok(Some((tenant, id))) => {
            tracing::info!(project = %tenant.project_id, "console sign-in");
            // Served over HTTPS, the cookie never travels in the clear.
            let secure = if state.config().runtime.tls.cert.is_some() { "; Secure" } else { "" };
            let cookie = format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict{secure}");
            let mut response = Redirect::to("/console/domains").into_response();
            response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("hex is a valid header"));
            response
        }
        _ => {
            failures.failed(client, Instant::now());
            tracing::warn!(%client, "console sign-in refused");
            // Said on the page, which is served as any page is.
            login_view(Some("The project ID or token is not valid."), &form.project_id).into_response()
        }
    }
}

async fn logout(AxState(state): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers) {
        let _ = blocking(move || sessions::close(&state, &id)).await;
    }
    let mut response = Redirect::to("/console/login").into_response();
    let expired = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&expired).expect("a valid header"));
    response
}

/// The console's sections, in menu order: (path, label).
const SECTIONS: [(&str, &str); 8] = [
    ("/console/domains", "Domains"),
    ("/console/authorization", "Authorization"),
    ("/console/templates", "Snapshot templates"),
    ("/console/streams", "Live streams"),
    ("/console/snapshots", "Snapshots"),
    ("/console/usage", "Usage"),
    ("/console/callbacks", "Callbacks"),
    ("/console/functions", "Functions"),
];

/// A whole page: the header with the sections, then `body` under its title.
fn layout(title: &str, tenant: Option<&Tenant>, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · livesnap console" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "livesnap" }
                    @if let Some(t) = tenant {
                        nav aria-label="Console sections" {
                            ul {
                                @for (path, label) in SECTIONS {
                                    li { a href=(path) aria-current=[(path == current).then_some("page")] { (label) } }
                                }
                            }
                        }
                        form.signout method="post" action="/console/logout" {
                            span { "Project " code { (t.project_id) } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

/// A signed-in page.
fn page(session: &Session, current: &str, title: &str, body: Markup) -> Html<String> {
    Html(layout(title, Some(&session.tenant), current, body).into_string())
}

/// An error where it happened (announced to screen readers).
fn alert(error: Option<&str>) -> Markup {
    html! { @if let Some(e) = error { p.error role="alert" { (e) } } }
}

/// A confirmation after a change (`?ok=` of the redirect).
fn notice(ok: Option<&str>) -> Markup {
    html! { @if let Some(m) = ok { p.ok role="status" { (m) } } }
}

/// After a change: back to `path`, saying what was done.
fn done(path: &str, message: &str) -> Response {
    back(path, "ok", message)
}

/// After a refused change made from a list: back to `path`, saying why.
fn failed(path: &str, message: &str) -> Response {
    back(path, "error", message)
}

fn back(path: &str, field: &str, message: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    let seal = seal(field, message);
    let message = crate::encoding::percent_encode(message, crate::encoding::UNRESERVED);
    Redirect::to(&format!("{path}{sep}{field}={message}&seal={seal}")).into_response()
}

/// The key of [`seal`]: random, unless derived from a secret every node
/// shares (the default project's secret key) with [`set_seal_secret`].
static SEAL_KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();

/// Derives the seal key from `secret`, so a redirect sealed by one node
/// shows on another. Call before serving.
pub fn set_seal_secret(secret: &Secret) {
    use sha2::Digest;
    let key: [u8; 32] = sha2::Sha256::new().chain_update(b"livesnap console seal\0").chain_update(secret.expose()).finalize().into();
    let _ = SEAL_KEY.set(key);
}

/// A MAC of a redirect's message under the seal key: a link made
/// elsewhere cannot put words on a console page.
fn seal(field: &str, message: &str) -> String {
    use hmac::{Hmac, Mac};
    let key = SEAL_KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        let _ = getrandom::fill(&mut k);
        k
    });
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(field.as_bytes());
    mac.update(b"\0");
    mac.update(message.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// What a refused change says on the page (the API's message), and the
/// status the page is served with: a refusal is part of the page, shown
/// where it happened, so only a server failure is an error status.
fn refusal(e: ControlError) -> (StatusCode, String) {
    match e {
        ControlError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        ControlError::Db(_) | ControlError::Failed(_) => {
            // As the API: the cause is logged, not shown.
            tracing::error!("console request failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
        }
        other => (StatusCode::OK, other.to_string()),
    }
}

/// Runs a blocking control operation off the executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ControlError> + Send + 'static) -> Result<T, ControlError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ControlError::Failed(e.to_string()))?
}

/// Every item: listings in the console are not paged.
const ALL: Page = Page { limit: 1000, offset: 0 };

/// `?ok=` and `?error=` of a redirect after a change, with its `seal`.
#[derive(Deserialize, Default)]
struct Query {
    ok: Option<String>,
    error: Option<String>,
    seal: Option<String>,
}

impl Query {
    /// The confirmation, if this console sealed it.
    fn ok(&self) -> Option<&str> {
        self.ok.as_deref().filter(|m| self.sealed("ok", m))
    }

    /// The refusal, if this console sealed it.
    fn error(&self) -> Option<&str> {
        self.error.as_deref().filter(|m| self.sealed("error", m))
    }

    fn sealed(&self, field: &str, message: &str) -> bool {
        self.seal.as_deref().is_some_and(|s| crate::secret::equal(s, &seal(field, message)))
    }
}
