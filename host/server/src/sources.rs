//! Pull sources as the service runs them: the state of each (connecting,
//! live, retrying with the last error), and a signal that the wanted set
//! changed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::streams::StreamKey;

/// Where a source is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum SourceStatus {
    /// Connecting (first attempt or after a wait).
    Connecting {
        /// Attempts that failed before this one.
        attempts: u32,
        /// Why the last one failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        last_error: Option<String>,
    },
    /// Receiving pictures.
    Live {
        /// Unix ms it went live.
        since: u64,
    },
    /// Waiting before the next attempt.
    Retrying {
        /// Why the last attempt ended (never with credentials).
        last_error: String,
        /// Unix ms of the next attempt.
        next_attempt_at: u64,
        /// Attempts that failed in a row.
        attempts: u32,
    },
}

/// The running sources' states, and the signal to reconcile them.
#[derive(Default)]
pub struct SourceRegistry {
    statuses: Mutex<BTreeMap<StreamKey, SourceStatus>>,
    changed: tokio::sync::Notify,
}

impl SourceRegistry {
    /// A source's state (`None` when it is not running).
    pub fn status(&self, key: &StreamKey) -> Option<SourceStatus> {
        self.statuses.lock().unwrap().get(key).cloned()
    }

    /// Records a source's state.
    pub fn set(&self, key: &StreamKey, status: SourceStatus) {
        self.statuses.lock().unwrap().insert(key.clone(), status);
    }

    /// Forgets a stopped source.
    pub fn remove(&self, key: &StreamKey) {
        self.statuses.lock().unwrap().remove(key);
    }

    /// The wanted sources changed (created, replaced, deleted, reloaded).
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// Waits for [`SourceRegistry::changed`].
    pub async fn wait_changed(&self) {
        self.changed.notified().await;
    }
}
