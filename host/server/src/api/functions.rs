//! `/v1/{project_id}/functions`: tenant modules — upload (validated against
//! the stages templates use them for, compiled once, swapped atomically),
//! list, inspect, delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::Params;
use super::snapshot::{check_project, run_blocking};
use crate::app::State;
use crate::config::template::{DEFAULT_ENCODE, DEFAULT_NOTIFY, DEFAULT_STORE};
use crate::control::modules::{stage_name, users_of};
use crate::state::ModuleRecord;

/// Largest module accepted.
pub const MAX_MODULE: usize = 32 << 20;

/// PUT: upload or replace `name`; the body is the component.
/// Query: `allowed_outbound_hosts=` (repeatable) and `env=KEY=VALUE` (repeatable).
pub async fn upload(
    AxState(state): AxState<Arc<State>>,
    Path((project, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        check_project(&state, &project)?;
        let params = Params::parse(q.as_deref().unwrap_or(""))?;
        let hosts = params.all("allowed_outbound_hosts");
        let mut environment = Vec::new();
        for kv in params.all("env") {
            let (k, v) = kv.split_once('=').ok_or_else(|| ApiError::invalid(format!("env: '{kv}' is not KEY=VALUE")))?;
            environment.push((k.to_string(), v.to_string()));
        }
        let st = state.clone();
        let name = name.clone();
        run_blocking(move || {
            let uploaded = st.writer().upload_module(&name, &body, hosts, environment)?;
            Ok((uploaded.replaced, view(&st, &uploaded.record, &uploaded.inspection)))
        })
        .await
    };
    match result.await {
        Ok((replaced, view)) => (if replaced { StatusCode::OK } else { StatusCode::CREATED }, Json(view)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// GET: every module (uploaded, from the manifest, built in).
pub async fn list(AxState(state): AxState<Arc<State>>, Path(project): Path<String>) -> Response {
    let result = run_blocking(move || {
        check_project(&state, &project)?;
        let mut list: Vec<Value> = Vec::new();
        for m in state.store.module_summaries().map_err(ApiError::internal)? {
            list.push(json!({"name": m.name, "source": "uploaded", "sha256": m.sha256, "size": m.size,
                             "uploaded_at": m.uploaded_at, "failures": state.metrics.component_failures(&m.name)}));
        }
        let config = state.config();
        for name in config.manifest.components.keys() {
            list.push(json!({"name": name, "source": "manifest", "failures": state.metrics.component_failures(name)}));
        }
        for name in [DEFAULT_ENCODE, DEFAULT_STORE, DEFAULT_NOTIFY] {
            if !config.manifest.components.contains_key(name) {
                list.push(json!({"name": name, "source": "builtin", "failures": state.metrics.component_failures(name)}));
            }
        }
        Ok::<_, ApiError>(json!({"total": list.len(), "functions": list}))
    })
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// GET one: its worlds, imports and exports.
pub async fn inspect(AxState(state): AxState<Arc<State>>, Path((project, name)): Path<(String, String)>) -> Response {
    // Reading the module and compiling it both block: off the executor.
    let result = run_blocking(move || {
        check_project(&state, &project)?;
        let module = state
            .store
            .module(&name)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no uploaded function '{name}'")))?;
        let inspection = state.runtime.inspect(&module.bytes).map_err(ApiError::internal)?;
        Ok::<_, ApiError>(view(&state, &module, &inspection))
    })
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// DELETE: refused while a template uses it.
pub async fn delete(AxState(state): AxState<Arc<State>>, Path((project, name)): Path<(String, String)>) -> Response {
    let result = async {
        check_project(&state, &project)?;
        let st = state.clone();
        let n = name.clone();
        run_blocking(move || st.writer().delete_module(&n).map_err(ApiError::from)).await
    };
    match result.await {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => e.into_response(),
    }
}

fn view(state: &State, m: &ModuleRecord, i: &crate::runtime::Inspection) -> Value {
    json!({
        "name": m.name, "sha256": m.sha256, "size": m.bytes.len(), "uploaded_at": m.uploaded_at,
        "worlds": i.fits.iter().map(|s| stage_name(*s)).collect::<Vec<_>>(),
        "imports": i.imports, "exports": i.exports,
        "allowed_outbound_hosts": m.allowed_outbound_hosts,
        "environment": m.environment.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "used_by": users_of(state, &m.name),
        "failures": state.metrics.component_failures(&m.name),
    })
}
