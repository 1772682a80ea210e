//! Ingest URL validation per push domain: stored, then live for the next
//! publish.

use super::{ControlError, Writer};
use crate::ingest::url_auth::KeyChain;

impl Writer<'_> {
    /// Sets (creates or replaces) a domain's key chain.
    pub fn set_key_chain(&self, domain: &str, chain: KeyChain) -> Result<(), ControlError> {
        self.store.put_key_chain(domain, &chain)?;
        tracing::info!(%domain, auth_type = chain.auth_type.as_str(), timeout = chain.timeout.as_secs(), "ingest URL validation set");
        self.key_chains.write().unwrap().insert(domain.to_string(), chain);
        Ok(())
    }

    /// Turns a domain's ingest URL validation off.
    pub fn delete_key_chain(&self, domain: &str) -> Result<(), ControlError> {
        let existed = self.store.delete_key_chain(domain)?;
        self.key_chains.write().unwrap().remove(domain);
        if !existed {
            return Err(ControlError::NotFound("the domain has no key chain".into()));
        }
        tracing::info!(%domain, "ingest URL validation removed");
        Ok(())
    }
}
