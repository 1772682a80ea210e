//! Ingest domains as Huawei Live manages them (`create_domain`,
//! `show_domain`, `update_domain`, `delete_domain`): push domains in the
//! service region, on or off. Domains created through the API live in the
//! state database; the runtime config's `domains` and the manifest's are
//! the operator's, always on.

use serde::{Deserialize, Serialize};

/// A domain created through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// The domain name (lower case).
    pub name: String,
    /// Huawei's `domain_type`: `push` (the only kind livesnap serves).
    pub domain_type: String,
    /// The service region.
    pub region: String,
    /// `on`, or `off` (publishes refused).
    pub status: String,
    /// Huawei's `service_area` as given (`mainland_china`, …), or empty.
    pub service_area: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The owner key of the project it belongs to.
    pub project: String,
}

impl Domain {
    /// Whether publishes to it are accepted.
    pub fn is_on(&self) -> bool {
        self.status == "on"
    }
}
