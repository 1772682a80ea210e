//! What the service's tasks and the API share: the running configuration
//! and its generation, the pipeline, live streams, counters, the state store
//! and the engine. The service builds it; the API and the publishers use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::config::credentials::ApiCredentials;
use crate::config::manifest::HttpRoute;
use crate::config::{Config, Template};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::runtime::Runtime;
use crate::runtime::http::HttpComponent;
use crate::state::StateStore;
use crate::storage::Buckets;
use crate::streams::Streams;

/// Everything the tasks of the service share.
pub struct State {
    pub(crate) config: RwLock<Arc<Config>>,
    pub(crate) generation: AtomicU64,
    /// The functions and callback delivery.
    pub pipeline: Pipeline,
    /// Live streams.
    pub streams: Streams,
    /// Counters.
    pub metrics: Metrics,
    /// Authorized buckets (for `/obs/`).
    pub buckets: Arc<Buckets>,
    /// Bounds concurrent decode + function work to the cores.
    pub(crate) workers: Arc<Semaphore>,
    /// Snapshot jobs in flight, waited for at shutdown.
    pub(crate) tasks: TaskTracker,
    /// Templates created through the API, and the callback outbox.
    pub store: Arc<dyn StateStore>,
    /// What the API authenticates with.
    pub credentials: ApiCredentials,
    /// Serializes changes (validate, store, install): taken by `control::Writer`.
    pub(crate) writes: std::sync::Mutex<()>,
    /// The engine (also serving `[[trigger.http]]` routes).
    pub runtime: Arc<Runtime>,
    /// `[[trigger.http]]` routes and their prepared components.
    pub http_routes: RwLock<Vec<(HttpRoute, HttpComponent)>>,
    /// Ingest URL validation per push domain (lower case), as stored.
    pub key_chains: RwLock<std::collections::HashMap<String, crate::ingest::url_auth::KeyChain>>,
}

impl State {
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

    /// The configuration generation (bumped by every reload).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Makes `config` the running configuration; live streams pick it up
    /// from their next snapshot.
    pub(crate) fn install(&self, config: Config) {
        *self.config.write().unwrap() = Arc::new(config);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
