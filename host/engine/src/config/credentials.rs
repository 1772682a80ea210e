//! The management API's project id and credentials: from the environment,
//! else the runtime config, else generated on first start into a file under
//! the state folder (whose path is logged; the secret never is).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::runtime::RuntimeConfig;
use crate::project::random_hex;

pub use crate::secret::Secret;

/// What the API authenticates with.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ApiCredentials {
    /// `/v1/{project_id}/…`.
    pub project_id: String,
    /// AK.
    pub access_key: String,
    /// SK.
    pub secret_key: Secret,
    /// Accepted in `X-Auth-Token`.
    pub token: Secret,
}

/// The file generated credentials are kept in.
pub fn generated_path(runtime: &RuntimeConfig) -> PathBuf {
    runtime.state_dir.join("api-credentials.toml")
}

/// Resolves the credentials; returns them and, when they came from (or were
/// just written to) the generated file, its path.
pub fn resolve(runtime: &RuntimeConfig) -> Result<(ApiCredentials, Option<PathBuf>), ConfigError> {
    let api = &runtime.api;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let read = |p: &Path| {
        std::fs::read_to_string(p).map(|s| s.trim().to_string()).map_err(|source| ConfigError::Io { path: p.to_owned(), source })
    };
    let secret = match (env("LIVESNAP_SECRET_KEY"), &api.secret_key, &api.secret_key_file) {
        (Some(s), _, _) => Some(strong(s, "LIVESNAP_SECRET_KEY")?),
        (None, Some(s), _) => Some(strong(s.clone(), "[api] secret_key")?),
        (None, None, Some(f)) => Some(strong(read(f)?, &format!("[api] secret_key_file ({})", f.display()))?),
        _ => None,
    };
    let access = env("LIVESNAP_ACCESS_KEY").or_else(|| api.access_key.clone());
    if access.as_deref().is_some_and(|a| a.trim().is_empty()) {
        return Err(ConfigError::Invalid("[api] access_key is empty".into()));
    }
    let token = match (env("LIVESNAP_TOKEN"), &api.token, &api.token_file) {
        (Some(t), _, _) => Some(strong(t, "LIVESNAP_TOKEN")?),
        (None, Some(t), _) => Some(strong(t.clone(), "[api] token")?),
        (None, None, Some(f)) => Some(strong(read(f)?, &format!("[api] token_file ({})", f.display()))?),
        _ => None,
    };
    let project = env("LIVESNAP_PROJECT_ID").or_else(|| api.project_id.clone());
    if let (Some(access_key), Some(secret_key)) = (access.clone(), secret.clone()) {
        let token = token.clone().unwrap_or_else(|| random_hex(32));
        let project_id = project.clone().unwrap_or_else(|| "livesnap".into());
        return Ok((ApiCredentials { project_id, access_key, secret_key: Secret::new(secret_key), token: Secret::new(token) }, None));
    }
    if access.is_some() != secret.is_some() {
        return Err(ConfigError::Invalid("[api] needs both an access key and a secret key (or neither)".into()));
    }
    // Generated on first start, then reused.
    let path = generated_path(runtime);
    let mut creds = if path.exists() {
        let text = read(&path)?;
        let creds =
            toml::from_str::<ApiCredentials>(&text).map_err(|e| ConfigError::Parse { path: Some(path.clone()), message: e.to_string() })?;
        let what = path.display();
        strong(creds.secret_key.expose().to_string(), &format!("secret_key in {what}"))?;
        strong(creds.token.expose().to_string(), &format!("token in {what}"))?;
        creds
    } else {
        let creds = ApiCredentials {
            project_id: random_hex(16),
            access_key: random_hex(10).to_uppercase(),
            secret_key: Secret::new(random_hex(20)),
            token: Secret::new(random_hex(32)),
        };
        write_private(&path, &toml::to_string(&creds).expect("credentials serialize"))
            .map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        creds
    };
    if let Some(p) = project {
        creds.project_id = p;
    }
    if let Some(t) = token {
        creds.token = Secret::new(t);
    }
    Ok((creds, Some(path)))
}

/// Shortest secret key or token accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// `secret` if it is long enough to be one; the error names `what`, never
/// the value.
fn strong(secret: String, what: &str) -> Result<String, ConfigError> {
    let n = secret.chars().count();
    if secret.trim().is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{what} is empty; set at least {MIN_SECRET_LEN} characters (`livesnap keygen` prints one)"
        )));
    }
    if n < MIN_SECRET_LEN {
        return Err(ConfigError::Invalid(format!(
            "{what} is {n} characters long; use at least {MIN_SECRET_LEN} (`livesnap keygen` prints one)"
        )));
    }
    Ok(secret)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}
