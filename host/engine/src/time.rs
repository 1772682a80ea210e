//! Wall-clock time as unix seconds and milliseconds (object names, callback
//! expiry, outbox schedules).

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Unix time in seconds.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}
