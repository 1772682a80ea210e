//! Which state database a node uses: the runtime config's `state` key
//! (absent: SQLite in the state folder; `postgres://…`: a database shared
//! by several nodes) with its password from the environment or a file,
//! never from the config itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{PostgresState, SqliteState, StateDb, StateError};

/// The environment variable that holds the PostgreSQL password.
pub const PASSWORD_ENV: &str = "LIVESNAP_STATE_PASSWORD";

/// Where state is kept.
#[derive(Clone, Debug)]
pub enum StateSettings {
    /// `state.db` in the state folder (one node).
    Sqlite,
    /// A PostgreSQL database shared by the nodes.
    Postgres {
        /// Connection settings, password included (its `Debug` hides it).
        config: Box<tokio_postgres::Config>,
        /// `user@host:port/dbname`, for logs.
        display: String,
        /// Connections at most.
        pool_size: usize,
    },
}

impl StateSettings {
    /// From the runtime config's `state`, `state_password_file` and
    /// `state_pool_size` (relative paths against `base`).
    pub fn from_config(url: Option<&str>, password_file: Option<&str>, pool_size: Option<usize>, base: &Path) -> Result<Self, String> {
        let Some(url) = url else {
            if password_file.is_some() || pool_size.is_some() {
                return Err("state_password_file and state_pool_size need `state = \"postgres://…\"`".into());
            }
            return Ok(Self::Sqlite);
        };
        if url == "sqlite" {
            return Ok(Self::Sqlite);
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!("state: '{}' is not \"sqlite\" or a postgres:// URL", redact(url)));
        }
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| format!("state: '{}' is not a PostgreSQL URL: {e}", redact(url)))?;
        if config.get_password().is_some() {
            return Err(format!(
                "state: the URL holds a password; put it in {PASSWORD_ENV} or state_password_file instead ('{}')",
                redact(url)
            ));
        }
        let password = match (std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()), password_file) {
            (Some(p), _) => Some(p),
            (None, Some(file)) => {
                let path: PathBuf = base.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| format!("state_password_file {}: {e}", path.display()))?;
                Some(text.trim_end_matches(['\r', '\n']).to_string())
            }
            (None, None) => None,
        };
        if let Some(p) = password {
            config.password(p);
        }
        config.application_name("livesnap");
        config.connect_timeout(std::time::Duration::from_secs(10));
        let display = describe(&config);
        Ok(Self::Postgres { config: Box::new(config), display, pool_size: pool_size.unwrap_or(16).clamp(2, 256) })
    }

    /// Whether the nodes share it.
    pub fn shared(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// What it is, for logs (never the password).
    pub fn describe(&self, state_dir: &Path) -> String {
        match self {
            Self::Sqlite => format!("sqlite {}", state_dir.join("state.db").display()),
            Self::Postgres { display, .. } => format!("postgres {display}"),
        }
    }
}

/// `user@host:port/dbname` of a parsed config.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{}@{host}:{port}/{}", config.get_user().unwrap_or(""), config.get_dbname().unwrap_or(""))
}

/// A URL without anything that may be a secret: its password and its
/// query string (`?password=` is a password too).
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                u.set_query(Some("…"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable URL)".into(),
    }
}

/// Opens (and migrates) the state database the settings name.
pub fn open(settings: &StateSettings, state_dir: &Path) -> Result<Arc<dyn StateDb>, StateError> {
    Ok(match settings {
        StateSettings::Sqlite => Arc::new(SqliteState::open(&state_dir.join("state.db"))?),
        StateSettings::Postgres { config, pool_size, .. } => Arc::new(PostgresState::connect((**config).clone(), *pool_size)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_refused_without_being_repeated() {
        let e = StateSettings::from_config(Some("postgres://u:hunter2@db/x"), None, None, Path::new(".")).unwrap_err();
        assert!(e.contains(PASSWORD_ENV) && !e.contains("hunter2"), "{e}");
        let e = StateSettings::from_config(Some("postgres://u@db/x?password=hunter2"), None, None, Path::new(".")).unwrap_err();
        assert!(e.contains(PASSWORD_ENV) && !e.contains("hunter2"), "{e}");
        let e =
            StateSettings::from_config(Some("postgres://u@db/x?password=hunter2&sslmode=bogus"), None, None, Path::new(".")).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = StateSettings::from_config(Some("mysql://db"), None, None, Path::new(".")).unwrap_err();
        assert!(e.contains("not \"sqlite\""), "{e}");
        let ok = StateSettings::from_config(Some("postgres://livesnap@db:5433/snap"), None, Some(4), Path::new(".")).unwrap();
        assert_eq!(ok.describe(Path::new(".")), "postgres livesnap@db:5433/snap");
        assert!(matches!(StateSettings::from_config(None, None, None, Path::new(".")).unwrap(), StateSettings::Sqlite));
    }
}
