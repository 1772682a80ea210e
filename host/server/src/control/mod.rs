//! The control layer: the domain operations (templates, tenant modules,
//! callbacks, ingest URL validation, live streams, manifest reload) in one
//! place, with a typed error. Reads are functions of `&State`; every change
//! is a method of [`Writer`], which holds the write lock while it lives:
//! writes are serialised by the type, not by remembering to take a lock.
//! The HTTP API and the service call these; neither changes state itself.

pub mod callbacks;
pub mod domains;
pub mod key_chains;
pub mod modules;
pub mod on_demand;
pub mod projects;
pub mod reload;
pub mod sources;
pub mod streams;
pub mod templates;
pub mod usage;

pub use crate::app::Writer;
use crate::state::StateError;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A field or parameter is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The resource exists already.
    #[error("{0}")]
    Conflict(String),
    /// The resource is in use.
    #[error("{0}")]
    InUse(String),
    /// The resource is read-only (defined in the manifest).
    #[error("{0}")]
    ReadOnly(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// Not possible now (e.g. no picture arrived in time); retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A quota is used up.
    #[error("{0}")]
    Quota(String),
    /// The state database failed.
    #[error("state database: {0}")]
    Db(#[from] StateError),
    /// Something else failed (logged; not the caller's fault).
    #[error("{0}")]
    Failed(String),
}

/// One page of a listing.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Items at most.
    pub limit: usize,
    /// Items skipped.
    pub offset: usize,
}

/// A page of items and how many there are in all.
#[derive(Debug)]
pub struct Listing<T> {
    /// Items matching, over all pages.
    pub total: usize,
    /// This page.
    pub items: Vec<T>,
}
