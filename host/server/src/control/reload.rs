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

impl Writer<'_> {
    /// Reloads what another node may have changed in the shared state
    /// database: tenant modules (loading new and changed ones, dropping
    /// deleted ones), then the API's templates, domains and bucket
    /// authorizations into a new configuration, the key chains and the
    /// pull sources. Streams pick the configuration up from their next
    /// snapshot, as with a change made through this node.
    pub fn apply_shared_changes(&self) -> Result<(), ControlError> {
        let invalid = |e: &dyn std::fmt::Display| ControlError::Invalid(e.to_string());
        let db = self.db();
        // Versions only: bytes are read for the modules that changed.
        let versions = db.module_versions()?;
        {
            let mut loaded = self.node().modules();
            for (project, summary) in &versions {
                let (key, version) =
                    (crate::project::module_key(project, &summary.name), crate::node::module_version(&summary.sha256, summary.uploaded_at));
                if loaded.get(&key) == Some(&version) {
                    continue;
                }
                let Some(m) = db.module(project, &summary.name)? else { continue };
                let grants = ComponentGrants { allowed_outbound_hosts: m.allowed_outbound_hosts, environment: m.environment };
                match self.runtime().load(&key, Source::Bytes(&m.bytes), grants) {
                    Ok(()) => {
                        tracing::info!(module = %m.name, project = %m.project, sha256 = %m.sha256, "tenant module loaded (changed on another node)");
                        loaded.insert(key, version);
                    }
                    Err(e) => tracing::warn!(module = %m.name, project = %m.project, "loading a module changed on another node: {e}"),
                }
            }
            let gone: Vec<String> = loaded
                .keys()
                .filter(|k| !versions.iter().any(|(project, m)| &crate::project::module_key(project, &m.name) == *k))
                .cloned()
                .collect();
            for key in gone {
                self.runtime().remove_component(&key);
                loaded.remove(&key);
            }
        }
        let current = self.config();
        let stored = Stored { templates: db.templates()?, domains: db.domains()?, authorized_buckets: db.authorized_buckets()? };
        let config = Config::new(current.manifest.clone(), current.runtime.clone(), &stored).map_err(|e| invalid(&e))?;
        self.pipeline().load(&config).map_err(|e| invalid(&e))?;
        self.install(self, config);
        let chains: std::collections::HashMap<_, _> = db.key_chains()?.into_iter().collect();
        self.replace_key_chains(self, chains);
        self.sources().changed();
        Ok(())
    }
}
