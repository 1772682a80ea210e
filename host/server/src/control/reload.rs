//! Reloading the manifest: the templates and `[[trigger.http]]` routes of a
//! changed `spin.toml`, validated and loaded before they replace the
//! running ones (an invalid manifest changes nothing).

use super::{ControlError, Writer};
use crate::app::HttpRouteEntry;
use crate::config::manifest::{self, Manifest};
use crate::config::{Config, Stored};
use crate::pipeline::SetupError;
use crate::runtime::http::HttpGrants;
use crate::runtime::{ComponentGrants, Runtime, Source};

impl Writer<'_> {
    /// Reads the manifest at `path` again and installs it with the API's
    /// templates; returns how many templates the new configuration has.
    pub fn reload_manifest(&self, path: &std::path::Path) -> Result<usize, ControlError> {
        let invalid = |e: &dyn std::fmt::Display| ControlError::Invalid(e.to_string());
        let runtime = self.config().runtime.clone();
        let manifest = manifest::load(path).map_err(|e| invalid(&e))?;
        let current = self.config();
        let stored = Stored {
            templates: self.db().templates()?,
            domains: current.domains.clone(),
            authorized_buckets: current.authorized_buckets.clone(),
        };
        let config = Config::new(manifest, runtime, &stored).map_err(|e| invalid(&e))?;
        self.pipeline().load(&config).map_err(|e| invalid(&e))?;
        let routes = http_routes(self.runtime(), &config.manifest).map_err(|e| invalid(&e))?;
        let n = config.templates.len();
        self.install_http_routes(self, routes);
        self.install(self, config);
        self.sources().changed();
        Ok(n)
    }
}

/// Loads and prepares the component of every `[[trigger.http]]` route.
pub fn http_routes(runtime: &Runtime, manifest: &Manifest) -> Result<Vec<HttpRouteEntry>, SetupError> {
    let mut routes = Vec::new();
    for route in &manifest.http_routes {
        let decl = &manifest.components[&route.component];
        runtime.load(&route.component, Source::File(&decl.source), ComponentGrants::default())?;
        let grants = HttpGrants {
            variables: decl.variables.clone(),
            key_value_stores: decl.key_value_stores.clone(),
            allowed_outbound_hosts: decl.allowed_outbound_hosts.clone(),
        };
        routes.push((route.clone(), runtime.prepare_http(&route.component, grants)?));
    }
    Ok(routes)
}
