//! `/v1/{project_id}/stream/snapshot`: Huawei Live's snapshot config API
//! (create, modify, query, delete), with the same bodies and queries.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::Params;
use crate::app::State;
use crate::config::{Origin, SnapshotConfig, Template};
use crate::state::StateError;

/// What a set `auth_key` reads as; sending it back keeps the stored key.
pub const MASK: &str = "******";
const MAX_LIMIT: i64 = 100;

/// POST: create.
pub async fn create(AxState(state): AxState<Arc<State>>, Path(project): Path<String>, body: Bytes) -> Response {
    let result = async {
        check_project(&state, &project)?;
        let config = parse_body(&body)?;
        run_blocking(move || state.create_template(config)).await
    };
    match result.await {
        Ok(()) => (StatusCode::CREATED, Json(json!({}))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// PUT: modify the template named by the body's domain and app_name.
pub async fn modify(AxState(state): AxState<Arc<State>>, Path(project): Path<String>, body: Bytes) -> Response {
    let result = async {
        check_project(&state, &project)?;
        let config = parse_body(&body)?;
        run_blocking(move || state.modify_template(config)).await
    };
    match result.await {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// GET: query by domain, optionally app_name, paged.
pub async fn query(AxState(state): AxState<Arc<State>>, Path(project): Path<String>, RawQuery(q): RawQuery) -> Response {
    let result = (|| {
        check_project(&state, &project)?;
        let params = Params::parse(q.as_deref().unwrap_or(""))?;
        let domain = params.required("domain")?;
        let app = params.get("app_name");
        let limit = params.integer("limit", 10, 1, MAX_LIMIT)?;
        let offset = params.integer("offset", 0, 0, i64::MAX)?;
        let config = state.config();
        let matching: Vec<&Arc<Template>> = config
            .templates
            .iter()
            .filter(|t| t.domain.eq_ignore_ascii_case(&domain) && app.as_ref().is_none_or(|a| *a == t.app_name))
            .collect();
        let page: Vec<Value> = matching.iter().skip(offset as usize).take(limit as usize).map(|t| view(t)).collect();
        Ok::<_, ApiError>(json!({"total": matching.len(), "snapshot_config_list": page, "limit": limit, "offset": offset}))
    })();
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// DELETE: by domain and app_name.
pub async fn delete(AxState(state): AxState<Arc<State>>, Path(project): Path<String>, RawQuery(q): RawQuery) -> Response {
    let result = async {
        check_project(&state, &project)?;
        let params = Params::parse(q.as_deref().unwrap_or(""))?;
        let domain = params.required("domain")?;
        let app = params.required("app_name")?;
        run_blocking(move || state.delete_template(&domain, &app)).await
    };
    match result.await {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => e.into_response(),
    }
}

pub(super) fn check_project(state: &State, project: &str) -> Result<(), ApiError> {
    if project == state.credentials.project_id { Ok(()) } else { Err(ApiError::not_found(format!("project '{project}' does not exist"))) }
}

/// Runs `f` (SQLite, compiling a component) off the async executor.
pub(super) async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

/// Parses a LiveSnapshotConfig body, naming the field at fault.
fn parse_body(body: &[u8]) -> Result<SnapshotConfig, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
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

impl State {
    fn create_template(&self, config: SnapshotConfig) -> Result<(), ApiError> {
        let _writer = self.api_writes.lock().unwrap();
        let app = config.app().to_string();
        if let Some(t) = self.config().template(&config.domain, &app)
            && t.origin == Origin::Manifest
        {
            return Err(ApiError::conflict(format!(
                "domain '{}' app '{app}' is defined in the manifest (spin.toml) and cannot be created through the API",
                config.domain
            )));
        }
        let current = self.config();
        if current.template(&config.domain, &app).is_some() {
            return Err(ApiError::conflict(format!("a template for domain '{}' app '{app}' already exists", config.domain)));
        }
        let quota = current.runtime.quotas.max_templates;
        if current.templates.iter().filter(|t| t.origin == Origin::Api).count() >= quota {
            return Err(ApiError::quota(format!("the project has its maximum of {quota} templates; delete one first")));
        }
        let candidate = self.candidate(&config.domain, &app, Some(&config))?;
        match self.store.insert_template(&config) {
            Ok(()) => {}
            Err(e @ StateError::Exists { .. }) => return Err(ApiError::conflict(e.to_string())),
            Err(e) => return Err(ApiError::internal(e)),
        }
        self.install(candidate);
        tracing::info!(domain = %config.domain, app = %app, "template created through the API");
        Ok(())
    }

    fn modify_template(&self, mut config: SnapshotConfig) -> Result<(), ApiError> {
        let _writer = self.api_writes.lock().unwrap();
        let app = config.app().to_string();
        let current = self.config();
        match current.template(&config.domain, &app) {
            Some(t) if t.origin == Origin::Manifest => {
                return Err(ApiError::forbidden(format!(
                    "domain '{}' app '{app}' is defined in the manifest (spin.toml) and is read-only through the API",
                    config.domain
                )));
            }
            Some(t) => {
                if config.auth_key.as_deref() == Some(MASK) {
                    config.auth_key = Some(t.auth_key.clone());
                }
            }
            None => return Err(ApiError::not_found(format!("no template for domain '{}' app '{app}'", config.domain))),
        }
        let candidate = self.candidate(&config.domain, &app, Some(&config))?;
        if !self.store.update_template(&config).map_err(ApiError::internal)? {
            return Err(ApiError::not_found(format!("no template for domain '{}' app '{app}'", config.domain)));
        }
        self.install(candidate);
        tracing::info!(domain = %config.domain, app = %app, "template modified through the API");
        Ok(())
    }

    fn delete_template(&self, domain: &str, app: &str) -> Result<(), ApiError> {
        let _writer = self.api_writes.lock().unwrap();
        if let Some(t) = self.config().template(domain, app)
            && t.origin == Origin::Manifest
        {
            return Err(ApiError::forbidden(format!(
                "domain '{domain}' app '{app}' is defined in the manifest (spin.toml) and is read-only through the API"
            )));
        }
        let candidate = self.candidate(domain, app, None)?;
        if !self.store.delete_template(domain, app).map_err(ApiError::internal)? {
            return Err(ApiError::not_found(format!("no template for domain '{domain}' app '{app}'")));
        }
        self.install(candidate);
        tracing::info!(domain = %domain, app = %app, "template deleted through the API");
        Ok(())
    }

    /// The running configuration with the API template for (domain, app)
    /// set to `raw` (or removed), validated and its components loaded:
    /// nothing invalid reaches the store. Only that template is checked, so
    /// a write costs the same however many templates there are.
    fn candidate(&self, domain: &str, app: &str, raw: Option<&SnapshotConfig>) -> Result<crate::config::Config, ApiError> {
        let config = self.config().with_api_template(domain, app, raw).map_err(|e| match e {
            crate::config::ConfigError::Template { source, .. } => ApiError::invalid(source.to_string()),
            other => ApiError::invalid(other.to_string()),
        })?;
        if let Some(t) = config.template(domain, app) {
            self.pipeline.load_template(&config, t).map_err(|e| ApiError::invalid(format!("functions: {e}")))?;
        }
        Ok(config)
    }
}
