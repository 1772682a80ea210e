//! livesnap's media layer: what turns publishers' bytes into decoded
//! pictures, with no async runtime and no WebAssembly (the crate boundary
//! keeps it so).
//!
//! Data flows one way: [`ingest`] (RTMP, FLV, Annex-B, H.264 access units,
//! ingest URL validation) → [`session`] (one stream's GOP buffer, driven by
//! the [`capture`] clock on stream time) → [`decode`] (openh264, only the
//! pictures a snapshot needs).

#![deny(missing_docs)]

pub mod capture;
pub mod decode;
pub mod ingest;
pub mod session;
