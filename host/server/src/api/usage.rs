//! `GET /v2/{project_id}/stats/snapshot`: Huawei's `ListSnapshotData` —
//! snapshots per hour (`publish_domain`, `start_time`, `end_time`).

use std::sync::Arc;

use axum::extract::{RawQuery, State as AxState};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::Params;
use super::run_blocking;
use crate::app::State;
use crate::control;
use crate::control::projects::Tenant;

/// GET: `{"snapshot_list": [{"count", "time"}], "total"}`.
pub async fn snapshots(
    AxState(state): AxState<Arc<State>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(q.as_deref().unwrap_or(""))?;
    let (domain, start, end) =
        (params.get("publish_domain").map(|d| d.to_ascii_lowercase()), params.get("start_time"), params.get("end_time"));
    let now = crate::time::unix_secs() as i64;
    let (list, total) =
        run_blocking(move || control::usage::snapshots(&state, &tenant, domain.as_deref(), start.as_deref(), end.as_deref(), now)).await?;
    let list: Vec<Value> = list.iter().map(|h| json!({"count": h.count, "time": h.time})).collect();
    Ok(Json(json!({"snapshot_list": list, "total": total})))
}
