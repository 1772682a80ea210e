//! What the service's tasks and the API share: the running configuration
//! and its generation, the pipeline, live streams, counters, the state
//! database and the engine. The service builds it; the control layer
//! changes it (through [`Writer`]); publishers and the API read it.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::config::credentials::ApiCredentials;
use crate::config::manifest::HttpRoute;
use crate::config::{Config, Template};
use crate::ingest::url_auth::KeyChain;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::runtime::Runtime;
use crate::runtime::http::HttpComponent;
use crate::sources::SourceRegistry;
use crate::state::StateDb;
use crate::storage::Buckets;
use crate::streams::Streams;

/// A `[[trigger.http]]` route and its prepared component.
pub type HttpRouteEntry = (HttpRoute, HttpComponent);

/// What the service starts [`State`] with.
pub struct Parts {
    /// The running configuration.
    pub config: Config,
    /// The functions and callback delivery.
    pub pipeline: Pipeline,
    /// Authorized buckets (for `/obs/`).
    pub buckets: Arc<Buckets>,
    /// Templates created through the API, the callback outbox, modules, key chains.
    pub db: Arc<dyn StateDb>,
    /// What the API authenticates with.
    pub credentials: ApiCredentials,
    /// The engine (also serving `[[trigger.http]]` routes).
    pub runtime: Arc<Runtime>,
    /// `[[trigger.http]]` routes.
    pub http_routes: Vec<HttpRouteEntry>,
    /// Ingest URL validation per push domain (lower case).
    pub key_chains: HashMap<String, KeyChain>,
    /// Concurrent decode + function work (the cores).
    pub workers: usize,
    /// This node among those sharing the state database.
    pub node: crate::node::Node,
}

/// Everything the tasks of the service share.
pub struct State {
    config: RwLock<Arc<Config>>,
    generation: AtomicU64,
    pipeline: Pipeline,
    streams: Streams,
    sources: SourceRegistry,
    metrics: Metrics,
    buckets: Arc<Buckets>,
    workers: Arc<Semaphore>,
    tasks: TaskTracker,
    db: Arc<dyn StateDb>,
    credentials: ApiCredentials,
    writes: Mutex<()>,
    runtime: Arc<Runtime>,
    http_routes: RwLock<Vec<HttpRouteEntry>>,
    key_chains: RwLock<HashMap<String, KeyChain>>,
    node: crate::node::Node,
}

impl State {
    /// The shared state, configuration generation 1.
    pub fn new(parts: Parts) -> Self {
        Self {
            config: RwLock::new(Arc::new(parts.config)),
            generation: AtomicU64::new(1),
            pipeline: parts.pipeline,
            streams: Streams::default(),
            sources: SourceRegistry::default(),
            metrics: Metrics::default(),
            buckets: parts.buckets,
            workers: Arc::new(Semaphore::new(parts.workers)),
            tasks: TaskTracker::new(),
            db: parts.db,
            credentials: parts.credentials,
            writes: Mutex::new(()),
            runtime: parts.runtime,
            http_routes: RwLock::new(parts.http_routes),
            key_chains: RwLock::new(parts.key_chains),
            node: parts.node,
        }
    }

    /// This node among those sharing the state database.
    pub fn node(&self) -> &crate::node::Node {
        &self.node
    }

    /// Exclusive access for a change; other writers wait until it is dropped.
    pub fn writer(&self) -> Writer<'_> {
        Writer { state: self, _lock: self.writes.lock().unwrap_or_else(|e| e.into_inner()) }
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap().clone()
    }

    /// The template for (domain, app) and the configuration generation it
    /// came from.
    pub fn template(&self, domain: &str, app: &str) -> (u64, Option<Arc<Template>>) {
        let config = self.config.read().unwrap();
        (self.generation.load(Ordering::Acquire), config.template(domain, app).cloned())
    }

    /// The configuration generation (bumped by every change).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The functions and callback delivery.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Live streams.
    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    /// The running pull sources.
    pub fn sources(&self) -> &SourceRegistry {
        &self.sources
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Authorized buckets.
    pub fn buckets(&self) -> &Arc<Buckets> {
        &self.buckets
    }

    /// The state database (blocking calls: use it off the executor).
    pub fn db(&self) -> &Arc<dyn StateDb> {
        &self.db
    }

    /// What the API authenticates with.
    pub fn credentials(&self) -> &ApiCredentials {
        &self.credentials
    }

    /// The engine.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Bounds concurrent decode + function work to the cores.
    pub fn workers(&self) -> &Arc<Semaphore> {
        &self.workers
    }

    /// Snapshot jobs in flight, waited for at shutdown.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// The component of the best-matching `[[trigger.http]]` route for `path`.
    pub fn http_route(&self, path: &str) -> Option<HttpComponent> {
        let routes = self.http_routes.read().unwrap();
        routes
            .iter()
            .filter_map(|(route, c)| route.matches(path).map(|score| (score, c)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, c)| c.clone())
    }

    /// The `[[trigger.http]]` routes served.
    pub fn http_route_list(&self) -> Vec<HttpRoute> {
        self.http_routes.read().unwrap().iter().map(|(r, _)| r.clone()).collect()
    }

    /// A push domain's ingest URL validation, if it has one.
    pub fn key_chain(&self, domain: &str) -> Option<KeyChain> {
        self.key_chains.read().unwrap().get(domain).cloned()
    }

    /// Makes `config` the running configuration; live streams pick it up
    /// from their next snapshot.
    pub(crate) fn install(&self, _: &Writer<'_>, config: Config) {
        *self.config.write().unwrap() = Arc::new(config);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Replaces the `[[trigger.http]]` routes.
    pub(crate) fn install_http_routes(&self, _: &Writer<'_>, routes: Vec<HttpRouteEntry>) {
        *self.http_routes.write().unwrap() = routes;
    }

    /// Sets or removes a domain's key chain in the running service.
    pub(crate) fn replace_key_chains(&self, _: &Writer<'_>, chains: HashMap<String, KeyChain>) {
        *self.key_chains.write().unwrap() = chains;
    }

    pub(crate) fn install_key_chain(&self, _: &Writer<'_>, domain: &str, chain: Option<KeyChain>) {
        let mut chains = self.key_chains.write().unwrap();
        match chain {
            Some(chain) => chains.insert(domain.to_string(), chain),
            None => chains.remove(domain),
        };
    }
}

/// Exclusive access for changes: one writer at a time. The control layer's
/// changes are its methods (the `control` module); it holds the write lock while
/// it lives, so writes are serialised by the type.
pub struct Writer<'a> {
    state: &'a State,
    _lock: MutexGuard<'a, ()>,
}

impl Deref for Writer<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.state
    }
}
