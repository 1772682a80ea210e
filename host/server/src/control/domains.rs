//! Ingest domains (Huawei's `create_domain`, `show_domain`,
//! `update_domain`, `delete_domain`) and OBS bucket authorization
//! (`update_obs_bucket_authority_public`). A created domain is served at
//! once; `off` refuses its publishes; one with templates is not deleted.
//! API templates may use the embedded bucket and the authorized ones. Each
//! project sees and changes its own domains and authorizations only; the
//! operator's domains belong to the default project.

use super::projects::Tenant;
use super::{ControlError, Writer};
use crate::app::State;
use crate::domain::Domain;

/// A domain as `show_domain` lists it.
#[derive(Clone, Debug)]
pub struct DomainView {
    /// The domain and its state.
    pub domain: Domain,
    /// Where publishers push to (`domain_cname`).
    pub cname: String,
    /// Declared by the operator (runtime config or manifest): read-only.
    pub operator: bool,
}

/// What `create_domain` asks for.
#[derive(Clone, Debug)]
pub struct NewDomain {
    /// The domain.
    pub name: String,
    /// `push` or `pull`.
    pub domain_type: String,
    /// Must be the service region.
    pub region: String,
    /// Huawei's service area, kept as given.
    pub service_area: Option<String>,
}

/// The host publishers should use.
fn cname(state: &State) -> String {
    let config = state.config();
    config.runtime.domain_cname.clone().unwrap_or_else(|| config.runtime.rtmp_listen.to_string())
}

/// The project's domains (or the one named), operator's first.
pub fn show(state: &State, tenant: &Tenant, name: Option<&str>) -> Result<Vec<DomainView>, ControlError> {
    let config = state.config();
    let cname = cname(state);
    let mut out = Vec::new();
    let operator = if tenant.key == crate::project::DEFAULT { config.runtime.served_domains(&config.manifest) } else { Vec::new() };
    for d in operator {
        let domain = Domain {
            name: d.to_ascii_lowercase(),
            domain_type: "push".into(),
            region: config.runtime.region.clone(),
            status: "on".into(),
            service_area: String::new(),
            created_at: 0,
            project: tenant.key.clone(),
        };
        out.push(DomainView { domain, cname: cname.clone(), operator: true });
    }
    let own = config.domains.iter().filter(|d| d.project == tenant.key);
    out.extend(own.map(|d| DomainView { domain: d.clone(), cname: cname.clone(), operator: false }));
    if let Some(name) = name {
        out.retain(|d| d.domain.name.eq_ignore_ascii_case(name));
        if out.is_empty() {
            return Err(ControlError::NotFound(format!("domain '{name}' does not exist")));
        }
    }
    Ok(out)
}

/// A bucket as a project sees it.
#[derive(Clone, Debug)]
pub struct BucketView {
    /// Its name.
    pub name: String,
    /// Its region.
    pub location: String,
    /// The embedded bucket: always usable, not authorized or revoked.
    pub embedded: bool,
    /// Authorized for the project's templates.
    pub authorized: bool,
    /// The project's API templates using it (`domain/app`).
    pub used_by: Vec<String>,
}

/// The buckets offered to the project and not authorized by another: the
/// embedded one (the default project's) and those the operator declared
/// (for it, when a bucket lists projects).
pub fn buckets(state: &State, tenant: &Tenant) -> Vec<BucketView> {
    let config = state.config();
    let embedded = crate::config::runtime::EMBEDDED_BUCKET;
    let mine = |name: &str| config.authorized_buckets.iter().any(|(p, n)| *p == tenant.key && n == name);
    let others = |name: &str| config.authorized_buckets.iter().any(|(p, n)| *p != tenant.key && n == name);
    config
        .runtime
        .buckets
        .iter()
        .filter(|b| config.offers(&tenant.key, b) && !others(&b.name))
        .map(|b| BucketView {
            name: b.name.clone(),
            location: b.location.clone(),
            embedded: b.name == embedded,
            authorized: b.name == embedded || mine(&b.name),
            used_by: config
                .templates
                .iter()
                .filter(|t| t.owner == tenant.key && t.bucket == b.name)
                .map(|t| format!("{}/{}", t.domain, t.app_name))
                .collect(),
        })
        .collect()
}

/// Whether publishes to `domain` are refused (an API domain turned off).
pub fn is_off(state: &State, domain: &str) -> bool {
    state.config().api_domain(domain).is_some_and(|d| !d.is_on())
}

impl Writer<'_> {
    /// Creates a push domain of the project in the service region; served at once.
    pub fn create_domain(&self, tenant: &Tenant, new: NewDomain) -> Result<DomainView, ControlError> {
        let name = new.name.to_ascii_lowercase();
        crate::config::template::validate_domain(&name).map_err(|m| ControlError::Invalid(format!("domain: {m}")))?;
        match new.domain_type.as_str() {
            "push" => {}
            "pull" => {
                return Err(ControlError::Invalid("domain_type: pull (streaming) domains are not supported; livesnap ingests".into()));
            }
            other => return Err(ControlError::Invalid(format!("domain_type: '{other}' is not push or pull"))),
        }
        let config = self.config();
        if new.region != config.runtime.region {
            return Err(ControlError::Invalid(format!("region: '{}' is not the service region '{}'", new.region, config.runtime.region)));
        }
        if config.served_domains().iter().any(|d| d.eq_ignore_ascii_case(&name)) {
            return Err(ControlError::Conflict(format!("domain '{name}' already exists")));
        }
        let quota = config.runtime.quotas.max_domains;
        if config.domains.iter().filter(|d| d.project == tenant.key).count() >= quota {
            return Err(ControlError::Quota(format!("the project has its maximum of {quota} domains; delete one first")));
        }
        let domain = Domain {
            name: name.clone(),
            domain_type: "push".into(),
            region: new.region,
            status: "on".into(),
            service_area: new.service_area.unwrap_or_default(),
            created_at: crate::time::unix_secs() as i64,
            project: tenant.key.clone(),
        };
        match self.db().insert_domain(&domain) {
            Err(crate::state::StateError::Exists { .. }) => return Err(ControlError::Conflict(format!("domain '{name}' already exists"))),
            other => other?,
        }
        let mut domains = config.domains.clone();
        domains.push(domain.clone());
        self.install(self, config.with_tenancy(domains, config.authorized_buckets.clone()));
        tracing::info!(%name, project = %tenant.project_id, "domain created through the API");
        Ok(DomainView { domain, cname: cname(self), operator: false })
    }

    /// Turns an API domain `on` or `off` (off refuses its publishes).
    pub fn update_domain(&self, tenant: &Tenant, name: &str, status: &str) -> Result<DomainView, ControlError> {
        if !matches!(status, "on" | "off") {
            return Err(ControlError::Invalid(format!("status: '{status}' is not on or off")));
        }
        let config = self.config();
        let name = self.api_domain_named(tenant, name)?;
        self.db().set_domain_status(&name, status)?;
        let domains: Vec<Domain> =
            config.domains.iter().map(|d| if d.name == name { Domain { status: status.into(), ..d.clone() } } else { d.clone() }).collect();
        let domain = domains.iter().find(|d| d.name == name).cloned().expect("present");
        self.install(self, config.with_tenancy(domains, config.authorized_buckets.clone()));
        tracing::info!(%name, %status, "domain updated through the API");
        Ok(DomainView { domain, cname: cname(self), operator: false })
    }

    /// Deletes an API domain; refused while templates use it.
    pub fn delete_domain(&self, tenant: &Tenant, name: &str) -> Result<(), ControlError> {
        let config = self.config();
        let name = self.api_domain_named(tenant, name)?;
        let users: Vec<String> = config
            .templates
            .iter()
            .filter(|t| t.domain.eq_ignore_ascii_case(&name))
            .map(|t| format!("{}/{}", t.domain, t.app_name))
            .collect();
        if !users.is_empty() {
            return Err(ControlError::InUse(format!("domain '{name}' has templates: {}; delete them first", users.join(", "))));
        }
        let sources: Vec<String> = self.db().sources()?.iter().filter(|s| s.domain == name).map(|s| s.label()).collect();
        if !sources.is_empty() {
            return Err(ControlError::InUse(format!("domain '{name}' has pull sources: {}; delete them first", sources.join(", "))));
        }
        // Its ingest URL validation goes with it.
        self.db().delete_key_chain(&name)?;
        self.install_key_chain(self, &name, None);
        self.db().delete_domain(&name)?;
        let domains = config.domains.iter().filter(|d| d.name != name).cloned().collect();
        self.install(self, config.with_tenancy(domains, config.authorized_buckets.clone()));
        tracing::info!(%name, "domain deleted through the API");
        Ok(())
    }

    /// Authorizes (`operation` 1) or revokes (0) a bucket the operator
    /// declared (for this project, if it lists projects) for the project's
    /// templates; revoking one that its API templates use is refused.
    pub fn set_bucket_authority(&self, tenant: &Tenant, bucket: &str, operation: i64) -> Result<(), ControlError> {
        let config = self.config();
        if bucket == crate::config::runtime::EMBEDDED_BUCKET && tenant.key == crate::project::DEFAULT {
            return Err(ControlError::ReadOnly(format!("bucket '{bucket}' is the embedded bucket: always authorized")));
        }
        // A bucket authorized by another project reads like one not offered:
        // a bucket is one project's at a time.
        let taken = config.authorized_buckets.iter().any(|(p, b)| b == bucket && *p != tenant.key);
        if taken || !config.runtime.buckets.iter().any(|b| b.name == bucket && config.offers(&tenant.key, b)) {
            if taken {
                tracing::info!(%bucket, project = %tenant.project_id, "bucket authorization refused: another project has it");
            }
            return Err(ControlError::Invalid(format!("bucket: '{bucket}' is not a bucket this host offers to the project")));
        }
        let mut authorized = config.authorized_buckets.clone();
        match operation {
            1 => {
                if !authorized.iter().any(|(p, b)| *p == tenant.key && b == bucket) {
                    authorized.push((tenant.key.clone(), bucket.into()));
                }
            }
            0 => {
                let users: Vec<String> = config
                    .templates
                    .iter()
                    .filter(|t| t.origin == crate::config::Origin::Api && t.owner == tenant.key && t.bucket == bucket)
                    .map(|t| format!("{}/{}", t.domain, t.app_name))
                    .collect();
                if !users.is_empty() {
                    return Err(ControlError::InUse(format!("bucket '{bucket}' is used by templates {}", users.join(", "))));
                }
                authorized.retain(|(p, b)| !(*p == tenant.key && b == bucket));
            }
            other => return Err(ControlError::Invalid(format!("operation: {other} is not 1 (authorize) or 0 (revoke)"))),
        }
        self.db().set_bucket_authorized(&tenant.key, bucket, operation == 1)?;
        self.install(self, config.with_tenancy(config.domains.clone(), authorized));
        tracing::info!(%bucket, project = %tenant.project_id, authorized = operation == 1, "bucket authorization changed through the API");
        Ok(())
    }

    /// `name` if it is one of the project's API domains (lower case); the
    /// operator's are read-only; another project's do not exist for it.
    fn api_domain_named(&self, tenant: &Tenant, name: &str) -> Result<String, ControlError> {
        let config = self.config();
        match config.owner_of(name) {
            Some(owner) if owner != tenant.key => {}
            _ => {
                if let Some(d) = config.api_domain(name) {
                    return Ok(d.name.clone());
                }
                if config.owns(&tenant.key, name) {
                    return Err(ControlError::ReadOnly(format!("domain '{name}' is the operator's (runtime config or manifest)")));
                }
            }
        }
        Err(ControlError::NotFound(format!("domain '{name}' does not exist")))
    }
}
