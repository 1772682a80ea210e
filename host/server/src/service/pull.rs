//! Runs the pull sources: one task per wanted source, which connects,
//! feeds the stream as a [`LiveStream`] (captured exactly as if it were
//! pushed) and, when the source fails or ends, waits with backoff and
//! jitter and tries again, until the source is deleted. Reconciles with the
//! wanted set whenever it changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::live::{LiveStream, Refusal};
use crate::app::State;
use crate::control::sources::{key_of, wanted};
use crate::ingest::Demuxer;
use crate::pull::{self, PullOptions};
use crate::runtime::bindings::types::StreamId;
use crate::source::Source;
use crate::sources::SourceStatus;
use crate::streams::StreamKey;

/// The first wait after a failure; doubled per failure in a row.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often a node looks whether a source another node pulls is free.
const HELD_ELSEWHERE: Duration = Duration::from_secs(3);
/// A source live this long starts its backoff over.
const STABLE: Duration = Duration::from_secs(30);

/// Keeps the running sources equal to the wanted ones until `cancel`.
pub(super) async fn run_sources(state: Arc<State>, cancel: CancellationToken, tracker: TaskTracker) {
    let mut running: HashMap<StreamKey, (String, CancellationToken)> = HashMap::new();
    loop {
        let st = state.clone();
        match tokio::task::spawn_blocking(move || wanted(&st)).await {
            Ok(Ok(sources)) => {
                let wanted: HashMap<StreamKey, Source> = sources.into_iter().map(|(s, _)| (key_of(&s), s)).collect();
                running.retain(|key, (url, stop)| {
                    let keep = wanted.get(key).is_some_and(|s| &s.url == url);
                    if !keep {
                        stop.cancel();
                    }
                    keep
                });
                for (key, source) in wanted {
                    if running.contains_key(&key) {
                        continue;
                    }
                    let stop = cancel.child_token();
                    running.insert(key, (source.url.clone(), stop.clone()));
                    tracker.spawn(run_source(state.clone(), source, stop));
                }
            }
            Ok(Err(e)) => tracing::error!("reading the pull sources: {e}"),
            Err(e) => tracing::error!("reading the pull sources: {e}"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = state.sources().wait_changed() => {}
        }
    }
}

/// One source, from its first attempt until it is stopped.
async fn run_source(state: Arc<State>, source: Source, stop: CancellationToken) {
    let key = key_of(&source);
    let (label, shown) = (source.label(), source.display_url());
    // The blocking reader checks this between reads.
    let flag = Arc::new(AtomicBool::new(false));
    let setter = flag.clone();
    let watcher = stop.clone();
    tokio::spawn(async move {
        watcher.cancelled().await;
        setter.store(true, Ordering::Relaxed);
    });
    tracing::info!(stream = %label, url = %shown, "pull source started");
    let mut attempts = 0u32;
    let mut last_error = None;
    let mut elsewhere = None;
    while !stop.is_cancelled() {
        // Every node runs every source; the one holding the stream's lease
        // pulls it, the others look again every few seconds (without
        // connecting, and without backing off) to take over when it is free.
        let (st, k) = (state.clone(), key.clone());
        let holder = tokio::task::spawn_blocking(move || crate::cluster::holder(&st, &k)).await.ok().flatten();
        if let Some(node) = holder {
            if elsewhere.as_ref() != Some(&node) {
                tracing::info!(stream = %label, %node, "pull source: pulled by another node");
            }
            let why = format!("pulled by node {node}");
            elsewhere = Some(node);
            let next_attempt_at = crate::time::unix_ms() + HELD_ELSEWHERE.as_millis() as u64;
            state.sources().set(&key, SourceStatus::Retrying { last_error: why, next_attempt_at, attempts: 0 });
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(HELD_ELSEWHERE) => continue,
            }
        }
        elsewhere = None;
        state.sources().set(&key, SourceStatus::Connecting { attempts, last_error: last_error.take() });
        let started = Instant::now();
        let reason = match pull_once(&state, &source, &key, flag.clone()).await {
            Ok(()) => "the source ended the stream".to_string(),
            Err(reason) => reason,
        };
        if stop.is_cancelled() {
            break;
        }
        attempts = if started.elapsed() >= STABLE { 1 } else { attempts + 1 };
        let wait = backoff(attempts);
        let next_attempt_at = crate::time::unix_ms() + wait.as_millis() as u64;
        // The state first: whoever reads the log line finds it.
        state.sources().set(&key, SourceStatus::Retrying { last_error: reason.clone(), next_attempt_at, attempts });
        tracing::warn!(stream = %label, url = %shown, attempts, retry_in_ms = wait.as_millis() as u64, "pull source: {reason}");
        last_error = Some(reason);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    state.sources().remove(&key);
    tracing::info!(stream = %label, "pull source stopped");
}

/// Connects once and feeds the stream until the source fails, ends or is
/// stopped.
async fn pull_once(state: &Arc<State>, source: &Source, key: &StreamKey, cancel: Arc<AtomicBool>) -> Result<(), String> {
    let mut options = PullOptions::new(state.runtime().egress());
    options.cancel = cancel;
    let url = source.url.clone();
    let opened = tokio::task::spawn_blocking(move || pull::open(&url, &options)).await.map_err(|e| e.to_string())?;
    let demuxer = opened.map_err(|e| e.to_string())?;
    let id = StreamId { domain: source.domain.clone(), app: source.app.clone(), stream: source.stream.clone() };
    let live = LiveStream::start(state, id, source.display_url()).map_err(|r| match r {
        Refusal::NoTemplate(why) | Refusal::AlreadyLive(why) | Refusal::NotNow(why) => why,
    })?;
    state.sources().set(key, SourceStatus::Live { since: crate::time::unix_ms() });
    tracing::info!(stream = %source.label(), url = %source.display_url(), "pull source live");
    tokio::task::spawn_blocking(move || feed(demuxer, live)).await.map_err(|e| e.to_string())?
}

/// Reads the source to its end (or an error, or the stop flag).
fn feed(mut demuxer: Box<dyn Demuxer + Send>, mut live: LiveStream) -> Result<(), String> {
    let result = loop {
        match demuxer.next_event() {
            Ok(Some(event)) => {
                for w in demuxer.take_warnings() {
                    live.skipped(&w);
                }
                live.on_event(event);
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.to_string()),
        }
    };
    live.finish();
    result
}

/// The wait before attempt `attempts + 1`: doubling from [`FIRST_WAIT`] up
/// to [`MAX_WAIT`], less up to a fifth at random so sources that failed
/// together do not all come back at once.
fn backoff(attempts: u32) -> Duration {
    let full = FIRST_WAIT.saturating_mul(1 << attempts.saturating_sub(1).min(6)).min(MAX_WAIT);
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    full - full / 5 * u32::from(byte[0]) / 255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter_below() {
        for (attempts, full) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
            let wait = backoff(attempts);
            let full = Duration::from_secs(full);
            assert!(wait <= full && wait >= full * 4 / 5, "attempt {attempts}: {wait:?} vs {full:?}");
        }
    }
}
