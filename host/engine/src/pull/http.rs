//! HTTP-FLV: a GET through ureq (resolved by the egress policy, no
//! redirects, no proxy), its streaming body read by [`FlvReader`].

use std::io::{self, Read};
use std::sync::Arc;
use std::thread;

use ureq::Agent;

use super::pump::{Pump, Taken};
use super::{Cancellable, PullError, PullOptions, Target};
use crate::egress::{VettingResolver, refusal_of};
use crate::ingest::Demuxer;
use crate::ingest::flv::FlvReader;

/// Body bytes read per hand-over.
const CHUNK: usize = 64 << 10;

pub(super) fn open(target: Target, options: &PullOptions) -> Result<Box<dyn Demuxer + Send>, PullError> {
    let config = Agent::config_builder()
        .http_status_as_error(false)
        // A redirect could lead anywhere; a proxy would be resolved instead of the server.
        .max_redirects(0)
        .proxy(None)
        .timeout_connect(Some(options.connect_timeout))
        .timeout_recv_response(Some(options.connect_timeout + options.read_timeout))
        .timeout_per_read(Some(options.read_timeout))
        .user_agent(concat!("livesnap/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = Agent::with_parts(config, ureq::unversioned::transport::DefaultConnector::new(), VettingResolver(options.egress.clone()));
    let response = agent.get(target.url.as_str()).call().map_err(|e| match refusal_of(&e) {
        Some(refusal) => PullError::Refused { url: target.redacted.clone(), refusal },
        None => match e {
            ureq::Error::Timeout(t) => target.timeout(format!("{t}")),
            ureq::Error::Io(io) => target.connect_error(io),
            ureq::Error::HostNotFound => target.connect_error("the host name does not resolve"),
            other => target.protocol(other),
        },
    })?;
    let status = response.status().as_u16();
    let detail = format!("HTTP {status}");
    match status {
        200 => {}
        401 | 403 => return Err(PullError::Unauthorized { url: target.redacted.clone(), detail }),
        404 | 410 => return Err(PullError::NotFound { url: target.redacted.clone(), detail }),
        300..=399 => return Err(target.protocol(format!("{detail}: redirects are not followed"))),
        _ => return Err(target.protocol(detail)),
    }
    let mut body = response.into_body().into_reader();
    let (tx, pump) = Pump::new(8, options, &target);
    let producer = target.clone();
    thread::Builder::new()
        .name("pull-http".into())
        .spawn(move || {
            loop {
                let mut buf = vec![0; CHUNK];
                let item = match body.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(buf)
                    }
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(producer.timeout(format!("no data: {e}"))),
                    Err(e) => Err(producer.io(e)),
                };
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    return; // the demuxer is gone, or the body broke
                }
            }
        })
        .map_err(|e| target.io(e))?;
    let reader = PumpReader { pump, pending: Vec::new(), at: 0 };
    Ok(Box::new(Cancellable { inner: FlvReader::new(reader), cancel: Arc::clone(&options.cancel) }))
}

/// The pumped body as a reader.
struct PumpReader {
    pump: Pump<Vec<u8>>,
    pending: Vec<u8>,
    at: usize,
}

impl Read for PumpReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.pending.len() {
            match self.pump.take() {
                Ok(Taken::Item(chunk)) => (self.pending, self.at) = (chunk, 0),
                Ok(Taken::End) => return Ok(0),
                Ok(Taken::Cancelled) => return Err(io::Error::other("cancelled")),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
