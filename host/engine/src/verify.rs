//! Checking a callback's `auth_sign` and expiry, as a receiver does (the
//! formula lives in the callback-sign crate, shared with the components).

pub use callback_sign::{VerifyError, verify as verify_callback};
