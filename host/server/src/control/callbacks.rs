//! The callback outbox: listing by status, and redelivery of a failed
//! callback.

use super::{ControlError, Listing, Page, Writer};
use crate::app::State;
use crate::state::{OutboxItem, OutboxStatus};

/// Callbacks with `status` (all when `None`), oldest first, a page of them.
/// Blocking (the database): call it off the executor.
pub fn list(state: &State, status: Option<OutboxStatus>, page: Page) -> Result<Listing<OutboxItem>, ControlError> {
    let (total, items) = state.db().list(status, page.limit, page.offset)?;
    Ok(Listing { total, items })
}

impl Writer<'_> {
    /// Makes a failed callback pending again and wakes delivery.
    pub fn redeliver_callback(&self, id: &str) -> Result<(), ControlError> {
        if !self.db().redeliver(id)? {
            return Err(ControlError::NotFound(format!("no failed callback with id '{id}'")));
        }
        self.pipeline().delivery().nudge();
        tracing::info!(%id, "callback queued for redelivery");
        Ok(())
    }
}
