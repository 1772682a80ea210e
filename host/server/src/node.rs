//! This node among the nodes sharing a state database: its name, whether
//! the state is shared, and the tenant modules it has loaded (what the
//! watch in `cluster` compares with the database).

use std::collections::HashMap;
use std::sync::Mutex;

/// This node among the nodes sharing state.
pub struct Node {
    name: String,
    shared: bool,
    /// The tenant modules this node has loaded: runtime key → version.
    modules: Mutex<HashMap<String, String>>,
}

impl Node {
    /// Node `name`; `shared` when the state database is shared; `modules`
    /// the tenant modules loaded at start (runtime key → [`module_version`]).
    pub fn new(name: String, shared: bool, modules: HashMap<String, String>) -> Self {
        Self { name, shared, modules: Mutex::new(modules) }
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether other nodes share the state.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// The loaded tenant modules (runtime key → [`module_version`]), for
    /// the watch to compare with the database.
    pub fn modules(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.modules.lock().unwrap()
    }
}

/// What tells one upload of a module from another: its hash and its upload
/// time (a re-upload of the same bytes may change its grants).
pub fn module_version(sha256: &str, uploaded_at: i64) -> String {
    format!("{sha256}@{uploaded_at}")
}
