//! Ingest: turns what publishers send (FLV, Annex-B H.264) into access units
//! in decode order, with stream-time timestamps.

pub mod annexb;
pub mod flv;
pub mod h264;
pub mod rtmp;
pub mod url_auth;
pub mod window;

use std::io;

/// One coded picture, as Annex-B bytes (start codes before every NAL unit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// Decode timestamp in stream milliseconds.
    pub dts_ms: u64,
    /// Presentation timestamp in stream milliseconds.
    pub pts_ms: u64,
    /// Whether the unit holds an IDR slice (a picture decodable on its own).
    pub idr: bool,
    /// Annex-B NAL units of the picture.
    pub data: Vec<u8>,
}

/// What a demuxer hands to a stream session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoEvent {
    /// New SPS/PPS, as Annex-B bytes; applies to the units that follow.
    ParameterSets(Vec<u8>),
    /// A coded picture.
    Unit(AccessUnit),
}

/// Why input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input could not be read at all.
    #[error("reading input: {0}")]
    Io(#[from] io::Error),
    /// The input is not in the expected container.
    #[error("not an FLV file: {0}")]
    NotFlv(String),
    /// The video is not H.264.
    #[error("video codec {0} is not supported (only H.264/AVC)")]
    UnsupportedCodec(String),
    /// A part of the input is malformed; `offset` is where it starts.
    #[error("malformed {what} at byte {offset}: {detail}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Byte offset in the input.
        offset: u64,
        /// What was wrong.
        detail: String,
    },
}

/// A source of video events, read to the end.
pub trait Demuxer {
    /// The next event, `Ok(None)` at the end of the input. Recoverable damage
    /// is skipped inside (and reported through `warnings`); an error means
    /// nothing more can be read.
    fn next_event(&mut self) -> Result<Option<VideoEvent>, IngestError>;

    /// Problems skipped so far, oldest first; drained by the caller.
    fn take_warnings(&mut self) -> Vec<IngestError>;

    /// Bytes consumed so far (for progress).
    fn position(&self) -> u64;
}
