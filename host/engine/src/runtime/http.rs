//! `[[trigger.http]]` components: `wasi:http/incoming-handler@0.2` (what
//! spin-sdk 5 `#[http_component]` exports) served through wasmtime-wasi-http,
//! with Spin's `variables` and `key-value` interfaces, and outbound HTTP
//! denied unless `allowed_outbound_hosts` lists the destination.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::sync::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outbound::OutboundPolicy;

use super::host::MemoryCap;
use crate::state::KeyValueTable;

mod spin {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "livesnap:spin-host/spin-imports",
        with: { "fermyon:spin/key-value.store": super::KvHandle },
    });
}

use spin::fermyon::spin::{key_value, variables};

/// An open key-value store: its label.
pub struct KvHandle(String);

/// What an HTTP component may use, from its `[component.X]` entry.
#[derive(Clone, Debug, Default)]
pub struct HttpGrants {
    /// `[component.X.variables]`, resolved.
    pub variables: BTreeMap<String, String>,
    /// `key_value_stores`.
    pub key_value_stores: Vec<String>,
    /// `allowed_outbound_hosts` (Spin syntax).
    pub allowed_outbound_hosts: Vec<String>,
}

/// Store data of one HTTP request.
pub struct HttpState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundPolicy,
    grants: Arc<HttpGrants>,
    kv: Arc<dyn KeyValueTable>,
    pub(super) limiter: MemoryCap,
}

impl HttpState {
    pub(super) fn new(
        grants: Arc<HttpGrants>,
        kv: Arc<dyn KeyValueTable>,
        memory_cap: usize,
        egress: Arc<crate::egress::EgressPolicy>,
    ) -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundPolicy::new(grants.allowed_outbound_hosts.clone(), egress),
            grants,
            kv,
            limiter: MemoryCap::new(memory_cap),
        }
    }
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

impl variables::Host for HttpState {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(variables::Error::InvalidName(name));
        }
        self.grants.variables.get(&name).cloned().ok_or(variables::Error::Undefined(name))
    }
}

impl key_value::Host for HttpState {}

impl key_value::HostStore for HttpState {
    fn open(&mut self, label: String) -> Result<Resource<KvHandle>, key_value::Error> {
        if !self.grants.key_value_stores.contains(&label) {
            return Err(key_value::Error::AccessDenied);
        }
        self.table.push(KvHandle(label)).map_err(|e| key_value::Error::Other(e.to_string()))
    }

    fn get(&mut self, store: Resource<KvHandle>, key: String) -> Result<Option<Vec<u8>>, key_value::Error> {
        let label = self.label(&store)?;
        self.kv.kv_get(&label, &key).map_err(|e| key_value::Error::Other(e.to_string()))
    }

    fn set(&mut self, store: Resource<KvHandle>, key: String, value: Vec<u8>) -> Result<(), key_value::Error> {
        let label = self.label(&store)?;
        self.kv.kv_set(&label, &key, &value).map_err(|e| key_value::Error::Other(e.to_string()))
    }

    fn delete(&mut self, store: Resource<KvHandle>, key: String) -> Result<(), key_value::Error> {
        let label = self.label(&store)?;
        self.kv.kv_delete(&label, &key).map_err(|e| key_value::Error::Other(e.to_string()))
    }

    fn exists(&mut self, store: Resource<KvHandle>, key: String) -> Result<bool, key_value::Error> {
        let label = self.label(&store)?;
        self.kv.kv_get(&label, &key).map(|v| v.is_some()).map_err(|e| key_value::Error::Other(e.to_string()))
    }

    fn get_keys(&mut self, store: Resource<KvHandle>) -> Result<Vec<String>, key_value::Error> {
        let label = self.label(&store)?;
        self.kv.kv_keys(&label).map_err(|e| key_value::Error::Other(e.to_string()))
    }

    fn drop(&mut self, store: Resource<KvHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl HttpState {
    fn label(&self, store: &Resource<KvHandle>) -> Result<String, key_value::Error> {
        self.table.get(store).map(|h| h.0.clone()).map_err(|e| key_value::Error::Other(e.to_string()))
    }
}

/// Adds what HTTP components import to their linker.
pub(super) fn add_to_linker(linker: &mut wasmtime::component::Linker<HttpState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(linker)?;
    spin::SpinImports::add_to_linker::<_, wasmtime::component::HasSelf<HttpState>>(linker, |s| s)?;
    Ok(())
}

/// A prepared HTTP component and what it may use.
#[derive(Clone)]
pub struct HttpComponent {
    /// Component name.
    pub name: String,
    pub(super) pre: ProxyPre<HttpState>,
    /// Its grants.
    pub grants: Arc<HttpGrants>,
}

/// An HTTP response produced by a component.
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Bytes,
}

impl super::Runtime {
    /// Handles one request with an HTTP component; blocks (call it off the
    /// async executor). The body is already read.
    pub fn serve_http(
        &self,
        component: &HttpComponent,
        kv: Arc<dyn KeyValueTable>,
        request: http::Request<Bytes>,
        limits: super::CallLimits,
    ) -> Result<HttpReply, super::RuntimeError> {
        let name = component.name.clone();
        let stage = super::Stage::Http;
        let mut store = Store::new(&self.engine, HttpState::new(component.grants.clone(), kv, limits.memory, self.egress()));
        store.limiter(|s| &mut s.limiter as &mut dyn ResourceLimiter);
        store.set_epoch_deadline(limits.timeout.as_millis().div_ceil(super::EPOCH_TICK.as_millis()) as u64 + 1);
        store.epoch_deadline_trap();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let result = (|| -> wasmtime::Result<()> {
            let request = request.map(|b| Full::new(b).map_err(|never| -> wasmtime_wasi_http::Error { match never {} }));
            let req = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(tx)?;
            let proxy = component.pre.instantiate(&mut store)?;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out)
        })();
        if let Err(e) = result {
            let limiter_denied = store.data().limiter.denied();
            return Err(super::classify(e, limiter_denied, stage, &name, limits));
        }
        let response = match rx.try_recv() {
            Ok(Ok(r)) => r,
            Ok(Err(code)) => {
                return Err(super::RuntimeError::Failed { stage, name, message: format!("answered with error {code:?}") });
            }
            Err(_) => {
                return Err(super::RuntimeError::Failed { stage, name, message: "never set a response".into() });
            }
        };
        let (parts, body) = response.into_parts();
        drop(store);
        let body = wasmtime_wasi::runtime::in_tokio(async { body.collect().await.map(|c| c.to_bytes()) })
            .map_err(|e| super::RuntimeError::Failed { stage, name: name.clone(), message: format!("response body: {e}") })?;
        Ok(HttpReply {
            status: parts.status.as_u16(),
            headers: parts.headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
            body,
        })
    }
}
