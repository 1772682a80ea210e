//! `runtime-config.toml`: where the service listens, its region, its state
//! folder and its authorized buckets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
pub use crate::storage::{Backend, BucketConfig};

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
    /// The host publishers should push to (Huawei's `domain_cname`); the
    /// RTMP listen address when not set.
    pub domain_cname: Option<String>,
    /// `[api]`: project id and credentials as configured (resolved, with
    /// generated defaults, by [`super::credentials`]).
    pub api: ApiSettings,
    /// `[delivery]`: callback retries.
    pub delivery: crate::delivery::DeliveryConfig,
    /// `[rtmp]`: what one publisher connection may cost.
    pub rtmp: RtmpLimits,
    /// `[egress]`: destinations the operator allows that the egress policy
    /// refuses by default (loopback, private ranges).
    pub egress: crate::egress::EgressPolicy,
    /// `[quotas]`: what each project may create and run (counted per project).
    pub quotas: Quotas,
    /// `[http]`: HTTP connection limits and timeouts, API request checks.
    pub http: super::http::HttpSettings,
    /// `[tls]`: HTTPS and RTMPS.
    pub tls: super::tls::TlsSettings,
    /// `state`: SQLite in the state folder, or a PostgreSQL database the
    /// nodes share.
    pub state: crate::state::StateSettings,
    /// This node's name among the nodes sharing state (`LIVESNAP_NODE_ID`,
    /// else `node_id`, else the host name and a random suffix).
    pub node_id: String,
}

/// `[quotas]` of the runtime config: limits per project.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Templates created through the API.
    pub max_templates: usize,
    /// Uploaded modules.
    pub max_modules: usize,
    /// Bytes of all uploaded modules together.
    pub max_module_bytes: usize,
    /// Domains created through the API (Huawei's limit: 64).
    pub max_domains: usize,
    /// Pull sources created through the API (each holds a connection and a thread).
    pub max_sources: usize,
    /// Streams live at once (pushed and pulled).
    pub max_streams: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self { max_templates: 100, max_modules: 20, max_module_bytes: 256 << 20, max_domains: 64, max_sources: 100, max_streams: 1000 }
    }
}

/// `[rtmp]` of the runtime config: bounds on what a connection may make the
/// server hold or wait for.
#[derive(Clone, Debug)]
pub struct RtmpLimits {
    /// Open RTMP connections at most (also bounded by the file descriptor limit).
    pub max_connections: usize,
    /// Open RTMP connections from one client address at most.
    pub max_per_client: usize,
    /// From accept to an accepted publish at most.
    pub publish_timeout: Duration,
    /// No bytes for this long closes a connection.
    pub idle_timeout: Duration,
    /// A publisher sending fewer bytes than this per 10 s is dropped.
    pub min_bytes_per_10s: u64,
    /// Bytes of unfinished messages all connections together may hold.
    pub unfinished_budget: usize,
    /// How long a publisher's bytes may wait in the kernel so that one
    /// wake-up reads several messages (0: read whatever arrives).
    pub read_batch: Duration,
}

impl Default for RtmpLimits {
    fn default() -> Self {
        Self {
            max_connections: 2000,
            max_per_client: 100,
            publish_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            min_bytes_per_10s: 1000,
            unfinished_budget: 512 << 20,
            read_batch: Duration::from_millis(100),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRtmp {
    max_connections: Option<usize>,
    max_per_client: Option<usize>,
    publish_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    min_bytes_per_10s: Option<u64>,
    unfinished_budget_mb: Option<usize>,
    read_batch_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    #[serde(default)]
    allow: Vec<String>,
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    region: Option<String>,
    rtmp_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    public_url: Option<String>,
    state_dir: Option<String>,
    #[serde(default)]
    bucket: Vec<crate::storage::config::BucketSection>,
    #[serde(default)]
    api: ApiSettings,
    domains: Option<Vec<String>>,
    domain_cname: Option<String>,
    #[serde(default)]
    delivery: crate::delivery::DeliverySection,
    #[serde(default)]
    rtmp: RawRtmp,
    #[serde(default)]
    egress: RawEgress,
    #[serde(default)]
    quotas: Quotas,
    #[serde(default)]
    tls: super::tls::TlsSettings,
    #[serde(default)]
    http: super::http::HttpSettings,
    state: Option<String>,
    state_password_file: Option<String>,
    state_pool_size: Option<usize>,
    node_id: Option<String>,
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
        let raw: Raw = toml::from_str(&text).map_err(|e| ConfigError::Parse { path: Some(path.to_owned()), message: e.to_string() })?;
        from_raw(raw, path.parent().unwrap_or(Path::new("."))).map_err(|e| e.in_file(path))
    }

    /// The base URL fs-bucket objects are served under.
    pub fn public_url(&self) -> String {
        let scheme = if self.tls.cert.is_some() { "https" } else { "http" };
        self.public_url.clone().unwrap_or_else(|| format!("{scheme}://{}", self.http_listen))
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

/// This node's name: `LIVESNAP_NODE_ID`, else the config's, else the host
/// name with a random suffix (a restarted node is a new one).
fn node_id(configured: Option<String>) -> Result<String, ConfigError> {
    let id = std::env::var("LIVESNAP_NODE_ID").ok().filter(|v| !v.is_empty()).or(configured);
    match id {
        Some(id) if id.len() <= 128 && !id.chars().any(|c| c.is_control() || c.is_whitespace()) => Ok(id),
        Some(_) => Err(ConfigError::Invalid("node_id: 1-128 characters, no spaces".into())),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
            let host = if host.is_empty() { "livesnap".to_string() } else { host };
            Ok(format!("{host}-{}", crate::project::random_hex(3)))
        }
    }
}

/// The fs bucket every configuration has (under the state folder).
pub const EMBEDDED_BUCKET: &str = "snapshots";

fn from_raw(raw: Raw, base: &Path) -> Result<RuntimeConfig, ConfigError> {
    let region = raw.region.unwrap_or_else(|| "local".into());
    let state_dir = base.join(raw.state_dir.unwrap_or_else(|| ".livesnap".into()));
    let http_listen = raw.http_listen.unwrap_or_else(|| "127.0.0.1:8080".parse().unwrap());
    let public_url = raw.public_url.map(|u| u.trim_end_matches('/').to_string());
    let state =
        crate::state::StateSettings::from_config(raw.state.as_deref(), raw.state_password_file.as_deref(), raw.state_pool_size, base)
            .map_err(ConfigError::Invalid)?;
    let mut buckets = crate::storage::config::declared(raw.bucket, &region, base, state.shared()).map_err(ConfigError::Invalid)?;
    for b in &buckets {
        if let Backend::Fs { path } = &b.backend {
            check_bucket_folder(&b.name, path, &state_dir)?;
        }
    }
    // Declared buckets add to the embedded one (the default templates use
    // it), which is a folder of this node's: not with several nodes.
    if !state.shared() && !buckets.iter().any(|b| b.name == EMBEDDED_BUCKET) {
        buckets.push(BucketConfig {
            name: EMBEDDED_BUCKET.into(),
            location: region.clone(),
            backend: Backend::Fs { path: state_dir.join(EMBEDDED_BUCKET) },
            projects: None,
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
        domain_cname: raw.domain_cname,
        delivery: raw.delivery.resolve(),
        rtmp: {
            let d = RtmpLimits::default();
            let r = raw.rtmp;
            RtmpLimits {
                max_connections: r.max_connections.unwrap_or(d.max_connections).max(1),
                max_per_client: r.max_per_client.unwrap_or(d.max_per_client).max(1),
                publish_timeout: r.publish_timeout_secs.map_or(d.publish_timeout, |s| Duration::from_secs(s.max(1))),
                idle_timeout: r.idle_timeout_secs.map_or(d.idle_timeout, |s| Duration::from_secs(s.max(1))),
                min_bytes_per_10s: r.min_bytes_per_10s.unwrap_or(d.min_bytes_per_10s),
                unfinished_budget: r.unfinished_budget_mb.map_or(d.unfinished_budget, |m| m.max(32) << 20),
                read_batch: r.read_batch_ms.map_or(d.read_batch, |ms| Duration::from_millis(ms.min(1000))),
            }
        },
        egress: crate::egress::EgressPolicy::from_config(&raw.egress.allow).map_err(ConfigError::Invalid)?,
        quotas: raw.quotas,
        tls: raw.tls.resolve(base),
        state,
        node_id: node_id(raw.node_id)?,
        http: raw.http,
        api: ApiSettings {
            secret_key_file: raw.api.secret_key_file.map(|f| base.join(f)),
            token_file: raw.api.token_file.map(|f| base.join(f)),
            ..raw.api
        },
    })
}

/// An fs bucket is served without authentication and written by
/// components, so it may not hold the state folder (the database, the API
/// credentials) nor overlap the compiled-component cache.
pub fn check_bucket_folder(name: &str, path: &Path, state_dir: &Path) -> Result<(), ConfigError> {
    let norm = |p: &Path| {
        let abs = if p.is_absolute() { p.to_owned() } else { std::env::current_dir().unwrap_or_default().join(p) };
        // Resolve what exists (symlinks included), keep the rest as written.
        let mut out = PathBuf::new();
        for c in abs.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                c => out.push(c),
            }
            if let Ok(real) = out.canonicalize() {
                out = real;
            }
        }
        out
    };
    let (bucket, state, cache) = (norm(path), norm(state_dir), norm(&state_dir.join("cache")));
    let overlaps = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    if state.starts_with(&bucket) || overlaps(&bucket, &cache) {
        return Err(ConfigError::Invalid(format!(
            "bucket '{name}': its folder {} overlaps the state folder {} (database, credentials, compiled-component cache); \
             give it a folder of its own",
            path.display(),
            state_dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<RuntimeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime-config.toml");
        std::fs::write(&path, text).unwrap();
        RuntimeConfig::load(&path)
    }

    #[test]
    fn with_a_shared_state_database_fs_buckets_must_be_declared_shared() {
        let state = "state = \"postgres://livesnap@127.0.0.1:5432/livesnap\"\n";
        let fs = "[[bucket]]\nname = \"shots\"\nbackend = \"fs\"\npath = \"/srv/shots\"\n";
        let e = load(&format!("{state}{fs}")).unwrap_err().to_string();
        assert!(e.contains("bucket 'shots'") && e.contains("shared = true"), "{e}");
        let shared = load(&format!("{state}{fs}shared = true\n")).unwrap();
        assert_eq!(shared.buckets.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["shots"], "no embedded node-local bucket");
        let one_node = load(fs).unwrap();
        assert!(one_node.buckets.iter().any(|b| b.name == EMBEDDED_BUCKET), "one node keeps the embedded bucket");
        assert!(!one_node.state.shared());
    }
}
