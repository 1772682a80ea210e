//! TLS for the HTTP listener (HTTPS: API, objects, metrics) and the RTMPS
//! listener, with rustls. The certificate and key are read from the files
//! named in `[tls]` and read again on SIGHUP, so a renewed certificate takes
//! effect without a restart; a broken renewal keeps the running one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

pub use crate::config::tls::TlsSettings;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("TLS {what} {path}: {message}")]
    File {
        /// certificate or key.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Only one of cert and key is set, or rtmps without them.
    #[error("[tls] needs both `cert` and `key` (and they are needed for `rtmps_listen`)")]
    Incomplete,
    /// rustls refused the pair.
    #[error("TLS certificate and key do not form a usable pair: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The current server configuration, replaced on reload.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    config: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Loads the pair named in `settings`; `None` when TLS is off.
    pub fn from_settings(settings: &TlsSettings) -> Result<Option<Arc<Self>>, TlsError> {
        match (&settings.cert, &settings.key) {
            (None, None) if settings.rtmps_listen.is_none() => Ok(None),
            (Some(cert), Some(key)) => {
                let config = load(cert, key)?;
                Ok(Some(Arc::new(Self { cert: cert.clone(), key: key.clone(), config: RwLock::new(config) })))
            }
            _ => Err(TlsError::Incomplete),
        }
    }

    /// Reads the files again; on error the running configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.cert, &self.key)?;
        *self.config.write().unwrap() = config;
        Ok(())
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.read().unwrap().clone())
    }
}

fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let file_error = |what, path: &Path, message: String| TlsError::File { what, path: path.to_owned(), message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error("certificate", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error("certificate", cert, "no CERTIFICATE block".into()));
    }
    // The key's error text never includes its contents.
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
