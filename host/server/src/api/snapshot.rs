//! `/v1/{project_id}/stream/snapshot`: Huawei Live's snapshot config API
//! (create, modify, query, delete), with the same bodies and queries.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::Params;
use super::run_blocking;
use crate::app::State;
use crate::config::template::ObsLocation;
use crate::config::{SnapshotConfig, Template};
use crate::control;
use crate::control::projects::Tenant;

pub use crate::control::templates::MASK;
const MAX_LIMIT: i64 = 100;

/// POST: create.
pub async fn create(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let config = parse_body(&body)?;
    run_blocking(move || state.writer().create_template(&tenant, config)).await?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

/// PUT: modify the template named by the body's domain and app_name.
pub async fn modify(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let config = parse_body(&body)?;
    run_blocking(move || state.writer().modify_template(&tenant, config, true)).await?;
    Ok(Json(json!({})))
}

/// GET: query by domain, optionally app_name, paged.
pub async fn query(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(q.as_deref().unwrap_or(""))?;
    let domain = params.required("domain")?;
    let app = params.get("app_name");
    let page = params.page(10, MAX_LIMIT)?;
    let listing = control::templates::query(&state, &tenant, &domain, app.as_deref(), page);
    let list: Vec<Value> = listing.items.iter().map(|t| view(t)).collect();
    Ok(Json(json!({"total": listing.total, "snapshot_config_list": list, "limit": page.limit, "offset": page.offset})))
}

/// DELETE: by domain and app_name.
pub async fn delete(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(q.as_deref().unwrap_or(""))?;
    let domain = params.required("domain")?;
    let app = params.required("app_name")?;
    run_blocking(move || state.writer().delete_template(&tenant, &domain, &app)).await?;
    Ok(Json(json!({})))
}

/// Parses a LiveSnapshotConfig body, naming the field at fault. Fields
/// it does not know are ignored, as Huawei's API does.
fn parse_body(body: &[u8]) -> Result<SnapshotConfig, ApiError> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("the body is not a valid snapshot config: {e}")))?;
    let Some(fields) = value.as_object_mut() else {
        return Err(ApiError::invalid("the body is not a valid snapshot config: not a JSON object"));
    };
    fields.retain(|k, _| SnapshotConfig::FIELDS.contains(&k.as_str()));
    if let Some(Value::Object(obs)) = fields.get_mut("obs_location") {
        obs.retain(|k, _| ObsLocation::FIELDS.contains(&k.as_str()));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" || path.is_empty() {
            ApiError::invalid(format!("the body is not a valid snapshot config: {inner}"))
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })
}

/// A template as the API shows it: Huawei's fields, the key masked.
pub fn view(t: &Template) -> Value {
    let raw = &t.raw;
    let mut v = json!({
        "domain": t.domain,
        "app_name": t.app_name,
        "auth_key": if t.auth_key.is_empty() { "" } else { MASK },
        "time_interval": t.interval.as_secs(),
        "object_write_mode": raw.object_write_mode,
        "snapshot_mode": t.snapshot_mode.to_string(),
        "obs_location": {"bucket": t.bucket, "location": t.location, "object": t.object_prefix},
        "call_back_enable": if t.callback_url.is_some() { "on" } else { "off" },
        "call_back_url": raw.call_back_url.clone().unwrap_or_default(),
        "image_object_format": raw.image_object_format.clone().unwrap_or_default(),
        "image_access_protocol": raw.image_access_protocol.clone().unwrap_or_default(),
        "image_access_domain": raw.image_access_domain.clone().unwrap_or_default(),
    });
    if let Some(f) = &raw.functions {
        v["functions"] = serde_json::to_value(f).unwrap_or_default();
    }
    v
}
