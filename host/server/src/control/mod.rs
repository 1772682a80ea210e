//! The control layer: the domain operations of the management API
//! (templates, tenant modules, ingest URL validation) in one place, with a
//! typed error. Every operation that changes state is a method of
//! [`Writer`], which holds the write lock while it lives: writes are
//! serialised by the type, not by remembering to take a lock.

pub mod key_chains;
pub mod modules;
pub mod templates;

use std::ops::Deref;
use std::sync::MutexGuard;

use crate::app::State;
use crate::state::StateError;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A field or parameter is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The resource exists, or is in use.
    #[error("{0}")]
    Conflict(String),
    /// The resource is read-only (defined in the manifest).
    #[error("{0}")]
    ReadOnly(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// A quota is used up.
    #[error("{0}")]
    Quota(String),
    /// The state store failed.
    #[error("state store: {0}")]
    Store(#[from] StateError),
}

/// Exclusive access for changes: one writer at a time.
pub struct Writer<'a> {
    state: &'a State,
    _lock: MutexGuard<'a, ()>,
}

impl State {
    /// Exclusive access for a change; other writers wait until it is dropped.
    pub fn writer(&self) -> Writer<'_> {
        Writer { state: self, _lock: self.writes.lock().unwrap() }
    }
}

impl Deref for Writer<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.state
    }
}
