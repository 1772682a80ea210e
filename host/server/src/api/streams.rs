//! `/v1/{project_id}/streams`: live streams, a snapshot on demand
//! (`POST …/{domain}/{app}/{stream}/snapshot`) and the latest snapshot of
//! each (`GET …/{domain}/{app}/{stream}/latest.jpg`, never served stale).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::Params;
use super::{RequestId, run_blocking};
use crate::app::State;
use crate::control;
use crate::control::projects::Tenant;
use crate::streams::StreamKey;

/// GET: every live stream and the template capturing it.
pub async fn list(AxState(state): AxState<Arc<State>>, Extension(tenant): Extension<Tenant>) -> Result<Json<Value>, ApiError> {
    let list: Vec<_> = control::streams::list(&state, &tenant)
        .into_iter()
        .map(|(s, t)| {
            let template = t.map(|t| {
                json!({"time_interval": t.interval.as_secs(), "snapshot_mode": t.snapshot_mode.to_string(),
                       "object_write_mode": matches!(t.write_mode, crate::config::template::WriteMode::Instant) as u8,
                       "bucket": t.bucket, "call_back_enable": if t.callback_url.is_some() { "on" } else { "off" }})
            });
            json!({"domain": s.domain, "app": s.app, "stream": s.stream, "peer": s.peer, "started_at": s.started_at,
                   "frames": s.frames, "snapshots": s.snapshots, "errors": s.errors,
                   "last_snapshot_url": s.last_snapshot_url, "template": template})
        })
        .collect();
    Ok(Json(json!({"total": list.len(), "streams": list})))
}

/// POST: a snapshot of the newest picture now.
pub async fn snapshot(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    Path((_, domain, app, stream)): Path<(String, String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let key: StreamKey = (domain.to_ascii_lowercase(), app, stream);
    Ok(Json(control::streams::snapshot_now(&state, &tenant, &key).await?))
}

/// GET `latest.jpg`: the newest stored snapshot (`ETag`, `no-cache`).
pub async fn latest(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    Path((_, domain, app, stream)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key: StreamKey = (domain.to_ascii_lowercase(), app, stream);
    let (bytes, etag) = run_blocking(move || control::streams::latest(&state, &tenant, &key)).await?;
    let cache = [(header::CACHE_CONTROL, "no-cache".to_string()), (header::ETAG, etag.clone())];
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((cache, [(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}

/// GET `/v1/{project_id}/realtime/streams`: Huawei's `ListLiveStreamsOnline`
/// (`publish_domain` required; `app`, `stream`, `offset`, `limit`), with
/// codec, frame rates, bitrates and resolution measured from each stream.
pub async fn online(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(q.as_deref().unwrap_or(""))?;
    let domain = params.required("publish_domain")?;
    let (app, stream) = (params.get("app"), params.get("stream"));
    if stream.is_some() && app.is_none() {
        return Err(ApiError::invalid("app: required with stream"));
    }
    let page = params.page(10, 100)?;
    let listing = control::streams::online(&state, &tenant, &domain, app.as_deref(), stream.as_deref(), page);
    let streams: Vec<Value> = listing
        .items
        .iter()
        .map(|o| {
            json!({"publish_domain": o.key.0, "app": o.key.1, "stream": o.key.2,
                   "video_codec": o.video_codec, "audio_codec": o.audio_codec,
                   "video_frame_rate": o.rates.video_fps, "audio_frame_rate": o.rates.audio_fps,
                   "video_bitrate": o.rates.video_kbps, "audio_bitrate": o.rates.audio_kbps,
                   "resolution": o.resolution, "client_ip": o.client_ip,
                   "start_time": crate::time::iso_utc(o.started_at as i64)})
        })
        .collect();
    Ok(Json(json!({"total_page": listing.total.div_ceil(page.limit), "total_num": listing.total, "offset": page.offset,
                   "limit": page.limit, "request_id": request_id, "streams": streams})))
}
