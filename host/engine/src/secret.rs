//! A secret string (keys, tokens, S3 credentials): compared in constant
//! time, never printed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string: compared in constant time, never printed.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
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
        subtle::ConstantTimeEq::ct_eq(self.0.as_bytes(), other.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
