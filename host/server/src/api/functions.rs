//! `/v1/{project_id}/functions`: tenant modules — upload (validated against
//! the stages templates use them for, compiled once, swapped atomically),
//! list, inspect, delete.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::Params;
use super::run_blocking;
use crate::app::State;
use crate::control;
use crate::control::modules::{ModuleDetails, ModuleSource};
use crate::control::projects::Tenant;

pub use crate::control::modules::MAX_MODULE;

/// PUT: upload or replace `name`; the body is the component.
/// Query: `allowed_outbound_hosts=` (repeatable) and `env=KEY=VALUE` (repeatable).
pub async fn upload(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    Path((_, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let params = Params::parse(q.as_deref().unwrap_or(""))?;
    let hosts = params.all("allowed_outbound_hosts");
    let mut environment = Vec::new();
    for kv in params.all("env") {
        let (k, v) = kv.split_once('=').ok_or_else(|| ApiError::invalid(format!("env: '{kv}' is not KEY=VALUE")))?;
        environment.push((k.to_string(), v.to_string()));
    }
    let uploaded = run_blocking(move || state.writer().upload_module(&tenant, &name, &body, hosts, environment)).await?;
    let status = if uploaded.replaced { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(view(&uploaded.module))))
}

/// GET: every module (uploaded, from the manifest, built in).
pub async fn list(AxState(state): AxState<Arc<State>>, Extension(tenant): Extension<Tenant>) -> Result<Json<Value>, ApiError> {
    let modules = run_blocking(move || control::modules::list(&state, &tenant)).await?;
    let list: Vec<Value> = modules
        .iter()
        .map(|m| match &m.source {
            ModuleSource::Uploaded(s) => json!({"name": m.name, "source": "uploaded", "sha256": s.sha256, "size": s.size,
                                                "uploaded_at": s.uploaded_at, "failures": m.failures}),
            ModuleSource::Manifest => json!({"name": m.name, "source": "manifest", "failures": m.failures}),
            ModuleSource::Builtin => json!({"name": m.name, "source": "builtin", "failures": m.failures}),
        })
        .collect();
    Ok(Json(json!({"total": list.len(), "functions": list})))
}

/// GET one: its worlds, imports and exports.
pub async fn inspect(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let details = run_blocking(move || control::modules::inspect(&state, &tenant, &name)).await?;
    Ok(Json(view(&details)))
}

/// DELETE: refused while a template uses it.
pub async fn delete(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    run_blocking(move || state.writer().delete_module(&tenant, &name)).await?;
    Ok(Json(json!({})))
}

fn view(d: &ModuleDetails) -> Value {
    let (m, i) = (&d.record, &d.inspection);
    json!({
        "name": m.name, "sha256": m.sha256, "size": m.bytes.len(), "uploaded_at": m.uploaded_at,
        "worlds": i.fits.iter().map(|s| s.world()).collect::<Vec<_>>(),
        "imports": i.imports, "exports": i.exports,
        "allowed_outbound_hosts": m.allowed_outbound_hosts,
        "environment": m.environment.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "used_by": d.used_by,
        "failures": d.failures,
    })
}
