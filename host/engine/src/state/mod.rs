//! Durable state behind one set of table traits ([`StateDb`]): SQLite
//! embedded for one machine, PostgreSQL shared by several nodes. Both pass
//! the same contract tests (`tests/all/store.rs`).

mod open;
mod postgres;
mod sqlite;

pub use open::{StateSettings, open};
pub use postgres::PostgresState;
pub use sqlite::SqliteState;

use crate::template::SnapshotConfig;

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
    /// The change conflicts with what is stored (the message says how).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The PostgreSQL server failed or could not be reached.
    #[error("state database (PostgreSQL): {0}")]
    Postgres(String),
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

/// Where a callback stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Not delivered yet; will be tried (again).
    Pending,
    /// Answered 2xx.
    Delivered,
    /// Given up.
    Failed,
}

impl std::fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Failed => "failed",
        })
    }
}

impl std::str::FromStr for OutboxStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(format!("'{other}' is not pending, delivered or failed")),
        }
    }
}

/// A callback in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxItem {
    /// Stable snapshot id; sent as the `Idempotency-Key` header.
    pub id: String,
    /// `scheme://host:port` of the URL (concurrency is limited per destination).
    pub destination: String,
    /// Receiver URL.
    pub url: String,
    /// Headers from the notifier.
    pub headers: Vec<(String, String)>,
    /// Body of the latest attempt.
    pub body: Vec<u8>,
    /// What re-signing needs (JSON), when the notifier can be asked again.
    pub resign: Option<String>,
    /// Where it stands.
    pub status: OutboxStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Unix ms of the next attempt.
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// The owner key of the project whose template made it.
    pub project: String,
}

/// The durable callback outbox.
pub trait OutboxTable: Send + Sync {
    /// Records a new callback as pending, due now; false if the id exists.
    fn enqueue(&self, item: &OutboxItem) -> Result<bool, StateError>;
    /// Pending callbacks due at `now` (unix ms) and not claimed by a node,
    /// oldest due first.
    fn due(&self, now: i64, limit: usize) -> Result<Vec<OutboxItem>, StateError>;
    /// Claims a due callback for `node` until `until` (unix ms), so no other
    /// node attempts it meanwhile; false if it is no longer pending, not
    /// due, or claimed by another node whose claim has not expired.
    /// [`OutboxTable::record_attempt`] ends the claim; a node that dies
    /// leaves it to expire.
    fn claim(&self, id: &str, node: &str, now: i64, until: i64) -> Result<bool, StateError>;
    /// Ends every claim of `node` (it is shutting down).
    fn release_claims(&self, node: &str) -> Result<(), StateError>;
    /// The earliest next attempt of any pending callback.
    fn next_due(&self) -> Result<Option<i64>, StateError>;
    /// Stores an attempt's outcome (status, attempts, next time, error,
    /// body) and ends its claim.
    fn record_attempt(&self, item: &OutboxItem) -> Result<(), StateError>;
    /// A project's callbacks by status (all when `None`), oldest first: (total, page).
    fn list(
        &self,
        project: &str,
        status: Option<OutboxStatus>,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<OutboxItem>), StateError>;
    /// Makes a project's failed callback pending again; false if it is not failed.
    fn redeliver(&self, project: &str, id: &str) -> Result<bool, StateError>;
    /// (pending, failed) counts.
    fn counts(&self) -> Result<(u64, u64), StateError>;
}

/// All the state a node keeps: what a shared database takes over when there
/// are several nodes.
pub trait StateDb:
    TemplateTable
    + OutboxTable
    + KeyValueTable
    + ModuleTable
    + KeyChainTable
    + SourceTable
    + UsageTable
    + DomainTable
    + ProjectTable
    + LeaseTable
    + RevisionTable
    + SignatureTable
    + SessionTable
    + RequestTable
{
    /// Whether several nodes may share it (PostgreSQL), so streams take
    /// leases and configuration changes are looked for.
    fn shared(&self) -> bool;
}

/// A live stream's lease: the stream is live on `node` until `expires_at`
/// unless renewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLease {
    /// Ingest domain.
    pub domain: String,
    /// Application.
    pub app: String,
    /// Stream name.
    pub stream: String,
    /// The node the publisher is connected to.
    pub node: String,
    /// The owner key of the project whose template accepted it.
    pub owner: String,
    /// What the node last said about it (JSON: counters, rates, resolution).
    pub info: String,
    /// Unix ms.
    pub expires_at: i64,
}

/// Stream leases: a stream name is live on one node at a time.
pub trait LeaseTable: Send + Sync {
    /// Takes the lease of its stream unless another node holds one that
    /// has not expired at `now` (unix ms); true if taken. A lease of the
    /// same node is taken over (left by an earlier run of that node).
    fn acquire_stream(&self, lease: &StreamLease, now: i64) -> Result<bool, StateError>;
    /// Extends `node`'s leases of these streams (domain, app, stream, info)
    /// to `until`; returns how many it still held.
    fn renew_streams(&self, node: &str, streams: &[(String, String, String, String)], until: i64) -> Result<usize, StateError>;
    /// Frees `node`'s lease of a stream; false if it held none.
    fn release_stream(&self, node: &str, domain: &str, app: &str, stream: &str) -> Result<bool, StateError>;
    /// Frees every lease of `node` (it is shutting down).
    fn release_node(&self, node: &str) -> Result<usize, StateError>;
    /// Every lease unexpired at `now`, by domain, app and stream.
    fn stream_leases(&self, now: i64) -> Result<Vec<StreamLease>, StateError>;
}

/// Signatures of state-changing API requests already used, so a captured
/// request cannot be sent again to any node.
pub trait SignatureTable: Send + Sync {
    /// Records a signature, good until `expires_at` (unix ms); false if it
    /// is recorded and unexpired at `now` (a replay). Forgets expired ones.
    fn first_use(&self, signature: &str, expires_at: i64, now: i64) -> Result<bool, StateError>;
}

/// Signed-in web console browsers, by the SHA-256 of their session id: the
/// SHA-256 of the token they signed in with and when they were last seen
/// (unix ms). Shared by the nodes, so a browser stays signed in whichever
/// node its next connection reaches.
pub trait SessionTable: Send + Sync {
    /// Opens a session; forgets sessions last seen before `idle_before` and
    /// the least recently seen of the same token past `max_per_token`.
    fn open_session(&self, id_sha256: &str, token_sha256: &str, now: i64, idle_before: i64, max_per_token: usize)
    -> Result<(), StateError>;
    /// The token hash of a session seen since `idle_before`, now seen at `now`.
    fn session(&self, id_sha256: &str, now: i64, idle_before: i64) -> Result<Option<String>, StateError>;
    /// Ends a session.
    fn close_session(&self, id_sha256: &str) -> Result<(), StateError>;
}

/// An on-demand snapshot asked of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// Its id.
    pub id: String,
    /// The owner key of the project that asked.
    pub owner: String,
    /// Domain, app, stream.
    pub stream: (String, String, String),
}

/// On-demand snapshots asked through one node of a stream live on another:
/// the asking node records the request for the stream's node and waits
/// for its answer.
pub trait RequestTable: Send + Sync {
    /// Records request `id` for the stream (domain, app, stream) of
    /// `owner`, to be taken by `node`; `now` in unix ms.
    fn ask(&self, id: &str, node: &str, owner: &str, stream: (&str, &str, &str), now: i64) -> Result<(), StateError>;
    /// Unanswered requests for `node`, oldest first.
    fn asked(&self, node: &str) -> Result<Vec<SnapshotRequest>, StateError>;
    /// Answers a request: the snapshot (JSON) or why there is none.
    fn answer(&self, id: &str, answer: Result<&str, &str>) -> Result<(), StateError>;
    /// A request's answer once given.
    fn answer_of(&self, id: &str) -> Result<Option<Result<String, String>>, StateError>;
    /// Forgets a request (answered or given up), and any older than `before`.
    fn forget(&self, id: &str, before: i64) -> Result<(), StateError>;
}

/// A number that grows with every change of what the running configuration
/// is made of (templates, domains, bucket authorizations, key chains,
/// modules, sources, projects), whichever node made it.
pub trait RevisionTable: Send + Sync {
    /// The current revision.
    fn revision(&self) -> Result<i64, StateError>;
}

/// A unique column of `projects` a project is found by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectKey {
    /// `id`.
    Id,
    /// `name`.
    Name,
    /// `access_key`.
    AccessKey,
    /// `token_sha256`.
    TokenSha256,
}

impl ProjectKey {
    /// The column's name (a constant: safe to put into SQL).
    pub fn column(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::AccessKey => "access_key",
            Self::TokenSha256 => "token_sha256",
        }
    }
}

/// Projects other than the default one (`livesnap project …`).
pub trait ProjectTable: Send + Sync {
    /// Every stored project, by name.
    fn projects(&self) -> Result<Vec<crate::project::Project>, StateError>;
    /// The project whose `key` column holds `value`.
    fn project_by(&self, key: ProjectKey, value: &str) -> Result<Option<crate::project::Project>, StateError>;
    /// The project with that id, else with that name.
    fn project(&self, id_or_name: &str) -> Result<Option<crate::project::Project>, StateError> {
        match self.project_by(ProjectKey::Id, id_or_name)? {
            Some(p) => Ok(Some(p)),
            None => self.project_by(ProjectKey::Name, id_or_name),
        }
    }
    /// The project an access key belongs to.
    fn project_by_access_key(&self, access_key: &str) -> Result<Option<crate::project::Project>, StateError> {
        self.project_by(ProjectKey::AccessKey, access_key)
    }
    /// The project whose token hashes to `token_sha256`.
    fn project_by_token(&self, token_sha256: &str) -> Result<Option<crate::project::Project>, StateError> {
        self.project_by(ProjectKey::TokenSha256, token_sha256)
    }
    /// Adds a project; [`StateError::Conflict`] if its name (or a key) is taken.
    fn insert_project(&self, project: &crate::project::Project) -> Result<(), StateError>;
    /// Replaces a project's keys (rotation); false if there is no such project.
    fn set_project_keys(
        &self,
        id: &str,
        access_key: &str,
        secret_key: &crate::secret::Secret,
        token_sha256: &str,
    ) -> Result<bool, StateError>;
    /// Deletes a project with its bucket authorizations and modules;
    /// [`StateError::Conflict`] while it owns domains; false if there was none.
    fn delete_project(&self, id: &str) -> Result<bool, StateError>;
}

/// Domains created through the API, and the buckets authorized for
/// templates (Huawei's OBS authorization).
pub trait DomainTable: Send + Sync {
    /// Every API domain, by name.
    fn domains(&self) -> Result<Vec<crate::domain::Domain>, StateError>;
    /// Adds a domain; [`StateError::Exists`] if it exists.
    fn insert_domain(&self, domain: &crate::domain::Domain) -> Result<(), StateError>;
    /// Sets a domain's status; false if there is no such domain.
    fn set_domain_status(&self, name: &str, status: &str) -> Result<bool, StateError>;
    /// Deletes a domain; false if there was none.
    fn delete_domain(&self, name: &str) -> Result<bool, StateError>;
    /// The authorized (project, bucket) pairs.
    fn authorized_buckets(&self) -> Result<Vec<(String, String)>, StateError>;
    /// Authorizes (`true`) or revokes a bucket for a project.
    fn set_bucket_authorized(&self, project: &str, bucket: &str, authorized: bool) -> Result<(), StateError>;
}

/// Snapshots stored, per project, domain and hour (what usage is billed on).
pub trait UsageTable: Send + Sync {
    /// Counts one snapshot stored for `project`'s `domain` in the hour
    /// starting at unix second `hour` (a multiple of 3600).
    fn count_snapshot(&self, project: &str, domain: &str, hour: i64) -> Result<(), StateError>;
    /// A project's snapshots per hour from `from` to `to` (hour starts,
    /// inclusive) for `domain`, or all its domains; hours without snapshots
    /// are left out.
    fn snapshot_counts(&self, project: &str, domain: Option<&str>, from: i64, to: i64) -> Result<Vec<(i64, u64)>, StateError>;
}

/// Pull sources created through the API.
pub trait SourceTable: Send + Sync {
    /// Every source, by domain, app and stream.
    fn sources(&self) -> Result<Vec<crate::source::Source>, StateError>;
    /// Creates or replaces the source of its stream; true if it replaced one.
    fn put_source(&self, source: &crate::source::Source) -> Result<bool, StateError>;
    /// Deletes a stream's source; false if it had none.
    fn delete_source(&self, domain: &str, app: &str, stream: &str) -> Result<bool, StateError>;
}

/// Ingest URL validation key chains, by push domain.
pub trait KeyChainTable: Send + Sync {
    /// Every key chain.
    fn key_chains(&self) -> Result<Vec<(String, crate::ingest::url_auth::KeyChain)>, StateError>;
    /// Sets a domain's key chain (create or replace).
    fn put_key_chain(&self, domain: &str, chain: &crate::ingest::url_auth::KeyChain) -> Result<(), StateError>;
    /// Removes a domain's key chain; false if it had none.
    fn delete_key_chain(&self, domain: &str) -> Result<bool, StateError>;
}

/// A tenant module uploaded through the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleRecord {
    /// The owner key of its project.
    pub project: String,
    /// Its name (what templates' `functions` use).
    pub name: String,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// The component.
    pub bytes: Vec<u8>,
    /// Spin's `allowed_outbound_hosts`.
    pub allowed_outbound_hosts: Vec<String>,
    /// WASI environment variables.
    pub environment: Vec<(String, String)>,
    /// Unix seconds.
    pub uploaded_at: i64,
}

/// A module without its bytes (for listings and quotas).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleSummary {
    /// Name.
    pub name: String,
    /// Hex SHA-256 of the component.
    pub sha256: String,
    /// Bytes.
    pub size: usize,
    /// Unix seconds.
    pub uploaded_at: i64,
}

/// Uploaded tenant modules.
pub trait ModuleTable: Send + Sync {
    /// Adds or replaces a module; true if it replaced one.
    fn put_module(&self, module: &ModuleRecord) -> Result<bool, StateError>;
    /// Every project's modules, by project and name.
    fn modules(&self) -> Result<Vec<ModuleRecord>, StateError>;
    /// One module of a project, bytes included.
    fn module(&self, project: &str, name: &str) -> Result<Option<ModuleRecord>, StateError>;
    /// Every project's modules' names, hashes, sizes and upload times,
    /// without their bytes: (project, summary), by project and name.
    fn module_versions(&self) -> Result<Vec<(String, ModuleSummary)>, StateError>;
    /// A project's modules' names, hashes and sizes, without their bytes.
    fn module_summaries(&self, project: &str) -> Result<Vec<ModuleSummary>, StateError>;
    /// Deletes a project's module; false if there was none.
    fn delete_module(&self, project: &str, name: &str) -> Result<bool, StateError>;
}

/// Key-value stores for components (Spin's `key-value` interface).
pub trait KeyValueTable: Send + Sync {
    /// A value.
    fn kv_get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// Sets a value.
    fn kv_set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), StateError>;
    /// Deletes a key (absent keys are fine).
    fn kv_delete(&self, store: &str, key: &str) -> Result<(), StateError>;
    /// All keys of a store.
    fn kv_keys(&self, store: &str) -> Result<Vec<String>, StateError>;
}

/// Templates managed through the API.
pub trait TemplateTable: Send + Sync {
    /// Every stored template, ordered by domain then app.
    fn templates(&self) -> Result<Vec<SnapshotConfig>, StateError>;
    /// Adds a template; [`StateError::Exists`] if its (domain, app) is taken.
    fn insert_template(&self, config: &SnapshotConfig) -> Result<(), StateError>;
    /// Replaces a template; false when there is none for its (domain, app).
    fn update_template(&self, config: &SnapshotConfig) -> Result<bool, StateError>;
    /// Deletes a template; false when there was none.
    fn delete_template(&self, domain: &str, app: &str) -> Result<bool, StateError>;
}
