//! Configuration: the application manifest (`spin.toml`), the runtime
//! config, and the snapshot templates they define.

pub mod credentials;
pub mod http;
pub mod manifest;
pub mod runtime;
// Templates are their own module (the state database keeps them too); the
// old path stays.
pub use crate::template;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::domain::Domain;
use crate::project;
use crate::stage::Stage;
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
    /// Domains created through the API.
    pub domains: Vec<Domain>,
    /// (project owner key, bucket) pairs authorized for API templates (the
    /// embedded bucket always is, for every project).
    pub authorized_buckets: Vec<(String, String)>,
}

/// What the state database adds to a configuration.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    /// Templates created through the API.
    pub templates: Vec<SnapshotConfig>,
    /// Domains created through the API.
    pub domains: Vec<Domain>,
    /// (project, bucket) pairs authorized for API templates.
    pub authorized_buckets: Vec<(String, String)>,
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

/// `raw` validated against `facts`, the error naming its template.
fn validated(raw: &SnapshotConfig, facts: &HostFacts<'_>) -> Result<Template, ConfigError> {
    raw.validate(facts).map_err(|field| ConfigError::Template { domain: raw.domain.clone(), app: raw.app().to_string(), field })
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
        Self::new(manifest, runtime, &Stored::default())
    }

    /// Validates the manifest's templates, then those created through the
    /// API (whose domains must be served and buckets authorized), against
    /// the runtime config.
    pub fn new(manifest: Manifest, runtime: RuntimeConfig, stored: &Stored) -> Result<Self, ConfigError> {
        let mut config = Self {
            runtime,
            manifest,
            templates: Vec::new(),
            domains: stored.domains.clone(),
            authorized_buckets: stored.authorized_buckets.clone(),
        };
        let all_buckets = config.runtime.bucket_locations();
        let embedded = runtime::EMBEDDED_BUCKET;
        if config.runtime.state.shared()
            && !all_buckets.iter().any(|(name, _)| name == embedded)
            && config.manifest.templates.iter().any(|t| t.obs_location.bucket == embedded)
        {
            return Err(ConfigError::Invalid(format!(
                "the manifest's templates use bucket '{embedded}', and with a shared state database the embedded fs bucket is \
                 not offered (it is one node's folder): declare a [[bucket]] named '{embedded}' (S3, or fs with shared = true)"
            )));
        }
        let api = stored.templates.iter().map(|t| (t, Origin::Api));
        let mut templates: Vec<Arc<Template>> = Vec::new();
        for (raw, origin) in config.manifest.templates.iter().map(|t| (t, Origin::Manifest)).chain(api) {
            let t = match origin {
                Origin::Manifest => validated(raw, &HostFacts { region: &config.runtime.region, buckets: &all_buckets, domains: None })?,
                Origin::Api => {
                    let owner = config.owner_of(&raw.domain).unwrap_or(project::DEFAULT).to_string();
                    match config.api_template(&owner, raw) {
                        Ok(t) => t,
                        // Nodes sharing state check writes against their own
                        // view, so two racing writes (a domain deleted on one
                        // node, a template added on another) can leave a row
                        // no configuration accepts: it must not stop every
                        // node from applying changes, or from starting.
                        Err(e) if config.runtime.state.shared() => {
                            tracing::warn!(domain = %raw.domain, app = %raw.app(), "a stored template is not valid now and is left out: {e}");
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
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
        config.templates = templates;
        Ok(config)
    }

    /// Domains served: the runtime config's, the manifest templates', and
    /// those created through the API.
    pub fn served_domains(&self) -> Vec<String> {
        let mut d = self.runtime.served_domains(&self.manifest);
        for api in &self.domains {
            if !d.iter().any(|x| x.eq_ignore_ascii_case(&api.name)) {
                d.push(api.name.clone());
            }
        }
        d
    }

    /// The API domain of that name, if it is one.
    pub fn api_domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// The owner key of the project a served domain belongs to: an API
    /// domain's creator; the operator's domains belong to the default project.
    pub fn owner_of(&self, domain: &str) -> Option<&str> {
        if let Some(d) = self.api_domain(domain) {
            return Some(&d.project);
        }
        self.runtime.served_domains(&self.manifest).iter().any(|d| d.eq_ignore_ascii_case(domain)).then_some(project::DEFAULT)
    }

    /// Whether `owner`'s project owns `domain`.
    pub fn owns(&self, owner: &str, domain: &str) -> bool {
        self.owner_of(domain) == Some(owner)
    }

    /// The served domains `owner`'s project owns.
    pub fn domains_of(&self, owner: &str) -> Vec<String> {
        self.served_domains().into_iter().filter(|d| self.owns(owner, d)).collect()
    }

    /// Whether the operator offers `bucket` to `owner`'s project: a bucket
    /// with a `projects` list only to those (the default project is
    /// `default` there); the embedded bucket only to the default project.
    pub fn offers(&self, owner: &str, bucket: &crate::storage::BucketConfig) -> bool {
        if bucket.name == runtime::EMBEDDED_BUCKET {
            return owner == project::DEFAULT;
        }
        bucket.projects.as_ref().is_none_or(|p| p.iter().any(|id| id == owner))
    }

    /// Buckets `owner`'s API templates may use: those offered to it that
    /// it authorized (the default project: the embedded one too), as
    /// (name, location). A bucket is one project's at a time, so projects
    /// never share object names.
    pub fn authorized_bucket_locations(&self, owner: &str) -> Vec<(String, String)> {
        let authorized = |name: &str| {
            (owner == project::DEFAULT && name == runtime::EMBEDDED_BUCKET)
                || self.authorized_buckets.iter().any(|(p, b)| p == owner && b == name)
        };
        self.runtime
            .buckets
            .iter()
            .filter(|b| self.offers(owner, b) && authorized(&b.name))
            .map(|b| (b.name.clone(), b.location.clone()))
            .collect()
    }

    /// `raw` validated as an API template of `owner`'s project: its domain
    /// must be one the project owns, its bucket one it may use, and the
    /// tenant modules it names are the project's own.
    fn api_template(&self, owner: &str, raw: &SnapshotConfig) -> Result<Template, ConfigError> {
        let buckets = self.authorized_bucket_locations(owner);
        let served = self.domains_of(owner);
        let mut t = validated(raw, &HostFacts { region: &self.runtime.region, buckets: &buckets, domains: Some(&served[..]) })?;
        t.origin = Origin::Api;
        t.owner = owner.to_string();
        let shared =
            |name: &str| self.manifest.components.contains_key(name) || Stage::SNAPSHOT.map(Stage::default_component).contains(&name);
        for name in [&mut t.encode, &mut t.store, &mut t.notify] {
            // A module name never has a '/': one that does could name
            // another project's module by its runtime key.
            if name.contains('/') {
                let field = FieldError { field: "functions", message: format!("'{name}' is not a function name") };
                return Err(ConfigError::Template { domain: raw.domain.clone(), app: raw.app().to_string(), field });
            }
            if !shared(name) {
                *name = project::module_key(owner, name);
            }
        }
        Ok(t)
    }

    /// This configuration with `owner`'s API template for (domain, app)
    /// replaced by `raw`, or removed when `raw` is `None`. Only that
    /// template is validated, so an API write costs the same with 1 or 100
    /// templates.
    pub fn with_api_template(&self, owner: &str, domain: &str, app: &str, raw: Option<&SnapshotConfig>) -> Result<Self, ConfigError> {
        let mut templates: Vec<Arc<Template>> =
            self.templates.iter().filter(|t| !(t.origin == Origin::Api && t.domain == domain && t.app_name == app)).cloned().collect();
        if let Some(raw) = raw {
            let t = self.api_template(owner, raw)?;
            if templates.iter().any(|o| o.domain == t.domain && o.app_name == t.app_name) {
                return Err(ConfigError::Invalid(format!("a template for domain '{}' app '{}' already exists", t.domain, t.app_name)));
            }
            templates.push(Arc::new(t));
        }
        Ok(Self { templates, ..self.clone_without_templates() })
    }

    fn clone_without_templates(&self) -> Self {
        Self {
            runtime: self.runtime.clone(),
            manifest: self.manifest.clone(),
            templates: Vec::new(),
            domains: self.domains.clone(),
            authorized_buckets: self.authorized_buckets.clone(),
        }
    }

    /// This configuration with other API domains and authorized buckets
    /// (templates are unchanged: the caller checked they still fit).
    pub fn with_tenancy(&self, domains: Vec<Domain>, authorized_buckets: Vec<(String, String)>) -> Self {
        Self { templates: self.templates.clone(), domains, authorized_buckets, ..self.clone_without_templates() }
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
        let config = Config::new(embedded_manifest(&runtime).unwrap(), runtime, &Stored::default()).unwrap();
        let t = config.template("localhost", "live").unwrap();
        assert_eq!((t.bucket.as_str(), t.location.as_str()), ("snapshots", "cn-north-4"));
    }

    #[test]
    fn a_template_error_says_its_field_once() {
        let runtime = RuntimeConfig::embedded(Path::new("."));
        let mut manifest = embedded_manifest(&runtime).unwrap();
        manifest.templates[0].obs_location.bucket = "elsewhere".into();
        let e = Config::new(manifest, runtime, &Stored::default()).unwrap_err();
        let chain = anyhow_like(&e);
        assert_eq!(chain.matches("is not authorized").count(), 1, "{chain}");
    }

    #[test]
    fn a_stored_template_no_configuration_accepts_stops_one_node_but_not_nodes_sharing_state() {
        let dir = tempfile::tempdir().unwrap();
        let write = |extra: &str| {
            let path = dir.path().join("runtime-config.toml");
            std::fs::write(&path, format!("{extra}[[bucket]]\nname = \"shots\"\nbackend = \"fs\"\nshared = true\npath = \"shots\"\n"))
                .unwrap();
            RuntimeConfig::load(&path).unwrap()
        };
        // A template left behind by two racing writes: its domain is gone.
        let stray = crate::template::SnapshotConfig {
            domain: "deleted.example.com".into(),
            time_interval: 5,
            obs_location: crate::template::ObsLocation { bucket: "shots".into(), location: "local".into(), object: None },
            ..Default::default()
        };
        let stored = Stored { templates: vec![stray], ..Stored::default() };
        let manifest = Manifest::default();
        assert!(Config::new(manifest.clone(), write(""), &stored).is_err(), "one node: a startup error, as before");
        let shared = write("state = \"postgres://livesnap@127.0.0.1/livesnap\"\n");
        let config = Config::new(manifest, shared, &stored).expect("nodes sharing state leave it out");
        assert!(config.template("deleted.example.com", "live").is_none());
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
