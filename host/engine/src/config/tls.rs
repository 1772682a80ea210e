//! `[tls]` of the runtime config: the certificate pair for HTTPS and RTMPS
//! (the server crate loads it).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[tls]` of the runtime config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain (leaf first).
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Address of the RTMPS listener (off when not set).
    pub rtmps_listen: Option<std::net::SocketAddr>,
}

impl TlsSettings {
    /// Paths resolved against the runtime config's folder.
    pub fn resolve(mut self, base: &Path) -> Self {
        self.cert = self.cert.map(|p| base.join(p));
        self.key = self.key.map(|p| base.join(p));
        self
    }
}
