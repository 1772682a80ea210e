//! The runtime config's `[[bucket]]` sections: what the storage module
//! reads, validates and turns into [`BucketConfig`]s (config only composes).

use std::path::Path;

use serde::Deserialize;

use super::{Backend, BucketConfig};

/// One `[[bucket]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSection {
    name: String,
    location: Option<String>,
    backend: String,
    path: Option<String>,
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    addressing: Option<String>,
    access_key: Option<String>,
    access_key_env: Option<String>,
    secret_key_env: Option<String>,
    secret_key_file: Option<String>,
    presign_expiry_secs: Option<u64>,
    timeout_secs: Option<u64>,
    projects: Option<Vec<String>>,
    /// An fs bucket on a filesystem every node mounts (needed with a shared
    /// state database, where an fs bucket is otherwise one node's only).
    shared: Option<bool>,
}

/// The declared buckets, each in the service `region`; relative paths
/// resolve against `base`. With `shared_state` (several nodes) an fs bucket
/// must say it is `shared`.
pub fn declared(sections: Vec<BucketSection>, region: &str, base: &Path, shared_state: bool) -> Result<Vec<BucketConfig>, String> {
    let mut buckets: Vec<BucketConfig> = Vec::new();
    for b in sections {
        if shared_state && b.backend == "fs" && b.shared != Some(true) {
            return Err(format!(
                "bucket '{}': an fs bucket is one node's folder, and with a shared state database other nodes could not \
                 read what this one stores; use an S3 bucket, or set `shared = true` if every node mounts the same filesystem there",
                b.name
            ));
        }
        if crate::template::validate_domain(&b.name).is_err() || b.name.contains('/') {
            return Err(format!("bucket name '{}' is not valid", b.name));
        }
        let location = b.location.clone().unwrap_or_else(|| region.to_string());
        if location != region {
            return Err(format!(
                "bucket '{}' is in '{location}' but the service region is '{region}'; only buckets in the service region can be used",
                b.name
            ));
        }
        let backend = match b.backend.as_str() {
            "fs" => Backend::Fs { path: base.join(b.path.clone().unwrap_or_else(|| format!(".livesnap/{}", b.name))) },
            "s3" => Backend::S3(Box::new(s3_settings(&b, &location, base)?)),
            other => return Err(format!("bucket '{}': backend '{other}' is not supported (fs, s3)", b.name)),
        };
        if buckets.iter().any(|x| x.name == b.name) {
            return Err(format!("bucket '{}' is declared twice", b.name));
        }
        buckets.push(BucketConfig { name: b.name, location, backend, projects: b.projects });
    }
    Ok(buckets)
}

/// S3 settings; the secret comes from the environment or a file, never the
/// config itself.
fn s3_settings(b: &BucketSection, location: &str, base: &Path) -> Result<super::s3::S3Settings, String> {
    let bad = |m: String| format!("bucket '{}': {m}", b.name);
    let endpoint = b.endpoint.as_deref().ok_or_else(|| bad("backend s3 needs `endpoint`".into()))?;
    let endpoint: url::Url = endpoint.parse().map_err(|e| bad(format!("endpoint '{endpoint}': {e}")))?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let access_key = match (&b.access_key, &b.access_key_env) {
        (Some(k), _) => k.clone(),
        (None, Some(var)) => env(var).ok_or_else(|| bad(format!("environment variable {var} (access key) is not set")))?,
        (None, None) => {
            env("AWS_ACCESS_KEY_ID").ok_or_else(|| bad("no access key: set access_key, access_key_env or AWS_ACCESS_KEY_ID".into()))?
        }
    };
    let secret = match (&b.secret_key_file, &b.secret_key_env) {
        (Some(f), _) => {
            let path = base.join(f);
            std::fs::read_to_string(&path).map_err(|e| bad(format!("reading {}: {e}", path.display())))?.trim().to_string()
        }
        (None, Some(var)) => env(var).ok_or_else(|| bad(format!("environment variable {var} (secret key) is not set")))?,
        (None, None) => env("AWS_SECRET_ACCESS_KEY")
            .ok_or_else(|| bad("no secret key: set secret_key_file, secret_key_env or AWS_SECRET_ACCESS_KEY".into()))?,
    };
    let path_style = match b.addressing.as_deref().unwrap_or("path") {
        "path" => true,
        "virtual" => false,
        other => return Err(bad(format!("addressing '{other}' is not 'path' or 'virtual'"))),
    };
    Ok(super::s3::S3Settings {
        name: b.name.clone(),
        location: location.to_string(),
        endpoint,
        bucket: b.bucket.clone().unwrap_or_else(|| b.name.clone()),
        region: b.region.clone().unwrap_or_else(|| location.to_string()),
        path_style,
        access_key,
        secret_key: crate::secret::Secret::new(secret),
        presign_get: b.presign_expiry_secs.map(std::time::Duration::from_secs),
        timeout: std::time::Duration::from_secs(b.timeout_secs.unwrap_or(10).max(1)),
    })
}
