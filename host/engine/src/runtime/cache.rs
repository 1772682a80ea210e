//! Compiled components cached on disk, keyed by content and by the engine
//! settings they were compiled for (a mismatching cache is refused by
//! wasmtime, so the key keeps them apart).
//!
//! Loading compiled code is trusting it as native code, so every entry
//! carries an HMAC-SHA256 keyed by a secret kept beside the cache folder
//! (0600): a file that anything but this cache wrote, or that changed, is
//! recompiled instead of loaded.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAC_LEN: usize = 32;

/// The cache folder and the key its entries are signed with.
#[derive(Debug)]
pub struct CodeCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl CodeCache {
    /// Opens (creating, 0700) the cache folder and its key file
    /// (`cache.key` beside the folder, 0600).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let key_path = dir.with_file_name("cache.key");
        let key = match std::fs::read(&key_path) {
            Ok(k) if k.len() == 32 => k.try_into().expect("32 bytes"),
            _ => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                let tmp = key_path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?.write_all(&key)?;
                std::fs::rename(&tmp, &key_path)?;
                key
            }
        };
        Ok(Self { dir: dir.to_owned(), key })
    }

    /// Compiles `bytes`, or loads the compilation cached for them.
    pub fn compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let path = self.path(engine, &digest);
        if let Ok(file) = std::fs::read(&path) {
            match self.verified(&file) {
                // SAFETY: the MAC proves this cache wrote the file, for this
                // engine configuration (the file name includes it).
                Some(code) => match unsafe { Component::deserialize(engine, code) } {
                    Ok(component) => return Ok(component),
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled-component cache entry"),
                },
                None => tracing::warn!(path = %path.display(), "compiled-component cache entry is not signed by this cache; recompiling"),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not cache the compiled component");
        }
        Ok(component)
    }

    /// Deletes the entry for content with this SHA-256 (a deleted module).
    pub fn remove(&self, engine: &Engine, digest: &[u8; 32]) {
        let _ = std::fs::remove_file(self.path(engine, digest));
    }

    fn path(&self, engine: &Engine, digest: &[u8; 32]) -> PathBuf {
        let mut settings = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut settings);
        self.dir.join(format!("{}-{:016x}.cwasm", hex::encode(digest), settings.finish()))
    }

    fn mac(&self, code: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes any key length");
        mac.update(code);
        mac
    }

    /// The code of a cache file whose MAC checks out.
    fn verified<'a>(&self, file: &'a [u8]) -> Option<&'a [u8]> {
        let (tag, code) = file.split_at_checked(MAC_LEN)?;
        self.mac(code).verify_slice(tag).ok().map(|()| code)
    }

    fn store(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        let code = component.serialize().map_err(std::io::Error::other)?;
        let tag = self.mac(&code).finalize().into_bytes();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&tag)?;
        f.write_all(&code)?;
        drop(f);
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_not_signed_by_the_cache_are_recompiled_not_loaded() {
        let dir = tempfile_dir();
        let cache = CodeCache::open(&dir.join("cache")).unwrap();
        let engine = Engine::default();
        // The smallest component: an empty one.
        let wasm = wat_empty_component();
        cache.compile(&engine, &wasm).unwrap();
        let digest: [u8; 32] = Sha256::digest(&wasm).into();
        let path = cache.path(&engine, &digest);
        let written = std::fs::read(&path).unwrap();
        assert!(cache.verified(&written).is_some());
        // What a writer without the key could put there.
        let mut forged = written.clone();
        forged[MAC_LEN + 100] ^= 1;
        assert!(cache.verified(&forged).is_none());
        std::fs::write(&path, &forged).unwrap();
        cache.compile(&engine, &wasm).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), written, "the forged entry was replaced by a fresh compilation");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("cache.key")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.join("cache")).unwrap().permissions().mode() & 0o777, 0o700);
        cache.remove(&engine, &digest);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).unwrap();
        let d = std::env::temp_dir().join(format!("livesnap-cache-test-{}", hex::encode(r)));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// `(component)` in binary form.
    fn wat_empty_component() -> Vec<u8> {
        vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
    }
}
