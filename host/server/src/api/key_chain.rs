//! `/v1/{project_id}/guard/key-chain?domain=`: ingest URL validation per
//! push domain, Huawei's `UpdateDomainKeyChain` / `ShowDomainKeyChain` /
//! `DeleteDomainKeyChain` (body `{key, auth_type, timeout}`). A domain with
//! a key chain refuses publishes whose URL is not signed with its key; the
//! key is never returned.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::Params;
use super::run_blocking;
use crate::app::State;
use crate::control;
use crate::control::projects::Tenant;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyChainInfo {
    key: String,
    auth_type: Option<String>,
    timeout: Option<u64>,
}

fn domain_param(q: Option<&str>) -> Result<String, ApiError> {
    Params::parse(q.unwrap_or(""))?.required("domain")
}

/// PUT: sets (creates or replaces) a domain's key chain.
pub async fn update(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let domain = control::key_chains::served_domain(&state, &tenant, &domain_param(q.as_deref())?)?;
    let info: KeyChainInfo =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("the body is not a valid KeyChainInfo: {e}")))?;
    let chain = control::key_chains::key_chain(info.key, info.auth_type.as_deref(), info.timeout)?;
    let st = state.clone();
    run_blocking(move || st.writer().set_key_chain(&tenant, &domain, chain)).await?;
    Ok(StatusCode::OK)
}

/// GET: a domain's key chain, key masked.
pub async fn show(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let domain = domain_param(q.as_deref())?;
    let chain = control::key_chains::show(&state, &tenant, &domain)?;
    Ok(Json(json!({"key": "*".repeat(chain.key.len()), "auth_type": chain.auth_type.as_str(), "timeout": chain.timeout.as_secs()})))
}

/// DELETE: turns ingest URL validation off for a domain.
pub async fn delete(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, ApiError> {
    let domain = domain_param(q.as_deref())?;
    let st = state.clone();
    run_blocking(move || st.writer().delete_key_chain(&tenant, &domain)).await?;
    Ok(StatusCode::NO_CONTENT)
}
