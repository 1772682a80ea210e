//! The shared PostgreSQL state database of several nodes: the same tables
//! as SQLite, versioned migrations run under an advisory lock (nodes start
//! together), a connection pool, and a revision bumped by triggers on every
//! change of the configuration's tables.
//!
//! The traits are synchronous (SQLite's are, and callers run them off the
//! executor or on plain threads), so the connections live on a small
//! runtime of their own and each call's future is driven to completion on
//! the calling thread; it never needs that thread's runtime.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{
    DomainTable, KeyChainTable, KeyValueTable, LeaseTable, ModuleRecord, ModuleSummary, ModuleTable, OutboxItem, OutboxStatus, OutboxTable,
    ProjectKey, ProjectTable, RequestTable, RevisionTable, SessionTable, SignatureTable, SnapshotRequest, SourceTable, StateDb, StateError,
    StreamLease, TemplateTable, UsageTable,
};
use crate::domain::Domain;
use crate::ingest::url_auth::KeyChain;
use crate::project::Project;
use crate::secret::Secret;
use crate::source::Source;
use crate::template::SnapshotConfig;

/// Tables whose changes other nodes must apply: each bumps the revision.
const CONFIG_TABLES: [&str; 7] = ["templates", "domains", "bucket_authority", "key_chains", "modules", "sources", "projects"];

/// Migrations in order; `livesnap_schema.version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite has after its 10 migrations, in one step.
    "CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        access_key TEXT NOT NULL UNIQUE,
        secret_key TEXT NOT NULL,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE templates (
        domain TEXT NOT NULL,
        app_name TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (domain, app_name)
    );
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        destination TEXT NOT NULL,
        url TEXT NOT NULL,
        headers TEXT NOT NULL,
        body BYTEA NOT NULL,
        resign TEXT,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        last_error TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        project TEXT NOT NULL,
        claimed_by TEXT,
        claim_until BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    CREATE INDEX outbox_project ON outbox (project, created_at);
    CREATE TABLE kv (store TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL, PRIMARY KEY (store, key));
    CREATE TABLE modules (
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes BYTEA NOT NULL,
        allowed_outbound_hosts TEXT NOT NULL,
        environment TEXT NOT NULL,
        uploaded_at BIGINT NOT NULL,
        PRIMARY KEY (project, name)
    );
    CREATE TABLE key_chains (domain TEXT PRIMARY KEY, key TEXT NOT NULL, auth_type TEXT NOT NULL, timeout_secs BIGINT NOT NULL);
    CREATE TABLE sources (
        domain TEXT NOT NULL,
        app TEXT NOT NULL,
        stream TEXT NOT NULL,
        url TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (domain, app, stream)
    );
    CREATE TABLE usage (
        project TEXT NOT NULL,
        domain TEXT NOT NULL,
        hour BIGINT NOT NULL,
        snapshots BIGINT NOT NULL,
        PRIMARY KEY (project, domain, hour)
    );
    CREATE TABLE domains (
        name TEXT PRIMARY KEY,
        domain_type TEXT NOT NULL,
        region TEXT NOT NULL,
        status TEXT NOT NULL,
        service_area TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        project TEXT NOT NULL
    );
    CREATE TABLE bucket_authority (project TEXT NOT NULL, bucket TEXT NOT NULL, PRIMARY KEY (project, bucket));
    CREATE TABLE stream_leases (
        domain TEXT NOT NULL,
        app TEXT NOT NULL,
        stream TEXT NOT NULL,
        node TEXT NOT NULL,
        owner TEXT NOT NULL,
        info TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (domain, app, stream)
    );
    CREATE INDEX stream_leases_node ON stream_leases (node);
    CREATE TABLE snapshot_requests (
        id TEXT PRIMARY KEY, node TEXT NOT NULL, owner TEXT NOT NULL, domain TEXT NOT NULL, app TEXT NOT NULL,
        stream TEXT NOT NULL, created_at BIGINT NOT NULL, answered BOOLEAN NOT NULL DEFAULT false, answer TEXT, error TEXT
    );
    CREATE INDEX snapshot_requests_node ON snapshot_requests (node, answered);
    CREATE TABLE console_sessions (id_sha256 TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL, last_seen BIGINT NOT NULL);
    CREATE INDEX console_sessions_token ON console_sessions (token_sha256, last_seen);
    CREATE TABLE signatures (signature TEXT PRIMARY KEY, expires_at BIGINT NOT NULL);
    CREATE INDEX signatures_expiry ON signatures (expires_at);
    CREATE TABLE revision (id INT PRIMARY KEY, n BIGINT NOT NULL);
    INSERT INTO revision VALUES (1, 0);
    CREATE FUNCTION livesnap_bump_revision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE revision SET n = n + 1 WHERE id = 1;
        RETURN NULL;
    END $$;",
];

/// An arbitrary constant: the advisory lock nodes take to migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6c69_7665_736e_6170;

/// State in a PostgreSQL database shared by the nodes.
pub struct PostgresState {
    pool: Pool,
    /// Runs the connections (and the pool's timers); calls wait on their
    /// own thread. An `Option` only so that drop can shut it down without
    /// blocking (the last owner may be an async task).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PostgresState {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn pg(e: impl std::fmt::Display) -> StateError {
    StateError::Postgres(e.to_string())
}

impl From<tokio_postgres::Error> for StateError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message (with its detail) says more than the
        // wrapper's "db error".
        match e.as_db_error() {
            Some(db) => StateError::Postgres(format!("{}: {}", db.code().code(), db.message())),
            None => StateError::Postgres(e.to_string()),
        }
    }
}

impl PostgresState {
    /// An insert; a unique (or primary key) violation is `taken()`'s error.
    fn insert(&self, sql: &str, params: &[&(dyn ToSql + Sync)], taken: impl FnOnce() -> StateError) -> Result<(), StateError> {
        let client = self.client()?;
        match block_on(client.execute(sql, params)) {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(taken()),
            Err(e) => Err(e.into()),
        }
    }

    /// Connects with `config` (a pool of at most `pool_size` connections)
    /// and migrates the database.
    pub fn connect(config: tokio_postgres::Config, pool_size: usize) -> Result<Self, StateError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|e| pg(format!("starting the connections' runtime: {e}")))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(pg)?;
        let state = Self { pool, runtime: Some(runtime) };
        state.migrate()?;
        Ok(state)
    }

    /// A pooled connection (made on the connections' runtime).
    fn client(&self) -> Result<Object, StateError> {
        let pool = self.pool.clone();
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let got = block_on(runtime.spawn(async move { pool.get().await })).map_err(pg)?;
        got.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => pg(other),
        })
    }

    fn migrate(&self) -> Result<(), StateError> {
        let mut c = self.client()?;
        block_on(async {
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
            // Without the server's notice that the table exists (every start but the first).
            tx.batch_execute("SET LOCAL client_min_messages = warning; CREATE TABLE IF NOT EXISTS livesnap_schema (version INT NOT NULL)")
                .await?;
            let version: i32 = match tx.query_opt("SELECT version FROM livesnap_schema", &[]).await? {
                Some(row) => row.get(0),
                None => {
                    tx.execute("INSERT INTO livesnap_schema VALUES (0)", &[]).await?;
                    0
                }
            };
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.batch_execute(sql).await?;
                if i == 0 {
                    for table in CONFIG_TABLES {
                        tx.batch_execute(&format!(
                            "CREATE TRIGGER {table}_revision AFTER INSERT OR UPDATE OR DELETE ON {table}
                             FOR EACH STATEMENT EXECUTE FUNCTION livesnap_bump_revision()"
                        ))
                        .await?;
                    }
                }
                tx.execute("UPDATE livesnap_schema SET version = $1", &[&(i as i32 + 1)]).await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StateError> {
        let c = self.client()?;
        Ok(block_on(async {
            let statement = c.prepare_cached(sql).await?;
            c.execute(&statement, params).await
        })?)
    }

    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StateError> {
        let c = self.client()?;
        Ok(block_on(async {
            let statement = c.prepare_cached(sql).await?;
            c.query(&statement, params).await
        })?)
    }
}

/// Drives a future on this thread (the connections' runtime does the I/O).
fn block_on<F: Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

fn now_ms() -> i64 {
    crate::time::unix_ms() as i64
}

fn now() -> i64 {
    crate::time::unix_secs() as i64
}

impl TemplateTable for PostgresState {
    fn templates(&self) -> Result<Vec<SnapshotConfig>, StateError> {
        let rows = self.query("SELECT domain, app_name, config FROM templates ORDER BY domain, app_name", &[])?;
        rows.into_iter()
            .map(|r| {
                let (domain, app, json): (String, String, String) = (r.get(0), r.get(1), r.get(2));
                serde_json::from_str(&json).map_err(|e| StateError::Corrupt { domain, app, message: e.to_string() })
            })
            .collect()
    }

    fn insert_template(&self, c: &SnapshotConfig) -> Result<(), StateError> {
        let json = serde_json::to_string(c).expect("templates serialize");
        self.insert(
            "INSERT INTO templates (domain, app_name, config, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
            &[&c.domain, &c.app(), &json, &now()],
            || StateError::Exists { domain: c.domain.clone(), app: c.app().to_string() },
        )
    }

    fn update_template(&self, c: &SnapshotConfig) -> Result<bool, StateError> {
        let json = serde_json::to_string(c).expect("templates serialize");
        let n = self.execute(
            "UPDATE templates SET config = $3, updated_at = $4 WHERE domain = $1 AND app_name = $2",
            &[&c.domain, &c.app(), &json, &now()],
        )?;
        Ok(n > 0)
    }

    fn delete_template(&self, domain: &str, app: &str) -> Result<bool, StateError> {
        Ok(self.execute("DELETE FROM templates WHERE domain = $1 AND app_name = $2", &[&domain, &app])? > 0)
    }
}

const ITEM_COLUMNS: &str =
    "id, destination, url, headers, body, resign, status, attempts, next_attempt_at, last_error, created_at, updated_at, project";

fn item(r: &Row) -> OutboxItem {
    let headers: String = r.get(3);
    let status: String = r.get(6);
    OutboxItem {
        id: r.get(0),
        destination: r.get(1),
        url: r.get(2),
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        body: r.get(4),
        resign: r.get(5),
        status: status.parse().unwrap_or(OutboxStatus::Pending),
        attempts: r.get::<_, i64>(7) as u32,
        next_attempt_at: r.get(8),
        last_error: r.get(9),
        created_at: r.get(10),
        updated_at: r.get(11),
        project: r.get(12),
    }
}

impl OutboxTable for PostgresState {
    fn enqueue(&self, i: &OutboxItem) -> Result<bool, StateError> {
        let n = self.execute(
            "INSERT INTO outbox (id, destination, url, headers, body, resign, status, attempts, next_attempt_at, created_at, updated_at, project)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7, $8) ON CONFLICT (id) DO NOTHING",
            &[&i.id, &i.destination, &i.url, &serde_json::to_string(&i.headers).unwrap(), &i.body, &i.resign, &now_ms(), &i.project],
        )?;
        Ok(n > 0)
    }

    fn due(&self, now: i64, limit: usize) -> Result<Vec<OutboxItem>, StateError> {
        let rows = self.query(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 AND claim_until <= $1
                 ORDER BY next_attempt_at LIMIT $2"
            ),
            &[&now, &(limit as i64)],
        )?;
        Ok(rows.iter().map(item).collect())
    }

    fn claim(&self, id: &str, node: &str, now: i64, until: i64) -> Result<bool, StateError> {
        // SKIP LOCKED: a row another node is claiming right now is not
        // waited for; it is that node's.
        let n = self.execute(
            "UPDATE outbox SET claimed_by = $2, claim_until = $4 WHERE id = (
                SELECT id FROM outbox WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $3
                    AND (claim_until <= $3 OR claimed_by = $2)
                FOR UPDATE SKIP LOCKED)",
            &[&id, &node, &now, &until],
        )?;
        Ok(n > 0)
    }

    fn release_claims(&self, node: &str) -> Result<(), StateError> {
        self.execute("UPDATE outbox SET claimed_by = NULL, claim_until = 0 WHERE claimed_by = $1", &[&node])?;
        Ok(())
    }

    fn next_due(&self) -> Result<Option<i64>, StateError> {
        let rows = self.query("SELECT MIN(GREATEST(next_attempt_at, claim_until)) FROM outbox WHERE status = 'pending'", &[])?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    fn record_attempt(&self, i: &OutboxItem) -> Result<(), StateError> {
        self.execute(
            "UPDATE outbox SET url = $2, headers = $3, body = $4, status = $5, attempts = $6, next_attempt_at = $7, last_error = $8,
                updated_at = $9, claimed_by = NULL, claim_until = 0 WHERE id = $1",
            &[
                &i.id,
                &i.url,
                &serde_json::to_string(&i.headers).unwrap(),
                &i.body,
                &i.status.to_string(),
                &(i.attempts as i64),
                &i.next_attempt_at,
                &i.last_error,
                &now_ms(),
            ],
        )?;
        Ok(())
    }

    fn list(
        &self,
        project: &str,
        status: Option<OutboxStatus>,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<OutboxItem>), StateError> {
        let filter = status.map(|s| s.to_string()).unwrap_or_else(|| "%".into());
        let total: i64 = self.query("SELECT COUNT(*) FROM outbox WHERE project = $2 AND status LIKE $1", &[&filter, &project])?[0].get(0);
        let rows = self.query(
            &format!("SELECT {ITEM_COLUMNS} FROM outbox WHERE project = $4 AND status LIKE $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"),
            &[&filter, &(limit as i64), &(offset as i64), &project],
        )?;
        Ok((total as usize, rows.iter().map(item).collect()))
    }

    fn redeliver(&self, project: &str, id: &str) -> Result<bool, StateError> {
        let n = self.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, updated_at = $2
             WHERE id = $1 AND status = 'failed' AND project = $3",
            &[&id, &now_ms(), &project],
        )?;
        Ok(n > 0)
    }

    fn counts(&self) -> Result<(u64, u64), StateError> {
        let rows =
            self.query("SELECT COUNT(*) FILTER (WHERE status = 'pending'), COUNT(*) FILTER (WHERE status = 'failed') FROM outbox", &[])?;
        Ok((rows[0].get::<_, i64>(0) as u64, rows[0].get::<_, i64>(1) as u64))
    }
}

impl KeyChainTable for PostgresState {
    fn key_chains(&self) -> Result<Vec<(String, KeyChain)>, StateError> {
        let rows = self.query("SELECT domain, key, auth_type, timeout_secs FROM key_chains ORDER BY domain", &[])?;
        rows.into_iter()
            .map(|r| {
                let (domain, key, auth_type, timeout): (String, String, String, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
                let auth_type = auth_type.parse().map_err(|message| StateError::Corrupt {
                    domain: domain.clone(),
                    app: "(key chain)".into(),
                    message,
                })?;
                Ok((domain, KeyChain { key, auth_type, timeout: Duration::from_secs(timeout.max(0) as u64) }))
            })
            .collect()
    }

    fn put_key_chain(&self, domain: &str, chain: &KeyChain) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO key_chains (domain, key, auth_type, timeout_secs) VALUES ($1, $2, $3, $4)
             ON CONFLICT (domain) DO UPDATE SET key = $2, auth_type = $3, timeout_secs = $4",
            &[&domain, &chain.key, &chain.auth_type.as_str(), &(chain.timeout.as_secs() as i64)],
        )?;
        Ok(())
    }

    fn delete_key_chain(&self, domain: &str) -> Result<bool, StateError> {
        Ok(self.execute("DELETE FROM key_chains WHERE domain = $1", &[&domain])? > 0)
    }
}

impl DomainTable for PostgresState {
    fn domains(&self) -> Result<Vec<Domain>, StateError> {
        let rows =
            self.query("SELECT name, domain_type, region, status, service_area, created_at, project FROM domains ORDER BY name", &[])?;
        Ok(rows
            .into_iter()
            .map(|r| Domain {
                name: r.get(0),
                domain_type: r.get(1),
                region: r.get(2),
                status: r.get(3),
                service_area: r.get(4),
                created_at: r.get(5),
                project: r.get(6),
            })
            .collect())
    }

    fn insert_domain(&self, d: &Domain) -> Result<(), StateError> {
        self.insert(
            "INSERT INTO domains (name, domain_type, region, status, service_area, created_at, project) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&d.name, &d.domain_type, &d.region, &d.status, &d.service_area, &d.created_at, &d.project],
            || StateError::Exists { domain: d.name.clone(), app: "(domain)".into() },
        )
    }

    fn set_domain_status(&self, name: &str, status: &str) -> Result<bool, StateError> {
        Ok(self.execute("UPDATE domains SET status = $2 WHERE name = $1", &[&name, &status])? > 0)
    }

    fn delete_domain(&self, name: &str) -> Result<bool, StateError> {
        Ok(self.execute("DELETE FROM domains WHERE name = $1", &[&name])? > 0)
    }

    fn authorized_buckets(&self) -> Result<Vec<(String, String)>, StateError> {
        let rows = self.query("SELECT project, bucket FROM bucket_authority ORDER BY project, bucket", &[])?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn set_bucket_authorized(&self, project: &str, bucket: &str, authorized: bool) -> Result<(), StateError> {
        if authorized {
            self.execute("INSERT INTO bucket_authority (project, bucket) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&project, &bucket])?;
        } else {
            self.execute("DELETE FROM bucket_authority WHERE project = $1 AND bucket = $2", &[&project, &bucket])?;
        }
        Ok(())
    }
}

impl UsageTable for PostgresState {
    fn count_snapshot(&self, project: &str, domain: &str, hour: i64) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO usage (project, domain, hour, snapshots) VALUES ($1, $2, $3, 1)
             ON CONFLICT (project, domain, hour) DO UPDATE SET snapshots = usage.snapshots + 1",
            &[&project, &domain, &hour],
        )?;
        Ok(())
    }

    fn snapshot_counts(&self, project: &str, domain: Option<&str>, from: i64, to: i64) -> Result<Vec<(i64, u64)>, StateError> {
        let rows = self.query(
            "SELECT hour, SUM(snapshots)::BIGINT FROM usage WHERE project = $4 AND hour BETWEEN $1 AND $2 AND ($3::TEXT IS NULL OR domain = $3)
             GROUP BY hour ORDER BY hour",
            &[&from, &to, &domain, &project],
        )?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
    }
}

impl SourceTable for PostgresState {
    fn sources(&self) -> Result<Vec<Source>, StateError> {
        let rows = self.query("SELECT domain, app, stream, url FROM sources ORDER BY domain, app, stream", &[])?;
        Ok(rows.into_iter().map(|r| Source { domain: r.get(0), app: r.get(1), stream: r.get(2), url: r.get(3) }).collect())
    }

    fn put_source(&self, s: &Source) -> Result<bool, StateError> {
        // xmax is 0 for a row the statement inserted, not for one it updated.
        let rows = self.query(
            "INSERT INTO sources (domain, app, stream, url, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (domain, app, stream) DO UPDATE SET url = $4 RETURNING (xmax <> 0)",
            &[&s.domain, &s.app, &s.stream, &s.url, &now()],
        )?;
        Ok(rows[0].get(0))
    }

    fn delete_source(&self, domain: &str, app: &str, stream: &str) -> Result<bool, StateError> {
        Ok(self.execute("DELETE FROM sources WHERE domain = $1 AND app = $2 AND stream = $3", &[&domain, &app, &stream])? > 0)
    }
}

fn module(r: &Row) -> ModuleRecord {
    let hosts: String = r.get(3);
    let env: String = r.get(4);
    ModuleRecord {
        name: r.get(0),
        sha256: r.get(1),
        bytes: r.get(2),
        allowed_outbound_hosts: serde_json::from_str(&hosts).unwrap_or_default(),
        environment: serde_json::from_str(&env).unwrap_or_default(),
        uploaded_at: r.get(5),
        project: r.get(6),
    }
}

const MODULE_COLUMNS: &str = "name, sha256, bytes, allowed_outbound_hosts, environment, uploaded_at, project";

impl ModuleTable for PostgresState {
    fn put_module(&self, m: &ModuleRecord) -> Result<bool, StateError> {
        let rows = self.query(
            &format!(
                "INSERT INTO modules ({MODULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (project, name) DO UPDATE SET sha256 = $2, bytes = $3, allowed_outbound_hosts = $4, environment = $5,
                     uploaded_at = $6
                 RETURNING (xmax <> 0)"
            ),
            &[
                &m.name,
                &m.sha256,
                &m.bytes,
                &serde_json::to_string(&m.allowed_outbound_hosts).unwrap(),
                &serde_json::to_string(&m.environment).unwrap(),
                &now(),
                &m.project,
            ],
        )?;
        Ok(rows[0].get(0))
    }

    fn modules(&self) -> Result<Vec<ModuleRecord>, StateError> {
        Ok(self.query(&format!("SELECT {MODULE_COLUMNS} FROM modules ORDER BY project, name"), &[])?.iter().map(module).collect())
    }

    fn module(&self, project: &str, name: &str) -> Result<Option<ModuleRecord>, StateError> {
        let rows = self.query(&format!("SELECT {MODULE_COLUMNS} FROM modules WHERE project = $1 AND name = $2"), &[&project, &name])?;
        Ok(rows.first().map(module))
    }

    fn module_versions(&self) -> Result<Vec<(String, ModuleSummary)>, StateError> {
        let rows =
            self.query("SELECT project, name, sha256, octet_length(bytes)::BIGINT, uploaded_at FROM modules ORDER BY project, name", &[])?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let summary = ModuleSummary { name: r.get(1), sha256: r.get(2), size: r.get::<_, i64>(3) as usize, uploaded_at: r.get(4) };
                (r.get(0), summary)
            })
            .collect())
    }

    fn module_summaries(&self, project: &str) -> Result<Vec<ModuleSummary>, StateError> {
        let rows = self.query(
            "SELECT name, sha256, octet_length(bytes)::BIGINT, uploaded_at FROM modules WHERE project = $1 ORDER BY name",
            &[&project],
        )?;
        Ok(rows
            .into_iter()
            .map(|r| ModuleSummary { name: r.get(0), sha256: r.get(1), size: r.get::<_, i64>(2) as usize, uploaded_at: r.get(3) })
            .collect())
    }

    fn delete_module(&self, project: &str, name: &str) -> Result<bool, StateError> {
        Ok(self.execute("DELETE FROM modules WHERE project = $1 AND name = $2", &[&project, &name])? > 0)
    }
}

const PROJECT_COLUMNS: &str = "id, name, access_key, secret_key, token_sha256, created_at";

fn project(r: &Row) -> Project {
    Project {
        id: r.get(0),
        name: r.get(1),
        access_key: r.get(2),
        secret_key: Secret::new(r.get::<_, String>(3)),
        token_sha256: r.get(4),
        created_at: r.get(5),
    }
}

impl ProjectTable for PostgresState {
    fn projects(&self) -> Result<Vec<Project>, StateError> {
        Ok(self.query(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name"), &[])?.iter().map(project).collect())
    }

    fn project_by(&self, key: ProjectKey, value: &str) -> Result<Option<Project>, StateError> {
        let rows = self.query(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE {} = $1", key.column()), &[&value])?;
        Ok(rows.first().map(project))
    }

    fn insert_project(&self, p: &Project) -> Result<(), StateError> {
        self.insert(
            &format!("INSERT INTO projects ({PROJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
            &[&p.id, &p.name, &p.access_key, &p.secret_key.expose(), &p.token_sha256, &p.created_at],
            || StateError::Conflict(format!("a project named '{}' already exists", p.name)),
        )
    }

    fn set_project_keys(&self, id: &str, access_key: &str, secret_key: &Secret, token_sha256: &str) -> Result<bool, StateError> {
        let n = self.execute(
            "UPDATE projects SET access_key = $2, secret_key = $3, token_sha256 = $4 WHERE id = $1",
            &[&id, &access_key, &secret_key.expose(), &token_sha256],
        )?;
        Ok(n > 0)
    }

    fn delete_project(&self, id: &str) -> Result<bool, StateError> {
        let mut c = self.client()?;
        block_on(async {
            let tx = c.transaction().await?;
            // Locks the project row first: a domain created meanwhile waits.
            tx.execute("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", &[&id]).await?;
            let domains: i64 = tx.query_one("SELECT COUNT(*) FROM domains WHERE project = $1", &[&id]).await?.get(0);
            if domains > 0 {
                return Ok(Err(StateError::Conflict(format!("the project owns {domains} domain(s); delete them through the API first"))));
            }
            tx.execute("DELETE FROM bucket_authority WHERE project = $1", &[&id]).await?;
            tx.execute("DELETE FROM modules WHERE project = $1", &[&id]).await?;
            let n = tx.execute("DELETE FROM projects WHERE id = $1", &[&id]).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(Ok(n > 0))
        })?
    }
}

impl KeyValueTable for PostgresState {
    fn kv_get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.query("SELECT value FROM kv WHERE store = $1 AND key = $2", &[&store, &key])?.first().map(|r| r.get(0)))
    }

    fn kv_set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO kv (store, key, value) VALUES ($1, $2, $3) ON CONFLICT (store, key) DO UPDATE SET value = $3",
            &[&store, &key, &value],
        )?;
        Ok(())
    }

    fn kv_delete(&self, store: &str, key: &str) -> Result<(), StateError> {
        self.execute("DELETE FROM kv WHERE store = $1 AND key = $2", &[&store, &key])?;
        Ok(())
    }

    fn kv_keys(&self, store: &str) -> Result<Vec<String>, StateError> {
        Ok(self.query("SELECT key FROM kv WHERE store = $1 ORDER BY key", &[&store])?.into_iter().map(|r| r.get(0)).collect())
    }
}

fn lease(r: &Row) -> StreamLease {
    StreamLease { domain: r.get(0), app: r.get(1), stream: r.get(2), node: r.get(3), owner: r.get(4), info: r.get(5), expires_at: r.get(6) }
}

impl LeaseTable for PostgresState {
    fn acquire_stream(&self, l: &StreamLease, now: i64) -> Result<bool, StateError> {
        // The conflicting row is locked by the upsert, so two nodes racing
        // for an expired lease see one winner.
        let n = self.execute(
            "INSERT INTO stream_leases (domain, app, stream, node, owner, info, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (domain, app, stream) DO UPDATE SET node = $4, owner = $5, info = $6, expires_at = $7
             WHERE stream_leases.expires_at <= $8 OR stream_leases.node = $4",
            &[&l.domain, &l.app, &l.stream, &l.node, &l.owner, &l.info, &l.expires_at, &now],
        )?;
        Ok(n > 0)
    }

    fn renew_streams(&self, node: &str, streams: &[(String, String, String, String)], until: i64) -> Result<usize, StateError> {
        let column = |i: usize| -> Vec<&str> {
            streams
                .iter()
                .map(|s| match i {
                    0 => s.0.as_str(),
                    1 => s.1.as_str(),
                    2 => s.2.as_str(),
                    _ => s.3.as_str(),
                })
                .collect()
        };
        let (domains, apps, names, infos) = (column(0), column(1), column(2), column(3));
        // One statement for all of a node's streams.
        let n = self.execute(
            "UPDATE stream_leases l SET info = u.info, expires_at = $2
             FROM unnest($3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[]) AS u(domain, app, stream, info)
             WHERE l.node = $1 AND l.domain = u.domain AND l.app = u.app AND l.stream = u.stream",
            &[&node, &until, &domains, &apps, &names, &infos],
        )?;
        Ok(n as usize)
    }

    fn release_stream(&self, node: &str, domain: &str, app: &str, stream: &str) -> Result<bool, StateError> {
        let n = self.execute(
            "DELETE FROM stream_leases WHERE node = $1 AND domain = $2 AND app = $3 AND stream = $4",
            &[&node, &domain, &app, &stream],
        )?;
        Ok(n > 0)
    }

    fn release_node(&self, node: &str) -> Result<usize, StateError> {
        Ok(self.execute("DELETE FROM stream_leases WHERE node = $1", &[&node])? as usize)
    }

    fn stream_leases(&self, now: i64) -> Result<Vec<StreamLease>, StateError> {
        let rows = self.query(
            "SELECT domain, app, stream, node, owner, info, expires_at FROM stream_leases WHERE expires_at > $1 ORDER BY domain, app, stream",
            &[&now],
        )?;
        Ok(rows.iter().map(lease).collect())
    }
}

impl RequestTable for PostgresState {
    fn ask(&self, id: &str, node: &str, owner: &str, stream: (&str, &str, &str), now: i64) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO snapshot_requests (id, node, owner, domain, app, stream, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&id, &node, &owner, &stream.0, &stream.1, &stream.2, &now],
        )?;
        Ok(())
    }

    fn asked(&self, node: &str) -> Result<Vec<SnapshotRequest>, StateError> {
        let rows = self.query(
            "SELECT id, owner, domain, app, stream FROM snapshot_requests WHERE node = $1 AND NOT answered ORDER BY created_at",
            &[&node],
        )?;
        Ok(rows.into_iter().map(|r| SnapshotRequest { id: r.get(0), owner: r.get(1), stream: (r.get(2), r.get(3), r.get(4)) }).collect())
    }

    fn answer(&self, id: &str, answer: Result<&str, &str>) -> Result<(), StateError> {
        self.execute(
            "UPDATE snapshot_requests SET answered = true, answer = $2, error = $3 WHERE id = $1",
            &[&id, &answer.ok(), &answer.err()],
        )?;
        Ok(())
    }

    fn answer_of(&self, id: &str) -> Result<Option<Result<String, String>>, StateError> {
        let rows = self.query("SELECT answer, error FROM snapshot_requests WHERE id = $1 AND answered", &[&id])?;
        Ok(rows.first().map(|r| match r.get::<_, Option<String>>(0) {
            Some(answer) => Ok(answer),
            None => Err(r.get::<_, Option<String>>(1).unwrap_or_default()),
        }))
    }

    fn forget(&self, id: &str, before: i64) -> Result<(), StateError> {
        self.execute("DELETE FROM snapshot_requests WHERE id = $1 OR created_at < $2", &[&id, &before])?;
        Ok(())
    }
}

impl SessionTable for PostgresState {
    fn open_session(&self, id: &str, token: &str, now: i64, idle_before: i64, max_per_token: usize) -> Result<(), StateError> {
        let mut c = self.client()?;
        block_on(async {
            let tx = c.transaction().await?;
            tx.execute("DELETE FROM console_sessions WHERE last_seen < $1", &[&idle_before]).await?;
            tx.execute(
                "INSERT INTO console_sessions (id_sha256, token_sha256, last_seen) VALUES ($1, $2, $3)
                 ON CONFLICT (id_sha256) DO UPDATE SET token_sha256 = $2, last_seen = $3",
                &[&id, &token, &now],
            )
            .await?;
            tx.execute(
                "DELETE FROM console_sessions WHERE token_sha256 = $1 AND id_sha256 NOT IN
                    (SELECT id_sha256 FROM console_sessions WHERE token_sha256 = $1 ORDER BY last_seen DESC, id_sha256 = $3 DESC LIMIT $2)",
                &[&token, &(max_per_token as i64), &id],
            )
            .await?;
            tx.commit().await
        })?;
        Ok(())
    }

    fn session(&self, id: &str, now: i64, idle_before: i64) -> Result<Option<String>, StateError> {
        let rows = self.query(
            "UPDATE console_sessions SET last_seen = $2 WHERE id_sha256 = $1 AND last_seen >= $3 RETURNING token_sha256",
            &[&id, &now, &idle_before],
        )?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn close_session(&self, id: &str) -> Result<(), StateError> {
        self.execute("DELETE FROM console_sessions WHERE id_sha256 = $1", &[&id])?;
        Ok(())
    }
}

impl SignatureTable for PostgresState {
    fn first_use(&self, signature: &str, expires_at: i64, now: i64) -> Result<bool, StateError> {
        self.execute("DELETE FROM signatures WHERE expires_at <= $1", &[&now])?;
        // A row another node is inserting right now waits for it: one of the two wins.
        let n = self.execute(
            "INSERT INTO signatures (signature, expires_at) VALUES ($1, $2) ON CONFLICT (signature) DO NOTHING",
            &[&signature, &expires_at],
        )?;
        Ok(n > 0)
    }
}

impl RevisionTable for PostgresState {
    fn revision(&self) -> Result<i64, StateError> {
        Ok(self.query("SELECT n FROM revision WHERE id = 1", &[])?[0].get(0))
    }
}

impl StateDb for PostgresState {
    fn shared(&self) -> bool {
        true
    }
}
