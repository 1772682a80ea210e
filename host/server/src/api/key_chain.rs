//! `/v1/{project_id}/guard/key-chain?domain=`: ingest URL validation per
//! push domain, Huawei's `UpdateDomainKeyChain` / `ShowDomainKeyChain` /
//! `DeleteDomainKeyChain` (body `{key, auth_type, timeout}`). A domain with
//! a key chain refuses publishes whose URL is not signed with its key; the
//! key is never returned.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::params::Params;
use super::snapshot::{check_project, run_blocking};
use crate::app::State;
use crate::ingest::url_auth::{AuthType, KeyChain};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyChainInfo {
    key: String,
    auth_type: Option<String>,
    timeout: Option<u64>,
}

/// Shortest and longest `timeout` (Huawei's range).
const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 60..=2_592_000;

fn domain_param(state: &State, q: Option<&str>) -> Result<String, ApiError> {
    let domain = Params::parse(q.unwrap_or(""))?.required("domain")?.to_ascii_lowercase();
    let config = state.config();
    if !config.runtime.served_domains(&config.manifest).iter().any(|d| d.eq_ignore_ascii_case(&domain)) {
        return Err(ApiError::not_found(format!("domain '{domain}' is not a domain this host serves")));
    }
    Ok(domain)
}

/// PUT: sets (creates or replaces) a domain's key chain.
pub async fn update(
    AxState(state): AxState<Arc<State>>,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    check_project(&state, &project)?;
    let domain = domain_param(&state, q.as_deref())?;
    let info: KeyChainInfo =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("the body is not a valid KeyChainInfo: {e}")))?;
    KeyChain::check_key(&info.key).map_err(ApiError::invalid)?;
    let auth_type: AuthType = info.auth_type.as_deref().unwrap_or("d_sha256").parse().map_err(ApiError::invalid)?;
    let timeout = info.timeout.unwrap_or(3600);
    if !TIMEOUT_RANGE.contains(&timeout) {
        return Err(ApiError::invalid(format!("timeout: {timeout} is outside {}-{}", TIMEOUT_RANGE.start(), TIMEOUT_RANGE.end())));
    }
    let chain = KeyChain { key: info.key, auth_type, timeout: Duration::from_secs(timeout) };
    let st = state.clone();
    run_blocking(move || st.writer().set_key_chain(&domain, chain).map_err(ApiError::from)).await?;
    Ok(StatusCode::OK)
}

/// GET: a domain's key chain, key masked.
pub async fn show(AxState(state): AxState<Arc<State>>, Path(project): Path<String>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    check_project(&state, &project)?;
    let domain = domain_param(&state, q.as_deref())?;
    let chain = state.key_chains.read().unwrap().get(&domain).cloned();
    let chain = chain.ok_or_else(|| ApiError::not_found(format!("domain '{domain}' has no key chain")))?;
    Ok(Json(json!({"key": "*".repeat(chain.key.len()), "auth_type": chain.auth_type.as_str(), "timeout": chain.timeout.as_secs()}))
        .into_response())
}

/// DELETE: turns ingest URL validation off for a domain.
pub async fn delete(
    AxState(state): AxState<Arc<State>>,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, ApiError> {
    check_project(&state, &project)?;
    let domain = domain_param(&state, q.as_deref())?;
    let st = state.clone();
    run_blocking(move || st.writer().delete_key_chain(&domain).map_err(ApiError::from)).await?;
    Ok(StatusCode::NO_CONTENT)
}
