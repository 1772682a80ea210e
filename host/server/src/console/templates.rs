//! Snapshot templates per domain: create, edit (the app name read-only),
//! delete, with every Huawei field and livesnap's functions and limits; a
//! key generated on request; a refused field shown at the field.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query as QueryOf, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use super::{ALL, Query, Session, alert, blocking, done, failed, notice, page, refusal};
use crate::app::State;
use crate::config::SnapshotConfig;
use crate::config::template::{FunctionNames, ObsLocation};
use crate::control::templates::MASK;
use crate::control::{self, ControlError};

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/console/templates", get(list).post(save))
        .route("/console/templates/edit", get(edit))
        .route("/console/templates/delete", post(delete))
}

#[derive(Deserialize, Default)]
struct Which {
    domain: Option<String>,
    app: Option<String>,
    #[serde(flatten)]
    said: Query,
}

async fn list(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(q): QueryOf<Which>) -> Response {
    let domains = control::domains::show(&state, &session.tenant, None).unwrap_or_default();
    let body = html! {
        (notice(q.said.ok()))
        (alert(q.said.error()))
        @if domains.is_empty() {
            p.empty { "No domains yet — " a href="/console/domains" { "add one" } " first; templates belong to a domain." }
        }
        @for d in &domains {
            @let name = &d.domain.name;
            @let listing = control::templates::query(&state, &session.tenant, name, None, ALL);
            section aria-labelledby={ "d-" (name) } {
                h2 id={ "d-" (name) } { (name) }
                @if listing.items.is_empty() {
                    p.empty { "No templates for this domain yet." }
                } @else {
                    div.scroll { table {
                        thead { tr { th scope="col" { "App" } th scope="col" { "Interval" } th scope="col" { "Bucket" } th scope="col" { "Callback" } th scope="col" { "Actions" } } }
                        tbody {
                            @for t in &listing.items {
                                tr {
                                    th scope="row" { (t.app_name) }
                                    td { (t.interval.as_secs()) " s" }
                                    td { (t.bucket) }
                                    td { @if t.callback_url.is_some() { "on" } @else { "off" } }
                                    td.actions {
                                        @if t.origin == crate::config::Origin::Api {
                                            a.button href={ "/console/templates/edit?domain=" (name) "&app=" (t.app_name) } aria-label={ "Edit " (name) "/" (t.app_name) } { "Edit" }
                                            form method="post" action="/console/templates/delete" {
                                                input type="hidden" name="domain" value=(name);
                                                input type="hidden" name="app_name" value=(t.app_name);
                                                button.danger aria-label={ "Delete " (name) "/" (t.app_name) } { "Delete" }
                                            }
                                        } @else {
                                            small { "from the manifest (read-only)" }
                                        }
                                    }
                                }
                            }
                        }
                    } }
                }
                a.button href={ "/console/templates/edit?domain=" (name) } { "New template for " (name) }
            }
        }
    };
    page(&session, "/console/templates", "Snapshot templates", body).into_response()
}

/// The form's values, by input name.
type Values = HashMap<String, String>;

async fn edit(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(q): QueryOf<Which>) -> Response {
    let domain = q.domain.unwrap_or_default();
    let mut values = Values::new();
    values.insert("domain".into(), domain.clone());
    let editing = match q.app.as_deref() {
        Some(app) => {
            let listing = control::templates::query(&state, &session.tenant, &domain, Some(app), ALL);
            let Some(t) = listing.items.first() else {
                return failed("/console/templates", "That template does not exist (any more).");
            };
            values = values_of(&t.raw);
            values.insert("app_name".into(), t.app_name.clone());
            true
        }
        None => {
            for (k, v) in [("app_name", "live"), ("time_interval", "5"), ("object_write_mode", "0"), ("obs_location.bucket", "snapshots")] {
                values.insert(k.into(), v.into());
            }
            false
        }
    };
    form_page(&state, &session, &values, editing, &Errors::default()).into_response()
}

/// What a refused save says: by field, and for the whole form.
#[derive(Default)]
struct Errors {
    fields: HashMap<String, String>,
    general: Option<String>,
}

impl Errors {
    /// Attaches "field: message" to its field when the form has it.
    fn of(message: String) -> Self {
        match message.split_once(": ") {
            Some((field, why)) if INPUTS.iter().any(|(name, ..)| *name == field) => {
                Self { fields: HashMap::from([(field.to_string(), why.to_string())]), general: None }
            }
            _ => Self { fields: HashMap::new(), general: Some(message) },
        }
    }
}

/// Inputs after domain and app: (name, label, hint).
const INPUTS: [(&str, &str, &str); 20] = [
    ("domain", "Domain", ""),
    ("app_name", "App name", "Letters, digits, '_' and '-'; not changeable later."),
    ("time_interval", "Interval (seconds)", "5 to 3600."),
    ("object_write_mode", "Write mode", ""),
    ("snapshot_mode", "Snapshot mode", ""),
    ("obs_location.bucket", "Bucket", "The embedded bucket or one you authorized."),
    ("obs_location.object", "Object prefix", "Default: snapshot"),
    ("image_object_format", "Object name format", "Placeholders: {domain} {app} {stream} {unix_time} {fmt_time_utc} …"),
    ("image_access_protocol", "snapshot_url protocol", "http or https (optional)."),
    ("image_access_domain", "snapshot_url domain", "For example a CDN domain (optional)."),
    ("call_back_enable", "Callback", ""),
    ("call_back_url", "Callback URL", "Receives a signed notice of every snapshot."),
    ("auth_key", "Callback signing key", "32-128 characters; empty for unsigned callbacks."),
    ("auth_validity", "Signature validity (seconds)", "Default 300."),
    ("functions.encode", "Encoder function", "Default: the built-in JPEG encoder."),
    ("functions.store", "Storer function", "Default: the built-in OBS storer."),
    ("functions.notify", "Notifier function", "Default: the built-in callback notifier."),
    ("image_quality", "JPEG quality", "1-100 (default 80)."),
    ("function_timeout_ms", "Function time limit (ms)", "Default 2000."),
    ("function_memory_mb", "Function memory (MiB)", "Default 128."),
];

fn form_page(state: &State, session: &Session, values: &Values, editing: bool, errors: &Errors) -> axum::response::Html<String> {
    let value = |k: &str| values.get(k).map(String::as_str).unwrap_or("");
    let buckets = control::domains::buckets(state, &session.tenant);
    let region = state.config().runtime.region.clone();
    let select = |name: &str, options: &[(&str, &str)]| {
        html! { select id=(name) name=(name) { @for (v, label) in options { option value=(v) selected[value(name) == *v] { (label) } } } }
    };
    let input = |name: &str| -> Markup {
        match name {
            "domain" => html! { input id=(name) name=(name) value=(value(name)) readonly; },
            "app_name" if editing => html! { input id=(name) name=(name) value=(value(name)) readonly; },
            "object_write_mode" => select(name, &[("0", "full: keep every snapshot"), ("1", "instant: keep the latest only")]),
            "snapshot_mode" => {
                select(name, &[("", "keyframe (default)"), ("keyframe", "keyframe"), ("nokeyframe", "nokeyframe"), ("random", "random")])
            }
            "call_back_enable" => select(name, &[("off", "off"), ("on", "on")]),
            "obs_location.bucket" => html! {
                select id=(name) name=(name) {
                    @for b in buckets.iter().filter(|b| b.authorized) { option value=(b.name) selected[value(name) == b.name] { (b.name) } }
                    @if !buckets.iter().any(|b| b.authorized && b.name == value(name)) { option value=(value(name)) selected { (value(name)) " (not authorized)" } }
                }
            },
            "auth_key" => html! {
                div.row {
                    input id=(name) name=(name) value=(value(name)) autocomplete="off" spellcheck="false";
                    button type="submit" name="action" value="generate-key" formnovalidate { "Generate key" }
                }
            },
            "time_interval" | "image_quality" | "auth_validity" | "function_timeout_ms" | "function_memory_mb" => {
                html! { input id=(name) name=(name) type="number" inputmode="numeric" value=(value(name)); }
            }
            _ => html! { input id=(name) name=(name) value=(value(name)); },
        }
    };
    let title = if editing { "Edit template" } else { "New template" };
    let body = html! {
        form.card.template method="post" action="/console/templates" novalidate {
            input type="hidden" name="mode" value=(if editing { "edit" } else { "create" });
            input type="hidden" name="obs_location.location" value=(region);
            (alert(errors.general.as_deref()))
            @for (name, label, hint) in INPUTS {
                @let error = errors.fields.get(name);
                div.field.invalid[error.is_some()] {
                    label for=(name) { (label) }
                    (input(name))
                    @if let Some(e) = error { p.field-error id={ (name) "-error" } role="alert" { (e) } }
                    @if !hint.is_empty() { small { (hint) } }
                }
            }
            div.row {
                button type="submit" name="action" value="save" { "Save template" }
                a.button.secondary href="/console/templates" { "Cancel" }
            }
        }
    };
    page(session, "/console/templates", title, body)
}

/// A stored template's fields as the form shows them (the key masked).
fn values_of(c: &SnapshotConfig) -> Values {
    let mut v = Values::new();
    let mut set = |k: &str, s: Option<String>| {
        if let Some(s) = s {
            v.insert(k.into(), s);
        }
    };
    set("domain", Some(c.domain.clone()));
    set("time_interval", Some(c.time_interval.to_string()));
    set("object_write_mode", Some(c.object_write_mode.to_string()));
    set("snapshot_mode", c.snapshot_mode.clone());
    set("obs_location.bucket", Some(c.obs_location.bucket.clone()));
    set("obs_location.object", c.obs_location.object.clone());
    set("image_object_format", c.image_object_format.clone());
    set("image_access_protocol", c.image_access_protocol.clone());
    set("image_access_domain", c.image_access_domain.clone());
    set("call_back_enable", c.call_back_enable.clone());
    set("call_back_url", c.call_back_url.clone());
    set("auth_key", c.auth_key.as_ref().filter(|k| !k.is_empty()).map(|_| MASK.to_string()));
    let f = c.functions.clone().unwrap_or_default();
    set("functions.encode", f.encode);
    set("functions.store", f.store);
    set("functions.notify", f.notify);
    set("image_quality", c.image_quality.map(|n| n.to_string()));
    set("auth_validity", c.auth_validity.map(|n| n.to_string()));
    set("function_timeout_ms", c.function_timeout_ms.map(|n| n.to_string()));
    set("function_memory_mb", c.function_memory_mb.map(|n| n.to_string()));
    v
}

/// The form as a template; a number that is not one is that field's error.
fn config_of(v: &Values) -> Result<SnapshotConfig, ControlError> {
    let text = |k: &str| v.get(k).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let number = |k: &str| -> Result<Option<i64>, ControlError> {
        text(k).map(|s| s.parse::<i64>().map_err(|_| ControlError::Invalid(format!("{k}: '{s}' is not a whole number")))).transpose()
    };
    let functions = FunctionNames { encode: text("functions.encode"), store: text("functions.store"), notify: text("functions.notify") };
    Ok(SnapshotConfig {
        domain: text("domain").unwrap_or_default(),
        app_name: text("app_name"),
        time_interval: number("time_interval")?.ok_or_else(|| ControlError::Invalid("time_interval: required".into()))?,
        object_write_mode: number("object_write_mode")?.unwrap_or(0),
        obs_location: ObsLocation {
            bucket: text("obs_location.bucket").unwrap_or_default(),
            location: text("obs_location.location").unwrap_or_default(),
            object: text("obs_location.object"),
        },
        call_back_enable: text("call_back_enable"),
        call_back_url: text("call_back_url"),
        auth_key: text("auth_key"),
        snapshot_mode: text("snapshot_mode"),
        image_object_format: text("image_object_format"),
        image_access_protocol: text("image_access_protocol"),
        image_access_domain: text("image_access_domain"),
        functions: (functions != FunctionNames::default()).then_some(functions),
        image_quality: number("image_quality")?,
        auth_validity: number("auth_validity")?,
        function_timeout_ms: number("function_timeout_ms")?,
        function_memory_mb: number("function_memory_mb")?,
    })
}

async fn save(AxState(state): AxState<Arc<State>>, session: Session, Form(form): Form<Vec<(String, String)>>) -> Response {
    let mut values: Values = form.into_iter().collect();
    let editing = values.get("mode").map(String::as_str) == Some("edit");
    if values.get("action").map(String::as_str) == Some("generate-key") {
        let mut key = [0u8; 32];
        let _ = getrandom::fill(&mut key);
        values.insert("auth_key".into(), hex::encode(key));
        return form_page(&state, &session, &values, editing, &Errors::default()).into_response();
    }
    let config = match config_of(&values) {
        Ok(c) => c,
        Err(e) => {
            let (status, message) = refusal(e);
            return (status, form_page(&state, &session, &values, editing, &Errors::of(message))).into_response();
        }
    };
    let label = format!("{}/{}", config.domain, config.app());
    let (st, tenant) = (state.clone(), session.tenant.clone());
    let result =
        blocking(
            move || {
                if editing { st.writer().modify_template(&tenant, config, false) } else { st.writer().create_template(&tenant, config) }
            },
        )
        .await;
    match result {
        Ok(()) => done("/console/templates", &format!("Template {label} saved.")),
        Err(e) => {
            let (status, message) = refusal(e);
            (status, form_page(&state, &session, &values, editing, &Errors::of(message))).into_response()
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    domain: String,
    app_name: String,
}

async fn delete(AxState(state): AxState<Arc<State>>, session: Session, Form(f): Form<DeleteForm>) -> Response {
    let (st, tenant) = (state.clone(), session.tenant.clone());
    let (domain, app) = (f.domain.clone(), f.app_name.clone());
    match blocking(move || st.writer().delete_template(&tenant, &domain, &app)).await {
        Ok(()) => done("/console/templates", &format!("Template {}/{} deleted.", f.domain, f.app_name)),
        Err(e) => failed("/console/templates", &refusal(e).1),
    }
}
