//! The WebAssembly runtime: one engine, components compiled once (cached on
//! disk) and pre-instantiated, a fresh store per call with a wall-clock
//! deadline (epoch interruption) and a memory cap.

pub mod bindings;
pub mod cache;
mod host;
pub mod http;
pub mod outbound;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::Digest;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use bindings::encoder::EncoderPre;
use bindings::notifier::NotifierPre;
use bindings::storer::{Storer, StorerPre};
use bindings::types;
pub use host::ComponentGrants;
use host::HostState;

pub use crate::stage::Stage;
use crate::storage::Buckets;

/// How often the epoch advances; deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The largest memory any call may be given (per-call caps are lower).
const MAX_MEMORY: usize = 1 << 30;

/// Where a component's bytes come from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// A file (a manifest component's `source`).
    File(&'a std::path::Path),
    /// Bytes in memory (an uploaded module, a built-in).
    Bytes(&'a [u8]),
}

/// Why a component could not be loaded or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be created.
    #[error("creating the WebAssembly engine: {0:#}")]
    Engine(wasmtime::Error),
    /// The bytes are not a valid component.
    #[error("component '{name}' is not a valid WebAssembly component: {source:#}")]
    Compile {
        /// Component name.
        name: String,
        /// Cause.
        source: wasmtime::Error,
    },
    /// The component does not fit the stage's world.
    #[error("component '{name}' cannot be used to {stage}: {source:#}")]
    WrongWorld {
        /// Component name.
        name: String,
        /// The stage it was named for.
        stage: Stage,
        /// The mismatch.
        source: wasmtime::Error,
    },
    /// A component's file could not be read.
    #[error("component '{name}': reading {path}: {source} (run `livesnap build` to build the manifest's components)")]
    Read {
        /// Component name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// No component of that name.
    #[error("no component named '{0}'")]
    UnknownComponent(String),
    /// The call ran past its deadline.
    #[error("{stage} function '{name}' exceeded its deadline of {limit:?}")]
    Deadline {
        /// Stage.
        stage: Stage,
        /// Component name.
        name: String,
        /// The deadline.
        limit: Duration,
    },
    /// The call asked for more memory than its cap.
    #[error("{stage} function '{name}' exceeded its memory cap of {cap_mib} MiB (asked for {asked_mib} MiB)")]
    Memory {
        /// Stage.
        stage: Stage,
        /// Component name.
        name: String,
        /// The cap.
        cap_mib: usize,
        /// What it asked for.
        asked_mib: usize,
    },
    /// The call trapped.
    #[error("{stage} function '{name}' trapped: {reason}")]
    Trap {
        /// Stage.
        stage: Stage,
        /// Component name.
        name: String,
        /// The trap and its backtrace.
        reason: String,
    },
    /// The function returned an error.
    #[error("{stage} function '{name}' failed: {message}")]
    Failed {
        /// Stage.
        stage: Stage,
        /// Component name.
        name: String,
        /// Its error text.
        message: String,
    },
}

impl RuntimeError {
    /// The stage and component of a failed call (not of load errors).
    pub fn call_site(&self) -> Option<(Stage, &str, &'static str)> {
        match self {
            RuntimeError::Deadline { stage, name, .. } => Some((*stage, name, "deadline")),
            RuntimeError::Memory { stage, name, .. } => Some((*stage, name, "memory")),
            RuntimeError::Trap { stage, name, .. } => Some((*stage, name, "trap")),
            RuntimeError::Failed { stage, name, .. } => Some((*stage, name, "error")),
            _ => None,
        }
    }
}

/// What [`Runtime::inspect`] found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Stages whose world the component fits.
    pub fits: Vec<Stage>,
    /// The others, with the mismatch.
    pub misfits: Vec<(Stage, String)>,
    /// Import names.
    pub imports: Vec<String>,
    /// Export names.
    pub exports: Vec<String>,
}

/// Per-call limits.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// Wall-clock deadline.
    pub timeout: Duration,
    /// Memory cap in bytes.
    pub memory: usize,
}

/// A component pre-instantiated for one stage.
#[derive(Clone)]
pub enum Prepared {
    /// An encoder.
    Encode(EncoderPre<HostState>),
    /// A storer.
    Store(StorerPre<HostState>),
    /// A notifier.
    Notify(NotifierPre<HostState>),
}

/// The engine, the linker and the compiled components.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    http_linker: Linker<http::HttpState>,
    cache: Option<cache::CodeCache>,
    buckets: Arc<Buckets>,
    /// Compiled components with the SHA-256 of their bytes.
    components: Mutex<HashMap<String, ([u8; 32], Component)>>,
    grants: Mutex<HashMap<String, ComponentGrants>>,
    /// Where components' outbound HTTP may go (the operator's egress policy).
    egress: std::sync::RwLock<Arc<crate::egress::EgressPolicy>>,
    prepared: Mutex<HashMap<(String, Stage), Prepared>>,
}

impl Runtime {
    /// Creates the engine and starts its epoch clock. Compiled components
    /// are cached in `cache_dir` when given.
    pub fn new(buckets: Arc<Buckets>, cache_dir: Option<PathBuf>) -> Result<Self, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // Lets `perf` name the functions of compiled components (scripts/bench profiling).
        if std::env::var_os("LIVESNAP_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(1024)
            .max_memory_size(MAX_MEMORY)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_core_instances_per_component(16)
            // A fresh instance per call would otherwise fault in the pages
            // of the frame it is given every time; the first 8 MiB stay
            // resident and are cleared instead (perf: -27 % page faults,
            // -7 % CPU per 1080p capture; 16 MiB clears more than it saves).
            .linear_memory_keep_resident(8 << 20);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(RuntimeError::Engine)?;
        let cache = cache_dir
            .map(|dir| {
                cache::CodeCache::open(&dir)
                    .map_err(|e| RuntimeError::Engine(wasmtime::Error::msg(format!("compiled-component cache {}: {e}", dir.display()))))
            })
            .transpose()?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawning the epoch thread");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(RuntimeError::Engine)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(RuntimeError::Engine)?;
        Storer::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s).map_err(RuntimeError::Engine)?;
        let mut http_linker = Linker::new(&engine);
        http::add_to_linker(&mut http_linker).map_err(RuntimeError::Engine)?;
        Ok(Self {
            engine,
            linker,
            http_linker,
            cache,
            buckets,
            components: Mutex::default(),
            grants: Mutex::default(),
            egress: std::sync::RwLock::default(),
            prepared: Mutex::default(),
        })
    }

    /// Loads a component under `name` with what it may use: the one way
    /// components (from the manifest, uploaded, built in, HTTP routes)
    /// enter the runtime. Compiled (or taken from the cache), replacing any
    /// earlier one of that name; the same bytes again are not recompiled.
    pub fn load(&self, name: &str, source: Source<'_>, grants: ComponentGrants) -> Result<(), RuntimeError> {
        let read;
        let bytes = match source {
            Source::File(path) => {
                read = std::fs::read(path).map_err(|e| RuntimeError::Read { name: name.into(), path: path.into(), source: e })?;
                &read[..]
            }
            Source::Bytes(bytes) => bytes,
        };
        self.compile(name, bytes)?;
        self.grants.lock().unwrap().insert(name.into(), grants);
        Ok(())
    }

    fn compile(&self, name: &str, bytes: &[u8]) -> Result<(), RuntimeError> {
        let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
        if self.components.lock().unwrap().get(name).is_some_and(|(d, _)| *d == digest) {
            return Ok(());
        }
        let compiled = match &self.cache {
            Some(cache) => cache.compile(&self.engine, bytes),
            None => Component::new(&self.engine, bytes),
        };
        let component = compiled.map_err(|source| RuntimeError::Compile { name: name.into(), source })?;
        self.components.lock().unwrap().insert(name.into(), (digest, component));
        self.prepared.lock().unwrap().retain(|(n, _), _| n != name);
        Ok(())
    }

    /// What a component may use.
    pub fn grants(&self, name: &str) -> ComponentGrants {
        self.grants.lock().unwrap().get(name).cloned().unwrap_or_default()
    }

    /// Sets the egress policy components' outbound HTTP is held to.
    pub fn set_egress(&self, egress: Arc<crate::egress::EgressPolicy>) {
        *self.egress.write().unwrap() = egress;
    }

    /// The egress policy outbound requests are held to.
    pub fn egress(&self) -> Arc<crate::egress::EgressPolicy> {
        self.egress.read().unwrap().clone()
    }

    /// Removes a component.
    pub fn remove_component(&self, name: &str) {
        let mut components = self.components.lock().unwrap();
        if let Some((digest, _)) = components.remove(name)
            && !components.values().any(|(d, _)| *d == digest)
            && let Some(cache) = &self.cache
        {
            cache.remove(&self.engine, &digest);
        }
        drop(components);
        self.grants.lock().unwrap().remove(name);
        self.prepared.lock().unwrap().retain(|(n, _), _| n != name);
    }

    /// Compiles `bytes` (through the cache) and reports the stages whose
    /// world it fits, with why it does not fit the others, and its imports
    /// and exports.
    pub fn inspect(&self, bytes: &[u8]) -> Result<Inspection, String> {
        // Not through the cache: a module that is then rejected must leave no
        // compiled code behind.
        let component = Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}"))?;
        let ty = component.component_type();
        let imports = ty.imports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let exports = ty.exports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let mut fits = Vec::new();
        let mut misfits = Vec::new();
        for stage in Stage::ALL {
            let check = match stage {
                Stage::Http => self
                    .http_linker
                    .instantiate_pre(&component)
                    .and_then(|pre| wasmtime_wasi_http::p2::bindings::sync::ProxyPre::new(pre).map(|_| ())),
                _ => self.linker.instantiate_pre(&component).and_then(|pre| match stage {
                    Stage::Encode => EncoderPre::new(pre).map(|_| ()),
                    Stage::Store => StorerPre::new(pre).map(|_| ()),
                    _ => NotifierPre::new(pre).map(|_| ()),
                }),
            };
            match check {
                Ok(()) => fits.push(stage),
                Err(e) => misfits.push((stage, format!("{e:#}"))),
            }
        }
        Ok(Inspection { fits, misfits, imports, exports })
    }

    /// Whether a component of that name is loaded.
    pub fn has_component(&self, name: &str) -> bool {
        self.components.lock().unwrap().contains_key(name)
    }

    fn component(&self, name: &str) -> Result<Component, RuntimeError> {
        let components = self.components.lock().unwrap();
        components.get(name).map(|(_, c)| c.clone()).ok_or_else(|| RuntimeError::UnknownComponent(name.into()))
    }

    /// Pre-instantiates `name` for `stage`, checking it has the stage's world.
    pub fn prepare(&self, name: &str, stage: Stage) -> Result<Prepared, RuntimeError> {
        let key = (name.to_string(), stage);
        if let Some(p) = self.prepared.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let component = self.component(name)?;
        let wrong = |source| RuntimeError::WrongWorld { name: name.into(), stage, source };
        let pre = self.linker.instantiate_pre(&component).map_err(wrong)?;
        let prepared = match stage {
            Stage::Encode => Prepared::Encode(EncoderPre::new(pre).map_err(wrong)?),
            Stage::Store => Prepared::Store(StorerPre::new(pre).map_err(wrong)?),
            Stage::Notify => Prepared::Notify(NotifierPre::new(pre).map_err(wrong)?),
            Stage::Http => unreachable!("HTTP components are prepared with prepare_http"),
        };
        self.prepared.lock().unwrap().insert(key, prepared.clone());
        Ok(prepared)
    }

    /// Pre-instantiates an HTTP component, checking it exports
    /// `wasi:http/incoming-handler` and imports only what the host provides.
    pub fn prepare_http(&self, name: &str, grants: http::HttpGrants) -> Result<http::HttpComponent, RuntimeError> {
        let component = self.component(name)?;
        let wrong = |source| RuntimeError::WrongWorld { name: name.into(), stage: Stage::Http, source };
        let pre = self.http_linker.instantiate_pre(&component).map_err(wrong)?;
        let pre = wasmtime_wasi_http::p2::bindings::sync::ProxyPre::new(pre).map_err(wrong)?;
        Ok(http::HttpComponent { name: name.into(), pre, grants: Arc::new(grants) })
    }

    fn store(&self, name: &str, limits: CallLimits) -> Store<HostState> {
        let grants = self.grants(name);
        let mut store = Store::new(&self.engine, HostState::new(self.buckets.clone(), limits.memory, &grants, self.egress()));
        store.limiter(|s| &mut s.limiter);
        let ticks = limits.timeout.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    /// Average time to instantiate a prepared encoder in a fresh store (for
    /// `livesnap bench-encode`).
    pub fn time_instantiate(&self, name: &str, iterations: u32) -> Result<Duration, RuntimeError> {
        let Prepared::Encode(pre) = self.prepare(name, Stage::Encode)? else { unreachable!() };
        let limits = CallLimits { timeout: Duration::from_secs(10), memory: 256 << 20 };
        let start = std::time::Instant::now();
        for _ in 0..iterations {
            let mut store = self.store(name, limits);
            pre.instantiate(&mut store).map_err(|e| RuntimeError::Trap {
                stage: Stage::Encode,
                name: name.into(),
                reason: e.to_string(),
            })?;
        }
        Ok(start.elapsed() / iterations.max(1))
    }

    /// Runs an encoder.
    pub fn encode(&self, name: &str, frame: types::Frame, quality: u8, limits: CallLimits) -> Result<types::Image, RuntimeError> {
        let Prepared::Encode(pre) = self.prepare(name, Stage::Encode)? else { unreachable!() };
        let mut store = self.store(name, limits);
        let result = pre.instantiate(&mut store).and_then(|f| f.call_encode(&mut store, &frame, quality));
        finish(result, &store, Stage::Encode, name, limits)
    }

    /// Runs a storer.
    pub fn store_image(
        &self,
        name: &str,
        id: &types::StreamId,
        template: &types::Template,
        image: &types::Image,
        captured_at: types::CaptureTime,
        limits: CallLimits,
    ) -> Result<types::StoredObject, RuntimeError> {
        let Prepared::Store(pre) = self.prepare(name, Stage::Store)? else { unreachable!() };
        let mut store = self.store(name, limits);
        store.data_mut().scope = Some(template.bucket.clone());
        let result = pre.instantiate(&mut store).and_then(|f| f.call_store(&mut store, id, template, image, captured_at));
        let stored = finish(result, &store, Stage::Store, name, limits)?;
        // What the callback and the API will point at must be what was written.
        if !store.data().stored.iter().any(|(b, o)| *b == stored.bucket && *o == stored.object) {
            return Err(RuntimeError::Failed {
                stage: Stage::Store,
                name: name.into(),
                message: format!("it returned {}/{}, which it did not store", stored.bucket, stored.object),
            });
        }
        Ok(stored)
    }

    /// Runs a notifier.
    pub fn notify(
        &self,
        name: &str,
        snapshot: &types::Snapshot,
        template: &types::Template,
        now: u64,
        limits: CallLimits,
    ) -> Result<Option<types::CallbackRequest>, RuntimeError> {
        let Prepared::Notify(pre) = self.prepare(name, Stage::Notify)? else { unreachable!() };
        let mut store = self.store(name, limits);
        let result = pre.instantiate(&mut store).and_then(|f| f.call_notify(&mut store, snapshot, template, now));
        finish(result, &store, Stage::Notify, name, limits)
    }
}

/// Turns a call's outcome into the stage's result or a precise error.
fn finish<T>(
    result: wasmtime::Result<Result<T, String>>,
    store: &Store<HostState>,
    stage: Stage,
    name: &str,
    limits: CallLimits,
) -> Result<T, RuntimeError> {
    let name = name.to_string();
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(RuntimeError::Failed { stage, name, message }),
        Err(e) => Err(classify(e, store.data().limiter.denied(), stage, &name, limits)),
    }
}

/// A trap as a precise error: the memory cap, the deadline, or the trap itself.
fn classify(e: wasmtime::Error, memory_denied: Option<usize>, stage: Stage, name: &str, limits: CallLimits) -> RuntimeError {
    let name = name.to_string();
    if let Some(asked) = memory_denied {
        return RuntimeError::Memory { stage, name, cap_mib: limits.memory >> 20, asked_mib: asked >> 20 };
    }
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return RuntimeError::Deadline { stage, name, limit: limits.timeout };
    }
    RuntimeError::Trap { stage, name, reason: format!("{e:#}") }
}
