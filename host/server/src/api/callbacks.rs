//! `/v1/{project_id}/callbacks`: the callback outbox — list by status, and
//! redeliver a failed callback.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State as AxState};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::Params;
use super::run_blocking;
use crate::app::State;
use crate::control;
use crate::control::projects::Tenant;
use crate::state::OutboxStatus;

/// GET `?status=pending|delivered|failed&limit=&offset=`.
pub async fn list(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(q.as_deref().unwrap_or(""))?;
    let status = match params.get("status") {
        Some(s) => Some(s.parse::<OutboxStatus>().map_err(|e| ApiError::invalid(format!("status: {e}")))?),
        None => None,
    };
    let page = params.page(10, 100)?;
    let listing = run_blocking(move || control::callbacks::list(&state, &tenant, status, page)).await?;
    let callbacks: Vec<_> = listing
        .items
        .iter()
        .map(|i| {
            json!({"id": i.id, "url": i.url, "status": i.status.to_string(), "attempts": i.attempts,
                   "last_error": i.last_error, "created_at": i.created_at, "updated_at": i.updated_at,
                   "next_attempt_at": (i.status == OutboxStatus::Pending).then_some(i.next_attempt_at),
                   "body": String::from_utf8_lossy(&i.body)})
        })
        .collect();
    Ok(Json(json!({"total": listing.total, "callbacks": callbacks, "limit": page.limit, "offset": page.offset})))
}

/// POST `/{id}/redeliver`: a failed callback becomes pending again.
pub async fn redeliver(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let queued = id.clone();
    run_blocking(move || state.writer().redeliver_callback(&tenant, &queued)).await?;
    Ok(Json(json!({"id": id, "status": "pending"})))
}
