//! livesnap: snapshots of live H.264 streams, taken on stream time, encoded,
//! stored and announced by sandboxed WebAssembly components.
//!
//! Data flows one way: [`ingest`] → [`session`] (with [`capture`] and
//! [`decode`]) → [`pipeline`] (functions run by [`runtime`], writing through
//! [`storage`]) → [`delivery`]. [`config`] holds templates and settings.

#![deny(missing_docs)]

pub mod api;
pub mod capture;
pub mod config;
pub mod decode;
pub mod delivery;
pub mod egress;
pub mod encoding;
pub mod ingest;
pub mod pipeline;
pub mod runtime;
pub mod service;
pub mod session;
pub mod state;
pub mod storage;
pub mod time;
pub mod verify;
