//! livesnap's server: `livesnap up` ([`service`]: RTMP/RTMPS and HTTP
//! accept loops, connection limits, TLS, live publishers) and the
//! Huawei-compatible management API ([`api`]).

#![deny(missing_docs)]

// The layers below, re-exported so paths read the same throughout.
pub use livesnap_engine::{
    capture, config, decode, delivery, domain, egress, encoding, ingest, pipeline, project, pull, runtime, secret, session, snapshot,
    source, stage, state, storage, time, verify,
};

pub mod api;
pub mod app;
pub mod cluster;
pub mod console;
pub mod control;
pub mod limiter;
pub mod metrics;
pub mod node;
pub mod service;
pub mod sources;
pub mod streams;
