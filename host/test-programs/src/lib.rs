//! Every component of `functions/`, built for wasm32-wasip2 by this crate's
//! build script: a dev-dependency of the tests only.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

/// The folder holding the built components (`encode_jpeg.wasm`,
/// `hostile_encode.wasm`, `chat_webhook.wasm`, …).
pub fn dir() -> &'static Path {
    Path::new(env!("LIVESNAP_TEST_COMPONENTS"))
}

/// The built component `file` (e.g. `hostile_encode.wasm`).
pub fn path(file: &str) -> PathBuf {
    dir().join(file)
}
