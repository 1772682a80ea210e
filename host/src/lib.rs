//! livesnap: snapshots of live H.264 streams, taken on stream time, encoded,
//! stored and announced by sandboxed WebAssembly components.
//!
//! This package holds the `livesnap` command line; the library re-exports
//! the layers it is built from, so tools and tests have one name for them:
//! `livesnap-media` (ingest, session, capture, decode) → `livesnap-engine`
//! (config, runtime, pipeline, storage, delivery, egress, state) →
//! `livesnap-server` (service, api). See ARCHITECTURE.md.

#![deny(missing_docs)]

/// The built-in components, embedded.
pub use livesnap_builtins as builtins;
pub use livesnap_engine::*;
pub use livesnap_server::{api, service};
