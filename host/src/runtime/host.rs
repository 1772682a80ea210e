//! What the host gives each call: a closed WASI context (no files, network,
//! environment or arguments), the object store, and the memory limiter.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::storer::livesnap::snapshot::{object_store, types};
use crate::storage::Buckets;

/// Per-call store data.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    buckets: Arc<Buckets>,
    pub(super) limiter: MemoryCap,
}

impl HostState {
    pub(super) fn new(buckets: Arc<Buckets>, memory_cap: usize) -> Self {
        Self { wasi: WasiCtx::builder().build(), table: ResourceTable::new(), buckets, limiter: MemoryCap::new(memory_cap) }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl object_store::Host for HostState {
    fn put(
        &mut self,
        bucket: String,
        object: String,
        content_type: String,
        data: Vec<u8>,
    ) -> Result<types::StoredObject, String> {
        let stored = self.buckets.put(&bucket, &object, &content_type, &data).map_err(|e| e.to_string())?;
        Ok(types::StoredObject { bucket: stored.bucket, location: stored.location, object: stored.object, url: stored.url })
    }
}

/// Caps linear memory; remembers a denied growth so the error can say so.
pub struct MemoryCap {
    cap: usize,
    denied: Option<usize>,
}

impl MemoryCap {
    pub(super) fn new(cap: usize) -> Self {
        Self { cap, denied: None }
    }

    /// The size a denied growth asked for.
    pub fn denied(&self) -> Option<usize> {
        self.denied
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.denied = Some(desired);
            wasmtime::bail!("memory cap of {} bytes exceeded (asked for {desired})", self.cap);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
