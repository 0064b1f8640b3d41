//! Start-up: open the store, load it into memory, bind, serve.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::decisions::DecisionLog;
use crate::demo;
use crate::engine::Engines;
use crate::http::auth::RootToken;
use crate::http::{AppState, BodyLimits, router};
use crate::model::KeyHash;
use crate::profiles::Profiles;
use crate::registry::{KeyInfo, Registry, TenantSettings};
use crate::service::{Service, ServiceError};
use crate::settings::{Settings, SettingsError};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError, StoredExperiment};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A stored tenant's settings do not parse.
    #[error("tenant {0} has unreadable settings: {1}")]
    TenantSettings(String, serde_json::Error),
    /// The WebAssembly engine could not be configured.
    #[error("wasm engine: {0:#}")]
    Engine(wasmtime::Error),
    /// The demo tenant could not be set up.
    #[error("demo: {0}")]
    Demo(#[from] ServiceError),
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    log_writer: tokio::task::JoinHandle<()>,
    demo: Option<demo::DemoKeys>,
}

impl Application {
    /// Opens the store under `settings.data`, loads it, seeds the demo tenant
    /// if asked, and binds `settings.listen` (port 0 picks a free port).
    pub async fn build(
        settings: Settings,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Self, StartError> {
        settings.validate()?;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&settings.data)?);
        let engines = Arc::new(
            Engines::with_compiled_dir(settings.limits(), settings.data.join("compiled"))
                .map_err(StartError::Engine)?,
        );
        let registry = Arc::new(Registry::new(settings.policy_cache_versions));
        let experiments = load(&*store, &registry, &engines).await?;
        let service = Arc::new(Service::new(
            store.clone(),
            registry.clone(),
            engines.clone(),
        ));
        for stored in &experiments {
            service.resume_experiment(stored).await?;
        }
        let demo = if settings.demo {
            Some(demo::seed(&service, &registry).await?)
        } else {
            None
        };

        let profiles = Arc::new(Profiles::new(
            store.clone(),
            settings.profile_cache_customers,
        ));
        let (decisions, log_writer) = DecisionLog::start(store.clone(), settings.recent_decisions);
        let state = AppState {
            profiles,
            decisions,
            store,
            registry,
            engines,
            service,
            root: RootToken(settings.root_token.as_deref().map(KeyHash::of)),
            metrics,
        };
        let limits = BodyLimits {
            default_bytes: settings.max_body_bytes,
            // base64 grows a module by 4/3; leave room for the catalog.
            upload_bytes: settings.max_code_bytes / 3 * 4 + settings.max_body_bytes,
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| StartError::Bind(settings.listen, e))?;
        Ok(Self {
            listener,
            router: router(state, limits),
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

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests and
    /// flushes the decision log.
    pub async fn run(self) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        // The router, and with it every handle to the log, is gone: the writer
        // drains what is queued and ends.
        if let Err(error) = self.log_writer.await {
            tracing::error!(%error, "decision log writer failed");
        }
        Ok(())
    }
}

/// Loads tenants, keys and live policies from the store into the registry;
/// returns the running experiments, which the service resumes.
async fn load(
    store: &dyn Store,
    registry: &Registry,
    engines: &Arc<Engines>,
) -> Result<Vec<StoredExperiment>, StartError> {
    let snapshot = store.snapshot().await?;
    for (tenant, json) in snapshot.tenants {
        let settings: TenantSettings = serde_json::from_str(&json)
            .map_err(|e| StartError::TenantSettings(tenant.to_string(), e))?;
        registry.set_tenant(tenant, settings);
    }
    for key in snapshot.keys {
        registry.add_key(
            key.hash,
            KeyInfo {
                id: key.id,
                tenant: key.tenant,
                role: key.role,
            },
        );
    }
    let live_count = snapshot.live.len();
    for stored in snapshot.live {
        let engines = engines.clone();
        let (loaded, stored) = tokio::task::spawn_blocking(move || {
            (
                crate::registry::LoadedPolicy::load_or_degrade(&engines, &stored),
                stored,
            )
        })
        .await
        .map_err(|e| StoreError::Backend(format!("loading task failed: {e}")))?;
        match loaded {
            Ok(loaded) => registry.set_live(&stored.tenant, Arc::new(loaded)),
            // Without a readable bundle there is not even a fallback to serve:
            // the point answers 404 until a version is activated again.
            Err(error) => tracing::error!(
                tenant = %stored.tenant, policy = %stored.name, version = stored.version, %error,
                "live policy version is unreadable; not serving it"
            ),
        }
    }
    tracing::info!(
        live_policies = live_count,
        experiments = snapshot.experiments.len(),
        "store loaded"
    );
    Ok(snapshot.experiments)
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
    tracing::info!("shutting down: draining in-flight requests");
}
