//! `livesnap up`: RTMP ingest and the HTTP server around the pipeline,
//! configuration reload, and a clean shutdown.

pub mod http_server;
mod live;
mod publisher;
mod pull;
mod read_batching;
pub mod tls;

use crate::app::Parts;
pub use crate::app::State;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::credentials;
use crate::config::{Config, ConfigError, Stored};
use crate::delivery::Delivery;
use crate::limiter;
use crate::pipeline::{Builtins, Pipeline, SetupError, no_builtins};
use crate::runtime::{ComponentGrants, Runtime, RuntimeError, Source};
use crate::state::{StateDb, StateError};
use crate::storage::Buckets;

/// What `livesnap up` is started with.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--manifest`.
    pub manifest: Option<PathBuf>,
    /// `--runtime-config`.
    pub runtime_config: Option<PathBuf>,
    /// Overrides the runtime config's RTMP address.
    pub rtmp_listen: Option<SocketAddr>,
    /// Overrides the runtime config's HTTP address.
    pub http_listen: Option<SocketAddr>,
    /// The built-in components (the binary embeds them).
    pub builtins: Builtins,
}

impl Default for Options {
    fn default() -> Self {
        Self { manifest: None, runtime_config: None, rtmp_listen: None, http_listen: None, builtins: no_builtins }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("listening on {addr} ({what}): {source}")]
    Bind {
        /// RTMP or HTTP.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Components could not be loaded.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The engine could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A bucket could not be set up.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The state database could not be opened.
    #[error(transparent)]
    State(#[from] StateError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Runs the service until SIGINT or SIGTERM.
pub async fn run(options: Options) -> Result<(), ServiceError> {
    let loaded = Config::load(options.manifest.as_deref(), options.runtime_config.as_deref())?;
    let settings = &loaded.runtime.state;
    tracing::info!(state = %settings.describe(&loaded.runtime.state_dir), node = %loaded.runtime.node_id, "opening the state database");
    let db: Arc<dyn StateDb> = crate::state::open(settings, &loaded.runtime.state_dir)?;
    // Generated keys (or a generated token) would differ from node to
    // node: with a shared state database they must be configured, and
    // nothing is generated.
    let set = |var: &str| std::env::var(var).is_ok_and(|v| !v.is_empty());
    let api = &loaded.runtime.api;
    let keys_configured = (set("LIVESNAP_ACCESS_KEY") || api.access_key.is_some())
        && (set("LIVESNAP_SECRET_KEY") || api.secret_key.is_some() || api.secret_key_file.is_some())
        && (set("LIVESNAP_TOKEN") || api.token.is_some() || api.token_file.is_some());
    if db.shared() && !keys_configured {
        return Err(ServiceError::Config(crate::config::ConfigError::Invalid(
            "with a shared state database every node needs the same default project keys: set LIVESNAP_ACCESS_KEY, \
             LIVESNAP_SECRET_KEY and LIVESNAP_TOKEN (or [api] access_key, secret_key_file and token_file)"
                .into(),
        )));
    }
    let (credentials, credentials_file) = credentials::resolve(&loaded.runtime)?;
    let stored = Stored { templates: db.templates()?, domains: db.domains()?, authorized_buckets: db.authorized_buckets()? };
    let mut config = Config::new(loaded.manifest, loaded.runtime, &stored)?;
    let listeners = Listeners::bind(&mut config, &options).await?;
    let manifest_path = config.manifest.path.clone();
    crate::console::set_seal_secret(&credentials.secret_key);
    let state = start_state(config, db, credentials, options.builtins)?;
    match &credentials_file {
        Some(path) => tracing::info!(
            project_id = %state.credentials().project_id,
            access_key = %state.credentials().access_key,
            file = %path.display(),
            "API credentials (secret key and X-Auth-Token) are in the file"
        ),
        None => {
            tracing::info!(project_id = %state.credentials().project_id, access_key = %state.credentials().access_key, "API credentials from the configuration")
        }
    }
    for route in state.http_route_list() {
        tracing::info!(route = %route.route, component = %route.component, "serving HTTP route");
    }
    let shutdown = shutdown_signal();
    let templates: Vec<String> = state.config().templates.iter().map(|t| format!("{}/{}", t.domain, t.app_name)).collect();
    let Listeners { rtmp, rtmps, http, tls } = listeners;
    tracing::info!(
        rtmp = %state.config().runtime.rtmp_listen,
        http = %state.config().runtime.http_listen,
        rtmps = %rtmps.as_ref().and_then(|l| l.local_addr().ok()).map_or("off".into(), |a| a.to_string()),
        https = tls.is_some(),
        manifest = %manifest_path.as_ref().map_or("(embedded default)".into(), |p| p.display().to_string()),
        templates = %templates.join(","),
        "livesnap is up"
    );

    let cancel = CancellationToken::new();
    let publishers = TaskTracker::new();
    let ingress = Arc::new(RtmpIngress::new(&state.config().runtime.rtmp));
    let accept = tokio::spawn(accept_loop(rtmp, None, ingress.clone(), state.clone(), cancel.clone(), publishers.clone()));
    let accept_tls = rtmps.map(|l| tokio::spawn(accept_loop(l, tls.clone(), ingress, state.clone(), cancel.clone(), publishers.clone())));
    if let Some(tls) = tls.clone() {
        tokio::spawn(reload_tls_on_hangup(tls, cancel.clone()));
    }
    let server =
        tokio::spawn(http_server::serve(http, crate::api::router(state.clone()), state.config().runtime.http.clone(), tls, cancel.clone()));
    if let Some(path) = manifest_path {
        tokio::spawn(watch_manifest(path, state.clone(), cancel.clone()));
    }
    tokio::spawn(pull::run_sources(state.clone(), cancel.clone(), publishers.clone()));
    let heartbeat = tokio::spawn(crate::cluster::heartbeat(state.clone(), cancel.clone()));
    tokio::spawn(crate::cluster::watch(state.clone(), cancel.clone()));
    tokio::spawn(crate::control::on_demand::answer_requests(state.clone(), cancel.clone()));

    shutdown.await;
    tracing::info!("shutting down: closing publishers, finishing snapshots in flight");
    cancel.cancel();
    let _ = accept.await;
    if let Some(a) = accept_tls {
        let _ = a.await;
    }
    publishers.close();
    publishers.wait().await;
    state.tasks().close();
    state.tasks().wait().await;
    let _ = server.await;
    let _ = heartbeat.await;
    let st = state.clone();
    let (delivered, pending) = tokio::task::spawn_blocking(move || {
        crate::cluster::leave(&st);
        let delivered = st.pipeline().delivery().shutdown();
        (delivered, st.db().counts().map(|(p, _)| p).unwrap_or(0))
    })
    .await
    .unwrap_or_default();
    tracing::info!(callbacks_ok = delivered.ok, callbacks_failed = delivered.failed, callbacks_pending = pending, "stopped");
    Ok(())
}

/// The bound listeners, and the TLS settings of RTMPS and HTTPS.
struct Listeners {
    rtmp: TcpListener,
    rtmps: Option<TcpListener>,
    http: TcpListener,
    tls: Option<Arc<tls::Tls>>,
}

impl Listeners {
    /// Binds the configured (or overridden) addresses and writes the bound
    /// ones back: with port 0 the real ports are known only now, and
    /// snapshot URLs and the egress policy use them.
    async fn bind(config: &mut Config, options: &Options) -> Result<Self, ServiceError> {
        let bind = |what, addr| async move { TcpListener::bind(addr).await.map_err(|source| ServiceError::Bind { what, addr, source }) };
        let rtmp = bind("RTMP", options.rtmp_listen.unwrap_or(config.runtime.rtmp_listen)).await?;
        let http = bind("HTTP", options.http_listen.unwrap_or(config.runtime.http_listen)).await?;
        let tls = tls::Tls::from_settings(&config.runtime.tls)?;
        let rtmps = match config.runtime.tls.rtmps_listen {
            Some(addr) => Some(bind("RTMPS", addr).await?),
            None => None,
        };
        config.runtime.rtmp_listen = rtmp.local_addr().expect("bound");
        config.runtime.http_listen = http.local_addr().expect("bound");
        Ok(Self { rtmp, rtmps, http, tls })
    }
}

/// The engine and the shared state: buckets, the runtime with the tenant
/// modules, the egress policy, callback delivery, the pipeline and the HTTP
/// routes.
fn start_state(
    config: Config,
    db: Arc<dyn StateDb>,
    credentials: credentials::ApiCredentials,
    builtins: Builtins,
) -> Result<Arc<State>, ServiceError> {
    let buckets = Arc::new(Buckets::open(&config.runtime.buckets, &config.runtime.public_url())?);
    let runtime = Arc::new(Runtime::new(buckets.clone(), Some(config.runtime.state_dir.join("cache")))?);
    let mut loaded_modules = std::collections::HashMap::new();
    for m in db.modules()? {
        loaded_modules.insert(crate::project::module_key(&m.project, &m.name), crate::node::module_version(&m.sha256, m.uploaded_at));
        let grants = ComponentGrants { allowed_outbound_hosts: m.allowed_outbound_hosts, environment: m.environment };
        runtime.load(&crate::project::module_key(&m.project, &m.name), Source::Bytes(&m.bytes), grants)?;
        tracing::info!(module = %m.name, project = %m.project, sha256 = %m.sha256, "tenant module loaded");
    }
    let egress = Arc::new(config.runtime.egress.clone().with_own(&[config.runtime.http_listen, config.runtime.rtmp_listen]));
    runtime.set_egress(egress.clone());
    let key_chains = db.key_chains()?.into_iter().collect();
    let delivery = Delivery::start(db.clone(), &config.runtime.node_id, config.runtime.delivery, egress);
    let pipeline = Pipeline::new(&config, runtime.clone(), delivery, builtins)?;
    let http_routes = crate::control::reload::http_routes(&runtime, &config.manifest)?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let node = crate::node::Node::new(config.runtime.node_id.clone(), db.shared(), loaded_modules);
    let state = Arc::new(State::new(Parts { config, pipeline, buckets, db, credentials, runtime, http_routes, key_chains, workers, node }));
    // A callback re-signed at delivery uses its template's current key.
    let weak = Arc::downgrade(&state);
    state.pipeline().delivery().set_resigner(Arc::new(move |json: &str| {
        let state = weak.upgrade()?;
        let info: crate::pipeline::ResignInfo = serde_json::from_str(json).ok()?;
        let (_, template) = state.template(&info.domain, &info.app);
        // Only with its own project's template: a domain deleted and taken
        // by another project must not sign the first one's callbacks.
        state.pipeline().resign(&*template.filter(|t| t.owner == info.owner)?, json)
    }));
    Ok(state)
}

/// What every RTMP(S) connection shares: the connection caps and the
/// budget for unfinished messages.
struct RtmpIngress {
    connections: Arc<limiter::ConnectionLimiter>,
    budget: Arc<crate::ingest::rtmp::chunk::SharedBudget>,
}

impl RtmpIngress {
    fn new(limits: &crate::config::runtime::RtmpLimits) -> Self {
        Self {
            connections: limiter::ConnectionLimiter::new(
                limits.max_connections.min(limiter::fd_budget_per_listener()),
                limits.max_per_client,
            ),
            budget: crate::ingest::rtmp::chunk::SharedBudget::new(limits.unfinished_budget),
        }
    }
}

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<tls::Tls>>,
    ingress: Arc<RtmpIngress>,
    state: Arc<State>,
    cancel: CancellationToken,
    publishers: TaskTracker,
) {
    loop {
        let (socket, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accepting an RTMP connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match ingress.connections.admit(peer.ip()) {
            Ok(p) => p,
            Err(hit) => {
                // Closed at once: a held socket is what the cap protects.
                state.metrics().publishes_refused.inc();
                tracing::warn!(%peer, "RTMP connection refused: {hit}");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        let (state, budget, cancel) = (state.clone(), ingress.budget.clone(), cancel.clone());
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        publishers.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => publisher::serve(socket, Some(fd), peer, state, budget, cancel).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => publisher::serve(stream, Some(fd), peer, state, budget, cancel).await,
                    Ok(Err(e)) => tracing::warn!(%peer, "RTMPS handshake failed: {e}"),
                    Err(_) => tracing::warn!(%peer, "RTMPS handshake timed out"),
                },
            }
        });
    }
}

/// Reads the TLS certificate and key again on SIGHUP.
async fn reload_tls_on_hangup(tls: Arc<tls::Tls>, cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).expect("installing the SIGHUP handler");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = hup.recv() => {}
        }
        let t = tls.clone();
        match tokio::task::spawn_blocking(move || t.reload()).await {
            Ok(Ok(())) => tracing::info!("TLS certificate reloaded"),
            Ok(Err(e)) => tracing::error!("TLS reload failed, keeping the running certificate: {e}"),
            Err(e) => tracing::error!("TLS reload failed: {e}"),
        }
    }
}

/// Waits for SIGINT or SIGTERM. The handlers are installed when this is
/// called, before the service says it is up, so a signal sent as soon as
/// it is up is never missed.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    // tokio keeps a handler once registered: SIGHUP (reload) can no longer
    // end the process with its default action before the reload tasks run.
    drop(signal(SignalKind::hangup()).expect("installing the SIGHUP handler"));
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

/// Reloads the manifest when it changes on disk or on SIGHUP; an invalid
/// one is logged and the running configuration kept.
async fn watch_manifest(path: PathBuf, state: Arc<State>, cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).expect("installing the SIGHUP handler");
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen: Option<SystemTime> = modified(&path);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let forced = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = hup.recv() => true,
            _ = tick.tick() => false,
        };
        let now = modified(&path);
        if !forced && now == seen {
            continue;
        }
        seen = now;
        let st = state.clone();
        let p = path.clone();
        let result = tokio::task::spawn_blocking(move || st.writer().reload_manifest(&p)).await;
        match result {
            Ok(Ok(n)) => tracing::info!(manifest = %path.display(), templates = n, "configuration reloaded"),
            Ok(Err(e)) => tracing::error!(manifest = %path.display(), "configuration change rejected, keeping the running one: {e}"),
            Err(e) => tracing::error!("reload failed: {e}"),
        }
    }
}
