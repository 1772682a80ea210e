//! The callback outbox: listing by status, and redelivery of a failed
//! callback.

use super::projects::Tenant;
use super::{ControlError, Listing, Page, Writer};
use crate::app::State;
use crate::state::{OutboxItem, OutboxStatus};

/// The project's callbacks with `status` (all when `None`), oldest first,
/// a page of them. Blocking (the database): call it off the executor.
pub fn list(state: &State, tenant: &Tenant, status: Option<OutboxStatus>, page: Page) -> Result<Listing<OutboxItem>, ControlError> {
    let (total, items) = state.db().list(&tenant.key, status, page.limit, page.offset)?;
    Ok(Listing { total, items })
}

impl Writer<'_> {
    /// Makes one of the project's failed callbacks pending again and wakes delivery.
    pub fn redeliver_callback(&self, tenant: &Tenant, id: &str) -> Result<(), ControlError> {
        if !self.db().redeliver(&tenant.key, id)? {
            return Err(ControlError::NotFound(format!("no failed callback with id '{id}'")));
        }
        self.pipeline().delivery().nudge();
        tracing::info!(%id, "callback queued for redelivery");
        Ok(())
    }
}
