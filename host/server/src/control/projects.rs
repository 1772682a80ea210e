//! Who a credential belongs to: the default project (the operator's
//! credentials) or a project in the state database. Projects are created,
//! listed, rotated and deleted with `livesnap project`, which writes the
//! same database; a running service sees them at the next request.

use super::ControlError;
use crate::app::State;
use crate::config::credentials::Secret;
use crate::project::{self, token_hash};

/// The project a request acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// Owner key of its resources ([`project::DEFAULT`] for the default project).
    pub key: String,
    /// Its `project_id` (the API path's).
    pub project_id: String,
}

impl Tenant {
    /// The default project.
    pub fn default_of(state: &State) -> Self {
        Self { key: project::DEFAULT.into(), project_id: state.credentials().project_id.clone() }
    }

    fn stored(id: String) -> Self {
        Self { key: id.clone(), project_id: id }
    }
}

/// The project whose token this is. Blocking (the database).
pub fn by_token(state: &State, token: &Secret) -> Result<Option<Tenant>, ControlError> {
    by_token_hash(state, &token_hash(token.expose()))
}

/// The project whose token has this SHA-256 (what a console session
/// keeps). Blocking (the database).
pub fn by_token_hash(state: &State, hash: &str) -> Result<Option<Tenant>, ControlError> {
    if crate::secret::equal(hash, &token_hash(state.credentials().token.expose())) {
        return Ok(Some(Tenant::default_of(state)));
    }
    Ok(state.db().project_by_token(hash)?.map(|p| Tenant::stored(p.id)))
}

/// The project an access key belongs to, with its secret key. Blocking.
pub fn by_access_key(state: &State, access_key: &str) -> Result<Option<(Tenant, Secret)>, ControlError> {
    let creds = state.credentials();
    if crate::secret::equal(access_key, &creds.access_key) {
        return Ok(Some((Tenant::default_of(state), creds.secret_key.clone())));
    }
    Ok(state.db().project_by_access_key(access_key)?.map(|p| (Tenant::stored(p.id), p.secret_key)))
}
