//! `runtime-config.toml`: where the service listens, its region, its state
//! folder and its authorized buckets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// The runtime configuration, paths resolved.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The service region; templates' buckets must be in it.
    pub region: String,
    /// RTMP listen address.
    pub rtmp_listen: SocketAddr,
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// Base of `snapshot_url` for fs buckets (`{public_url}/obs/{bucket}/{object}`);
    /// `http://{http_listen}` when not set.
    pub public_url: Option<String>,
    /// State folder: the database, the compiled-component cache, generated API credentials.
    pub state_dir: PathBuf,
    /// Authorized buckets.
    pub buckets: Vec<BucketConfig>,
    /// Ingest domains served (besides those of manifest templates); API
    /// templates must use one of them.
    pub domains: Vec<String>,
    /// `[api]`: project id and credentials as configured (resolved, with
    /// generated defaults, by [`super::credentials`]).
    pub api: ApiSettings,
}

/// `[api]` of the runtime config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Project id in `/v1/{project_id}/…`.
    pub project_id: Option<String>,
    /// Access key id (AK).
    pub access_key: Option<String>,
    /// Secret access key (SK); prefer `secret_key_file`.
    pub secret_key: Option<String>,
    /// A file holding the SK.
    pub secret_key_file: Option<PathBuf>,
    /// A token accepted in `X-Auth-Token` (for curl); prefer `token_file`.
    pub token: Option<String>,
    /// A file holding the token.
    pub token_file: Option<PathBuf>,
}

/// A `[[bucket]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketConfig {
    /// Bucket name.
    pub name: String,
    /// Its region.
    pub location: String,
    /// Where its objects live.
    pub backend: Backend,
}

/// Storage backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A local folder.
    Fs {
        /// Root folder of the bucket.
        path: PathBuf,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    region: Option<String>,
    rtmp_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    public_url: Option<String>,
    state_dir: Option<String>,
    #[serde(default)]
    bucket: Vec<RawBucket>,
    #[serde(default)]
    api: ApiSettings,
    domains: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBucket {
    name: String,
    location: Option<String>,
    backend: String,
    path: Option<String>,
}

impl RuntimeConfig {
    /// The embedded default: region `local`, one fs bucket `snapshots`
    /// under `.livesnap/` in `base`.
    pub fn embedded(base: &Path) -> Self {
        from_raw(Raw::default(), base).expect("the embedded runtime config is valid")
    }

    /// Reads a runtime config file; relative paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        let raw: Raw = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: Some(path.to_owned()), message: e.to_string() })?;
        from_raw(raw, path.parent().unwrap_or(Path::new("."))).map_err(|e| e.in_file(path))
    }

    /// The base URL fs-bucket objects are served under.
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.http_listen))
    }

    /// Domains served: the declared ones and those of manifest templates.
    pub fn served_domains(&self, manifest: &super::Manifest) -> Vec<String> {
        let mut d = self.domains.clone();
        for t in &manifest.templates {
            if !d.iter().any(|x| x.eq_ignore_ascii_case(&t.domain)) {
                d.push(t.domain.clone());
            }
        }
        d
    }

    /// Authorized buckets as (name, location) pairs, for validation.
    pub fn bucket_locations(&self) -> Vec<(String, String)> {
        self.buckets.iter().map(|b| (b.name.clone(), b.location.clone())).collect()
    }
}

fn from_raw(raw: Raw, base: &Path) -> Result<RuntimeConfig, ConfigError> {
    let region = raw.region.unwrap_or_else(|| "local".into());
    let state_dir = base.join(raw.state_dir.unwrap_or_else(|| ".livesnap".into()));
    let http_listen = raw.http_listen.unwrap_or_else(|| "127.0.0.1:8080".parse().unwrap());
    let public_url = raw.public_url.map(|u| u.trim_end_matches('/').to_string());
    let mut buckets = Vec::new();
    for b in raw.bucket {
        if crate::config::template::validate_domain(&b.name).is_err() || b.name.contains('/') {
            return Err(ConfigError::Invalid(format!("bucket name '{}' is not valid", b.name)));
        }
        let backend = match b.backend.as_str() {
            "fs" => Backend::Fs { path: base.join(b.path.unwrap_or_else(|| format!(".livesnap/{}", b.name))) },
            other => {
                return Err(ConfigError::Invalid(format!("bucket '{}': backend '{other}' is not supported (fs)", b.name)));
            }
        };
        if buckets.iter().any(|x: &BucketConfig| x.name == b.name) {
            return Err(ConfigError::Invalid(format!("bucket '{}' is declared twice", b.name)));
        }
        buckets.push(BucketConfig { name: b.name, location: b.location.unwrap_or_else(|| region.clone()), backend });
    }
    if buckets.is_empty() {
        buckets.push(BucketConfig {
            name: "snapshots".into(),
            location: region.clone(),
            backend: Backend::Fs { path: state_dir.join("snapshots") },
        });
    }
    Ok(RuntimeConfig {
        region,
        rtmp_listen: raw.rtmp_listen.unwrap_or_else(|| "127.0.0.1:1935".parse().unwrap()),
        http_listen,
        public_url,
        state_dir,
        buckets,
        domains: raw.domains.unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into()]),
        api: ApiSettings {
            secret_key_file: raw.api.secret_key_file.map(|f| base.join(f)),
            token_file: raw.api.token_file.map(|f| base.join(f)),
            ..raw.api
        },
    })
}
