//! Tenant module operations: list, inspect, upload (validated against the
//! stages templates use it for, within the quotas, compiled once, swapped
//! atomically) and delete (refused while a template uses it). Each
//! project has its own modules under their plain names; in the runtime
//! they are keyed by [`module_key`], so a project's templates reach its own
//! modules, the manifest's and the built-ins, never another project's.

use sha2::{Digest, Sha256};

use super::projects::Tenant;
use super::{ControlError, Writer};
use crate::app::State;
use crate::project::module_key;
use crate::runtime::{ComponentGrants, Inspection, Source, Stage};
use crate::state::{ModuleRecord, ModuleSummary};

/// Largest module accepted.
pub const MAX_MODULE: usize = 32 << 20;

/// Where a module comes from.
#[derive(Debug)]
pub enum ModuleSource {
    /// Uploaded through the API.
    Uploaded(ModuleSummary),
    /// Declared in the manifest.
    Manifest,
    /// Built into the binary.
    Builtin,
}

/// A module in a listing.
#[derive(Debug)]
pub struct ModuleEntry {
    /// Its name.
    pub name: String,
    /// Where it comes from.
    pub source: ModuleSource,
    /// Calls that failed, since start.
    pub failures: u64,
}

/// Every module the project can use: its uploads (without reading their
/// bytes), the manifest's, the built-ins. Blocking (the database): call it
/// off the executor.
pub fn list(state: &State, tenant: &Tenant) -> Result<Vec<ModuleEntry>, ControlError> {
    let failures = |name: &str| state.metrics().component_failures(name);
    let mut list: Vec<ModuleEntry> = Vec::new();
    for m in state.db().module_summaries(&tenant.key)? {
        let failures = failures(&module_key(&tenant.key, &m.name));
        list.push(ModuleEntry { name: m.name.clone(), failures, source: ModuleSource::Uploaded(m) });
    }
    let config = state.config();
    for name in config.manifest.components.keys() {
        list.push(ModuleEntry { name: name.clone(), source: ModuleSource::Manifest, failures: failures(name) });
    }
    for name in Stage::SNAPSHOT.map(Stage::default_component) {
        if !config.manifest.components.contains_key(name) {
            list.push(ModuleEntry { name: name.into(), source: ModuleSource::Builtin, failures: failures(name) });
        }
    }
    Ok(list)
}

/// An uploaded module as inspected.
pub struct ModuleDetails {
    /// What is stored.
    pub record: ModuleRecord,
    /// Its worlds, imports and exports.
    pub inspection: Inspection,
    /// Templates (and stages) that use it.
    pub used_by: Vec<String>,
    /// Calls that failed, since start.
    pub failures: u64,
}

/// One of the project's uploaded modules with its worlds, imports, exports
/// and users. Blocking (the database, compiling the component): call it
/// off the executor.
pub fn inspect(state: &State, tenant: &Tenant, name: &str) -> Result<ModuleDetails, ControlError> {
    let record = state.db().module(&tenant.key, name)?.ok_or_else(|| ControlError::NotFound(format!("no uploaded function '{name}'")))?;
    let inspection = state.runtime().inspect(&record.bytes).map_err(ControlError::Failed)?;
    Ok(details(state, record, inspection))
}

fn details(state: &State, record: ModuleRecord, inspection: Inspection) -> ModuleDetails {
    let key = module_key(&record.project, &record.name);
    ModuleDetails { used_by: users_of(state, &key), failures: state.metrics().component_failures(&key), record, inspection }
}

/// An accepted upload.
pub struct Uploaded {
    /// Whether it replaced a module of that name.
    pub replaced: bool,
    /// What was stored, as inspected.
    pub module: ModuleDetails,
}

impl Writer<'_> {
    /// Uploads or replaces the project's module `name`, with what it may use.
    pub fn upload_module(
        &self,
        tenant: &Tenant,
        name: &str,
        bytes: &[u8],
        allowed_outbound_hosts: Vec<String>,
        environment: Vec<(String, String)>,
    ) -> Result<Uploaded, ControlError> {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ControlError::Invalid("name: 1-64 letters, digits, '-' and '_'".into()));
        }
        let config = self.config();
        if config.manifest.components.contains_key(name) || Stage::SNAPSHOT.map(Stage::default_component).contains(&name) {
            return Err(ControlError::Conflict(format!("'{name}' is a manifest or built-in component; choose another name")));
        }
        for pattern in &allowed_outbound_hosts {
            if !pattern.contains("://") {
                return Err(ControlError::Invalid(format!("allowed_outbound_hosts: '{pattern}' is not scheme://host[:port]")));
            }
        }
        let inspection =
            self.runtime().inspect(bytes).map_err(|e| ControlError::Invalid(format!("the body is not a WebAssembly component: {e}")))?;
        let snapshot_fits: Vec<_> = inspection.fits.iter().filter(|s| **s != Stage::Http).collect();
        if snapshot_fits.is_empty() {
            let why: Vec<String> = inspection.misfits.iter().map(|(s, e)| format!("{}: {e}", s.world())).collect();
            return Err(ControlError::Invalid(format!(
                "the component fits none of the worlds encoder, storer, notifier ({})",
                why.join("; ")
            )));
        }
        // A replacement must still fit every stage templates use it for.
        let key = module_key(&tenant.key, name);
        for t in &config.templates {
            for (stage, used) in t.components() {
                if used == key && !inspection.fits.contains(&stage) {
                    let why = inspection.misfits.iter().find(|(s, _)| *s == stage).map(|(_, e)| e.clone()).unwrap_or_default();
                    return Err(ControlError::Invalid(format!(
                        "template {}/{} uses '{name}' as its {} but the component does not fit that world: {why}",
                        t.domain,
                        t.app_name,
                        stage.world()
                    )));
                }
            }
        }
        let quotas = config.runtime.quotas;
        let others: Vec<_> = self.db().module_summaries(&tenant.key)?.into_iter().filter(|m| m.name != name).collect();
        if others.len() >= quotas.max_modules {
            return Err(ControlError::Quota(format!("the project has its maximum of {} modules; delete one first", quotas.max_modules)));
        }
        let total = others.iter().map(|m| m.size).sum::<usize>() + bytes.len();
        if total > quotas.max_module_bytes {
            return Err(ControlError::Quota(format!(
                "modules would take {total} bytes, over the project's quota of {} bytes",
                quotas.max_module_bytes
            )));
        }
        let record = ModuleRecord {
            project: tenant.key.clone(),
            name: name.into(),
            sha256: hex::encode(Sha256::digest(bytes)),
            bytes: bytes.to_vec(),
            allowed_outbound_hosts,
            environment,
            uploaded_at: 0,
        };
        let replaced = self.db().put_module(&record)?;
        // Snapshots in flight keep the instance they started with; the next
        // one is prepared from the new component.
        let grants =
            ComponentGrants { allowed_outbound_hosts: record.allowed_outbound_hosts.clone(), environment: record.environment.clone() };
        self.runtime().load(&key, Source::Bytes(bytes), grants).map_err(|e| ControlError::Invalid(e.to_string()))?;
        tracing::info!(module = %name, project = %tenant.project_id, sha256 = %record.sha256, replaced, "tenant module uploaded");
        Ok(Uploaded { replaced, module: details(self, record, inspection) })
    }

    /// Deletes one of the project's uploaded modules; refused while a
    /// template uses it.
    pub fn delete_module(&self, tenant: &Tenant, name: &str) -> Result<(), ControlError> {
        let key = module_key(&tenant.key, name);
        let users = users_of(self, &key);
        if !users.is_empty() {
            return Err(ControlError::InUse(format!("function '{name}' is used by {}", users.join(", "))));
        }
        if !self.db().delete_module(&tenant.key, name)? {
            return Err(ControlError::NotFound(format!("no uploaded function '{name}'")));
        }
        self.runtime().remove_component(&key);
        tracing::info!(module = %name, project = %tenant.project_id, "tenant module deleted");
        Ok(())
    }
}

/// Templates (and stages) that use the component the runtime knows as `name`.
pub fn users_of(state: &State, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in &state.config().templates {
        for (stage, used) in t.components() {
            if used == name {
                out.push(format!("{}/{} ({stage})", t.domain, t.app_name));
            }
        }
    }
    out
}
