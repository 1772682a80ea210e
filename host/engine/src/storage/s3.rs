//! A bucket on an S3-compatible service (Huawei OBS, MinIO, Ceph, AWS S3):
//! requests signed with SigV4 by rusty-s3 and sent over one pooled ureq
//! agent, with timeouts and retries on throttling, 5xx and connection errors.

use std::time::Duration;

use rusty_s3::{Credentials, S3Action, UrlStyle};
use ureq::Agent;

use super::{Bucket, StorageError, StoredObject};

/// How long a signature for one of our own requests stays valid.
const REQUEST_VALIDITY: Duration = Duration::from_secs(300);
/// Attempts per request (the first and two retries).
const ATTEMPTS: u32 = 3;

/// How to reach one S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// livesnap's name for the bucket (what templates use).
    pub name: String,
    /// Its region as templates state it.
    pub location: String,
    /// The service endpoint, e.g. `https://obs.cn-north-4.myhuaweicloud.com`.
    pub endpoint: url::Url,
    /// The bucket's name on the service.
    pub bucket: String,
    /// The signing region.
    pub region: String,
    /// Path-style (`endpoint/bucket/key`) or virtual-host style.
    pub path_style: bool,
    /// Access key id.
    pub access_key: String,
    /// Secret key (from the environment or a file).
    pub secret_key: crate::secret::Secret,
    /// When set, `snapshot_url` is a presigned GET valid this long (private buckets).
    pub presign_get: Option<Duration>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// An S3-backed bucket.
pub struct S3Bucket {
    settings: S3Settings,
    bucket: rusty_s3::Bucket,
    credentials: Credentials,
    agent: Agent,
}

impl std::fmt::Debug for S3Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Bucket({} at {})", self.settings.name, self.settings.endpoint)
    }
}

impl S3Bucket {
    /// Prepares the client (nothing is sent yet).
    pub fn new(settings: S3Settings) -> Result<Self, String> {
        let style = if settings.path_style { UrlStyle::Path } else { UrlStyle::VirtualHost };
        let bucket = rusty_s3::Bucket::new(settings.endpoint.clone(), style, settings.bucket.clone(), settings.region.clone())
            .map_err(|e| format!("bucket '{}': {e}", settings.name))?;
        let credentials = Credentials::new(settings.access_key.clone(), settings.secret_key.expose().to_string());
        let agent: Agent = Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(8)
            .build()
            .into();
        Ok(Self { settings, bucket, credentials, agent })
    }

    fn io(&self, key: &str, message: String) -> StorageError {
        StorageError::Io { bucket: self.settings.name.clone(), key: key.into(), source: std::io::Error::other(message) }
    }

    /// Sends a request built fresh for each attempt; retries what is worth retrying.
    fn send(
        &self,
        key: &str,
        what: &str,
        request: impl Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, StorageError> {
        let mut wait = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match request() {
                Ok(r) if r.status().is_success() || r.status() == 404 => return Ok(r),
                Ok(mut r) => {
                    let status = r.status();
                    let body = r.body_mut().read_to_string().unwrap_or_default();
                    let code = xml_field(&body, "Code").unwrap_or_default();
                    last = format!("{what} answered HTTP {status} {code}");
                    if !(status.is_server_error() || status == 429 || code == "SlowDown") {
                        break;
                    }
                }
                Err(e) => last = format!("{what} failed: {e}"),
            }
            if attempt < ATTEMPTS {
                std::thread::sleep(wait);
                wait *= 4;
            }
        }
        Err(self.io(key, format!("{last} ({})", self.settings.endpoint)))
    }
}

impl Bucket for S3Bucket {
    // Every snapshot object is sent with `Cache-Control: no-cache`, so a
    // viewer of an instant-mode object never gets a stale "latest" image.
    fn put(&self, key: &str, content_type: &str, data: &[u8]) -> Result<StoredObject, StorageError> {
        let url = self.bucket.put_object(Some(&self.credentials), key).sign(REQUEST_VALIDITY);
        self.send(key, "PUT", || {
            self.agent.put(url.as_str()).header("content-type", content_type).header("cache-control", "no-cache").send(data)
        })
        .and_then(|r| {
            if r.status() == 404 { Err(self.io(key, "PUT answered HTTP 404 (does the bucket exist?)".into())) } else { Ok(()) }
        })?;
        let url = match self.settings.presign_get {
            Some(expiry) => self.bucket.get_object(Some(&self.credentials), key).sign(expiry),
            None => self.bucket.object_url(key),
        };
        Ok(StoredObject {
            bucket: self.settings.name.clone(),
            location: self.settings.location.clone(),
            object: key.into(),
            url: url.to_string(),
        })
    }

    fn list(&self, folder: &str) -> Result<Vec<String>, StorageError> {
        self.list_folder(folder)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let url = self.bucket.get_object(Some(&self.credentials), key).sign(REQUEST_VALIDITY);
        let mut r = self.send(key, "GET", || self.agent.get(url.as_str()).call())?;
        if r.status() == 404 {
            return Ok(None);
        }
        let body = r.body_mut().with_config().limit(64 << 20).read_to_vec().map_err(|e| self.io(key, e.to_string()))?;
        Ok(Some(body))
    }
}

impl S3Bucket {
    /// ListObjectsV2 of one folder (a prefix and the `/` delimiter).
    fn list_folder(&self, folder: &str) -> Result<Vec<String>, StorageError> {
        let prefix = format!("{folder}/");
        let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
        action.with_prefix(prefix.as_str());
        action.with_delimiter("/");
        let url = action.sign(REQUEST_VALIDITY);
        let mut r = self.send(folder, "LIST", || self.agent.get(url.as_str()).call())?;
        if r.status() == 404 {
            return Ok(Vec::new());
        }
        let body = r.body_mut().with_config().limit(16 << 20).read_to_string().map_err(|e| self.io(folder, e.to_string()))?;
        let parsed = rusty_s3::actions::ListObjectsV2::parse_response(&body).map_err(|e| self.io(folder, format!("LIST answer: {e}")))?;
        Ok(parsed.contents.into_iter().map(|c| c.key).collect())
    }
}

fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}
