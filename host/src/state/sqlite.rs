//! The embedded SQLite state database (WAL mode, versioned migrations).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, ErrorCode, params};

use super::{StateError, TemplateStore};
use crate::config::SnapshotConfig;

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
];

/// State in one SQLite file.
pub struct SqliteState {
    db: Mutex<Connection>,
}

impl SqliteState {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Open { path: path.to_owned(), source })?;
        }
        let db = Connection::open(path)?;
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

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn app_of(c: &SnapshotConfig) -> String {
    c.app_name.clone().unwrap_or_else(|| "live".into())
}

impl TemplateStore for SqliteState {
    fn templates(&self) -> Result<Vec<SnapshotConfig>, StateError> {
        let db = self.db.lock().unwrap();
        let mut q = db.prepare("SELECT domain, app_name, config FROM templates ORDER BY domain, app_name")?;
        let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (domain, app, json) = row?;
            let config = serde_json::from_str(&json)
                .map_err(|e| StateError::Corrupt { domain, app, message: e.to_string() })?;
            out.push(config);
        }
        Ok(out)
    }

    fn insert_template(&self, c: &SnapshotConfig) -> Result<(), StateError> {
        let json = serde_json::to_string(c).expect("templates serialize");
        let db = self.db.lock().unwrap();
        match db.execute(
            "INSERT INTO templates (domain, app_name, config, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![c.domain, app_of(c), json, now()],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
                Err(StateError::Exists { domain: c.domain.clone(), app: app_of(c) })
            }
            Err(e) => Err(e.into()),
        }
    }

    fn update_template(&self, c: &SnapshotConfig) -> Result<bool, StateError> {
        let json = serde_json::to_string(c).expect("templates serialize");
        let db = self.db.lock().unwrap();
        let n = db.execute(
            "UPDATE templates SET config = ?3, updated_at = ?4 WHERE domain = ?1 AND app_name = ?2",
            params![c.domain, app_of(c), json, now()],
        )?;
        Ok(n > 0)
    }

    fn delete_template(&self, domain: &str, app: &str) -> Result<bool, StateError> {
        let db = self.db.lock().unwrap();
        Ok(db.execute("DELETE FROM templates WHERE domain = ?1 AND app_name = ?2", params![domain, app])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::template::ObsLocation;

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
}
