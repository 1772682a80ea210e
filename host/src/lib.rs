//! livesnap: snapshots of live H.264 streams, taken on stream time, encoded,
//! stored and announced by sandboxed WebAssembly components.
//!
//! Data flows one way: [`ingest`] → [`session`] (with [`capture`] and
//! [`decode`], all from the `livesnap-media` crate) → [`pipeline`] (functions run by [`runtime`], writing through
//! [`storage`]) → [`delivery`]. [`config`] holds templates and settings.

#![deny(missing_docs)]

// The media layer is its own crate (no tokio, no wasmtime); re-exported so
// paths read the same throughout the host.
pub use livesnap_media::{capture, decode, ingest, session};

pub mod api;
pub mod config;
pub mod delivery;
pub mod egress;
pub mod encoding;
pub mod pipeline;
pub mod runtime;
pub mod service;
pub mod state;
pub mod storage;
pub mod time;
pub mod verify;
