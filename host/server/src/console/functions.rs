//! Functions: the project's uploaded components (upload, inspect worlds,
//! imports and failures, delete) beside the manifest's and the built-ins.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, Query as QueryOf, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;

use super::{Query, Session, alert, blocking, done, failed, notice, page, refusal};
use crate::app::State;
use crate::control::modules::{MAX_MODULE, ModuleSource};
use crate::control::{self, ControlError};

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/console/functions", get(list).post(upload).layer(DefaultBodyLimit::max(MAX_MODULE + (64 << 10))))
        .route("/console/functions/view", get(view))
        .route("/console/functions/delete", post(delete))
}

async fn list(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(q): QueryOf<Query>) -> Response {
    list_view(state, session, q.ok().map(str::to_string), q.error().map(str::to_string)).await
}

async fn list_view(state: Arc<State>, session: Session, ok: Option<String>, error: Option<String>) -> Response {
    let (st, tenant) = (state.clone(), session.tenant.clone());
    let modules = blocking(move || control::modules::list(&st, &tenant)).await.unwrap_or_default();
    let uploaded: Vec<_> = modules.iter().filter(|m| matches!(m.source, ModuleSource::Uploaded(_))).collect();
    let body = html! {
        (notice(ok.as_deref()))
        @if uploaded.is_empty() { p.empty { "No functions of your own yet — upload a component below; templates name it in their functions." } }
        div.scroll { table {
            caption { "Functions your templates can use" }
            thead { tr { th scope="col" { "Name" } th scope="col" { "Source" } th scope="col" { "Size" } th scope="col" { "Failures" } th scope="col" { "Actions" } } }
            tbody { @for m in &modules {
                tr {
                    th scope="row" { (m.name) }
                    @match &m.source {
                        ModuleSource::Uploaded(s) => {
                            td { "uploaded" } td { (s.size) " bytes" } td { (m.failures) }
                            td.actions {
                                a.button href={ "/console/functions/view?name=" (m.name) } aria-label={ "Inspect " (m.name) } { "Inspect" }
                                form method="post" action="/console/functions/delete" {
                                    input type="hidden" name="name" value=(m.name);
                                    button.danger aria-label={ "Delete " (m.name) } { "Delete" }
                                }
                            }
                        }
                        ModuleSource::Manifest => { td { "manifest" } td { "—" } td { (m.failures) } td {} }
                        ModuleSource::Builtin => { td { "built in" } td { "—" } td { (m.failures) } td {} }
                    }
                }
            } }
        } }
        form.card method="post" action="/console/functions" enctype="multipart/form-data" {
            h2 { "Upload a function" }
            (alert(error.as_deref()))
            label for="name" { "Name" }
            input #name name="name" required pattern="[A-Za-z0-9_\\-]{1,64}" aria-describedby="name-hint";
            small #name-hint { "Letters, digits, '-' and '_'; uploading an existing name replaces it (live streams switch at their next snapshot)." }
            label for="component" { "Component (.wasm, world encoder, storer or notifier)" }
            input #component name="component" type="file" accept=".wasm,application/wasm" required;
            label for="hosts" { "Allowed outbound hosts (one per line)" }
            textarea #hosts name="allowed_outbound_hosts" rows="2" placeholder="https://hooks.example.com" {}
            label for="env" { "Environment (KEY=VALUE per line)" }
            textarea #env name="env" rows="2" {}
            button type="submit" { "Upload" }
        }
    };
    page(&session, "/console/functions", "Functions", body).into_response()
}

async fn upload(AxState(state): AxState<Arc<State>>, session: Session, mut form: Multipart) -> Response {
    let (mut name, mut bytes, mut hosts, mut env) = (String::new(), Vec::new(), Vec::new(), Vec::new());
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let field_name = field.name().unwrap_or("").to_string();
                match field.bytes().await {
                    Ok(data) => match field_name.as_str() {
                        "name" => name = String::from_utf8_lossy(&data).trim().to_string(),
                        "component" => bytes = data.to_vec(),
                        "allowed_outbound_hosts" => hosts = lines(&data),
                        "env" => env = lines(&data),
                        _ => {}
                    },
                    Err(e) => return list_view(state, session, None, Some(format!("The upload did not arrive: {e}"))).await,
                }
            }
            Ok(None) => break,
            Err(e) => return list_view(state, session, None, Some(format!("The upload did not arrive: {e}"))).await,
        }
    }
    let mut environment = Vec::new();
    for kv in env {
        match kv.split_once('=') {
            Some((k, v)) => environment.push((k.to_string(), v.to_string())),
            None => return list_view(state, session, None, Some(format!("env: '{kv}' is not KEY=VALUE"))).await,
        }
    }
    let (st, tenant, module) = (state.clone(), session.tenant.clone(), name.clone());
    match blocking(move || st.writer().upload_module(&tenant, &module, &bytes, hosts, environment)).await {
        Ok(u) => done("/console/functions", &format!("Function {name} {}.", if u.replaced { "replaced" } else { "uploaded" })),
        Err(e) => list_view(state, session, None, Some(refusal(e).1)).await,
    }
}

fn lines(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data).lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

async fn view(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(n): QueryOf<Named>) -> Response {
    let (st, tenant, name) = (state.clone(), session.tenant.clone(), n.name.clone());
    let details = match blocking(move || control::modules::inspect(&st, &tenant, &name)).await {
        Ok(d) => d,
        Err(ControlError::NotFound(m)) => return failed("/console/functions", &m),
        Err(e) => return failed("/console/functions", &refusal(e).1),
    };
    let (m, i) = (&details.record, &details.inspection);
    let body = html! {
        dl {
            dt { "SHA-256" } dd { code { (m.sha256) } }
            dt { "Size" } dd { (m.bytes.len()) " bytes" }
            dt { "Worlds it fits" } dd { (i.fits.iter().map(|s| s.world()).collect::<Vec<_>>().join(", ")) }
            dt { "Used by" } dd { @if details.used_by.is_empty() { "no template" } @else { (details.used_by.join(", ")) } }
            dt { "Failed calls since start" } dd { (details.failures) }
            dt { "Allowed outbound hosts" } dd { @if m.allowed_outbound_hosts.is_empty() { "none" } @else { (m.allowed_outbound_hosts.join(", ")) } }
            dt { "Environment" } dd { @if m.environment.is_empty() { "none" } @else { (m.environment.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")) } }
        }
        h2 { "Imports" }
        ul { @for x in &i.imports { li { code { (x) } } } }
        h2 { "Exports" }
        ul { @for x in &i.exports { li { code { (x) } } } }
        a href="/console/functions" { "All functions" }
    };
    page(&session, "/console/functions", &format!("Function {}", m.name), body).into_response()
}

async fn delete(AxState(state): AxState<Arc<State>>, session: Session, Form(n): Form<Named>) -> Response {
    let (st, tenant, name) = (state.clone(), session.tenant.clone(), n.name.clone());
    match blocking(move || st.writer().delete_module(&tenant, &name)).await {
        Ok(()) => done("/console/functions", &format!("Function {} deleted.", n.name)),
        Err(e) => failed("/console/functions", &refusal(e).1),
    }
}
