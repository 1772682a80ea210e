//! What the host gives each call: a closed WASI context (no files, sockets
//! or arguments; only the component's declared environment), outbound HTTP
//! under its `allowed_outbound_hosts`, the object store, and the memory
//! limiter.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outbound::OutboundPolicy;

use super::bindings::storer::livesnap::snapshot::{object_store, types};
use crate::storage::Buckets;

/// Per-call store data.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundPolicy,
    table: ResourceTable,
    buckets: Arc<Buckets>,
    /// The one bucket a storer call may write to (its template's); none
    /// outside a storer call.
    pub(super) scope: Option<String>,
    /// What this call's puts stored, so a storer cannot claim an object it
    /// did not write.
    pub(super) stored: Vec<(String, String)>,
    pub(super) limiter: MemoryCap,
}

/// What one component may use beyond its world's interfaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComponentGrants {
    /// Spin's `allowed_outbound_hosts`.
    pub allowed_outbound_hosts: Vec<String>,
    /// Spin's `environment`: WASI environment variables.
    pub environment: Vec<(String, String)>,
}

impl HostState {
    pub(super) fn new(
        buckets: Arc<Buckets>,
        memory_cap: usize,
        grants: &ComponentGrants,
        egress: Arc<crate::egress::EgressPolicy>,
    ) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.envs(&grants.environment);
        Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundPolicy::new(grants.allowed_outbound_hosts.clone(), egress),
            table: ResourceTable::new(),
            buckets,
            scope: None,
            stored: Vec::new(),
            limiter: MemoryCap::new(memory_cap),
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl object_store::Host for HostState {
    fn put(&mut self, bucket: String, object: String, content_type: String, data: Vec<u8>) -> Result<types::StoredObject, String> {
        if self.scope.as_deref() != Some(bucket.as_str()) {
            return Err(format!("bucket '{bucket}' is not this template's bucket"));
        }
        let stored = self.buckets.put(&bucket, &object, &content_type, &data).map_err(|e| e.to_string())?;
        self.stored.push((stored.bucket.clone(), stored.object.clone()));
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
