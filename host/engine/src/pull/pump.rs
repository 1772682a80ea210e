//! Items made on another thread, taken blocking: waits check the cancel flag
//! every [`POLL`] and give up after the read timeout.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Instant;

use super::{POLL, PullError, PullOptions, Target};

/// What the taking side gets.
pub(super) enum Taken<T> {
    Item(T),
    /// The producer finished (end of stream).
    End,
    /// The cancel flag was set.
    Cancelled,
}

/// The taking side of a bounded channel from a producer thread, which sends
/// `Ok(item)`s and at most one `Err` before it stops.
pub(super) struct Pump<T> {
    rx: Receiver<Result<T, PullError>>,
    options: PullOptions,
    target: Target,
}

impl<T: Send + 'static> Pump<T> {
    /// A channel holding up to `depth` items; the producer gets the sender.
    pub(super) fn new(depth: usize, options: &PullOptions, target: &Target) -> (SyncSender<Result<T, PullError>>, Self) {
        let (tx, rx) = sync_channel(depth);
        (tx, Self { rx, options: options.clone(), target: target.clone() })
    }

    /// The next item; an error when the producer failed or was silent for
    /// the read timeout.
    pub(super) fn take(&self) -> Result<Taken<T>, PullError> {
        let since = Instant::now();
        loop {
            if self.options.cancelled() {
                return Ok(Taken::Cancelled);
            }
            match self.rx.recv_timeout(POLL) {
                Ok(Ok(item)) => return Ok(Taken::Item(item)),
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Disconnected) => return Ok(Taken::End),
                Err(RecvTimeoutError::Timeout) if since.elapsed() >= self.options.read_timeout => {
                    return Err(self.target.timeout(format!("no data for {} s", self.options.read_timeout.as_secs_f64())));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}
