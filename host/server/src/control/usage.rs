//! Usage: snapshots stored per hour, as Huawei's "Querying the Number of
//! Snapshots" (`ListSnapshotData`) reports them — counted when a snapshot
//! is stored, kept in the state database across restarts.

use super::ControlError;
use super::projects::Tenant;
use crate::app::State;
use crate::time::{iso_utc, parse_iso_utc};

const HOUR: i64 = 3600;
/// The longest span one query may cover.
const MAX_SPAN: i64 = 31 * 24 * HOUR;

/// Snapshots in one hour.
#[derive(Debug, PartialEq, Eq)]
pub struct HourCount {
    /// The hour's start, `YYYY-MM-DDThh:00:00Z`.
    pub time: String,
    /// Snapshots stored in it.
    pub count: u64,
}

/// Counts a stored snapshot of `project`'s `domain` now. Blocking (the database).
pub fn count_snapshot(state: &State, project: &str, domain: &str) {
    let hour = crate::time::unix_secs() as i64 / HOUR * HOUR;
    if let Err(e) = state.db().count_snapshot(project, domain, hour) {
        tracing::error!(%domain, "counting a snapshot for usage: {e}");
    }
}

/// The project's snapshots per hour of `domain` (or every domain of its) from `start` to `end`
/// (`YYYY-MM-DDThh:mm:ssZ`, rounded down to the hour; by default the last
/// 24 hours up to now), every hour listed, and their total. Blocking.
pub fn snapshots(
    state: &State,
    tenant: &Tenant,
    domain: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    now: i64,
) -> Result<(Vec<HourCount>, u64), ControlError> {
    let parse = |name: &str, v: &str| {
        parse_iso_utc(v)
            .map(|t| t / HOUR * HOUR)
            .ok_or_else(|| ControlError::Invalid(format!("{name}: '{v}' is not a UTC time like 2025-11-25T08:00:00Z")))
    };
    let end = match end {
        Some(v) => parse("end_time", v)?,
        None => now / HOUR * HOUR,
    };
    let start = match start {
        Some(v) => parse("start_time", v)?,
        None => end - 24 * HOUR,
    };
    if end <= start {
        return Err(ControlError::Invalid("end_time: must be later than start_time".into()));
    }
    if end - start > MAX_SPAN {
        return Err(ControlError::Invalid("the span from start_time to end_time is over 31 days".into()));
    }
    let counted = state.db().snapshot_counts(&tenant.key, domain, start, end)?;
    let mut counted = counted.into_iter().peekable();
    let mut list = Vec::new();
    let mut total = 0;
    for hour in (start..=end).step_by(HOUR as usize) {
        let count = match counted.peek() {
            Some((h, n)) if *h == hour => {
                let n = *n;
                counted.next();
                n
            }
            _ => 0,
        };
        total += count;
        list.push(HourCount { time: iso_utc(hour), count });
    }
    Ok((list, total))
}
