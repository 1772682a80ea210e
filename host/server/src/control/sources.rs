//! Pull sources: each maps a URL to a stream identity captured as if that
//! stream were pushed. Declared in the manifest (read-only here) or created
//! through the API; the service runs them (`service::pull`).

use super::projects::Tenant;
use super::{ControlError, Writer};
use crate::app::State;
use crate::source::Source;
use crate::sources::SourceStatus;
use crate::streams::StreamKey;

/// Where a source is declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `[[trigger.snapshot.source]]` in the manifest.
    Manifest,
    /// Created through the API.
    Api,
}

/// Every wanted source: the manifest's first, then the API's (one per
/// stream; the manifest wins). Blocking (the database).
pub fn wanted(state: &State) -> Result<Vec<(Source, Origin)>, ControlError> {
    let mut out: Vec<(Source, Origin)> = state.config().manifest.sources.iter().map(|s| (s.clone(), Origin::Manifest)).collect();
    for s in state.db().sources()? {
        if !out.iter().any(|(m, _)| key_of(m) == key_of(&s)) {
            out.push((s, Origin::Api));
        }
    }
    Ok(out)
}

/// The project's sources with their state. Blocking (the database).
pub fn list(state: &State, tenant: &Tenant) -> Result<Vec<(Source, Origin, Option<SourceStatus>)>, ControlError> {
    let config = state.config();
    let with_status = |(s, o): (Source, Origin)| {
        let status = state.sources().status(&key_of(&s));
        (s, o, status)
    };
    Ok(wanted(state)?.into_iter().filter(|(s, _)| config.owns(&tenant.key, &s.domain)).map(with_status).collect())
}

/// The stream a source feeds.
pub fn key_of(s: &Source) -> StreamKey {
    (s.domain.clone(), s.app.clone(), s.stream.clone())
}

impl Writer<'_> {
    /// Creates or replaces the API source of a stream of the project's;
    /// true if it replaced one. Its domain and app need a template.
    pub fn put_source(&self, tenant: &Tenant, mut source: Source) -> Result<bool, ControlError> {
        source.domain = source.domain.to_ascii_lowercase();
        source.validate().map_err(ControlError::Invalid)?;
        let config = self.config();
        let no_template = || ControlError::Invalid(format!("no snapshot template for domain '{}' app '{}'", source.domain, source.app));
        if !config.owns(&tenant.key, &source.domain) {
            return Err(no_template());
        }
        if self.config().manifest.sources.iter().any(|m| key_of(m) == key_of(&source)) {
            return Err(ControlError::ReadOnly(format!("the source of {} is declared in the manifest (spin.toml)", source.label())));
        }
        if config.template(&source.domain, &source.app).is_none() {
            return Err(no_template());
        }
        let quota = config.runtime.quotas.max_sources;
        let stored: Vec<Source> = self.db().sources()?.into_iter().filter(|s| config.owns(&tenant.key, &s.domain)).collect();
        if !stored.iter().any(|s| key_of(s) == key_of(&source)) && stored.len() >= quota {
            return Err(ControlError::Quota(format!("the project has its maximum of {quota} sources; delete one first")));
        }
        let replaced = self.db().put_source(&source)?;
        tracing::info!(stream = %source.label(), url = %source.display_url(), replaced, "pull source set through the API");
        self.sources().changed();
        Ok(replaced)
    }

    /// Deletes the API source of a stream of the project's; it stops at once.
    pub fn delete_source(&self, tenant: &Tenant, domain: &str, app: &str, stream: &str) -> Result<(), ControlError> {
        let domain = domain.to_ascii_lowercase();
        let key: StreamKey = (domain.clone(), app.into(), stream.into());
        if !self.config().owns(&tenant.key, &domain) {
            return Err(ControlError::NotFound(format!("no source for {domain}/{app}/{stream}")));
        }
        if self.config().manifest.sources.iter().any(|m| key_of(m) == key) {
            return Err(ControlError::ReadOnly(format!("the source of {domain}/{app}/{stream} is declared in the manifest (spin.toml)")));
        }
        if !self.db().delete_source(&domain, app, stream)? {
            return Err(ControlError::NotFound(format!("no source for {domain}/{app}/{stream}")));
        }
        tracing::info!(stream = %format!("{domain}/{app}/{stream}"), "pull source deleted through the API");
        self.sources().changed();
        Ok(())
    }
}
