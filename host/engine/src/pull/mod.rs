//! Pulling live H.264 from a URL: HTTP-FLV (`http://`, `https://`), RTMP
//! play (`rtmp://`) and RTSP (`rtsp://`, via retina). Each becomes a
//! blocking [`Demuxer`] yielding the same [`crate::ingest::VideoEvent`]s
//! as the file demuxers, so a pulled stream is captured like a pushed one.
//!
//! Every address connected to passes the [`EgressPolicy`] first and the
//! connection goes to exactly the vetted address (no second DNS lookup).
//! URLs in errors and logs are [`redact`]ed: no password, no query value.
//!
//! RTSP uses TCP-interleaved transport; the URL fragment `#udp` selects
//! UDP instead (fragments are never sent to the server).

mod http;
mod pump;
mod rtmp;
mod rtsp;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::egress::{EgressPolicy, Refusal};
use crate::ingest::{Demuxer, IngestError, VideoEvent};

/// How a pull connects and when it gives up.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Every address connected to must pass it (the SSRF guard).
    pub egress: Arc<EgressPolicy>,
    /// Longest wait for a TCP connection (and RTSP's DESCRIBE answer).
    pub connect_timeout: Duration,
    /// No data for this long is an error.
    pub read_timeout: Duration,
    /// When set, `next_event` returns `Ok(None)` promptly (checked at every
    /// read and at least every 500 ms).
    pub cancel: Arc<AtomicBool>,
}

impl PullOptions {
    /// 10 s connect and read timeouts, not cancelled.
    pub fn new(egress: Arc<EgressPolicy>) -> Self {
        Self {
            egress,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// How often blocking waits look at the cancel flag.
const POLL: Duration = Duration::from_millis(500);

/// Why a pull failed. `url` is always [`redact`]ed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Not a URL this module pulls from.
    #[error("bad pull URL {url}: {detail}")]
    BadUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The egress policy refused the destination; nothing was sent.
    #[error("pulling {url}: {refusal}")]
    Refused {
        /// The URL, redacted.
        url: String,
        /// The policy's reason.
        refusal: Refusal,
    },
    /// The server could not be reached.
    #[error("pulling {url}: cannot connect: {detail}")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// Why.
        detail: String,
    },
    /// The server refused the credentials (HTTP/RTSP 401,
    /// `NetConnection.Connect.Rejected`).
    #[error("pulling {url}: unauthorized: {detail}")]
    Unauthorized {
        /// The URL, redacted.
        url: String,
        /// The server's words.
        detail: String,
    },
    /// The server has no such stream (404, `NetStream.Play.StreamNotFound`).
    #[error("pulling {url}: stream not found: {detail}")]
    NotFound {
        /// The URL, redacted.
        url: String,
        /// The server's words.
        detail: String,
    },
    /// The server broke the protocol or refused otherwise.
    #[error("pulling {url}: protocol error: {detail}")]
    Protocol {
        /// The URL, redacted.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Reading or writing the connection failed.
    #[error("pulling {url}: {source}")]
    Io {
        /// The URL, redacted.
        url: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Nothing arrived for the read timeout (or the connection attempt for
    /// the connect timeout).
    #[error("pulling {url}: timed out: {detail}")]
    Timeout {
        /// The URL, redacted.
        url: String,
        /// What was being waited for.
        detail: String,
    },
}

impl PullError {
    /// The error as an ingest error, for `next_event`.
    fn into_ingest(self) -> IngestError {
        let kind = match &self {
            PullError::Timeout { .. } => io::ErrorKind::TimedOut,
            PullError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        IngestError::Io(io::Error::new(kind, self))
    }
}

/// Opens `url` for pulling: connects, negotiates and returns a demuxer of
/// its H.264 video. The URL's kind is chosen by its scheme (see
/// [`is_pull_url`]).
pub fn open(url: &str, options: &PullOptions) -> Result<Box<dyn Demuxer + Send>, PullError> {
    let target = Target::parse(url)?;
    match target.scheme.as_str() {
        "http" | "https" => http::open(target, options),
        "rtmp" => rtmp::open(target, options),
        "rtsp" => rtsp::open(target, options),
        _ => Err(target.bad("the scheme must be rtsp://, rtmp://, http:// or https://")),
    }
}

/// Whether `s` is a URL [`open`] pulls from: `rtsp://`, `rtmp://`,
/// `http://` or `https://` (scheme in any case).
pub fn is_pull_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| ["rtsp", "rtmp", "http", "https"].iter().any(|k| scheme.eq_ignore_ascii_case(k)))
}

/// `url` fit for logs and errors: the userinfo's password and every query
/// value become `***` (`rtsp://user:secret@host/x?token=abc` →
/// `rtsp://user:***@host/x?token=***`).
pub fn redact(url: &str) -> String {
    let (head, fragment) = match url.split_once('#') {
        Some((h, f)) => (h, Some(f)),
        None => (url, None),
    };
    let (before_query, query) = match head.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (head, None),
    };
    let mut out = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => before_query.to_string(),
    };
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None if kv.is_empty() => String::new(),
                None => "***".to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// A demuxer that ends (`Ok(None)`) once the cancel flag is set, also when
/// the cancel broke a read.
struct Cancellable<D> {
    inner: D,
    cancel: Arc<AtomicBool>,
}

impl<D: Demuxer> Demuxer for Cancellable<D> {
    fn next_event(&mut self) -> Result<Option<VideoEvent>, IngestError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match self.inner.next_event() {
            Err(_) if self.cancel.load(Ordering::Relaxed) => Ok(None),
            other => other,
        }
    }

    fn take_warnings(&mut self) -> Vec<IngestError> {
        self.inner.take_warnings()
    }

    fn position(&self) -> u64 {
        self.inner.position()
    }
}

/// A parsed pull URL with what is secret in it.
#[derive(Clone, Debug)]
struct Target {
    /// The URL as given (never printed).
    url: url::Url,
    /// Lower-case scheme.
    scheme: String,
    host: String,
    port: u16,
    /// The URL for messages.
    redacted: String,
    /// The password and query values, as given and decoded, to scrub from
    /// texts that come from elsewhere (a server's or a library's words).
    secrets: Vec<String>,
}

impl Target {
    fn parse(raw: &str) -> Result<Self, PullError> {
        let redacted = redact(raw);
        let bad = |detail: String| PullError::BadUrl { url: redacted.clone(), detail };
        if !is_pull_url(raw) {
            return Err(bad("the scheme must be rtsp://, rtmp://, http:// or https://".into()));
        }
        let url = url::Url::parse(raw).map_err(|e| bad(e.to_string()))?;
        let scheme = url.scheme().to_ascii_lowercase();
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host".into()))?.to_string();
        let default_port = match scheme.as_str() {
            "rtsp" => 554,
            "rtmp" => 1935,
            "https" => 443,
            _ => 80,
        };
        let port = url.port().unwrap_or(default_port);
        let mut secrets: Vec<String> = Vec::new();
        if let Some(p) = url.password() {
            secrets.push(p.to_string());
            secrets.push(percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned());
        }
        for kv in url.query().unwrap_or_default().split('&') {
            let value = kv.split_once('=').map_or(kv, |(_, v)| v);
            secrets.push(value.to_string());
            secrets.push(percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned());
        }
        // Longest first, so a secret containing another is masked whole.
        secrets.retain(|s| s.len() >= 3);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Ok(Self { url, scheme, host, port, redacted, secrets })
    }

    /// `text` with every secret of the URL masked.
    fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
    }

    fn bad(&self, detail: &str) -> PullError {
        PullError::BadUrl { url: self.redacted.clone(), detail: detail.to_string() }
    }

    fn connect_error(&self, detail: impl std::fmt::Display) -> PullError {
        PullError::Connect { url: self.redacted.clone(), detail: self.scrub(&detail.to_string()) }
    }

    fn protocol(&self, detail: impl std::fmt::Display) -> PullError {
        PullError::Protocol { url: self.redacted.clone(), detail: self.scrub(&detail.to_string()) }
    }

    fn timeout(&self, detail: impl std::fmt::Display) -> PullError {
        PullError::Timeout { url: self.redacted.clone(), detail: detail.to_string() }
    }

    fn io(&self, source: io::Error) -> PullError {
        let source = io::Error::new(source.kind(), self.scrub(&source.to_string()));
        PullError::Io { url: self.redacted.clone(), source }
    }

    /// The vetted addresses of the host (resolved once, here).
    fn vetted(&self, options: &PullOptions) -> Result<Vec<SocketAddr>, PullError> {
        options.egress.resolve(&self.host, self.port).map_err(|refusal| PullError::Refused { url: self.redacted.clone(), refusal })
    }

    /// A TCP connection to the first vetted address that answers.
    fn connect_tcp(&self, options: &PullOptions) -> Result<TcpStream, PullError> {
        let mut last = None;
        for addr in self.vetted(options)? {
            match TcpStream::connect_timeout(&addr, options.connect_timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        let e = last.map_or_else(|| "no address".to_string(), |e| e.to_string());
        Err(self.connect_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_masks_passwords_and_every_query_value() {
        assert_eq!(redact("rtsp://user:secret@host/x?token=abc"), "rtsp://user:***@host/x?token=***");
        assert_eq!(redact("rtsp://user:secret@host:8554/x"), "rtsp://user:***@host:8554/x");
        assert_eq!(redact("rtmp://host/live/cam?a=1&b=2&flag"), "rtmp://host/live/cam?a=***&b=***&***");
        assert_eq!(redact("http://user@host/a.flv"), "http://user@host/a.flv");
        assert_eq!(redact("https://u:p%40ss@h/x.flv?k=v#frag"), "https://u:***@h/x.flv?k=***#frag");
        assert_eq!(redact("rtsp://host"), "rtsp://host");
        assert_eq!(redact("rtsp://a:b@c@host/p"), "rtsp://a:***@host/p");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn pull_urls_by_scheme_in_any_case() {
        for u in ["rtsp://h/x", "RTSP://h/x", "rtmp://h/a/s", "http://h/x.flv", "HTTPS://h/x.flv"] {
            assert!(is_pull_url(u), "{u}");
        }
        for u in ["file:///x.flv", "/tmp/x.flv", "-", "x.flv", "rtsps://h/x", "ftp://h/x"] {
            assert!(!is_pull_url(u), "{u}");
        }
    }

    #[test]
    fn secrets_are_scrubbed_from_foreign_text_and_errors() {
        let t = Target::parse("rtsp://admin:hunter2%21@cam.example/live?token=s3cr3t").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("cam.example", 554));
        let text = t.scrub("401 for rtsp://admin:hunter2!@cam.example/live?token=s3cr3t and hunter2%21");
        assert!(!text.contains("hunter2") && !text.contains("s3cr3t"), "{text}");
        let e = t.protocol("the server said hunter2!");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("rtsp://admin:***@cam.example/live?token=***"), "{e}");
    }

    #[test]
    fn private_destinations_are_refused_before_any_packet() {
        let options = PullOptions::new(Arc::new(EgressPolicy::default()));
        for url in ["rtsp://10.0.0.1/x", "rtmp://169.254.169.254/a/b", "http://127.0.0.1:9/x.flv", "rtsp://user:pw@192.168.1.9/x"] {
            let Err(e) = open(url, &options) else { panic!("{url} opened") };
            assert!(matches!(e, PullError::Refused { .. }), "{url}: {e}");
            assert!(e.to_string().contains("egress policy") && !e.to_string().contains(":pw@"), "{e}");
        }
        let Err(e) = open("ftp://h/x", &options) else { panic!() };
        assert!(matches!(e, PullError::BadUrl { .. }));
    }
}
