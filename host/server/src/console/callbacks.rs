//! Callbacks: pending and failed ones with their last error, and
//! redelivery of a failed one.

use std::sync::Arc;

use axum::extract::{Query as QueryOf, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;

use super::{Query, Session, alert, blocking, done, failed, notice, page, refusal};
use crate::app::State;
use crate::control::{self, Page};
use crate::state::OutboxStatus;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new().route("/console/callbacks", get(list)).route("/console/callbacks/redeliver", post(redeliver))
}

#[derive(Deserialize, Default)]
struct Filter {
    status: Option<String>,
    #[serde(flatten)]
    said: Query,
}

async fn list(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(f): QueryOf<Filter>) -> Response {
    let status = match f.status.as_deref() {
        Some("pending") => OutboxStatus::Pending,
        Some("delivered") => OutboxStatus::Delivered,
        _ => OutboxStatus::Failed,
    };
    let (st, tenant) = (state.clone(), session.tenant.clone());
    let listed = blocking(move || control::callbacks::list(&st, &tenant, Some(status), Page { limit: 100, offset: 0 })).await;
    let body = html! {
        (notice(f.said.ok()))
        (alert(f.said.error()))
        nav.tabs aria-label="Callback status" { ul {
            @for s in ["failed", "pending", "delivered"] {
                li { a href={ "/console/callbacks?status=" (s) } aria-current=[(s == status.to_string()).then_some("page")] { (s) } }
            }
        } }
        @match listed {
            Err(e) => (alert(Some(&refusal(e).1))),
            Ok(listing) if listing.items.is_empty() => p.empty { "No " (status) " callbacks." },
            Ok(listing) => {
                p { (listing.total) " " (status) " (the 100 oldest shown)." }
                div.scroll { table {
                    thead { tr { th scope="col" { "Snapshot" } th scope="col" { "Receiver" } th scope="col" { "Attempts" } th scope="col" { "Last error" } th scope="col" { "Action" } } }
                    tbody { @for c in &listing.items {
                        tr {
                            th scope="row" { code { (c.id) } }
                            td { (c.url) }
                            td { (c.attempts) }
                            td { (c.last_error.as_deref().unwrap_or("—")) }
                            td.actions { @if c.status == OutboxStatus::Failed {
                                form method="post" action="/console/callbacks/redeliver" {
                                    input type="hidden" name="id" value=(c.id);
                                    button aria-label={ "Redeliver " (c.id) } { "Redeliver" }
                                }
                            } }
                        }
                    } }
                } }
            }
        }
    };
    page(&session, "/console/callbacks", "Callbacks", body).into_response()
}

#[derive(Deserialize)]
struct Redeliver {
    id: String,
}

async fn redeliver(AxState(state): AxState<Arc<State>>, session: Session, Form(f): Form<Redeliver>) -> Response {
    let (st, tenant, id) = (state.clone(), session.tenant.clone(), f.id.clone());
    match blocking(move || st.writer().redeliver_callback(&tenant, &id)).await {
        Ok(()) => done("/console/callbacks?status=pending", &format!("Callback {} queued again.", f.id)),
        Err(e) => failed("/console/callbacks", &refusal(e).1),
    }
}
