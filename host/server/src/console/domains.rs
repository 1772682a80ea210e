//! Domains (add, enable/disable, remove; the ingest URL to copy) and OBS
//! bucket authorization.

use std::sync::Arc;

use axum::extract::{Query as QueryOf, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Query, Session, alert, blocking, done, failed, notice, page, refusal};
use crate::app::State;
use crate::control::domains::{self, NewDomain};

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/console/domains", get(list).post(create))
        .route("/console/domains/status", post(status))
        .route("/console/domains/delete", post(delete))
        .route("/console/authorization", get(authorization).post(authorize))
}

async fn list(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(q): QueryOf<Query>) -> Response {
    view(&state, &session, (q.ok(), q.error()), None, "").into_response()
}

/// The list (with what a change from it did) and the add form (with its error).
fn view(
    state: &State,
    session: &Session,
    said: (Option<&str>, Option<&str>),
    error: Option<&str>,
    typed: &str,
) -> axum::response::Html<String> {
    let list = domains::show(state, &session.tenant, None).unwrap_or_default();
    let body = html! {
        (notice(said.0))
        (alert(said.1))
        @if list.is_empty() {
            p.empty { "No domains yet — add one below." }
        } @else {
            div.scroll { table {
                caption { "Your ingest domains" }
                thead { tr { th scope="col" { "Domain" } th scope="col" { "Status" } th scope="col" { "Ingest URL" } th scope="col" { "Actions" } } }
                tbody {
                    @for d in &list {
                        @let name = &d.domain.name;
                        tr {
                            th scope="row" { (name) }
                            td { (d.domain.status) }
                            td {
                                code.copy { "rtmp://" (name) "/live/STREAM" }
                                br;
                                small { "CNAME " (name) " → " code { (d.cname) } "; or publish to " code { "rtmp://" (d.cname) "/live/STREAM" }
                                        " with tcUrl " code { "rtmp://" (name) "/live" } }
                            }
                            td.actions {
                                @if d.operator {
                                    small { "the operator's (read-only)" }
                                } @else {
                                    form method="post" action="/console/domains/status" {
                                        input type="hidden" name="domain" value=(name);
                                        @if d.domain.is_on() {
                                            button name="status" value="off" aria-label={ "Disable " (name) } { "Disable" }
                                        } @else {
                                            button name="status" value="on" aria-label={ "Enable " (name) } { "Enable" }
                                        }
                                    }
                                    form method="post" action="/console/domains/delete" {
                                        input type="hidden" name="domain" value=(name);
                                        button.danger aria-label={ "Remove " (name) } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
        form.card #add-domain method="post" action="/console/domains" {
            h2 { "Add a domain" }
            (alert(error))
            label for="domain" { "Ingest (push) domain" }
            input #domain name="domain" required placeholder="push.example.com" value=(typed)
                aria-invalid=[error.map(|_| "true")] aria-describedby="domain-hint";
            small #domain-hint { "Push domains only, in this service's region (" (state.config().runtime.region) ")." }
            button type="submit" { "Add domain" }
        }
    };
    page(session, "/console/domains", "Domains", body)
}

#[derive(Deserialize)]
struct DomainForm {
    domain: String,
    status: Option<String>,
}

async fn create(AxState(state): AxState<Arc<State>>, session: Session, Form(f): Form<DomainForm>) -> Response {
    let (st, tenant) = (state.clone(), session.tenant.clone());
    let new = NewDomain {
        name: f.domain.trim().to_string(),
        domain_type: "push".into(),
        region: state.config().runtime.region.clone(),
        service_area: None,
    };
    match blocking(move || st.writer().create_domain(&tenant, new)).await {
        Ok(d) => done("/console/domains", &format!("Domain {} added.", d.domain.name)),
        Err(e) => {
            let (status, message) = refusal(e);
            (status, view(&state, &session, (None, None), Some(&message), &f.domain)).into_response()
        }
    }
}

async fn status(AxState(state): AxState<Arc<State>>, session: Session, Form(f): Form<DomainForm>) -> Response {
    let (st, tenant) = (state.clone(), session.tenant.clone());
    let to = f.status.clone().unwrap_or_default();
    let name = f.domain.clone();
    match blocking(move || st.writer().update_domain(&tenant, &name, &to)).await {
        Ok(d) => done("/console/domains", &format!("Domain {} is {}.", d.domain.name, d.domain.status)),
        Err(e) => failed("/console/domains", &refusal(e).1),
    }
}

async fn delete(AxState(state): AxState<Arc<State>>, session: Session, Form(f): Form<DomainForm>) -> Response {
    let (st, tenant) = (state.clone(), session.tenant.clone());
    let name = f.domain.clone();
    match blocking(move || st.writer().delete_domain(&tenant, &name)).await {
        Ok(()) => done("/console/domains", &format!("Domain {} removed.", f.domain)),
        Err(e) => failed("/console/domains", &refusal(e).1),
    }
}

async fn authorization(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(q): QueryOf<Query>) -> Response {
    authorization_view(&state, &session, q.ok(), q.error()).into_response()
}

fn authorization_view(state: &State, session: &Session, ok: Option<&str>, error: Option<&str>) -> axum::response::Html<String> {
    let buckets = domains::buckets(state, &session.tenant);
    let body: Markup = html! {
        p { "Templates may store snapshots in the embedded bucket and in the buckets the operator declared once you authorize them." }
        (notice(ok))
        (alert(error))
        div.scroll { table {
            caption { "Buckets" }
            thead { tr { th scope="col" { "Bucket" } th scope="col" { "Region" } th scope="col" { "Authorized" } th scope="col" { "Used by" } th scope="col" { "Action" } } }
            tbody {
                @for b in &buckets {
                    tr {
                        th scope="row" { (b.name) }
                        td { (b.location) }
                        td { @if b.embedded { "always (embedded)" } @else if b.authorized { "yes" } @else { "no" } }
                        td { @if b.used_by.is_empty() { "—" } @else { (b.used_by.join(", ")) } }
                        td.actions {
                            @if !b.embedded {
                                form method="post" action="/console/authorization" {
                                    input type="hidden" name="bucket" value=(b.name);
                                    @if b.authorized {
                                        button.danger name="operation" value="0" aria-label={ "Revoke " (b.name) } { "Revoke" }
                                    } @else {
                                        button name="operation" value="1" aria-label={ "Authorize " (b.name) } { "Authorize" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        } }
        @if buckets.iter().all(|b| b.embedded) {
            p.empty { "No declared buckets yet — the operator adds them as [[bucket]] in the runtime config." }
        }
    };
    page(session, "/console/authorization", "Authorization", body)
}

#[derive(Deserialize)]
struct AuthorityForm {
    bucket: String,
    operation: i64,
}

async fn authorize(AxState(state): AxState<Arc<State>>, session: Session, Form(f): Form<AuthorityForm>) -> Response {
    let (st, tenant) = (state.clone(), session.tenant.clone());
    let bucket = f.bucket.clone();
    match blocking(move || st.writer().set_bucket_authority(&tenant, &bucket, f.operation)).await {
        Ok(()) => {
            let what = if f.operation == 1 { "authorized" } else { "revoked" };
            done("/console/authorization", &format!("Bucket {} {what}.", f.bucket))
        }
        Err(e) => {
            let (status, message) = refusal(e);
            (status, authorization_view(&state, &session, None, Some(&message))).into_response()
        }
    }
}
