//! A bucket in a local folder; the host serves it at `/obs/{bucket}/…`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Bucket, StorageError, StoredObject, url_path};

/// A folder-backed bucket.
pub struct FsBucket {
    name: String,
    location: String,
    root: PathBuf,
    public_url: String,
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl FsBucket {
    /// A bucket rooted at `root`, reachable under `{public_url}/obs/{name}/`.
    pub fn new(name: &str, location: &str, root: &Path, public_url: &str) -> Self {
        Self { name: name.into(), location: location.into(), root: root.into(), public_url: public_url.into() }
    }
}

impl Bucket for FsBucket {
    // Written to a temporary file and renamed, so a reader (or an instant-mode
    // overwrite) never sees a partial image.
    fn put(&self, key: &str, _content_type: &str, data: &[u8]) -> Result<StoredObject, StorageError> {
        let io = |source| StorageError::Io { bucket: self.name.clone(), key: key.into(), source };
        let path = self.root.join(key);
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), TEMP_SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&tmp, data).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        Ok(StoredObject {
            bucket: self.name.clone(),
            location: self.location.clone(),
            object: key.into(),
            url: format!("{}/obs/{}/{}", self.public_url, self.name, url_path(key)),
        })
    }

    fn list(&self, folder: &str) -> Result<Vec<String>, StorageError> {
        let mut dir = self.root.clone();
        for part in Path::new(folder).components() {
            dir.push(part);
            // As for get: nothing behind a link.
            if std::fs::symlink_metadata(&dir).map_or(true, |m| m.file_type().is_symlink()) {
                return Ok(Vec::new());
            }
        }
        let entries =
            std::fs::read_dir(&dir).map_err(|source| StorageError::Io { bucket: self.name.clone(), key: folder.into(), source })?;
        Ok(entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with(".tmp-"))
            .map(|name| format!("{folder}/{name}"))
            .collect())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        // Only files the bucket itself holds: no symlink anywhere below its
        // root, so a link can never expose a file outside it.
        let mut path = self.root.clone();
        for part in Path::new(key).components() {
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => return Ok(None),
                Ok(_) => {}
                Err(_) => return Ok(None),
            }
        }
        match std::fs::read(&path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::IsADirectory => Ok(None),
            Err(source) => Err(StorageError::Io { bucket: self.name.clone(), key: key.into(), source }),
        }
    }
}
