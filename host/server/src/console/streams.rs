//! Live streams (codec, resolution, rates, and the latest snapshot as a
//! thumbnail that refreshes by itself) and each stream's snapshots as a
//! grid by time.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query as QueryOf, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::{ALL, Session, alert, blocking, page, refusal};
use crate::app::State;
use crate::control;
use crate::streams::StreamKey;

/// Snapshots shown in a stream's grid.
const GRID: usize = 48;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/console/streams", get(list))
        .route("/console/streams/latest.jpg", get(latest))
        .route("/console/snapshots", get(snapshots))
        .route("/console/snapshots/image", get(image))
}

#[derive(Deserialize)]
struct Stream {
    domain: String,
    app: String,
    stream: String,
    file: Option<String>,
}

impl Stream {
    fn key(&self) -> StreamKey {
        (self.domain.to_ascii_lowercase(), self.app.clone(), self.stream.clone())
    }

    fn query(&self) -> String {
        let e = |s: &str| crate::encoding::percent_encode(s, crate::encoding::UNRESERVED);
        format!("domain={}&app={}&stream={}", e(&self.domain), e(&self.app), e(&self.stream))
    }
}

/// The project's live streams, as `ListLiveStreamsOnline` measures them.
fn online(state: &State, session: &Session) -> Vec<control::streams::Online> {
    let domains = control::domains::show(state, &session.tenant, None).unwrap_or_default();
    domains.iter().flat_map(|d| control::streams::online(state, &session.tenant, &d.domain.name, None, None, ALL).items).collect()
}

async fn list(AxState(state): AxState<Arc<State>>, session: Session) -> Response {
    let streams = online(&state, &session);
    let interval = |s: &control::streams::Online| state.config().template(&s.key.0, &s.key.1).map_or(5, |t| t.interval.as_secs());
    let body = html! {
        @if streams.is_empty() {
            p.empty { "No live streams yet — publish to one of your domains' ingest URLs (see Domains)." }
        } @else {
            ul.streams {
                @for s in &streams {
                    @let q = Stream { domain: s.key.0.clone(), app: s.key.1.clone(), stream: s.key.2.clone(), file: None }.query();
                    @let label = format!("{}/{}/{}", s.key.0, s.key.1, s.key.2);
                    li.stream {
                        img.thumb src={ "/console/streams/latest.jpg?" (q) } data-live={ "/console/streams/latest.jpg?" (q) }
                            data-refresh=(interval(s)) alt={ "Latest snapshot of " (label) } width="320" height="180";
                        div {
                            h2 { (label) }
                            dl {
                                dt { "Video" } dd { (s.video_codec) " " (s.resolution) ", " (s.rates.video_fps) " fps, " (s.rates.video_kbps) " kbit/s" }
                                dt { "Audio" } dd { @if s.audio_codec.is_empty() { "none" } @else { (s.audio_codec) ", " (s.rates.audio_kbps) " kbit/s" } }
                                dt { "Publisher" } dd { (s.client_ip) }
                                dt { "Live since" } dd { (crate::time::iso_utc(s.started_at as i64)) }
                            }
                            a href={ "/console/snapshots?" (q) } { "Snapshots of " (label) }
                        }
                    }
                }
            }
        }
    };
    page(&session, "/console/streams", "Live streams", body).into_response()
}

async fn latest(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(s): QueryOf<Stream>, headers: HeaderMap) -> Response {
    let (key, tenant) = (s.key(), session.tenant.clone());
    match blocking(move || control::streams::latest(&state, &tenant, &key)).await {
        Ok((bytes, etag)) => {
            let cache = [(header::CACHE_CONTROL, "no-cache".to_string()), (header::ETAG, etag.clone())];
            if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                return (StatusCode::NOT_MODIFIED, cache).into_response();
            }
            (cache, [(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response()
        }
        Err(e) => {
            let (status, message) = refusal(e);
            (if status.is_server_error() { status } else { StatusCode::NOT_FOUND }, message).into_response()
        }
    }
}

async fn snapshots(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(q): QueryOf<HashMap<String, String>>) -> Response {
    let field = |k: &str| q.get(k).cloned();
    let chosen = match (field("domain"), field("app"), field("stream")) {
        (Some(domain), Some(app), Some(stream)) => Some(Stream { domain, app, stream, file: None }),
        _ => None,
    };
    let Some(s) = chosen else {
        let streams = online(&state, &session);
        let body = html! {
            @if streams.is_empty() {
                p.empty { "No live streams yet — their snapshots show here while they are live." }
            } @else {
                p { "Choose a live stream:" }
                ul { @for o in &streams {
                    @let q = Stream { domain: o.key.0.clone(), app: o.key.1.clone(), stream: o.key.2.clone(), file: None }.query();
                    li { a href={ "/console/snapshots?" (q) } { (o.key.0) "/" (o.key.1) "/" (o.key.2) } }
                } }
            }
        };
        return page(&session, "/console/snapshots", "Snapshots", body).into_response();
    };
    let (key, tenant, st) = (s.key(), session.tenant.clone(), state.clone());
    let listed = blocking(move || control::streams::snapshots(&st, &tenant, &key, GRID)).await;
    let title = format!("Snapshots of {}/{}/{}", s.domain, s.app, s.stream);
    let instant = state.config().template(&s.key().0, &s.app).is_some_and(|t| t.write_mode == crate::config::template::WriteMode::Instant);
    let body: Markup = match listed {
        Err(e) => html! { (alert(Some(&refusal(e).1))) a href="/console/snapshots" { "All live streams" } },
        Ok((_, keys)) if keys.is_empty() => html! { p.empty { "No snapshot yet — the first comes at the stream's first interval." } },
        Ok((bucket, keys)) => html! {
            p { "Bucket " code { (bucket) } ", newest first"
                @if instant { " (instant mode: the template keeps the latest snapshot only)" } "." }
            ul.grid {
                @for k in keys.iter().rev() {
                    @let file = k.rsplit('/').next().unwrap_or(k);
                    @let src = format!("/console/snapshots/image?{}&file={}", s.query(), crate::encoding::percent_encode(file, crate::encoding::UNRESERVED));
                    li { figure {
                        a href=(src) { img src=(src) loading="lazy" alt={ "Snapshot " (file) } width="240" height="135"; }
                        figcaption { (time_of(file)) br; small { code { (k) } } }
                    } }
                }
            }
        },
    };
    page(&session, "/console/snapshots", &title, body).into_response()
}

/// `1764070000.jpg` as a UTC time; other names as they are.
fn time_of(file: &str) -> String {
    let stem = file.split('.').next().unwrap_or(file);
    match stem.parse::<i64>() {
        Ok(secs) if secs > 1_000_000_000_000 => crate::time::iso_utc(secs / 1000),
        Ok(secs) if secs > 1_000_000_000 => crate::time::iso_utc(secs),
        _ => file.to_string(),
    }
}

async fn image(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(s): QueryOf<Stream>) -> Response {
    let (key, tenant) = (s.key(), session.tenant.clone());
    let file = s.file.clone().unwrap_or_default();
    match blocking(move || control::streams::snapshot_object(&state, &tenant, &key, &file)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-cache")], bytes).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, refusal(e).1).into_response(),
    }
}
