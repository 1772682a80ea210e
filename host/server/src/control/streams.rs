//! Live streams: the list (each with the template that captures it now),
//! a snapshot on demand, and the latest snapshot.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::ControlError;
use super::projects::Tenant;
use super::{Listing, Page};
use crate::app::State;
use crate::config::Template;
use crate::streams::{OnDemand, Rates, StreamKey, StreamView};

/// How long an on-demand snapshot may take: the next picture of the stream,
/// decoding from the GOP's IDR, and the functions.
const ON_DEMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// The project's live streams on every node and their templates (`None`
/// once the template is gone), by name.
pub fn list(state: &State, tenant: &Tenant) -> Vec<(StreamView, Option<Arc<Template>>)> {
    let config = state.config();
    let remote = crate::cluster::remote_streams(state).into_iter().map(|r| StreamView {
        owner: r.owner,
        domain: r.key.0,
        app: r.key.1,
        stream: r.key.2,
        peer: r.summary.peer,
        started_at: r.summary.started_at,
        frames: r.summary.frames,
        snapshots: r.summary.snapshots,
        errors: r.summary.errors,
        last_snapshot_url: r.summary.last_snapshot_url,
    });
    let mut streams: Vec<_> = state
        .streams()
        .list()
        .into_iter()
        .chain(remote)
        .filter(|s| s.owner == tenant.key)
        .map(|s| {
            let template = config.template(&s.domain, &s.app).filter(|t| t.owner == s.owner).cloned();
            (s, template)
        })
        .collect();
    streams.sort_by(|(a, _), (b, _)| (&a.domain, &a.app, &a.stream).cmp(&(&b.domain, &b.app, &b.stream)));
    streams
}

fn not_live(key: &StreamKey) -> ControlError {
    ControlError::NotFound(format!("stream {}/{}/{} is not live", key.0, key.1, key.2))
}

/// A live stream of the project's; another project's is not live for it.
fn live_stream(state: &State, tenant: &Tenant, key: &StreamKey) -> Result<Arc<crate::streams::StreamInfo>, ControlError> {
    state.streams().get(key).filter(|s| s.owner == tenant.key).ok_or_else(|| not_live(key))
}

/// Takes a snapshot of the newest picture of a live stream now, stored and
/// notified as its template says; answers the stored snapshot as its
/// callback body describes it. A stream live on another node is asked
/// through the state database.
pub async fn snapshot_now(state: &Arc<State>, tenant: &Tenant, key: &StreamKey) -> Result<serde_json::Value, ControlError> {
    if state.streams().get(key).is_none() {
        let (st, k) = (state.clone(), key.clone());
        let remote = tokio::task::spawn_blocking(move || crate::cluster::remote(&st, &k)).await.ok().flatten();
        if let Some(remote) = remote.filter(|r| r.owner == tenant.key) {
            return super::on_demand::ask(state, &remote, ON_DEMAND_TIMEOUT).await;
        }
    }
    snapshot_here(state, tenant, key).await
}

/// [`snapshot_now`] of a stream live on this node.
pub async fn snapshot_here(state: &State, tenant: &Tenant, key: &StreamKey) -> Result<serde_json::Value, ControlError> {
    let info = live_stream(state, tenant, key)?;
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
pub fn latest(state: &State, tenant: &Tenant, key: &StreamKey) -> Result<(Vec<u8>, String), ControlError> {
    // A stream live on another node: what that node last said it stored.
    let stored = match live_stream(state, tenant, key) {
        Ok(info) => info.last_snapshot.lock().unwrap().as_ref().map(|s| (s.bucket.clone(), s.object.clone())),
        Err(not_here) => match crate::cluster::remote(state, key).filter(|r| r.owner == tenant.key) {
            Some(remote) => remote.summary.last_snapshot,
            None => return Err(not_here),
        },
    };
    let (bucket, object) =
        stored.ok_or_else(|| ControlError::NotFound(format!("stream {}/{}/{} has no snapshot yet", key.0, key.1, key.2)))?;
    let bytes = state
        .buckets()
        .get(&bucket, &object)
        .map_err(|e| ControlError::Failed(format!("reading {bucket}/{object}: {e}")))?
        .ok_or_else(|| ControlError::NotFound(format!("the latest snapshot {object} is gone from its bucket")))?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..16]));
    Ok((bytes, etag))
}

/// The snapshots beside a live stream's latest one (its folder in the
/// bucket), newest last, at most `limit`. Blocking (lists the bucket).
pub fn snapshots(state: &State, tenant: &Tenant, key: &StreamKey, limit: usize) -> Result<(String, Vec<String>), ControlError> {
    let info = live_stream(state, tenant, key)?;
    let Some(latest) = info.last_snapshot.lock().unwrap().clone() else {
        return Ok((String::new(), Vec::new()));
    };
    let folder = latest.object.rsplit_once('/').map_or("", |(folder, _)| folder).to_string();
    if folder.is_empty() {
        return Ok((latest.bucket, vec![latest.object]));
    }
    let keys = state
        .buckets()
        .list(&latest.bucket, &folder, limit)
        .map_err(|e| ControlError::Failed(format!("listing {}/{folder}: {e}", latest.bucket)))?;
    Ok((latest.bucket, keys))
}

/// One snapshot of a live stream's folder (`file` is a name in it).
/// Blocking (reads the bucket).
pub fn snapshot_object(state: &State, tenant: &Tenant, key: &StreamKey, file: &str) -> Result<Vec<u8>, ControlError> {
    let info = live_stream(state, tenant, key)?;
    let latest = info.last_snapshot.lock().unwrap().clone().ok_or_else(|| not_live(key))?;
    if file.is_empty() || file.contains('/') {
        return Err(ControlError::NotFound(format!("no snapshot '{file}'")));
    }
    let object = match latest.object.rsplit_once('/') {
        Some((folder, _)) => format!("{folder}/{file}"),
        None => file.to_string(),
    };
    state
        .buckets()
        .get(&latest.bucket, &object)
        .map_err(|e| ControlError::Failed(format!("reading {}/{object}: {e}", latest.bucket)))?
        .ok_or_else(|| ControlError::NotFound(format!("no snapshot '{file}'")))
}

/// A live stream as Huawei's `ListLiveStreamsOnline` shows it.
#[derive(Debug)]
pub struct Online {
    /// Domain, app, stream.
    pub key: StreamKey,
    /// `H264` (the only codec accepted).
    pub video_codec: &'static str,
    /// `AAC`, `MP3`, or empty without audio.
    pub audio_codec: &'static str,
    /// Measured rates.
    pub rates: Rates,
    /// `WIDTHxHEIGHT` once a picture was decoded.
    pub resolution: String,
    /// The publisher's address (a pulled stream: its server's host).
    pub client_ip: String,
    /// Unix seconds it went live.
    pub started_at: u64,
}

/// Live streams of the project's `domain` (and `app`, and `stream`) on
/// every node, a page of them, in name order.
pub fn online(state: &State, tenant: &Tenant, domain: &str, app: Option<&str>, stream: Option<&str>, page: Page) -> Listing<Online> {
    let local = state.streams().entries().into_iter().map(|i| (i.key.clone(), i.owner.clone(), crate::cluster::Summary::of(&i)));
    let remote = crate::cluster::remote_streams(state).into_iter().map(|r| (r.key, r.owner, r.summary));
    let mut matching: Vec<_> = local
        .chain(remote)
        .filter(|(key, owner, _)| {
            *owner == tenant.key
                && key.0.eq_ignore_ascii_case(domain)
                && app.is_none_or(|a| a == key.1)
                && stream.is_none_or(|s| s == key.2)
        })
        .collect();
    matching.sort_by(|a, b| a.0.cmp(&b.0));
    let total = matching.len();
    let items = matching
        .into_iter()
        .skip(page.offset)
        .take(page.limit)
        .map(|(key, _, s)| Online {
            key,
            video_codec: "H264",
            audio_codec: match s.audio_format {
                Some(10) => "AAC",
                Some(2 | 14) => "MP3",
                _ => "",
            },
            rates: s.rates,
            resolution: s.resolution.map(|(w, h)| format!("{w}x{h}")).unwrap_or_default(),
            client_ip: client_ip(&s.peer),
            started_at: s.started_at,
        })
        .collect();
    Listing { total, items }
}

/// The IP of a publisher's `ip:port`, or the host of a pulled stream's URL.
fn client_ip(peer: &str) -> String {
    match peer.parse::<std::net::SocketAddr>() {
        Ok(addr) => addr.ip().to_string(),
        Err(_) => url::Url::parse(peer).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default(),
    }
}
