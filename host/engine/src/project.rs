//! Projects: the tenants. Each has a `project_id` (its API path), an AK/SK
//! pair and a token, and owns domains, bucket authorizations, templates
//! (through their domains), tenant modules, callbacks and usage.
//!
//! The default project is the operator's: its credentials come from the
//! environment, the runtime config or the generated credentials file, and
//! it owns the domains and templates of the runtime config and manifest.
//! Other projects live in the state database (`livesnap project create`).
//! Resources record their owner by [`Project::key`], which for the default
//! project is [`DEFAULT`] whatever its `project_id` is configured to be.

use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// The owner key of the default project.
pub const DEFAULT: &str = "default";

/// A project kept in the state database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// `/v1/{project_id}/…`; also its owner key.
    pub id: String,
    /// A name for people (unique).
    pub name: String,
    /// AK.
    pub access_key: String,
    /// SK (the signature check needs it).
    pub secret_key: Secret,
    /// Hex SHA-256 of the token: the token itself is shown once.
    pub token_sha256: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A new project's or a rotation's keys, shown once.
#[derive(Clone, Debug)]
pub struct Keys {
    /// AK.
    pub access_key: String,
    /// SK.
    pub secret_key: Secret,
    /// Accepted in `X-Auth-Token`.
    pub token: Secret,
}

impl Keys {
    /// Fresh random keys (AK 20 hex characters upper case, SK 40, token 64).
    pub fn generate() -> Self {
        Self { access_key: random_hex(10).to_uppercase(), secret_key: Secret::new(random_hex(20)), token: Secret::new(random_hex(32)) }
    }
}

impl Project {
    /// A new project named `name` with fresh keys; the keys are returned
    /// beside it because the token is stored only as its hash.
    pub fn generate(name: &str) -> Result<(Self, Keys), String> {
        check_name(name)?;
        let keys = Keys::generate();
        let project = Self {
            id: random_hex(16),
            name: name.into(),
            access_key: keys.access_key.clone(),
            secret_key: keys.secret_key.clone(),
            token_sha256: token_hash(keys.token.expose()),
            created_at: crate::time::unix_secs() as i64,
        };
        Ok((project, keys))
    }
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A project name: 1-64 letters, digits, `-`, `_` and `.`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(format!("project name '{name}': use 1-64 letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// `bytes` random bytes as hex.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS has randomness");
    hex::encode(b)
}

/// The name a tenant module of project `owner` has in the runtime: the
/// default project's keep their plain names; another project's are
/// `{project_id}/{name}` (module names have no `/`), so no project can
/// reach another's module by naming it.
pub fn module_key(owner: &str, name: &str) -> String {
    if owner == DEFAULT { name.to_string() } else { format!("{owner}/{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_projects_have_distinct_keys_and_keep_only_the_token_hash() {
        let (a, ka) = Project::generate("a").unwrap();
        let (b, kb) = Project::generate("b").unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(ka.access_key, kb.access_key);
        assert_eq!(a.id.len(), 32);
        assert_eq!(a.token_sha256, token_hash(ka.token.expose()));
        assert_ne!(a.token_sha256, ka.token.expose());
        assert!(Project::generate("").is_err());
        assert!(Project::generate("a b").is_err());
        assert_eq!(module_key(DEFAULT, "enc"), "enc");
        assert_eq!(module_key(&a.id, "enc"), format!("{}/enc", a.id));
    }
}
