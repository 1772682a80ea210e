//! A pull source: a URL livesnap reads a live stream from (RTSP, RTMP play,
//! HTTP-FLV), captured under a stream identity exactly as if that stream
//! were pushed.

use serde::{Deserialize, Serialize};

/// A source, declared in the manifest or created through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Ingest domain of the stream it becomes (lower case).
    pub domain: String,
    /// Application.
    pub app: String,
    /// Stream name.
    pub stream: String,
    /// Where to pull from; may hold credentials: show it only through
    /// [`Source::display_url`].
    pub url: String,
}

impl Source {
    /// Checks the stream identity and the URL's form (`rtsp://`, `rtmp://`,
    /// `http(s)://` with a host).
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = |s: &str| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok(&self.app) {
            return Err(format!("app: '{}' must be 1-128 letters, digits, '-', '_' or '.'", self.app));
        }
        if !name_ok(&self.stream) {
            return Err(format!("stream: '{}' must be 1-128 letters, digits, '-', '_' or '.'", self.stream));
        }
        let url = url::Url::parse(&self.url).map_err(|e| format!("url: not a URL ({e})"))?;
        if !matches!(url.scheme(), "rtsp" | "rtmp" | "http" | "https") {
            return Err(format!("url: scheme '{}' is not rtsp, rtmp, http or https", url.scheme()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("url: has no host".into());
        }
        Ok(())
    }

    /// `domain/app/stream`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.domain, self.app, self.stream)
    }

    /// The URL with its password and query values masked.
    pub fn display_url(&self) -> String {
        crate::pull::redact(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let s = |url: &str, stream: &str| Source { domain: "d".into(), app: "live".into(), stream: stream.into(), url: url.into() };
        assert!(s("rtsp://cam/x", "cam1").validate().is_ok());
        assert!(s("ftp://cam/x", "cam1").validate().unwrap_err().starts_with("url: scheme"));
        assert!(s("rtsp://cam/x", "a/b").validate().unwrap_err().starts_with("stream:"));
        assert!(s("not a url", "cam1").validate().unwrap_err().starts_with("url:"));
    }
}
