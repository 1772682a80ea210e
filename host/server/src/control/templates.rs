//! Template operations: create, modify and delete through the API, each
//! validated against the running configuration and stored before it is
//! installed (streams pick it up from their next snapshot). A project's
//! templates are those of its domains; another project's read as absent.

use std::sync::Arc;

use super::projects::Tenant;
use super::{ControlError, Listing, Page, Writer};
use crate::app::State;
use crate::config::{Origin, SnapshotConfig, Template};
use crate::state::StateError;

/// What a set `auth_key` reads as; sending it back keeps the stored key.
pub const MASK: &str = "******";

/// The project's templates of `domain` (any case), of `app` if given, a page of them.
pub fn query(state: &State, tenant: &Tenant, domain: &str, app: Option<&str>, page: Page) -> Listing<Arc<Template>> {
    let config = state.config();
    let matching: Vec<&Arc<Template>> = config
        .templates
        .iter()
        .filter(|t| t.owner == tenant.key && t.domain.eq_ignore_ascii_case(domain) && app.is_none_or(|a| a == t.app_name))
        .collect();
    Listing { total: matching.len(), items: matching.into_iter().skip(page.offset).take(page.limit).cloned().collect() }
}

impl Writer<'_> {
    /// Creates an API template on one of the project's domains; the
    /// (domain, app) must be free.
    pub fn create_template(&self, tenant: &Tenant, mut config: SnapshotConfig) -> Result<(), ControlError> {
        // Ingest domains are matched in lower case.
        config.domain = config.domain.to_ascii_lowercase();
        let app = config.app().to_string();
        if !self.config().owns(&tenant.key, &config.domain) {
            // What validation says of a domain that is not served at all.
            return Err(self
                .candidate(tenant, &config.domain, &app, Some(&config))
                .err()
                .unwrap_or_else(|| ControlError::Invalid(format!("domain: '{}' is not a domain this host serves", config.domain))));
        }
        if let Some(t) = self.config().template(&config.domain, &app)
            && t.origin == Origin::Manifest
        {
            return Err(ControlError::Conflict(format!(
                "domain '{}' app '{app}' is defined in the manifest (spin.toml) and cannot be created through the API",
                config.domain
            )));
        }
        let current = self.config();
        if current.template(&config.domain, &app).is_some() {
            return Err(ControlError::Conflict(format!("a template for domain '{}' app '{app}' already exists", config.domain)));
        }
        let quota = current.runtime.quotas.max_templates;
        if current.templates.iter().filter(|t| t.origin == Origin::Api && t.owner == tenant.key).count() >= quota {
            return Err(ControlError::Quota(format!("the project has its maximum of {quota} templates; delete one first")));
        }
        let candidate = self.candidate(tenant, &config.domain, &app, Some(&config))?;
        match self.db().insert_template(&config) {
            Ok(()) => {}
            Err(e @ StateError::Exists { .. }) => return Err(ControlError::Conflict(e.to_string())),
            Err(e) => return Err(e.into()),
        }
        self.install(self, candidate);
        tracing::info!(domain = %config.domain, app = %app, "template created through the API");
        Ok(())
    }

    /// Replaces an API template (`auth_key` sent as the mask keeps the
    /// stored key). With `keep_extensions` (Huawei's SDK, which cannot send
    /// livesnap's fields) unset extension fields keep their stored values;
    /// without (the console, which shows them all) unset means default.
    pub fn modify_template(&self, tenant: &Tenant, mut config: SnapshotConfig, keep_extensions: bool) -> Result<(), ControlError> {
        config.domain = config.domain.to_ascii_lowercase();
        let app = config.app().to_string();
        let current = self.config();
        match current.template(&config.domain, &app).filter(|t| t.owner == tenant.key) {
            Some(t) if t.origin == Origin::Manifest => {
                return Err(ControlError::ReadOnly(format!(
                    "domain '{}' app '{app}' is defined in the manifest (spin.toml) and is read-only through the API",
                    config.domain
                )));
            }
            Some(t) => {
                if config.auth_key.as_deref() == Some(MASK) {
                    config.auth_key = Some(t.auth_key.clone());
                }
                if keep_extensions {
                    config.keep_extensions_of(&t.raw);
                }
            }
            None => return Err(ControlError::NotFound(format!("no template for domain '{}' app '{app}'", config.domain))),
        }
        let candidate = self.candidate(tenant, &config.domain, &app, Some(&config))?;
        if !self.db().update_template(&config)? {
            return Err(ControlError::NotFound(format!("no template for domain '{}' app '{app}'", config.domain)));
        }
        self.install(self, candidate);
        tracing::info!(domain = %config.domain, app = %app, "template modified through the API");
        Ok(())
    }

    /// Deletes an API template; its streams stop capturing from their next snapshot.
    pub fn delete_template(&self, tenant: &Tenant, domain: &str, app: &str) -> Result<(), ControlError> {
        let domain = &domain.to_ascii_lowercase();
        let config = self.config();
        let Some(t) = config.template(domain, app).filter(|t| t.owner == tenant.key) else {
            return Err(ControlError::NotFound(format!("no template for domain '{domain}' app '{app}'")));
        };
        if t.origin == Origin::Manifest {
            return Err(ControlError::ReadOnly(format!(
                "domain '{domain}' app '{app}' is defined in the manifest (spin.toml) and is read-only through the API"
            )));
        }
        let candidate = self.candidate(tenant, domain, app, None)?;
        if !self.db().delete_template(domain, app)? {
            return Err(ControlError::NotFound(format!("no template for domain '{domain}' app '{app}'")));
        }
        self.install(self, candidate);
        tracing::info!(domain = %domain, app = %app, "template deleted through the API");
        Ok(())
    }

    /// The running configuration with the API template for (domain, app)
    /// set to `raw` (or removed), validated and its components loaded:
    /// nothing invalid reaches the database. Only that template is checked, so
    /// a write costs the same however many templates there are.
    fn candidate(
        &self,
        tenant: &Tenant,
        domain: &str,
        app: &str,
        raw: Option<&SnapshotConfig>,
    ) -> Result<crate::config::Config, ControlError> {
        let config = self.config().with_api_template(&tenant.key, domain, app, raw).map_err(|e| match e {
            crate::config::ConfigError::Template { field, .. } => ControlError::Invalid(field.to_string()),
            other => ControlError::Invalid(other.to_string()),
        })?;
        if let Some(t) = config.template(domain, app) {
            self.pipeline().load_template(&config, t).map_err(|e| ControlError::Invalid(format!("functions: {e}")))?;
        }
        Ok(config)
    }
}
