//! Live streams, each with the template that captures it now.

use std::sync::Arc;

use crate::app::State;
use crate::config::Template;
use crate::streams::StreamView;

/// Every live stream and its template (`None` once the template is gone).
pub fn list(state: &State) -> Vec<(StreamView, Option<Arc<Template>>)> {
    let config = state.config();
    state
        .streams()
        .list()
        .into_iter()
        .map(|s| {
            let template = config.template(&s.domain, &s.app).cloned();
            (s, template)
        })
        .collect()
}
