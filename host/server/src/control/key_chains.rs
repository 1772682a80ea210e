//! Ingest URL validation per push domain: stored, then live for the next
//! publish.

use super::projects::Tenant;
use super::{ControlError, Writer};
use crate::app::State;
use crate::ingest::url_auth::{AuthType, KeyChain};

/// Shortest and longest `timeout` in seconds (Huawei's range).
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 60..=2_592_000;

/// A key chain from Huawei's `KeyChainInfo` fields (`auth_type` defaults to
/// `d_sha256`, `timeout` to an hour), checked.
pub fn key_chain(key: String, auth_type: Option<&str>, timeout: Option<u64>) -> Result<KeyChain, ControlError> {
    KeyChain::check_key(&key).map_err(ControlError::Invalid)?;
    let auth_type: AuthType = auth_type.unwrap_or("d_sha256").parse().map_err(ControlError::Invalid)?;
    let timeout = timeout.unwrap_or(3600);
    if !TIMEOUT_RANGE.contains(&timeout) {
        return Err(ControlError::Invalid(format!("timeout: {timeout} is outside {}-{}", TIMEOUT_RANGE.start(), TIMEOUT_RANGE.end())));
    }
    Ok(KeyChain { key, auth_type, timeout: std::time::Duration::from_secs(timeout) })
}

/// `domain` in lower case, if it is one of the project's.
pub fn served_domain(state: &State, tenant: &Tenant, domain: &str) -> Result<String, ControlError> {
    let domain = domain.to_ascii_lowercase();
    if !state.config().owns(&tenant.key, &domain) {
        return Err(ControlError::NotFound(format!("domain '{domain}' is not a domain this host serves")));
    }
    Ok(domain)
}

/// One of the project's domains' key chain.
pub fn show(state: &State, tenant: &Tenant, domain: &str) -> Result<KeyChain, ControlError> {
    let domain = served_domain(state, tenant, domain)?;
    state.key_chain(&domain).ok_or_else(|| ControlError::NotFound(format!("domain '{domain}' has no key chain")))
}

impl Writer<'_> {
    /// Sets (creates or replaces) the key chain of one of the project's domains.
    pub fn set_key_chain(&self, tenant: &Tenant, domain: &str, chain: KeyChain) -> Result<(), ControlError> {
        let domain = served_domain(self, tenant, domain)?;
        self.db().put_key_chain(&domain, &chain)?;
        tracing::info!(%domain, auth_type = chain.auth_type.as_str(), timeout = chain.timeout.as_secs(), "ingest URL validation set");
        self.install_key_chain(self, &domain, Some(chain));
        Ok(())
    }

    /// Turns the ingest URL validation of one of the project's domains off.
    pub fn delete_key_chain(&self, tenant: &Tenant, domain: &str) -> Result<(), ControlError> {
        let domain = served_domain(self, tenant, domain)?;
        let existed = self.db().delete_key_chain(&domain)?;
        self.install_key_chain(self, &domain, None);
        if !existed {
            return Err(ControlError::NotFound("the domain has no key chain".into()));
        }
        tracing::info!(%domain, "ingest URL validation removed");
        Ok(())
    }
}
