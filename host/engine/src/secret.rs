//! A secret string (keys, tokens, S3 credentials): compared in constant
//! time, never printed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string: compared in constant time, never printed.
#[derive(Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality with `other`.
    pub fn matches(&self, other: &str) -> bool {
        equal(&self.0, other)
    }
}

// `==` on secrets is constant-time too, so no comparison can leak timing.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Constant-time string equality (for keys that are not wrapped).
pub fn equal(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}
