//! RTMP: the handshake, chunk streams, AMF0 commands; the server side of
//! publishing (connect, releaseStream, FCPublish, createStream, publish,
//! deleteStream) in [`connection`] and the client side of playing (connect,
//! createStream, play) in [`client`]. Video arrives as FLV video tag
//! bodies, parsed by [`super::flv::VideoTagParser`].

pub mod amf0;
pub mod chunk;
pub mod client;
pub mod connection;
pub mod handshake;

pub use connection::{Connection, Event, PublishRequest};

/// Why an RTMP connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The peer broke the protocol.
    #[error("RTMP protocol error: {0}")]
    Protocol(String),
    /// A command or metadata payload is not valid AMF0.
    #[error("malformed AMF0 at byte {offset}: {detail}")]
    Amf {
        /// Offset in the payload.
        offset: usize,
        /// What was wrong.
        detail: String,
    },
}

/// The video tags of an aggregate message (FLV tags without the file
/// header), as (timestamp, tag body): their timestamps are offset to the
/// message's.
pub(crate) fn aggregate_video(m: &chunk::Message) -> Result<Vec<(u32, Vec<u8>)>, RtmpError> {
    let mut p = &m.payload[..];
    let mut base: Option<u32> = None;
    let mut out = Vec::new();
    while p.len() >= 11 {
        let size = u32::from_be_bytes([0, p[1], p[2], p[3]]) as usize;
        let ts = u32::from_be_bytes([p[7], p[4], p[5], p[6]]);
        let Some(body) = p.get(11..11 + size) else {
            return Err(RtmpError::Protocol("aggregate message tag runs past its end".into()));
        };
        let first = *base.get_or_insert(ts);
        if p[0] & 0x1f == 9 {
            out.push((m.timestamp.wrapping_add(ts.wrapping_sub(first)), body.to_vec()));
        }
        p = p.get(11 + size + 4..).unwrap_or_default();
    }
    Ok(out)
}

/// Where a publisher wants to publish, from its connect and publish calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishTarget {
    /// The ingest domain: `domain=`/`vhost=` parameter, else the tcUrl host.
    pub domain: String,
    /// The application (connect's `app`, without parameters).
    pub app: String,
    /// The stream name (before any `?`).
    pub stream: String,
}

/// The `key=value` parameters of the publish name, connect's `app` and the
/// `tcUrl`, in that order of precedence.
pub fn publish_params(app: &str, tc_url: Option<&str>, name: &str) -> Vec<(String, String)> {
    let query = |s: &str| s.split_once('?').map_or("", |(_, q)| q).to_string();
    [query(name), query(app), tc_url.map(query).unwrap_or_default()]
        .iter()
        .flat_map(|q| q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
        .collect()
}

/// Resolves domain, app and stream from connect's `app` and `tcUrl` and the
/// publish name, each of which may carry `?key=value` parameters.
pub fn publish_target(app: &str, tc_url: Option<&str>, name: &str) -> Result<PublishTarget, String> {
    let (app_name, _) = app.split_once('?').unwrap_or((app, ""));
    let (stream, _) = name.split_once('?').unwrap_or((name, ""));
    let (url, _) = tc_url.map(|u| u.split_once('?').unwrap_or((u, ""))).unwrap_or(("", ""));
    let params = publish_params(app, tc_url, name);
    let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let host = url
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
        .map(|hostport| match hostport.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or("").to_string(),
            None => hostport.split(':').next().unwrap_or("").to_string(),
        })
        .unwrap_or_default();
    let domain = param("domain").or_else(|| param("vhost")).unwrap_or(host).to_ascii_lowercase();
    let app_name = app_name.trim_end_matches('/').to_string();
    if domain.is_empty() {
        return Err("no domain: tcUrl has no host and there is no domain= parameter".into());
    }
    if app_name.is_empty() || stream.is_empty() {
        return Err(format!("app '{app_name}' and stream '{stream}' must not be empty"));
    }
    if stream.len() > 256 || stream.contains('/') || stream.chars().any(|c| c.is_control()) || stream == "." || stream == ".." {
        return Err(format!("stream name '{}' is not allowed", stream.escape_debug()));
    }
    Ok(PublishTarget { domain, app: app_name, stream: stream.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_comes_from_parameters_or_the_tcurl_host() {
        let t = publish_target("live", Some("rtmp://127.0.0.1:1935/live"), "test001?token=abc").unwrap();
        assert_eq!(t, PublishTarget { domain: "127.0.0.1".into(), app: "live".into(), stream: "test001".into() });
        let t = publish_target("live?vhost=push.example.com", Some("rtmp://10.0.0.1/live?vhost=push.example.com"), "s").unwrap();
        assert_eq!(t.domain, "push.example.com");
        let t = publish_target("live", Some("rtmp://Host.Example:1935/live"), "s?domain=cdn.example.com").unwrap();
        assert_eq!(t.domain, "cdn.example.com");
        let t = publish_target("live", Some("rtmp://[::1]:1935/live"), "s").unwrap();
        assert_eq!(t.domain, "::1");
        assert!(publish_target("live", None, "s").is_err());
        assert!(publish_target("live", Some("rtmp://h/live"), "../x").is_err());
    }
}
