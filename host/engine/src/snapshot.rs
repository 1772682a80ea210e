//! One stream's snapshots, the same path for `livesnap capture` (a file)
//! and `livesnap up` (a live publisher): the session picks the pictures on
//! stream time (ARCHITECTURE §2); each becomes a [`SnapshotJob`] that
//! decodes its picture, stamps it with wall-clock time and runs the
//! template's functions through the [`Pipeline`].

use std::sync::Arc;

use crate::capture::Take;
use crate::config::Template;
use crate::decode::DecodeError;
use crate::ingest::VideoEvent;
use crate::pipeline::{Outcome, Pipeline, utc_offset_secs};
use crate::runtime::RuntimeError;
use crate::runtime::bindings::types::{CaptureTime, StreamId};
use crate::session::{DecodeJob, StreamSession};

/// A stream being captured: its name, template, session and clock.
pub struct StreamCapture {
    id: StreamId,
    /// `None` once the template is gone: the stream stays up, uncaptured.
    template: Option<Arc<Template>>,
    session: StreamSession,
    /// Stream time of the first picture, the zero of object times.
    first_pts: Option<u64>,
    /// Unix ms of the first picture.
    start_ms: u64,
    /// On-demand snapshots taken (their `seq`).
    on_demand: u64,
}

impl StreamCapture {
    /// Captures stream `id` with `template`; its first picture is at unix
    /// time `start_ms` (object names derive from it).
    pub fn new(id: StreamId, template: Arc<Template>, start_ms: u64) -> Self {
        let session = StreamSession::new(template.interval.as_millis() as u64, template.snapshot_mode);
        Self { id, template: Some(template), session, first_pts: None, start_ms, on_demand: 0 }
    }

    /// `domain/app/stream`, for logs.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.id.domain, self.id.app, self.id.stream)
    }

    /// The stream's name.
    pub fn id(&self) -> &StreamId {
        &self.id
    }

    /// Changes the template from the next snapshot on; `None` stops the
    /// snapshots (pictures are still counted).
    pub fn set_template(&mut self, template: Option<Arc<Template>>) {
        if let Some(t) = &template {
            self.session.reconfigure(t.interval.as_millis() as u64, t.snapshot_mode);
        }
        self.template = template;
    }

    /// Whether a decodable picture (an IDR) has arrived.
    pub fn has_started(&self) -> bool {
        self.session.has_started()
    }

    /// Pictures seen.
    pub fn pictures(&self) -> u64 {
        self.session.pictures()
    }

    /// Takes one demuxed event; a job when a snapshot is due.
    pub fn push(&mut self, event: VideoEvent) -> Option<SnapshotJob> {
        if let VideoEvent::Unit(unit) = &event {
            self.first_pts.get_or_insert(unit.pts_ms);
        }
        self.template.as_ref()?;
        let decode = self.session.push(event)?;
        self.job(decode)
    }

    /// The stream ended: a snapshot still waiting for an IDR takes its due picture.
    pub fn finish(&mut self) -> Option<SnapshotJob> {
        self.template.as_ref()?;
        let decode = self.session.finish()?;
        self.job(decode)
    }

    /// A snapshot of the newest picture, now, outside the capture grid (an
    /// on-demand snapshot): `None` before the first IDR or without a template.
    pub fn newest(&mut self) -> Option<SnapshotJob> {
        self.template.as_ref()?;
        self.on_demand += 1;
        let decode = self.session.newest(self.on_demand)?;
        self.job(decode)
    }

    /// A job's picture did not decode: the next candidate serves its due time.
    pub fn retry(&mut self, take: Take) {
        self.session.retry(take);
    }

    fn job(&self, decode: DecodeJob) -> Option<SnapshotJob> {
        Some(SnapshotJob {
            decode,
            template: self.template.clone()?,
            id: self.id.clone(),
            first_pts: self.first_pts.unwrap_or(0),
            start_ms: self.start_ms,
        })
    }
}

/// One snapshot to take: owns its compressed pictures, so it can run on
/// any thread.
pub struct SnapshotJob {
    decode: DecodeJob,
    template: Arc<Template>,
    id: StreamId,
    first_pts: u64,
    start_ms: u64,
}

/// What became of a snapshot job.
#[derive(Debug)]
pub enum Snapshot {
    /// The picture did not decode; hand `take` to [`StreamCapture::retry`].
    Undecodable {
        /// The snapshot it was for.
        take: Take,
        /// Why.
        error: DecodeError,
    },
    /// Encoded, stored and (if on) its callback queued.
    Stored {
        /// The snapshot.
        take: Take,
        /// The picture's stream time.
        pts_ms: u64,
        /// Milliseconds since the stream's first picture.
        stream_time_ms: u64,
        /// What was stored.
        outcome: Outcome,
    },
    /// A function failed.
    Failed {
        /// The snapshot.
        take: Take,
        /// The picture's stream time.
        pts_ms: u64,
        /// Milliseconds since the stream's first picture.
        stream_time_ms: u64,
        /// Which function, and why.
        error: RuntimeError,
    },
}

impl SnapshotJob {
    /// Which snapshot this is.
    pub fn take(&self) -> Take {
        self.decode.take
    }

    /// The template it runs.
    pub fn template(&self) -> &Arc<Template> {
        &self.template
    }

    /// Decodes the picture and runs the functions (blocking: CPU work and
    /// the components' I/O); `stored` sees a stored snapshot before its
    /// callback is queued.
    pub fn run(self, pipeline: &Pipeline, stored: &mut dyn FnMut(&Outcome)) -> Snapshot {
        let take = self.decode.take;
        let picture = match self.decode.decode() {
            Ok(picture) => picture,
            Err(error) => return Snapshot::Undecodable { take, error },
        };
        let pts_ms = picture.pts_ms;
        let stream_time_ms = pts_ms.saturating_sub(self.first_pts);
        let unix_ms = self.start_ms + stream_time_ms;
        let at = CaptureTime { unix_ms, utc_offset_secs: utc_offset_secs((unix_ms / 1000) as i64) };
        match pipeline.run(&self.template, &self.id, picture, at, stored) {
            Ok(outcome) => Snapshot::Stored { take, pts_ms, stream_time_ms, outcome },
            Err(error) => Snapshot::Failed { take, pts_ms, stream_time_ms, error },
        }
    }
}
