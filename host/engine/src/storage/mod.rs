//! Object storage: the authorized buckets behind the components'
//! `object-store` import.

pub mod config;
pub mod fs;
pub mod s3;

use std::collections::BTreeMap;

use std::path::PathBuf;

/// A `[[bucket]]`.
#[derive(Clone, Debug)]
pub struct BucketConfig {
    /// Bucket name.
    pub name: String,
    /// Its region.
    pub location: String,
    /// Where its objects live.
    pub backend: Backend,
    /// The `project_id`s that may authorize it (`projects = [...]`); any
    /// project when absent.
    pub projects: Option<Vec<String>>,
}

/// Storage backends.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A local folder.
    Fs {
        /// Root folder of the bucket.
        path: PathBuf,
    },
    /// An S3-compatible service.
    S3(Box<s3::S3Settings>),
}

/// Where an object was written and the URL it is reached at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Bucket name.
    pub bucket: String,
    /// Bucket region.
    pub location: String,
    /// Object key.
    pub object: String,
    /// URL of the object.
    pub url: String,
}

/// Why an object could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket is not declared in the runtime config.
    #[error("bucket '{0}' is not authorized")]
    UnknownBucket(String),
    /// The key would escape the bucket or is not a valid key.
    #[error("object key '{key}' is not allowed: {reason}")]
    BadKey {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// A bucket's settings are unusable.
    #[error("{0}")]
    Config(String),
    /// The backend failed.
    #[error("writing {bucket}/{key}: {source}")]
    Io {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// One bucket's backend.
pub trait Bucket: Send + Sync {
    /// Writes (or overwrites) an object.
    fn put(&self, key: &str, content_type: &str, data: &[u8]) -> Result<StoredObject, StorageError>;

    /// Reads an object; `Ok(None)` when there is none.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// The keys of the objects directly in `folder` (`a/b`), in name order
    /// (S3: the first 1000).
    fn list(&self, folder: &str) -> Result<Vec<String>, StorageError>;
}

/// All authorized buckets, by name.
pub struct Buckets {
    buckets: BTreeMap<String, Box<dyn Bucket>>,
    /// The fs buckets: the host serves their objects at `/obs/` (their
    /// `snapshot_url`s); S3 objects are served by S3 alone.
    served: Vec<String>,
}

impl Buckets {
    /// Opens every bucket; fs buckets' objects are reached under
    /// `{public_url}/obs/{bucket}/`.
    pub fn open(declared: &[BucketConfig], public_url: &str) -> Result<Self, StorageError> {
        let mut buckets: BTreeMap<String, Box<dyn Bucket>> = BTreeMap::new();
        let served = declared.iter().filter(|b| matches!(b.backend, Backend::Fs { .. })).map(|b| b.name.clone()).collect();
        for b in declared {
            let bucket: Box<dyn Bucket> = match &b.backend {
                Backend::Fs { path } => Box::new(fs::FsBucket::new(&b.name, &b.location, path, public_url)),
                Backend::S3(settings) => Box::new(s3::S3Bucket::new((**settings).clone()).map_err(StorageError::Config)?),
            };
            buckets.insert(b.name.clone(), bucket);
        }
        Ok(Self { buckets, served })
    }

    /// Reads an object the host serves at `/obs/` (fs buckets only).
    pub fn get_served(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if !self.served.iter().any(|b| b == bucket) {
            return Err(StorageError::UnknownBucket(bucket.to_string()));
        }
        self.get(bucket, key)
    }

    /// Writes into an authorized bucket; the key is checked first.
    pub fn put(&self, bucket: &str, key: &str, content_type: &str, data: &[u8]) -> Result<StoredObject, StorageError> {
        let b = self.buckets.get(bucket).ok_or_else(|| StorageError::UnknownBucket(bucket.to_string()))?;
        check_key(key)?;
        b.put(key, content_type, data)
    }

    /// Reads an object of an authorized bucket.
    pub fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let b = self.buckets.get(bucket).ok_or_else(|| StorageError::UnknownBucket(bucket.to_string()))?;
        check_key(key)?;
        b.get(key)
    }

    /// The last `limit` keys (in name order) of the objects directly in
    /// `folder` of a bucket.
    pub fn list(&self, bucket: &str, folder: &str, limit: usize) -> Result<Vec<String>, StorageError> {
        let b = self.buckets.get(bucket).ok_or_else(|| StorageError::UnknownBucket(bucket.to_string()))?;
        check_key(folder)?;
        let mut keys = b.list(folder)?;
        keys.sort();
        Ok(keys.split_off(keys.len().saturating_sub(limit)))
    }
}

/// Object keys are relative paths without `.`/`..` or empty segments.
pub fn check_key(key: &str) -> Result<(), StorageError> {
    let bad = |reason| Err(StorageError::BadKey { key: key.to_string(), reason });
    if key.is_empty() || key.len() > 1024 {
        return bad("must be 1-1024 bytes");
    }
    if key.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return bad("empty, '.' or '..' path segment");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return bad("control character or backslash");
    }
    Ok(())
}

/// Percent-encodes a key for a URL path, keeping `/`.
pub fn url_path(key: &str) -> String {
    crate::encoding::percent_encode(key, crate::encoding::PATH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_bucket() {
        for key in ["", "/abs", "a/../../etc/passwd", "a//b", "./a", "a\\b", "a\0b"] {
            assert!(check_key(key).is_err(), "{key:?}");
        }
        assert!(check_key("snapshot/localhost/live/s.jpg").is_ok());
        assert_eq!(url_path("a b/c+d.jpg"), "a%20b/c%2Bd.jpg");
    }

    #[test]
    fn an_fs_folder_lists_its_newest_objects_and_nothing_behind_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            BucketConfig { name: "b".into(), location: "local".into(), backend: Backend::Fs { path: dir.path().into() }, projects: None };
        let buckets = Buckets::open(&[config], "http://x").unwrap();
        for t in [3, 1, 2] {
            buckets.put("b", &format!("s/cam/{t}.jpg"), "image/jpeg", b"x").unwrap();
        }
        std::fs::write(dir.path().join("s/cam/.tmp-1-1"), b"partial").unwrap();
        assert_eq!(buckets.list("b", "s/cam", 2).unwrap(), ["s/cam/2.jpg", "s/cam/3.jpg"]);
        std::os::unix::fs::symlink(dir.path().join("s/cam"), dir.path().join("s/link")).unwrap();
        assert!(buckets.list("b", "s/link", 10).unwrap().is_empty());
        assert!(buckets.list("b", "../etc", 10).is_err());
    }
}
