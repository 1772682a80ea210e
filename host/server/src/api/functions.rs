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
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::params::Params;
use super::snapshot::{check_project, run_blocking};
use crate::app::State;
use crate::config::template::{DEFAULT_ENCODE, DEFAULT_NOTIFY, DEFAULT_STORE};
use crate::runtime::{ComponentGrants, Stage};
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
        tokio::task::spawn_blocking(move || st.upload_module(&name, &body, hosts, environment)).await.map_err(ApiError::internal)?
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
        run_blocking(move || {
            let _writer = st.api_writes.lock().unwrap();
            let users = users(&st, &n);
            if !users.is_empty() {
                return Err(ApiError::conflict(format!("function '{n}' is used by {}", users.join(", "))));
            }
            if !st.store.delete_module(&n).map_err(ApiError::internal)? {
                return Err(ApiError::not_found(format!("no uploaded function '{n}'")));
            }
            st.runtime.remove_component(&n);
            tracing::info!(module = %n, "tenant module deleted");
            Ok(())
        })
        .await
    };
    match result.await {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Templates (and stages) that use `name`.
fn users(state: &State, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in &state.config().templates {
        for (stage, used) in [("encode", &t.encode), ("store", &t.store), ("notify", &t.notify)] {
            if used == name {
                out.push(format!("{}/{} ({stage})", t.domain, t.app_name));
            }
        }
    }
    out
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Encode => "encoder",
        Stage::Store => "storer",
        Stage::Notify => "notifier",
        Stage::Http => "http",
    }
}

fn view(state: &State, m: &ModuleRecord, i: &crate::runtime::Inspection) -> Value {
    json!({
        "name": m.name, "sha256": m.sha256, "size": m.bytes.len(), "uploaded_at": m.uploaded_at,
        "worlds": i.fits.iter().map(|s| stage_name(*s)).collect::<Vec<_>>(),
        "imports": i.imports, "exports": i.exports,
        "allowed_outbound_hosts": m.allowed_outbound_hosts,
        "environment": m.environment.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "used_by": users(state, &m.name),
        "failures": state.metrics.component_failures(&m.name),
    })
}

impl State {
    fn upload_module(
        &self,
        name: &str,
        bytes: &[u8],
        allowed_outbound_hosts: Vec<String>,
        environment: Vec<(String, String)>,
    ) -> Result<(bool, Value), ApiError> {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ApiError::invalid("name: 1-64 letters, digits, '-' and '_'"));
        }
        let _writer = self.api_writes.lock().unwrap();
        let config = self.config();
        if config.manifest.components.contains_key(name) || [DEFAULT_ENCODE, DEFAULT_STORE, DEFAULT_NOTIFY].contains(&name) {
            return Err(ApiError::conflict(format!("'{name}' is a manifest or built-in component; choose another name")));
        }
        for pattern in &allowed_outbound_hosts {
            if !pattern.contains("://") {
                return Err(ApiError::invalid(format!("allowed_outbound_hosts: '{pattern}' is not scheme://host[:port]")));
            }
        }
        let inspection =
            self.runtime.inspect(bytes).map_err(|e| ApiError::invalid(format!("the body is not a WebAssembly component: {e}")))?;
        let snapshot_fits: Vec<_> = inspection.fits.iter().filter(|s| **s != Stage::Http).collect();
        if snapshot_fits.is_empty() {
            let why: Vec<String> = inspection.misfits.iter().map(|(s, e)| format!("{}: {e}", stage_name(*s))).collect();
            return Err(ApiError::invalid(format!("the component fits none of the worlds encoder, storer, notifier ({})", why.join("; "))));
        }
        // A replacement must still fit every stage templates use it for.
        for t in &config.templates {
            for (stage, used) in [(Stage::Encode, &t.encode), (Stage::Store, &t.store), (Stage::Notify, &t.notify)] {
                if used == name && !inspection.fits.contains(&stage) {
                    let why = inspection.misfits.iter().find(|(s, _)| *s == stage).map(|(_, e)| e.clone()).unwrap_or_default();
                    return Err(ApiError::invalid(format!(
                        "template {}/{} uses '{name}' as its {} but the component does not fit that world: {why}",
                        t.domain,
                        t.app_name,
                        stage_name(stage)
                    )));
                }
            }
        }
        let quotas = config.runtime.quotas;
        let others: Vec<_> = self.store.module_summaries().map_err(ApiError::internal)?.into_iter().filter(|m| m.name != name).collect();
        if others.len() >= quotas.max_modules {
            return Err(ApiError::quota(format!("the project has its maximum of {} modules; delete one first", quotas.max_modules)));
        }
        let total = others.iter().map(|m| m.size).sum::<usize>() + bytes.len();
        if total > quotas.max_module_bytes {
            return Err(ApiError::quota(format!(
                "modules would take {total} bytes, over the project's quota of {} bytes",
                quotas.max_module_bytes
            )));
        }
        let record = ModuleRecord {
            name: name.into(),
            sha256: hex::encode(Sha256::digest(bytes)),
            bytes: bytes.to_vec(),
            allowed_outbound_hosts,
            environment,
            uploaded_at: 0,
        };
        let replaced = self.store.put_module(&record).map_err(ApiError::internal)?;
        // Snapshots in flight keep the instance they started with; the next
        // one is prepared from the new component.
        self.runtime.add_component(name, bytes).map_err(|e| ApiError::invalid(e.to_string()))?;
        self.runtime.set_grants(
            name,
            ComponentGrants { allowed_outbound_hosts: record.allowed_outbound_hosts.clone(), environment: record.environment.clone() },
        );
        tracing::info!(module = %name, sha256 = %record.sha256, replaced, "tenant module uploaded");
        Ok((replaced, view(self, &record, &inspection)))
    }
}
