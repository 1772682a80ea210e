//! Durable state behind one small interface: templates created through the
//! API (and, later, the callback outbox). SQLite is the first
//! implementation; a shared database can take its place for several nodes.

mod sqlite;

pub use sqlite::SqliteState;

use crate::config::SnapshotConfig;

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The (domain, app) already has a template.
    #[error("a template for domain '{domain}' app '{app}' already exists")]
    Exists {
        /// Domain.
        domain: String,
        /// App.
        app: String,
    },
    /// The database failed.
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored row could not be read back.
    #[error("state database holds an unreadable template for {domain}/{app}: {message}")]
    Corrupt {
        /// Domain.
        domain: String,
        /// App.
        app: String,
        /// Why.
        message: String,
    },
    /// The database file could not be created.
    #[error("opening the state database {path}: {source}")]
    Open {
        /// Its path.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Templates managed through the API.
pub trait TemplateStore: Send + Sync {
    /// Every stored template, ordered by domain then app.
    fn templates(&self) -> Result<Vec<SnapshotConfig>, StateError>;
    /// Adds a template; [`StateError::Exists`] if its (domain, app) is taken.
    fn insert_template(&self, config: &SnapshotConfig) -> Result<(), StateError>;
    /// Replaces a template; false when there is none for its (domain, app).
    fn update_template(&self, config: &SnapshotConfig) -> Result<bool, StateError>;
    /// Deletes a template; false when there was none.
    fn delete_template(&self, domain: &str, app: &str) -> Result<bool, StateError>;
}
