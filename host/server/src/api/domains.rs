//! `/v1/{project_id}/domain` (Huawei's `create_domain`, `show_domain`,
//! `update_domain`, `delete_domain`) and `/v1/{project_id}/obs/authority`
//! (`update_obs_bucket_authority_public`), with Huawei's models.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::Params;
use super::run_blocking;
use crate::app::State;
use crate::control;
use crate::control::domains::{DomainView, NewDomain};
use crate::control::projects::Tenant;

/// Huawei's `LiveDomainCreateReq` (fields it does not know are ignored).
#[derive(Deserialize)]
struct CreateBody {
    domain: String,
    domain_type: String,
    region: String,
    service_area: Option<String>,
}

/// Huawei's `LiveDomainModifyReq`.
#[derive(Deserialize)]
struct ModifyBody {
    domain: String,
    status: Option<String>,
}

/// Huawei's `ObsAuthorityConfigV2`.
#[derive(Deserialize)]
struct AuthorityBody {
    bucket: String,
    operation: i64,
}

fn body<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("the body is not a valid {what}: {e}")))
}

/// POST: a push domain in the service region (201).
pub async fn create(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let b: CreateBody = body(&bytes, "LiveDomainCreateReq")?;
    let new = NewDomain { name: b.domain, domain_type: b.domain_type, region: b.region, service_area: b.service_area };
    let created = run_blocking(move || state.writer().create_domain(&tenant, new)).await?;
    Ok((StatusCode::CREATED, Json(view(&created))))
}

/// GET `?domain=`: one domain, or all.
pub async fn show(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let name = Params::parse(q.as_deref().unwrap_or(""))?.get("domain");
    let list = control::domains::show(&state, &tenant, name.as_deref())?;
    let info: Vec<Value> = list.iter().map(view).collect();
    Ok(Json(json!({"total": info.len(), "domain_info": info})))
}

/// PUT: turn a domain on or off.
pub async fn update(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: ModifyBody = body(&bytes, "LiveDomainModifyReq")?;
    let status = b.status.ok_or_else(|| ApiError::invalid("status: required (on or off)"))?;
    let updated = run_blocking(move || state.writer().update_domain(&tenant, &b.domain, &status)).await?;
    Ok(Json(view(&updated)))
}

/// DELETE `?domain=` (204); refused while templates use it.
pub async fn delete(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, ApiError> {
    let name = Params::parse(q.as_deref().unwrap_or(""))?.required("domain")?;
    run_blocking(move || state.writer().delete_domain(&tenant, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// PUT `/obs/authority`: authorize (`operation` 1) or revoke (0) a bucket.
pub async fn authority(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: AuthorityBody = body(&bytes, "ObsAuthorityConfigV2")?;
    run_blocking(move || state.writer().set_bucket_authority(&tenant, &b.bucket, b.operation)).await?;
    Ok(Json(json!({})))
}

/// Huawei's `DecoupledLiveDomainInfo`.
fn view(d: &DomainView) -> Value {
    let domain = &d.domain;
    json!({
        "domain": domain.name, "domain_type": domain.domain_type, "domain_cname": d.cname, "region": domain.region,
        "status": domain.status, "status_describe": if domain.is_on() { "enabled" } else { "disabled" },
        "service_area": domain.service_area, "create_time": crate::time::iso_utc(domain.created_at),
        "is_ipv6": false,
    })
}
