//! Live streams: the list (each with the template that captures it now),
//! a snapshot on demand, and the latest snapshot.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::ControlError;
use crate::app::State;
use crate::config::Template;
use crate::streams::{OnDemand, StreamKey, StreamView};

/// How long an on-demand snapshot may take: the next picture of the stream,
/// decoding from the GOP's IDR, and the functions.
const ON_DEMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// Every live stream and its template (`None` once the template is gone).
pub fn list(state: &State) -> Vec<(StreamView, Option<Arc<Template>>)> {
    let config = state.config();
    state
        .streams()
        .list()
        .into_iter()
        .map(|s| {
            let template = config.template(&s.domain, &s.app).cloned();
            (s, template)
        })
        .collect()
}

fn not_live(key: &StreamKey) -> ControlError {
    ControlError::NotFound(format!("stream {}/{}/{} is not live", key.0, key.1, key.2))
}

/// Takes a snapshot of the newest picture of a live stream now, stored and
/// notified as its template says; answers the stored snapshot as its
/// callback body describes it.
pub async fn snapshot_now(state: &State, key: &StreamKey) -> Result<serde_json::Value, ControlError> {
    let info = state.streams().get(key).ok_or_else(|| not_live(key))?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    // The stream's receiving task takes the request with its next picture.
    info.requests.lock().unwrap().send(OnDemand { reply }).map_err(|_| not_live(key))?;
    match tokio::time::timeout(ON_DEMAND_TIMEOUT, answer).await {
        Ok(Ok(Ok(body))) => {
            tracing::info!(stream = %format!("{}/{}/{}", key.0, key.1, key.2), "snapshot taken on demand");
            Ok(body)
        }
        Ok(Ok(Err(why))) => Err(ControlError::Unavailable(format!("no snapshot: {why}"))),
        Ok(Err(_)) => Err(not_live(key)),
        Err(_) => Err(ControlError::Unavailable(format!("no picture arrived within {} s", ON_DEMAND_TIMEOUT.as_secs()))),
    }
}

/// The latest snapshot of a live stream: its bytes and an entity tag.
/// Blocking (reads the bucket): call it off the executor.
pub fn latest(state: &State, key: &StreamKey) -> Result<(Vec<u8>, String), ControlError> {
    let info = state.streams().get(key).ok_or_else(|| not_live(key))?;
    let stored = info.last_snapshot.lock().unwrap().clone();
    let stored = stored.ok_or_else(|| ControlError::NotFound(format!("stream {}/{}/{} has no snapshot yet", key.0, key.1, key.2)))?;
    let bytes = state
        .buckets()
        .get(&stored.bucket, &stored.object)
        .map_err(|e| ControlError::Failed(format!("reading {}/{}: {e}", stored.bucket, stored.object)))?
        .ok_or_else(|| ControlError::NotFound(format!("the latest snapshot {} is gone from its bucket", stored.object)))?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..16]));
    Ok((bytes, etag))
}
