//! RTMP play over a blocking TCP connection to the vetted address: the
//! handshake, then [`PlayClient`] (connect, createStream, play); video
//! messages go through [`VideoTagParser`] as FLV tag bodies.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use super::{POLL, PullError, PullOptions, Target};
use crate::ingest::flv::VideoTagParser;
use crate::ingest::rtmp::client::{ClientEvent, PlayClient, PlayTarget};
use crate::ingest::rtmp::handshake::{S0S1S2_LEN, client_c0c1, client_c2};
use crate::ingest::{Demuxer, IngestError, VideoEvent};

pub(super) fn open(target: Target, options: &PullOptions) -> Result<Box<dyn Demuxer + Send>, PullError> {
    let play = PlayTarget::from_url(target.url.as_str()).map_err(|e: String| target.bad(&e))?;
    let stream = target.connect_tcp(options)?;
    let setup = |s: &TcpStream| -> io::Result<()> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(POLL.min(options.read_timeout)))?;
        s.set_write_timeout(Some(options.read_timeout))
    };
    setup(&stream).map_err(|e| target.io(e))?;
    let mut d = RtmpPull {
        stream,
        client: PlayClient::new(play),
        input: Vec::new(),
        parser: VideoTagParser::default(),
        queue: VecDeque::new(),
        warnings: Vec::new(),
        position: 0,
        ended: false,
        options: options.clone(),
        target,
    };
    d.handshake()?;
    let output = d.client.take_output();
    d.write(&output)?;
    let deadline = Instant::now() + options.connect_timeout + options.read_timeout;
    while !d.client.is_playing() {
        if Instant::now() >= deadline {
            return Err(d.target.timeout("the server did not start playing"));
        }
        if !d.fill()? {
            return Err(d.target.protocol("the server closed the connection before play started"));
        }
        d.process()?;
        if d.ended {
            return Err(d.target.protocol("the stream ended before play started"));
        }
    }
    Ok(Box::new(d))
}

struct RtmpPull {
    stream: TcpStream,
    client: PlayClient,
    /// Received bytes not yet consumed by the client.
    input: Vec<u8>,
    parser: VideoTagParser,
    queue: VecDeque<VideoEvent>,
    warnings: Vec<IngestError>,
    position: u64,
    ended: bool,
    options: PullOptions,
    target: Target,
}

impl RtmpPull {
    fn handshake(&mut self) -> Result<(), PullError> {
        let c0c1 = client_c0c1(0);
        self.write(&c0c1)?;
        let started = Instant::now();
        while self.input.len() < S0S1S2_LEN {
            if started.elapsed() >= self.options.connect_timeout + self.options.read_timeout {
                return Err(self.target.timeout("the RTMP handshake"));
            }
            if !self.fill()? {
                return Err(self.target.protocol("the server closed the connection during the handshake"));
            }
        }
        let s0s1s2: [u8; S0S1S2_LEN] = self.input[..S0S1S2_LEN].try_into().expect("checked length");
        let c2 = client_c2(&s0s1s2, started.elapsed().as_millis() as u32)
            .ok_or_else(|| self.target.protocol(format!("the server answered with version {}, not RTMP 3", s0s1s2[0])))?;
        self.input.drain(..S0S1S2_LEN);
        self.write(&c2)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), PullError> {
        if data.is_empty() {
            return Ok(());
        }
        self.stream.write_all(data).map_err(|e| self.target.io(e))
    }

    /// Reads what has arrived; false at the end of the connection. Waits at
    /// most the read timeout, looking at the cancel flag meanwhile.
    fn fill(&mut self) -> Result<bool, PullError> {
        let since = Instant::now();
        let mut buf = [0u8; 64 << 10];
        loop {
            if self.options.cancelled() {
                return Ok(false);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    self.position += n as u64;
                    return Ok(true);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {
                    if since.elapsed() >= self.options.read_timeout {
                        return Err(self.target.timeout(format!("no data for {} s", self.options.read_timeout.as_secs_f64())));
                    }
                }
                Err(e) => return Err(self.target.io(e)),
            }
        }
    }

    /// Feeds the received bytes to the client: queues video, sends its
    /// answers, turns refusals into errors.
    fn process(&mut self) -> Result<(), PullError> {
        let (used, events) = self.client.feed(&self.input).map_err(|e| self.target.protocol(e))?;
        self.input.drain(..used);
        let output = self.client.take_output();
        self.write(&output)?;
        let offset = self.position;
        for event in events {
            match event {
                ClientEvent::Playing => {}
                ClientEvent::Ended => self.ended = true,
                ClientEvent::Rejected { code, description } => return Err(self.rejected(&code, &description)),
                ClientEvent::Video { timestamp, data } => match self.parser.parse(timestamp, &data, offset) {
                    Ok(Some(e)) => self.queue.push_back(e),
                    Ok(None) => {}
                    Err(e @ IngestError::UnsupportedCodec(_)) => return Err(self.target.protocol(e)),
                    Err(e) => self.warnings.push(e),
                },
            }
        }
        Ok(())
    }

    fn rejected(&self, code: &str, description: &str) -> PullError {
        let url = self.target.redacted.clone();
        let detail = self.target.scrub(&format!("{code}: {description}"));
        let lower = format!("{code} {description}").to_ascii_lowercase();
        if code.contains("StreamNotFound") || lower.contains("not found") {
            PullError::NotFound { url, detail }
        } else if code.contains("Connect.Rejected") || lower.contains("auth") {
            PullError::Unauthorized { url, detail }
        } else {
            PullError::Protocol { url, detail }
        }
    }
}

impl Demuxer for RtmpPull {
    fn next_event(&mut self) -> Result<Option<VideoEvent>, IngestError> {
        loop {
            if self.options.cancelled() {
                return Ok(None);
            }
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            if self.ended {
                return Ok(None);
            }
            match self.fill() {
                Ok(true) => self.process().map_err(PullError::into_ingest)?,
                Ok(false) => return Ok(None),
                Err(e) => return Err(e.into_ingest()),
            }
        }
    }

    fn take_warnings(&mut self) -> Vec<IngestError> {
        std::mem::take(&mut self.warnings)
    }

    fn position(&self) -> u64 {
        self.position
    }
}
