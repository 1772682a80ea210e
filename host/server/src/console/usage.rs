//! Usage: snapshots per hour over the last day, drawn on the server as an
//! SVG bar chart, with the same figures as a table.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query as QueryOf, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::{Session, alert, blocking, page, refusal};
use crate::app::State;
use crate::control::{self, usage::HourCount};

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new().route("/console/usage", get(usage))
}

#[derive(Deserialize)]
struct Filter {
    domain: Option<String>,
}

async fn usage(AxState(state): AxState<Arc<State>>, session: Session, QueryOf(f): QueryOf<Filter>) -> Response {
    let domain = f.domain.filter(|d| !d.is_empty());
    let domains = control::domains::show(&state, &session.tenant, None).unwrap_or_default();
    let (st, tenant, which) = (state.clone(), session.tenant.clone(), domain.clone());
    let now = crate::time::unix_secs() as i64;
    let counted = blocking(move || control::usage::snapshots(&st, &tenant, which.as_deref(), None, None, now)).await;
    let body = html! {
        form.row method="get" action="/console/usage" {
            label for="domain" { "Domain" }
            select #domain name="domain" {
                option value="" { "all domains" }
                @for d in &domains { option value=(d.domain.name) selected[domain.as_deref() == Some(d.domain.name.as_str())] { (d.domain.name) } }
            }
            button type="submit" { "Show" }
        }
        @match counted {
            Err(e) => (alert(Some(&refusal(e).1))),
            Ok((hours, total)) => {
                p { strong { (total) } " snapshots stored in the last 24 hours (UTC hours)." }
                @if total == 0 { p.empty { "No snapshots yet — they are counted as they are stored." } }
                (chart(&hours))
                details {
                    summary { "The figures" }
                    table {
                        thead { tr { th scope="col" { "Hour (UTC)" } th scope="col" { "Snapshots" } } }
                        tbody { @for h in hours.iter().filter(|h| h.count > 0) { tr { td { (h.time) } td { (h.count) } } } }
                    }
                }
            }
        }
    };
    page(&session, "/console/usage", "Usage", body).into_response()
}

/// Bars for each hour, the highest scaled to the chart's height.
fn chart(hours: &[HourCount]) -> Markup {
    let (width, height, left, bottom) = (720.0_f64, 220.0_f64, 40.0_f64, 24.0_f64);
    let top = hours.iter().map(|h| h.count).max().unwrap_or(0).max(1) as f64;
    // Room on the right for the last hour's label.
    let step = (width - left - 30.0) / hours.len().max(1) as f64;
    let mut svg = String::new();
    for (i, h) in hours.iter().enumerate() {
        let bar = (height - bottom - 10.0) * h.count as f64 / top;
        let x = left + i as f64 * step;
        svg.push_str(&format!(
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" class="bar"><title>{}: {}</title></rect>"#,
            x + 1.0,
            height - bottom - bar,
            (step - 2.0).max(1.0),
            bar,
            h.time,
            h.count
        ));
        if i % 6 == 0 {
            let hour = h.time.get(11..16).unwrap_or("");
            svg.push_str(&format!(r#"<text x="{x:.1}" y="{:.1}" class="axis">{hour}</text>"#, height - 6.0));
        }
    }
    svg.push_str(&format!(r#"<text x="0" y="16" class="axis">{top}</text><text x="0" y="{:.1}" class="axis">0</text>"#, height - bottom));
    html! {
        svg.chart viewBox={ "0 0 " (width) " " (height) } role="img" aria-labelledby="chart-title" preserveAspectRatio="none" {
            title #chart-title { "Snapshots per hour, last 24 hours" }
            (PreEscaped(svg))
        }
    }
}
