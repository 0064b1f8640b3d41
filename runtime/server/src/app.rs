//! Start-up: open the store (embedded, or the cluster's PostgreSQL and
//! Redis), load it into memory, bind, serve.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::decisions::DecisionLog;
use crate::demo;
use crate::fairness::PolicyPool;
use crate::http::auth::RootToken;
use crate::http::rate::TenantRate;
use crate::http::{AppState, BodyLimits, router};
use crate::profiles::Profiles;
use crate::registry::Registry;
use crate::replication;
use crate::retention;
use crate::serve::{Timeouts, serve};
use crate::service::{Service, ServiceError};
use crate::settings::{Settings, SettingsError};
use moment_cluster::ClusterStore;
use moment_core::model::KeyHash;
use moment_engines::Engines;
use moment_store::sqlite::SqliteStore;
use moment_store::{Store, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The WebAssembly engine could not be configured.
    #[error("wasm engine: {0:#}")]
    Engine(moment_engines::SetupError),
    /// The stored state could not be loaded, or the demo tenant set up.
    #[error(transparent)]
    Load(#[from] ServiceError),
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// A start-up task on the blocking pool panicked.
    #[error("start-up task failed: {0}")]
    Crashed(#[from] tokio::task::JoinError),
}

/// Runs file and SQLite work of the start-up on the blocking pool, off the
/// async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(work).await
}

/// Everything a server is before it listens: the router over a loaded
/// store, the decision log's writer, the demo keys. Tests drive the router
/// directly (`tower::ServiceExt::oneshot`), without a socket.
pub struct Assembled {
    /// The whole HTTP surface.
    pub router: Router,
    /// The decision log's writer; it ends, having written everything, once
    /// the router (and every handle to the log) is dropped.
    pub log_writer: tokio::task::JoinHandle<()>,
    /// The demo tenant's keys, when `settings.demo` is set.
    pub demo: Option<demo::DemoKeys>,
}

impl Assembled {
    /// Opens the store under `settings.data` (or the cluster's), loads it,
    /// seeds the demo tenant if asked, and builds the router.
    pub async fn new(
        settings: &Settings,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Self, StartError> {
        settings.validate()?;
        let store: Arc<dyn Store> = match (&settings.postgres, &settings.redis) {
            (Some(postgres), Some(redis)) => {
                Arc::new(ClusterStore::connect(postgres, redis, &settings.redis_prefix).await?)
            }
            _ => {
                let data = settings.data.clone();
                Arc::new(blocking(move || SqliteStore::open(&data)).await??)
            }
        };
        Self::on_store(settings, store, metrics).await
    }

    /// [`Assembled::new`] on a store already open: tests put one that fails
    /// on cue in front of a real one.
    pub async fn on_store(
        settings: &Settings,
        store: Arc<dyn Store>,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Self, StartError> {
        settings.validate()?;
        let (limits, compiled) = (settings.limits(), settings.data.join("compiled"));
        let engines = Arc::new(
            blocking(move || Engines::with_compiled_dir(limits, compiled))
                .await?
                .map_err(StartError::Engine)?,
        );
        let registry = Arc::new(Registry::new(settings.policy_cache_versions));
        let service = Arc::new(Service::new(
            store.clone(),
            registry.clone(),
            engines.clone(),
            settings.quotas(),
        ));
        // Subscribe before loading, so no change made meanwhile is missed.
        let changes = replication::subscribe(&*store);
        service.sync(None).await?;
        let demo = if settings.demo {
            Some(demo::seed(&service, &registry).await?)
        } else {
            None
        };

        let profiles = Arc::new(Profiles::new(
            store.clone(),
            settings.profile_cache_customers,
        ));
        // Notices sent since the snapshot are queued in `changes`.
        replication::start(changes, service.clone(), profiles.clone());
        let (decisions, log_writer) = DecisionLog::start(
            store.clone(),
            settings.recent_decisions,
            settings.decision_log_queue_bytes,
        );
        retention::start(
            store.clone(),
            Duration::from_secs(settings.log_retention_days * 86_400),
            Duration::from_secs(settings.log_prune_every_s),
        );
        let state = AppState {
            profiles,
            decisions,
            store,
            registry,
            engines,
            pool: Arc::new(PolicyPool::start(settings.shares())),
            rate: Arc::new(TenantRate::new(settings.tenant_rate_limit)),
            readiness: Arc::default(),
            sessions: Arc::default(),
            service,
            root: RootToken(settings.root_token.as_deref().map(KeyHash::of)),
            metrics,
        };
        let limits = BodyLimits {
            default_bytes: settings.max_body_bytes,
            // base64 grows a module by 4/3; leave room for the catalog.
            upload_bytes: settings.max_code_bytes / 3 * 4 + settings.max_body_bytes,
        };
        let mut router = router(state, limits);
        if settings.demo {
            router = router.merge(crate::http::examples::router());
        }
        Ok(Self {
            router,
            log_writer,
            demo,
        })
    }
}

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    log_writer: tokio::task::JoinHandle<()>,
    demo: Option<demo::DemoKeys>,
}

impl Application {
    /// [`Assembled::new`], then binds `settings.listen` (port 0 picks a free
    /// port).
    pub async fn build(
        settings: Settings,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Self, StartError> {
        let Assembled {
            router,
            log_writer,
            demo,
        } = Assembled::new(&settings, metrics).await?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| StartError::Bind(settings.listen, e))?;
        Ok(Self {
            listener,
            router,
            timeouts: settings.timeouts(),
            log_writer,
            demo,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into())
    }

    /// The demo tenant's keys, when started with `--demo`.
    pub fn demo_keys(&self) -> Option<&demo::DemoKeys> {
        self.demo.as_ref()
    }

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests (for
    /// at most the drain timeout) and flushes the decision log.
    pub async fn run(self) -> std::io::Result<()> {
        serve(self.listener, self.router, self.timeouts, shutdown_signal()).await;
        // The router, and with it every handle to the log, is gone: the writer
        // drains what is queued and ends.
        if let Err(error) = self.log_writer.await {
            tracing::error!(%error, "decision log writer failed");
        }
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
