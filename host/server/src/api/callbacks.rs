//! `/v1/{project_id}/callbacks`: the callback outbox — list by status, and
//! redeliver a failed callback.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::params::Params;
use super::snapshot::{check_project, run_blocking};
use crate::app::State;
use crate::state::OutboxStatus;

/// GET `?status=pending|delivered|failed&limit=&offset=`.
pub async fn list(AxState(state): AxState<Arc<State>>, Path(project): Path<String>, RawQuery(q): RawQuery) -> Response {
    let result = run_blocking(move || {
        check_project(&state, &project)?;
        let params = Params::parse(q.as_deref().unwrap_or(""))?;
        let status = match params.get("status") {
            Some(s) => Some(s.parse::<OutboxStatus>().map_err(|e| ApiError::invalid(format!("status: {e}")))?),
            None => None,
        };
        let limit = params.integer("limit", 10, 1, 100)?;
        let offset = params.integer("offset", 0, 0, i64::MAX)?;
        let (total, items) = state.store.list(status, limit as usize, offset as usize).map_err(ApiError::internal)?;
        let callbacks: Vec<_> = items
            .iter()
            .map(|i| {
                json!({"id": i.id, "url": i.url, "status": i.status.to_string(), "attempts": i.attempts,
                       "last_error": i.last_error, "created_at": i.created_at, "updated_at": i.updated_at,
                       "next_attempt_at": (i.status == OutboxStatus::Pending).then_some(i.next_attempt_at),
                       "body": String::from_utf8_lossy(&i.body)})
            })
            .collect();
        Ok::<_, ApiError>(json!({"total": total, "callbacks": callbacks, "limit": limit, "offset": offset}))
    })
    .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// POST `/{id}/redeliver`: a failed callback becomes pending again.
pub async fn redeliver(AxState(state): AxState<Arc<State>>, Path((project, id)): Path<(String, String)>) -> Response {
    let queued = id.clone();
    let result = run_blocking(move || {
        let id = queued;
        check_project(&state, &project)?;
        if !state.store.redeliver(&id).map_err(ApiError::internal)? {
            return Err(ApiError::not_found(format!("no failed callback with id '{id}'")));
        }
        state.pipeline.delivery().nudge();
        tracing::info!(%id, "callback queued for redelivery through the API");
        Ok(())
    })
    .await;
    match result {
        Ok(()) => Json(json!({"id": id, "status": "pending"})).into_response(),
        Err(e) => e.into_response(),
    }
}
