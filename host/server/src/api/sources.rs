//! `/v1/{project_id}/sources`: pull sources — create or replace
//! (`PUT …/{domain}/{app}/{stream}` with `{"url": …}`), list with each
//! one's state, delete. URLs are shown with passwords and query values
//! masked.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::run_blocking;
use crate::app::State;
use crate::control;
use crate::control::projects::Tenant;
use crate::control::sources::Origin;
use crate::source::Source;
use crate::sources::SourceStatus;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceBody {
    url: String,
}

/// PUT: create (201) or replace (200) a stream's source.
pub async fn put(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    Path((_, domain, app, stream)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: SourceBody = serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("the body is not {{\"url\": …}}: {e}")))?;
    let source = Source { domain, app, stream, url: body.url };
    let shown = view(&source, Origin::Api, None);
    let replaced = run_blocking(move || state.writer().put_source(&tenant, source)).await?;
    Ok((if replaced { StatusCode::OK } else { StatusCode::CREATED }, Json(shown)))
}

/// GET: every source and its state.
pub async fn list(AxState(state): AxState<Arc<State>>, Extension(tenant): Extension<Tenant>) -> Result<Json<Value>, ApiError> {
    let sources = run_blocking(move || control::sources::list(&state, &tenant)).await?;
    let list: Vec<Value> = sources.iter().map(|(s, o, st)| view(s, *o, st.as_ref())).collect();
    Ok(Json(json!({"total": list.len(), "sources": list})))
}

/// DELETE: stops and forgets a stream's API source.
pub async fn delete(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    Path((_, domain, app, stream)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    run_blocking(move || state.writer().delete_source(&tenant, &domain, &app, &stream)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn view(s: &Source, origin: Origin, status: Option<&SourceStatus>) -> Value {
    let mut v = json!({
        "domain": s.domain.to_ascii_lowercase(), "app": s.app, "stream": s.stream, "url": s.display_url(),
        "origin": match origin { Origin::Manifest => "manifest", Origin::Api => "api" },
    });
    let status = status.cloned().unwrap_or(SourceStatus::Connecting { attempts: 0, last_error: None });
    if let (Value::Object(v), Ok(Value::Object(st))) = (&mut v, serde_json::to_value(status)) {
        v.extend(st);
    }
    v
}
