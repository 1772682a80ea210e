//! The embedded SQLite state database (WAL mode, versioned migrations).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, ErrorCode, params};

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

/// Migrations in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: templates created through the API.
    "CREATE TABLE templates (
        domain TEXT NOT NULL,
        app_name TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (domain, app_name)
    );",
    // 2: the callback outbox.
    "CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        destination TEXT NOT NULL,
        url TEXT NOT NULL,
        headers TEXT NOT NULL,
        body BLOB NOT NULL,
        resign TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);",
    // 3: Spin key-value stores of [[trigger.http]] components.
    "CREATE TABLE kv (
        store TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (store, key)
    );",
    // 4: tenant modules uploaded through the API.
    "CREATE TABLE modules (
        name TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        bytes BLOB NOT NULL,
        allowed_outbound_hosts TEXT NOT NULL,
        environment TEXT NOT NULL,
        uploaded_at INTEGER NOT NULL
    );",
    // 5: ingest URL validation key chains per push domain.
    "CREATE TABLE key_chains (
        domain TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        auth_type TEXT NOT NULL,
        timeout_secs INTEGER NOT NULL
    );",
    // 6: pull sources.
    "CREATE TABLE sources (
        domain TEXT NOT NULL,
        app TEXT NOT NULL,
        stream TEXT NOT NULL,
        url TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (domain, app, stream)
    );",
    // 7: snapshots stored per domain and hour (usage).
    "CREATE TABLE usage (
        domain TEXT NOT NULL,
        hour INTEGER NOT NULL,
        snapshots INTEGER NOT NULL,
        PRIMARY KEY (domain, hour)
    );",
    // 8: domains created through the API, and authorized buckets (the
    // buckets API templates already use stay usable: they count as authorized).
    "CREATE TABLE domains (
        name TEXT PRIMARY KEY,
        domain_type TEXT NOT NULL,
        region TEXT NOT NULL,
        status TEXT NOT NULL,
        service_area TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE bucket_authority (bucket TEXT PRIMARY KEY);
    INSERT OR IGNORE INTO bucket_authority SELECT DISTINCT json_extract(config, '$.obs_location.bucket') FROM templates
        WHERE json_extract(config, '$.obs_location.bucket') IS NOT NULL;",
    // 9: projects; what was there belongs to the default project.
    "CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        access_key TEXT NOT NULL UNIQUE,
        secret_key TEXT NOT NULL,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    ALTER TABLE domains ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE outbox ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
    CREATE TABLE bucket_authority_9 (project TEXT NOT NULL, bucket TEXT NOT NULL, PRIMARY KEY (project, bucket));
    INSERT INTO bucket_authority_9 SELECT 'default', bucket FROM bucket_authority;
    DROP TABLE bucket_authority;
    ALTER TABLE bucket_authority_9 RENAME TO bucket_authority;
    CREATE TABLE usage_9 (project TEXT NOT NULL, domain TEXT NOT NULL, hour INTEGER NOT NULL, snapshots INTEGER NOT NULL,
        PRIMARY KEY (project, domain, hour));
    INSERT INTO usage_9 SELECT 'default', domain, hour, snapshots FROM usage;
    DROP TABLE usage;
    ALTER TABLE usage_9 RENAME TO usage;
    CREATE TABLE modules_9 (
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes BLOB NOT NULL,
        allowed_outbound_hosts TEXT NOT NULL,
        environment TEXT NOT NULL,
        uploaded_at INTEGER NOT NULL,
        PRIMARY KEY (project, name)
    );
    INSERT INTO modules_9 SELECT 'default', name, sha256, bytes, allowed_outbound_hosts, environment, uploaded_at FROM modules;
    DROP TABLE modules;
    ALTER TABLE modules_9 RENAME TO modules;",
    // 10: claims on callbacks, stream leases and the configuration revision
    // (what several nodes share; one node keeps them too, so both backends
    // answer alike).
    "ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN claim_until INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE stream_leases (
        domain TEXT NOT NULL,
        app TEXT NOT NULL,
        stream TEXT NOT NULL,
        node TEXT NOT NULL,
        owner TEXT NOT NULL,
        info TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (domain, app, stream)
    );
    CREATE TABLE snapshot_requests (
        id TEXT PRIMARY KEY, node TEXT NOT NULL, owner TEXT NOT NULL, domain TEXT NOT NULL, app TEXT NOT NULL,
        stream TEXT NOT NULL, created_at INTEGER NOT NULL, answered INTEGER NOT NULL DEFAULT 0, answer TEXT, error TEXT
    );
    CREATE INDEX snapshot_requests_node ON snapshot_requests (node, answered);
    CREATE TABLE console_sessions (id_sha256 TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL, last_seen INTEGER NOT NULL);
    CREATE INDEX console_sessions_token ON console_sessions (token_sha256, last_seen);
    CREATE TABLE signatures (signature TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
    CREATE INDEX signatures_expiry ON signatures (expires_at);
    CREATE TABLE revision (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
    INSERT INTO revision VALUES (1, 0);
    CREATE TRIGGER templates_insert AFTER INSERT ON templates BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER templates_update AFTER UPDATE ON templates BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER templates_delete AFTER DELETE ON templates BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER domains_insert AFTER INSERT ON domains BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER domains_update AFTER UPDATE ON domains BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER domains_delete AFTER DELETE ON domains BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER bucket_authority_insert AFTER INSERT ON bucket_authority BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER bucket_authority_update AFTER UPDATE ON bucket_authority BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER bucket_authority_delete AFTER DELETE ON bucket_authority BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER key_chains_insert AFTER INSERT ON key_chains BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER key_chains_update AFTER UPDATE ON key_chains BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER key_chains_delete AFTER DELETE ON key_chains BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER modules_insert AFTER INSERT ON modules BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER modules_update AFTER UPDATE ON modules BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER modules_delete AFTER DELETE ON modules BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER sources_insert AFTER INSERT ON sources BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER sources_update AFTER UPDATE ON sources BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER sources_delete AFTER DELETE ON sources BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER projects_insert AFTER INSERT ON projects BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER projects_update AFTER UPDATE ON projects BEGIN UPDATE revision SET n = n + 1; END;
    CREATE TRIGGER projects_delete AFTER DELETE ON projects BEGIN UPDATE revision SET n = n + 1; END;",
];

/// State in one SQLite file.
pub struct SqliteState {
    db: Mutex<Connection>,
}

impl SqliteState {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let io = |source| StateError::Open { path: path.to_owned(), source };
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
        }
        // Owner-only from the first byte; SQLite gives its WAL and shm files
        // the database file's mode.
        std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(path).map_err(io)?;
        Self::migrate(Connection::open(path)?)
    }

    /// A database that lives as long as the process (for one-off runs).
    pub fn in_memory() -> Result<Self, StateError> {
        Self::migrate(Connection::open_in_memory()?)
    }

    fn migrate(db: Connection) -> Result<Self, StateError> {
        Self::migrated(db).and_then(|s| {
            // One node owns this file: claims left by its earlier run (which
            // may have crashed mid-attempt) are void.
            s.db.lock().unwrap().execute("UPDATE outbox SET claimed_by = NULL, claim_until = 0 WHERE claim_until > 0", [])?;
            Ok(s)
        })
    }

    fn migrated(db: Connection) -> Result<Self, StateError> {
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        let version: usize = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = db.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        Ok(Self { db: Mutex::new(db) })
    }
}

fn now_ms() -> i64 {
    crate::time::unix_ms() as i64
}

fn now() -> i64 {
    crate::time::unix_secs() as i64
}

impl TemplateTable for SqliteState {
    fn templates(&self) -> Result<Vec<SnapshotConfig>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare("SELECT domain, app_name, config FROM templates ORDER BY domain, app_name")?;
        let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (domain, app, json) = row?;
            let config = serde_json::from_str(&json).map_err(|e| StateError::Corrupt { domain, app, message: e.to_string() })?;
            out.push(config);
        }
        Ok(out)
    }

    fn insert_template(&self, c: &SnapshotConfig) -> Result<(), StateError> {
        let json = serde_json::to_string(c).expect("templates serialize");
        let db = self.db.lock().unwrap();
        match db.execute(
            "INSERT INTO templates (domain, app_name, config, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![c.domain, c.app(), json, now()],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
                Err(StateError::Exists { domain: c.domain.clone(), app: c.app().to_string() })
            }
            Err(e) => Err(e.into()),
        }
    }

    fn update_template(&self, c: &SnapshotConfig) -> Result<bool, StateError> {
        let json = serde_json::to_string(c).expect("templates serialize");
        let db = self.db.lock().unwrap();
        let n = db.execute(
            "UPDATE templates SET config = ?3, updated_at = ?4 WHERE domain = ?1 AND app_name = ?2",
            params![c.domain, c.app(), json, now()],
        )?;
        Ok(n > 0)
    }

    fn delete_template(&self, domain: &str, app: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.execute("DELETE FROM templates WHERE domain = ?1 AND app_name = ?2", params![domain, app])? > 0)
    }
}

const ITEM_COLUMNS: &str =
    "id, destination, url, headers, body, resign, status, attempts, next_attempt_at, last_error, created_at, updated_at, project";

fn item(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxItem> {
    let headers: String = r.get(3)?;
    let status: String = r.get(6)?;
    Ok(OutboxItem {
        id: r.get(0)?,
        destination: r.get(1)?,
        url: r.get(2)?,
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        body: r.get(4)?,
        resign: r.get(5)?,
        status: status.parse().unwrap_or(OutboxStatus::Pending),
        attempts: r.get(7)?,
        next_attempt_at: r.get(8)?,
        last_error: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        project: r.get(12)?,
    })
}

impl OutboxTable for SqliteState {
    fn enqueue(&self, i: &OutboxItem) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        let n = db.execute(
            "INSERT OR IGNORE INTO outbox (id, destination, url, headers, body, resign, status, attempts, next_attempt_at, created_at, updated_at, project)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7, ?7, ?8)",
            params![i.id, i.destination, i.url, serde_json::to_string(&i.headers).unwrap(), i.body, i.resign, now_ms(), i.project],
        )?;
        Ok(n > 0)
    }

    fn due(&self, now: i64, limit: usize) -> Result<Vec<OutboxItem>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare(&format!(
            "SELECT {ITEM_COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 AND claim_until <= ?1
             ORDER BY next_attempt_at LIMIT ?2"
        ))?;
        let rows = q.query_map(params![now, limit as i64], item)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn claim(&self, id: &str, node: &str, now: i64, until: i64) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        let n = db.execute(
            "UPDATE outbox SET claimed_by = ?2, claim_until = ?4
             WHERE id = ?1 AND status = 'pending' AND next_attempt_at <= ?3 AND (claim_until <= ?3 OR claimed_by = ?2)",
            params![id, node, now, until],
        )?;
        Ok(n > 0)
    }

    fn release_claims(&self, node: &str) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute("UPDATE outbox SET claimed_by = NULL, claim_until = 0 WHERE claimed_by = ?1", params![node])?;
        Ok(())
    }

    fn next_due(&self) -> Result<Option<i64>, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.query_row("SELECT MIN(MAX(next_attempt_at, claim_until)) FROM outbox WHERE status = 'pending'", [], |r| r.get(0))?)
    }

    fn record_attempt(&self, i: &OutboxItem) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute(
            "UPDATE outbox SET url = ?2, headers = ?3, body = ?4, status = ?5, attempts = ?6, next_attempt_at = ?7, last_error = ?8, updated_at = ?9,
                claimed_by = NULL, claim_until = 0 WHERE id = ?1",
            params![
                i.id,
                i.url,
                serde_json::to_string(&i.headers).unwrap(),
                i.body,
                i.status.to_string(),
                i.attempts,
                i.next_attempt_at,
                i.last_error,
                now_ms()
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
        let db = self.db.lock().unwrap();
        let filter = status.map(|s| s.to_string()).unwrap_or_else(|| "%".into());
        let total: i64 =
            db.query_row("SELECT COUNT(*) FROM outbox WHERE project = ?2 AND status LIKE ?1", params![filter, project], |r| r.get(0))?;
        let mut q = db.prepare(&format!(
            "SELECT {ITEM_COLUMNS} FROM outbox WHERE project = ?4 AND status LIKE ?1 ORDER BY created_at, id LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = q.query_map(params![filter, limit as i64, offset as i64, project], item)?;
        Ok((total as usize, rows.collect::<Result<_, _>>()?))
    }

    fn redeliver(&self, project: &str, id: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        let n = db.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?2, updated_at = ?2
             WHERE id = ?1 AND status = 'failed' AND project = ?3",
            params![id, now_ms(), project],
        )?;
        Ok(n > 0)
    }

    fn counts(&self) -> Result<(u64, u64), StateError> {
        let db = self.db.lock().unwrap();
        let count = |s: &str| -> Result<u64, StateError> {
            Ok(db.query_row("SELECT COUNT(*) FROM outbox WHERE status = ?1", params![s], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok((count("pending")?, count("failed")?))
    }
}

impl KeyChainTable for SqliteState {
    fn key_chains(&self) -> Result<Vec<(String, KeyChain)>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare("SELECT domain, key, auth_type, timeout_secs FROM key_chains ORDER BY domain")?;
        let rows =
            q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (domain, key, auth_type, timeout) = row?;
            let auth_type =
                auth_type.parse().map_err(|message| StateError::Corrupt { domain: domain.clone(), app: "(key chain)".into(), message })?;
            out.push((domain, KeyChain { key, auth_type, timeout: std::time::Duration::from_secs(timeout.max(0) as u64) }));
        }
        Ok(out)
    }

    fn put_key_chain(&self, domain: &str, chain: &KeyChain) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute(
            "INSERT INTO key_chains (domain, key, auth_type, timeout_secs) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(domain) DO UPDATE SET key = ?2, auth_type = ?3, timeout_secs = ?4",
            params![domain, chain.key, chain.auth_type.as_str(), chain.timeout.as_secs() as i64],
        )?;
        Ok(())
    }

    fn delete_key_chain(&self, domain: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.execute("DELETE FROM key_chains WHERE domain = ?1", params![domain])? > 0)
    }
}

impl DomainTable for SqliteState {
    fn domains(&self) -> Result<Vec<Domain>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare("SELECT name, domain_type, region, status, service_area, created_at, project FROM domains ORDER BY name")?;
        let rows = q.query_map([], |r| {
            Ok(Domain {
                name: r.get(0)?,
                domain_type: r.get(1)?,
                region: r.get(2)?,
                status: r.get(3)?,
                service_area: r.get(4)?,
                created_at: r.get(5)?,
                project: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn insert_domain(&self, d: &Domain) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        match db.execute(
            "INSERT INTO domains (name, domain_type, region, status, service_area, created_at, project) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![d.name, d.domain_type, d.region, d.status, d.service_area, d.created_at, d.project],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
                Err(StateError::Exists { domain: d.name.clone(), app: "(domain)".into() })
            }
            Err(e) => Err(e.into()),
        }
    }

    fn set_domain_status(&self, name: &str, status: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.execute("UPDATE domains SET status = ?2 WHERE name = ?1", params![name, status])? > 0)
    }

    fn delete_domain(&self, name: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.execute("DELETE FROM domains WHERE name = ?1", params![name])? > 0)
    }

    fn authorized_buckets(&self) -> Result<Vec<(String, String)>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare("SELECT project, bucket FROM bucket_authority ORDER BY project, bucket")?;
        let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_bucket_authorized(&self, project: &str, bucket: &str, authorized: bool) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        if authorized {
            db.execute("INSERT OR IGNORE INTO bucket_authority (project, bucket) VALUES (?1, ?2)", params![project, bucket])?;
        } else {
            db.execute("DELETE FROM bucket_authority WHERE project = ?1 AND bucket = ?2", params![project, bucket])?;
        }
        Ok(())
    }
}

impl UsageTable for SqliteState {
    fn count_snapshot(&self, project: &str, domain: &str, hour: i64) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute(
            "INSERT INTO usage (project, domain, hour, snapshots) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT(project, domain, hour) DO UPDATE SET snapshots = snapshots + 1",
            params![project, domain, hour],
        )?;
        Ok(())
    }

    fn snapshot_counts(&self, project: &str, domain: Option<&str>, from: i64, to: i64) -> Result<Vec<(i64, u64)>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare(
            "SELECT hour, SUM(snapshots) FROM usage WHERE project = ?4 AND hour BETWEEN ?1 AND ?2 AND (?3 IS NULL OR domain = ?3)
             GROUP BY hour ORDER BY hour",
        )?;
        let rows = q.query_map(params![from, to, domain, project], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl SourceTable for SqliteState {
    fn sources(&self) -> Result<Vec<Source>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare("SELECT domain, app, stream, url FROM sources ORDER BY domain, app, stream")?;
        let rows = q.query_map([], |r| Ok(Source { domain: r.get(0)?, app: r.get(1)?, stream: r.get(2)?, url: r.get(3)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_source(&self, s: &Source) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        let existed: bool = db.query_row(
            "SELECT EXISTS(SELECT 1 FROM sources WHERE domain = ?1 AND app = ?2 AND stream = ?3)",
            params![s.domain, s.app, s.stream],
            |r| r.get(0),
        )?;
        db.execute(
            "INSERT INTO sources (domain, app, stream, url, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(domain, app, stream) DO UPDATE SET url = ?4",
            params![s.domain, s.app, s.stream, s.url, crate::time::unix_secs() as i64],
        )?;
        Ok(existed)
    }

    fn delete_source(&self, domain: &str, app: &str, stream: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.execute("DELETE FROM sources WHERE domain = ?1 AND app = ?2 AND stream = ?3", params![domain, app, stream])? > 0)
    }
}

impl SqliteState {
    fn select_modules(&self, filter: &str, args: impl rusqlite::Params) -> Result<Vec<ModuleRecord>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare(&format!(
            "SELECT name, sha256, bytes, allowed_outbound_hosts, environment, uploaded_at, project FROM modules {filter} ORDER BY project, name"
        ))?;
        let rows = q.query_map(args, |r| {
            let hosts: String = r.get(3)?;
            let env: String = r.get(4)?;
            Ok(ModuleRecord {
                name: r.get(0)?,
                sha256: r.get(1)?,
                bytes: r.get(2)?,
                allowed_outbound_hosts: serde_json::from_str(&hosts).unwrap_or_default(),
                environment: serde_json::from_str(&env).unwrap_or_default(),
                uploaded_at: r.get(5)?,
                project: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl ModuleTable for SqliteState {
    fn put_module(&self, m: &ModuleRecord) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        let existed: bool =
            db.query_row("SELECT COUNT(*) FROM modules WHERE project = ?1 AND name = ?2", params![m.project, m.name], |r| {
                r.get::<_, i64>(0)
            })? > 0;
        db.execute(
            "INSERT OR REPLACE INTO modules (project, name, sha256, bytes, allowed_outbound_hosts, environment, uploaded_at)
             VALUES (?7, ?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                m.name,
                m.sha256,
                m.bytes,
                serde_json::to_string(&m.allowed_outbound_hosts).unwrap(),
                serde_json::to_string(&m.environment).unwrap(),
                now(),
                m.project
            ],
        )?;
        Ok(existed)
    }

    fn modules(&self) -> Result<Vec<ModuleRecord>, StateError> {
        self.select_modules("", params![])
    }

    fn module(&self, project: &str, name: &str) -> Result<Option<ModuleRecord>, StateError> {
        Ok(self.select_modules("WHERE project = ?1 AND name = ?2", params![project, name])?.pop())
    }

    fn module_versions(&self) -> Result<Vec<(String, ModuleSummary)>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare("SELECT project, name, sha256, length(bytes), uploaded_at FROM modules ORDER BY project, name")?;
        let rows = q.query_map([], |r| {
            let summary = ModuleSummary { name: r.get(1)?, sha256: r.get(2)?, size: r.get::<_, i64>(3)? as usize, uploaded_at: r.get(4)? };
            Ok((r.get(0)?, summary))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn module_summaries(&self, project: &str) -> Result<Vec<ModuleSummary>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare("SELECT name, sha256, length(bytes), uploaded_at FROM modules WHERE project = ?1 ORDER BY name")?;
        let rows = q.query_map(params![project], |r| {
            Ok(ModuleSummary { name: r.get(0)?, sha256: r.get(1)?, size: r.get::<_, i64>(2)? as usize, uploaded_at: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_module(&self, project: &str, name: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.execute("DELETE FROM modules WHERE project = ?1 AND name = ?2", params![project, name])? > 0)
    }
}

fn project(r: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        access_key: r.get(2)?,
        secret_key: Secret::new(r.get::<_, String>(3)?),
        token_sha256: r.get(4)?,
        created_at: r.get(5)?,
    })
}

const PROJECT_COLUMNS: &str = "id, name, access_key, secret_key, token_sha256, created_at";

impl ProjectTable for SqliteState {
    fn projects(&self) -> Result<Vec<Project>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name"))?;
        let rows = q.query_map([], project)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn project_by(&self, key: ProjectKey, value: &str) -> Result<Option<Project>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare_cached(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE {} = ?1", key.column()))?;
        let mut rows = q.query_map(params![value], project)?;
        Ok(rows.next().transpose()?)
    }

    fn insert_project(&self, p: &Project) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        match db.execute(
            &format!("INSERT INTO projects ({PROJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            params![p.id, p.name, p.access_key, p.secret_key.expose(), p.token_sha256, p.created_at],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
                Err(StateError::Conflict(format!("a project named '{}' already exists", p.name)))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn set_project_keys(&self, id: &str, access_key: &str, secret_key: &Secret, token_sha256: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        let n = db.execute(
            "UPDATE projects SET access_key = ?2, secret_key = ?3, token_sha256 = ?4 WHERE id = ?1",
            params![id, access_key, secret_key.expose(), token_sha256],
        )?;
        Ok(n > 0)
    }

    fn delete_project(&self, id: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        let tx = db.unchecked_transaction()?;
        let domains: i64 = tx.query_row("SELECT COUNT(*) FROM domains WHERE project = ?1", params![id], |r| r.get(0))?;
        if domains > 0 {
            return Err(StateError::Conflict(format!("the project owns {domains} domain(s); delete them through the API first")));
        }
        tx.execute("DELETE FROM bucket_authority WHERE project = ?1", params![id])?;
        tx.execute("DELETE FROM modules WHERE project = ?1", params![id])?;
        let n = tx.execute("DELETE FROM projects WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(n > 0)
    }
}

impl KeyValueTable for SqliteState {
    fn kv_get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare_cached("SELECT value FROM kv WHERE store = ?1 AND key = ?2")?;
        let mut rows = q.query(params![store, key])?;
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    }

    fn kv_set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute("INSERT OR REPLACE INTO kv (store, key, value) VALUES (?1, ?2, ?3)", params![store, key, value])?;
        Ok(())
    }

    fn kv_delete(&self, store: &str, key: &str) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute("DELETE FROM kv WHERE store = ?1 AND key = ?2", params![store, key])?;
        Ok(())
    }

    fn kv_keys(&self, store: &str) -> Result<Vec<String>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare("SELECT key FROM kv WHERE store = ?1 ORDER BY key")?;
        let rows = q.query_map(params![store], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl LeaseTable for SqliteState {
    fn acquire_stream(&self, l: &StreamLease, now: i64) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        let n = db.execute(
            "INSERT INTO stream_leases (domain, app, stream, node, owner, info, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (domain, app, stream) DO UPDATE SET node = ?4, owner = ?5, info = ?6, expires_at = ?7
             WHERE stream_leases.expires_at <= ?8 OR stream_leases.node = ?4",
            params![l.domain, l.app, l.stream, l.node, l.owner, l.info, l.expires_at, now],
        )?;
        Ok(n > 0)
    }

    fn renew_streams(&self, node: &str, streams: &[(String, String, String, String)], until: i64) -> Result<usize, StateError> {
        let db = self.db.lock().unwrap();
        let tx = db.unchecked_transaction()?;
        let mut held = 0;
        for (domain, app, stream, info) in streams {
            held += tx.execute(
                "UPDATE stream_leases SET info = ?5, expires_at = ?6 WHERE node = ?1 AND domain = ?2 AND app = ?3 AND stream = ?4",
                params![node, domain, app, stream, info, until],
            )?;
        }
        tx.commit()?;
        Ok(held)
    }

    fn release_stream(&self, node: &str, domain: &str, app: &str, stream: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        let n = db.execute(
            "DELETE FROM stream_leases WHERE node = ?1 AND domain = ?2 AND app = ?3 AND stream = ?4",
            params![node, domain, app, stream],
        )?;
        Ok(n > 0)
    }

    fn release_node(&self, node: &str) -> Result<usize, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.execute("DELETE FROM stream_leases WHERE node = ?1", params![node])?)
    }

    fn stream_leases(&self, now: i64) -> Result<Vec<StreamLease>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare(
            "SELECT domain, app, stream, node, owner, info, expires_at FROM stream_leases WHERE expires_at > ?1 ORDER BY domain, app, stream",
        )?;
        let rows = q.query_map(params![now], |r| {
            Ok(StreamLease {
                domain: r.get(0)?,
                app: r.get(1)?,
                stream: r.get(2)?,
                node: r.get(3)?,
                owner: r.get(4)?,
                info: r.get(5)?,
                expires_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl RequestTable for SqliteState {
    fn ask(&self, id: &str, node: &str, owner: &str, stream: (&str, &str, &str), now: i64) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute(
            "INSERT INTO snapshot_requests (id, node, owner, domain, app, stream, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, node, owner, stream.0, stream.1, stream.2, now],
        )?;
        Ok(())
    }

    fn asked(&self, node: &str) -> Result<Vec<SnapshotRequest>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare_cached(
            "SELECT id, owner, domain, app, stream FROM snapshot_requests WHERE node = ?1 AND answered = 0 ORDER BY created_at",
        )?;
        let rows = q.query_map(params![node], |r| {
            Ok(SnapshotRequest { id: r.get(0)?, owner: r.get(1)?, stream: (r.get(2)?, r.get(3)?, r.get(4)?) })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn answer(&self, id: &str, answer: Result<&str, &str>) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute(
            "UPDATE snapshot_requests SET answered = 1, answer = ?2, error = ?3 WHERE id = ?1",
            params![id, answer.ok(), answer.err()],
        )?;
        Ok(())
    }

    fn answer_of(&self, id: &str) -> Result<Option<Result<String, String>>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare_cached("SELECT answer, error FROM snapshot_requests WHERE id = ?1 AND answered = 1")?;
        let mut rows = q.query(params![id])?;
        Ok(match rows.next()? {
            Some(r) => Some(match r.get::<_, Option<String>>(0)? {
                Some(answer) => Ok(answer),
                None => Err(r.get::<_, Option<String>>(1)?.unwrap_or_default()),
            }),
            None => None,
        })
    }

    fn forget(&self, id: &str, before: i64) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute("DELETE FROM snapshot_requests WHERE id = ?1 OR created_at < ?2", params![id, before])?;
        Ok(())
    }
}

impl SessionTable for SqliteState {
    fn open_session(&self, id: &str, token: &str, now: i64, idle_before: i64, max_per_token: usize) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        let tx = db.unchecked_transaction()?;
        tx.execute("DELETE FROM console_sessions WHERE last_seen < ?1", params![idle_before])?;
        tx.execute(
            "INSERT OR REPLACE INTO console_sessions (id_sha256, token_sha256, last_seen) VALUES (?1, ?2, ?3)",
            params![id, token, now],
        )?;
        tx.execute(
            "DELETE FROM console_sessions WHERE token_sha256 = ?1 AND id_sha256 NOT IN
                (SELECT id_sha256 FROM console_sessions WHERE token_sha256 = ?1 ORDER BY last_seen DESC, id_sha256 = ?3 DESC LIMIT ?2)",
            params![token, max_per_token as i64, id],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn session(&self, id: &str, now: i64, idle_before: i64) -> Result<Option<String>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db
            .prepare_cached("UPDATE console_sessions SET last_seen = ?2 WHERE id_sha256 = ?1 AND last_seen >= ?3 RETURNING token_sha256")?;
        let mut rows = q.query(params![id, now, idle_before])?;
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    }

    fn close_session(&self, id: &str) -> Result<(), StateError> {
        let db = self.db.lock().unwrap();
        db.execute("DELETE FROM console_sessions WHERE id_sha256 = ?1", params![id])?;
        Ok(())
    }
}

impl SignatureTable for SqliteState {
    fn first_use(&self, signature: &str, expires_at: i64, now: i64) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        db.execute("DELETE FROM signatures WHERE expires_at <= ?1", params![now])?;
        Ok(db.execute("INSERT OR IGNORE INTO signatures (signature, expires_at) VALUES (?1, ?2)", params![signature, expires_at])? > 0)
    }
}

impl RevisionTable for SqliteState {
    fn revision(&self) -> Result<i64, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.query_row("SELECT n FROM revision WHERE id = 1", [], |r| r.get(0))?)
    }
}

impl StateDb for SqliteState {
    fn shared(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::DEFAULT;
    use crate::template::ObsLocation;

    #[test]
    fn templates_survive_reopening_and_keys_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let t = SnapshotConfig {
            domain: "example.com".into(),
            time_interval: 10,
            obs_location: ObsLocation { bucket: "b".into(), location: "local".into(), object: None },
            ..Default::default()
        };
        {
            let s = SqliteState::open(&path).unwrap();
            s.insert_template(&t).unwrap();
            assert!(matches!(s.insert_template(&t), Err(StateError::Exists { .. })));
            assert!(s.update_template(&SnapshotConfig { time_interval: 20, ..t.clone() }).unwrap());
            assert!(!s.delete_template("example.com", "other").unwrap());
        }
        let s = SqliteState::open(&path).unwrap();
        assert_eq!(s.templates().unwrap()[0].time_interval, 20);
        assert!(s.delete_template("example.com", "live").unwrap());
        assert!(s.templates().unwrap().is_empty());
    }

    #[test]
    fn a_database_from_before_projects_gives_everything_to_the_default_project() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let db = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..8] {
                db.execute_batch(sql).unwrap();
            }
            db.pragma_update(None, "user_version", 8).unwrap();
            db.execute_batch(
                "INSERT INTO domains VALUES ('a.example.com', 'push', 'r', 'on', '', 1);
                 INSERT INTO bucket_authority VALUES ('shots');
                 INSERT INTO usage VALUES ('a.example.com', 3600, 7);
                 INSERT INTO modules VALUES ('enc', 'h', x'00', '[]', '[]', 1);
                 INSERT INTO outbox (id, destination, url, headers, body, status, attempts, next_attempt_at, created_at, updated_at)
                     VALUES ('cb', 'http://x', 'http://x/', '[]', x'00', 'failed', 3, 0, 0, 0);",
            )
            .unwrap();
        }
        let s = SqliteState::open(&path).unwrap();
        assert_eq!(s.domains().unwrap()[0].project, DEFAULT);
        assert_eq!(s.authorized_buckets().unwrap(), [(DEFAULT.to_string(), "shots".to_string())]);
        assert_eq!(s.snapshot_counts(DEFAULT, None, 0, 7200).unwrap(), [(3600, 7)]);
        assert_eq!(s.module(DEFAULT, "enc").unwrap().unwrap().name, "enc");
        assert_eq!(s.list(DEFAULT, None, 10, 0).unwrap().0, 1);
        assert!(!s.redeliver("p2", "cb").unwrap(), "another project cannot redeliver it");
        assert!(s.redeliver(DEFAULT, "cb").unwrap());
    }
}
