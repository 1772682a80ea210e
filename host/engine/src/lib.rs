//! livesnap's engine: what happens to a decoded picture. Configuration
//! ([`config`]), the WebAssembly runtime ([`runtime`]) running the
//! encode → store → notify [`pipeline`], object [`storage`], the durable
//! callback outbox ([`delivery`]) under the [`egress`] policy, and [`state`].
//!
//! It sits on the media layer (re-exported below so paths read the same
//! throughout) and knows nothing of the server above it.

#![deny(missing_docs)]

pub use livesnap_media::{capture, decode, ingest, session};

pub mod config;
pub mod delivery;
pub mod domain;
pub mod egress;
pub mod encoding;
pub mod pipeline;
pub mod project;
pub mod pull;
pub mod runtime;
pub mod secret;
pub mod snapshot;
pub mod source;
pub mod stage;
pub mod state;
pub mod storage;
pub mod template;
pub mod time;
pub mod verify;
