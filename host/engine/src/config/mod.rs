//! Configuration: the application manifest (`spin.toml`), the runtime
//! config, and the snapshot templates they define.

pub mod credentials;
pub mod http;
pub mod manifest;
pub mod runtime;
// Templates are their own module (the state store keeps them too); the
// old path stays.
pub use crate::template;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use manifest::Manifest;
pub use runtime::RuntimeConfig;
pub use template::{FieldError, HostFacts, Origin, SnapshotConfig, Template};

/// The manifest used when there is no `spin.toml`.
pub const EMBEDDED_MANIFEST: &str = include_str!("default-spin.toml");

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid TOML for its schema.
    #[error("{}{message}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Parse {
        /// The file, when known.
        path: Option<PathBuf>,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A Spin variable could not be resolved.
    #[error("variable '{name}' {message}")]
    Variable {
        /// The variable.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A template field is invalid.
    #[error("template for domain '{domain}' app '{app}': {field}")]
    Template {
        /// Its domain.
        domain: String,
        /// Its app.
        app: String,
        /// The field and what is wrong with it (in the message, so not a
        /// `source`: an error chain would print it twice).
        field: FieldError,
    },
    /// Anything else that is wrong with the configuration.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    fn in_file(self, path: &Path) -> Self {
        match self {
            ConfigError::Parse { path: None, message } => ConfigError::Parse { path: Some(path.to_owned()), message },
            ConfigError::Invalid(m) => ConfigError::Invalid(format!("{}: {m}", path.display())),
            other => other,
        }
    }
}

/// Everything the host runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen addresses, region, buckets.
    pub runtime: RuntimeConfig,
    /// Components and raw templates.
    pub manifest: Manifest,
    /// Validated templates, shared: a configuration change copies pointers, not templates.
    pub templates: Vec<Arc<Template>>,
}

/// The embedded default manifest, its templates in the service region (they
/// use the embedded `snapshots` bucket, which is always there).
pub fn embedded_manifest(runtime: &RuntimeConfig) -> Result<Manifest, ConfigError> {
    let mut manifest = manifest::parse(EMBEDDED_MANIFEST, Path::new("."), &|_| None)?;
    for t in &mut manifest.templates {
        t.obs_location.location = runtime.region.clone();
    }
    Ok(manifest)
}

impl Config {
    /// Loads the manifest (the given one, else `./spin.toml` if present,
    /// else the embedded default) and the runtime config (the given one,
    /// else the embedded default), and validates every template.
    pub fn load(manifest: Option<&Path>, runtime: Option<&Path>) -> Result<Self, ConfigError> {
        let runtime = match runtime {
            Some(path) => RuntimeConfig::load(path)?,
            None => RuntimeConfig::embedded(Path::new(".")),
        };
        let manifest = match manifest {
            Some(path) => manifest::load(path)?,
            None if Path::new("spin.toml").exists() => manifest::load(Path::new("spin.toml"))?,
            None => embedded_manifest(&runtime)?,
        };
        Self::new(manifest, runtime, &[])
    }

    /// Validates the manifest's templates, then those created through the
    /// API (whose domains must be served), against the runtime config.
    pub fn new(manifest: Manifest, runtime: RuntimeConfig, api: &[SnapshotConfig]) -> Result<Self, ConfigError> {
        let buckets = runtime.bucket_locations();
        let mut templates: Vec<Arc<Template>> = Vec::new();
        let served = runtime.served_domains(&manifest);
        for (raw, origin) in manifest.templates.iter().map(|t| (t, Origin::Manifest)).chain(api.iter().map(|t| (t, Origin::Api))) {
            let facts = HostFacts { region: &runtime.region, buckets: &buckets, domains: (origin == Origin::Api).then_some(&served[..]) };
            let mut t = raw.validate(&facts).map_err(|field| ConfigError::Template {
                domain: raw.domain.clone(),
                app: raw.app().to_string(),
                field,
            })?;
            t.origin = origin;
            if let Some(other) = templates.iter().find(|o| o.domain == t.domain && o.app_name == t.app_name) {
                let place = |o: Origin| if o == Origin::Manifest { "the manifest" } else { "the API state database" };
                return Err(ConfigError::Invalid(format!(
                    "two templates for domain '{}' app '{}' (in {} and {})",
                    t.domain,
                    t.app_name,
                    place(other.origin),
                    place(origin)
                )));
            }
            templates.push(Arc::new(t));
        }
        Ok(Self { runtime, manifest, templates })
    }

    /// This configuration with the API template for (domain, app) replaced
    /// by `raw`, or removed when `raw` is `None`. Only that template is
    /// validated, so an API write costs the same with 1 or 100 templates.
    pub fn with_api_template(&self, domain: &str, app: &str, raw: Option<&SnapshotConfig>) -> Result<Self, ConfigError> {
        let mut templates: Vec<Arc<Template>> =
            self.templates.iter().filter(|t| !(t.origin == Origin::Api && t.domain == domain && t.app_name == app)).cloned().collect();
        if let Some(raw) = raw {
            let buckets = self.runtime.bucket_locations();
            let served = self.runtime.served_domains(&self.manifest);
            let facts = HostFacts { region: &self.runtime.region, buckets: &buckets, domains: Some(&served[..]) };
            let mut t = raw.validate(&facts).map_err(|field| ConfigError::Template {
                domain: raw.domain.clone(),
                app: raw.app().to_string(),
                field,
            })?;
            t.origin = Origin::Api;
            if templates.iter().any(|o| o.domain == t.domain && o.app_name == t.app_name) {
                return Err(ConfigError::Invalid(format!("a template for domain '{}' app '{}' already exists", t.domain, t.app_name)));
            }
            templates.push(Arc::new(t));
        }
        Ok(Self { runtime: self.runtime.clone(), manifest: self.manifest.clone(), templates })
    }

    /// The template for an ingest (domain, app).
    pub fn template(&self, domain: &str, app: &str) -> Option<&Arc<Template>> {
        self.templates.iter().find(|t| t.domain == domain && t.app_name == app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_and_declared_buckets_keep_the_embedded_defaults_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime-config.toml");
        std::fs::write(&path, "region = \"cn-north-4\"\n[[bucket]]\nname = \"shots\"\nbackend = \"fs\"\npath = \"shots\"\n").unwrap();
        let runtime = RuntimeConfig::load(&path).unwrap();
        let names: Vec<&str> = runtime.buckets.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["shots", "snapshots"]);
        let config = Config::new(embedded_manifest(&runtime).unwrap(), runtime, &[]).unwrap();
        let t = config.template("localhost", "live").unwrap();
        assert_eq!((t.bucket.as_str(), t.location.as_str()), ("snapshots", "cn-north-4"));
    }

    #[test]
    fn a_template_error_says_its_field_once() {
        let runtime = RuntimeConfig::embedded(Path::new("."));
        let mut manifest = embedded_manifest(&runtime).unwrap();
        manifest.templates[0].obs_location.bucket = "elsewhere".into();
        let e = Config::new(manifest, runtime, &[]).unwrap_err();
        let chain = anyhow_like(&e);
        assert_eq!(chain.matches("is not authorized").count(), 1, "{chain}");
    }

    /// The message with its sources, as `anyhow`'s `{:#}` prints it.
    fn anyhow_like(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            out.push_str(&format!(": {s}"));
            next = s.source();
        }
        out
    }
}
