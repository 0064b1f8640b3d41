//! Write operations on tenants and policies, shared by the HTTP handlers and
//! `moment serve --demo`.
//!
//! Each operation writes the store first and updates the in-memory
//! [`Registry`] only once the store has acknowledged, under one lock for
//! writes so what is in memory always matches the store.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::quotas::{self, Quotas};
use crate::registry::{
    KeyInfo, LoadError, LoadedPolicy, Registry, RunningExperiment, SettingsPatch, TenantSettings,
};
use moment_core::breaker::Breaker;
use moment_core::model::experiment::{Experiment, ExperimentSpec};
use moment_core::model::policy::{Action, Bundle, EngineKind};
use moment_core::model::{ApiKey, Name, Role};
use moment_engines::{CompileError, Engines, Program};
use moment_store::{
    KeyRecord, LivePointer, NewVersion, Store, StoreError, StoredExperiment, StoredVersion,
};

/// A policy version as uploaded (body of `POST /v1/policies/{name}/versions`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpload {
    /// `rhai` or `wasm`.
    pub engine: EngineKind,
    /// Rhai source (engine `rhai`).
    #[serde(default)]
    pub source: Option<String>,
    /// Base64 of the WebAssembly module (engine `wasm`).
    #[serde(default)]
    pub wasm: Option<String>,
    /// The actions this policy ranks.
    #[serde(deserialize_with = "moment_core::model::objects::many")]
    pub catalog: Vec<Action>,
    /// Actions served when the policy fails.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Make this version live at once.
    #[serde(default)]
    pub activate: bool,
}

/// A policy version with its code decoded, ready to compile.
#[derive(Debug)]
pub struct NewPolicy {
    /// Which engine runs `code`.
    pub engine: EngineKind,
    /// Rhai source bytes or the WASM module.
    pub code: Vec<u8>,
    /// The actions this policy ranks.
    pub catalog: Vec<Action>,
    /// Actions served when the policy fails.
    pub fallback: Vec<String>,
    /// Make this version live at once.
    pub activate: bool,
}

impl TryFrom<PolicyUpload> for NewPolicy {
    type Error = ServiceError;

    fn try_from(upload: PolicyUpload) -> Result<Self, ServiceError> {
        Ok(Self {
            engine: upload.engine,
            code: code_of(&upload)?,
            catalog: upload.catalog,
            fallback: upload.fallback,
            activate: upload.activate,
        })
    }
}

/// The three keys of a tenant, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantKeys {
    /// Keys and tenant settings.
    pub admin: String,
    /// Policies, experiments, profiles, results.
    pub editor: String,
    /// Publishable: decide and outcomes only.
    pub decide: String,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The resource exists already.
    #[error("{0}")]
    Conflict(String),
    /// The input is invalid; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// No such resource for this tenant.
    #[error("{0}")]
    NotFound(String),
    /// The input is over a size limit; the message says which.
    #[error("{0}")]
    TooLarge(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored data is unreadable (a bug of ours, or a damaged store).
    #[error("{0}")]
    Corrupt(String),
    /// One of the server's own values could not be encoded for the store (a
    /// bug of ours, not the caller's).
    #[error("encoding a value to store failed: {0}")]
    Encode(serde_json::Error),
    /// A background task panicked (a bug of ours, not the caller's).
    #[error("a background task failed: {0}")]
    Crashed(String),
    /// A stored version could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Refuses `experiment` unless it excludes every one of `running` (specs as
/// stored, of experiments running on its point).
fn exclusive(experiment: &Experiment, running: &[String]) -> Result<(), String> {
    for spec in running {
        let Ok(other) = serde_json::from_str::<ExperimentSpec>(spec)
            .map_err(|e| e.to_string())
            .and_then(|spec| Experiment::new(spec).map_err(|e| e.to_string()))
        else {
            // Unreadable: it cannot be serving either (sync skips it).
            continue;
        };
        if !experiment.excludes(&other) {
            return Err(format!(
                "experiment {:?} already runs on point {:?}; stop it, or give both the same namespace with disjoint ranges",
                other.id.as_str(),
                experiment.point.as_str()
            ));
        }
    }
    Ok(())
}

/// Tenant and policy writes.
pub struct Service {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    engines: Arc<Engines>,
    quotas: Quotas,
    writes: tokio::sync::Mutex<()>,
}

impl Service {
    /// A service over these parts, holding tenants to `quotas`.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        engines: Arc<Engines>,
        quotas: Quotas,
    ) -> Self {
        Self {
            store,
            registry,
            engines,
            quotas,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Refuses `adding` keys when the tenant's active ones would pass its quota.
    async fn check_keys(&self, tenant: &Name, adding: usize) -> Result<(), ServiceError> {
        let keys = self.store.keys(tenant).await?;
        let active = keys.iter().filter(|k| k.revoked_at_ms.is_none()).count();
        quotas::check(
            "active keys",
            active,
            adding,
            self.quotas.keys,
            "--max-keys",
        )
        .map_err(ServiceError::Invalid)
    }

    /// Creates a tenant and its admin, editor and decide keys.
    pub async fn create_tenant(
        &self,
        id: &Name,
        settings: TenantSettings,
    ) -> Result<TenantKeys, ServiceError> {
        let (keys, records) = new_keys(id);
        let _guard = self.writes.lock().await;
        let json = serde_json::to_string(&settings).map_err(ServiceError::Encode)?;
        match self.store.create_tenant(id, &json, &records).await {
            Err(StoreError::Conflict) => {
                return Err(ServiceError::Conflict(format!(
                    "tenant {id:?} exists already"
                )));
            }
            other => other?,
        }
        self.registry.set_tenant(id.clone(), settings);
        self.remember(records);
        Ok(keys)
    }

    /// Issues a fresh set of keys for an existing tenant.
    pub async fn issue_keys(&self, tenant: &Name) -> Result<TenantKeys, ServiceError> {
        let (keys, records) = new_keys(tenant);
        let _guard = self.writes.lock().await;
        self.check_keys(tenant, records.len()).await?;
        self.store.add_keys(&records).await?;
        self.remember(records);
        Ok(keys)
    }

    /// Issues one new key with `role`; returns its id and secret.
    pub async fn issue_key(
        &self,
        tenant: &Name,
        role: Role,
    ) -> Result<(String, String), ServiceError> {
        let key = ApiKey::generate(role);
        let record = KeyRecord {
            id: new_key_id(),
            tenant: tenant.clone(),
            role,
            hash: key.hash(),
        };
        let _guard = self.writes.lock().await;
        self.check_keys(tenant, 1).await?;
        self.store.add_keys(std::slice::from_ref(&record)).await?;
        let id = record.id.clone();
        self.remember(vec![record]);
        Ok((id, key.secret().to_owned()))
    }

    /// Revokes a key; it stops working at once.
    pub async fn revoke_key(&self, tenant: &Name, id: &str) -> Result<(), ServiceError> {
        let _guard = self.writes.lock().await;
        if !self.store.revoke_key(tenant, id).await? {
            return Err(ServiceError::NotFound(format!("no active key {id:?}")));
        }
        self.registry.remove_key(tenant, id);
        Ok(())
    }

    /// Changes the given fields of a tenant's settings; returns them all.
    pub async fn update_settings(
        &self,
        tenant: &Name,
        patch: SettingsPatch,
    ) -> Result<TenantSettings, ServiceError> {
        let _guard = self.writes.lock().await;
        // Checked as they would merge here; each field stands alone, so a
        // concurrent patch of other fields on another replica cannot make
        // them wrong.
        let checked = self.registry.tenant(tenant).settings.patched(patch.clone());
        self.engines
            .limits()
            .check(&checked.limits)
            .map_err(ServiceError::Invalid)?;
        if checked.stages.iter().any(String::is_empty) {
            return Err(ServiceError::Invalid(
                "stages must be non-empty names".into(),
            ));
        }
        let json = serde_json::to_string(&patch).map_err(ServiceError::Encode)?;
        let stored = self.store.patch_tenant_settings(tenant, &json).await?;
        let settings: TenantSettings = serde_json::from_str(&stored)
            .map_err(|e| ServiceError::Corrupt(format!("stored tenant settings: {e}")))?;
        self.registry.set_tenant(tenant.clone(), settings.clone());
        Ok(settings)
    }

    /// Validates, compiles and stores a new policy version; returns its number.
    pub async fn create_version(
        &self,
        tenant: &Name,
        name: &Name,
        new: NewPolicy,
        actor: &str,
    ) -> Result<u32, ServiceError> {
        let activate = new.activate;
        let (engine, code, bundle, program) = self.prepare(new).await?;
        let bundle_json =
            serde_json::to_string(&bundle.to_stored()).map_err(ServiceError::Encode)?;

        let _guard = self.writes.lock().await;
        let policies = self.store.policies(tenant).await?;
        match policies.iter().find(|p| p.name == *name) {
            Some(policy) => quotas::check(
                &format!("versions of policy {:?}", name.as_str()),
                policy.latest as usize,
                1,
                self.quotas.versions,
                "--max-versions",
            ),
            None => quotas::check(
                "policies",
                policies.len(),
                1,
                self.quotas.policies,
                "--max-policies",
            ),
        }
        .map_err(ServiceError::Invalid)?;
        let version = self
            .store
            .create_version(NewVersion {
                tenant: tenant.clone(),
                name: name.clone(),
                engine,
                code,
                bundle_json,
                activate,
                actor: actor.to_owned(),
            })
            .await?;
        let loaded = Arc::new(LoadedPolicy {
            name: name.clone(),
            version,
            bundle: Arc::new(bundle),
            program,
            breaker: Breaker::default(),
        });
        if activate {
            self.registry.set_live(tenant, loaded);
        } else {
            self.registry.cache(tenant, loaded);
        }
        Ok(version)
    }

    /// Checks and compiles a version as an upload is checked (code size,
    /// catalog quota and bounds, the WASM input cap), without storing it.
    async fn prepare(
        &self,
        new: NewPolicy,
    ) -> Result<(EngineKind, Vec<u8>, Bundle, Program), ServiceError> {
        let NewPolicy {
            engine,
            code,
            catalog,
            fallback,
            activate: _,
        } = new;
        self.engines
            .check_size(&code)
            .map_err(|e| ServiceError::TooLarge(e.to_string()))?;
        if catalog.len() > self.quotas.catalog_actions {
            return Err(ServiceError::Invalid(format!(
                "the catalog has {} actions; at most {} are allowed (the operator's --max-catalog-actions)",
                catalog.len(),
                self.quotas.catalog_actions
            )));
        }
        let bundle =
            Bundle::new(catalog, &fallback).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if engine == EngineKind::Wasm {
            // The candidates alone must fit the input a WASM policy may
            // receive, or every decision would fall back.
            let cap = self.engines.limits().max_input_bytes;
            // `[` + each candidate's JSON + a `,` or the closing `]`.
            let size = 1 + bundle
                .candidates()
                .iter()
                .map(|c| c.json().get().len() + 1)
                .sum::<usize>();
            if size > cap {
                return Err(ServiceError::Invalid(format!(
                    "the catalog's candidates take {size} bytes of JSON, over the {cap} bytes a \
                     WASM policy may receive as input: every decision would fall back; \
                     split the catalog, or shorten its ids and tags"
                )));
            }
        }
        let engines = self.engines.clone();
        let (program, code) =
            tokio::task::spawn_blocking(move || (engines.compile(engine, &code), code))
                .await
                .map_err(|e| ServiceError::Crashed(e.to_string()))?;
        let program = program.map_err(|e| ServiceError::Invalid(compile_detail(engine, &e)))?;
        Ok((engine, code, bundle, program))
    }

    /// An unsaved draft, checked and compiled like an upload, to try: it
    /// is numbered version 0 and has a breaker of its own.
    pub async fn draft(&self, name: &Name, new: NewPolicy) -> Result<LoadedPolicy, ServiceError> {
        let (_, _, bundle, program) = self.prepare(new).await?;
        Ok(LoadedPolicy {
            name: name.clone(),
            version: 0,
            bundle: Arc::new(bundle),
            program,
            breaker: Breaker::default(),
        })
    }

    /// Makes an existing version live (also how rollback is done).
    pub async fn activate(
        &self,
        tenant: &Name,
        name: &Name,
        version: u32,
        actor: &str,
    ) -> Result<(), ServiceError> {
        let _guard = self.writes.lock().await;
        let loaded = self.version(tenant, name, version).await?;
        self.store.activate(tenant, name, version, actor).await?;
        self.registry.set_live(tenant, loaded);
        Ok(())
    }

    /// Starts an experiment: checks its definition, that every variant's
    /// version exists, and that it excludes every experiment already running
    /// on the point.
    pub async fn create_experiment(
        &self,
        tenant: &Name,
        spec: ExperimentSpec,
    ) -> Result<Experiment, ServiceError> {
        let experiment = Experiment::new(spec).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let _guard = self.writes.lock().await;
        let stored = self.store.experiments(tenant).await?.len();
        quotas::check(
            "experiments",
            stored,
            1,
            self.quotas.experiments,
            "--max-experiments",
        )
        .map_err(ServiceError::Invalid)?;
        let variants = self.variants(tenant, &experiment).await?;
        let json = serde_json::to_string(&experiment.spec).map_err(ServiceError::Encode)?;
        // Exclusivity is checked by the store, against the experiments
        // running on the point as stored, so two replicas cannot both start
        // overlapping ones.
        let admit = |running: &[String]| exclusive(&experiment, running);
        match self
            .store
            .create_experiment(tenant, &experiment.id, &experiment.point, &json, &admit)
            .await
        {
            Err(StoreError::Conflict) => {
                return Err(ServiceError::Conflict(format!(
                    "experiment {:?} exists already",
                    experiment.id.as_str()
                )));
            }
            Err(StoreError::Invalid(overlap)) => return Err(ServiceError::Conflict(overlap)),
            other => other?,
        }
        let running = RunningExperiment {
            experiment: experiment.clone(),
            variants,
        };
        self.registry.start_experiment(tenant, Arc::new(running));
        Ok(experiment)
    }

    /// Brings memory in line with the store for `tenant` (every tenant if
    /// `None`): settings, keys, live versions and running experiments. Runs
    /// at start, and in a cluster whenever another replica changed something.
    /// A tenant's unreadable settings, live version or running experiment is
    /// logged and skipped, so it never keeps the others from being served (a
    /// row the snapshot itself cannot read still fails the whole sync).
    pub async fn sync(&self, tenant: Option<&Name>) -> Result<(), ServiceError> {
        let _guard = self.writes.lock().await;
        let snapshot = self.store.snapshot(tenant).await?;
        for (id, json) in snapshot.tenants {
            match serde_json::from_str::<TenantSettings>(&json) {
                Ok(settings) => self.registry.set_tenant(id, settings),
                Err(error) => {
                    tracing::error!(tenant = %id, %error, "stored tenant settings are unreadable")
                }
            }
        }
        let keys = snapshot.keys.into_iter().map(|r| {
            let info = KeyInfo {
                id: r.id,
                tenant: r.tenant,
                role: r.role,
            };
            (r.hash, info)
        });
        self.registry.replace_keys(tenant, keys.collect());
        for pointer in snapshot.live {
            let current = self.registry.live(&pointer.tenant, &pointer.name);
            if current.is_some_and(|live| live.version == pointer.version) {
                continue;
            }
            match self.live_version(&pointer).await {
                Ok(loaded) => self.registry.set_live(&pointer.tenant, loaded),
                // Without a readable bundle there is not even a fallback to
                // serve: the point answers 404 until a version is activated again.
                Err(error) => tracing::error!(
                    tenant = %pointer.tenant, policy = %pointer.name, version = pointer.version, %error,
                    "live policy version is unreadable; not serving it"
                ),
            }
        }
        let mut stale = self.registry.running_experiments(tenant);
        for stored in &snapshot.experiments {
            let known = serde_json::from_str::<ExperimentSpec>(&stored.spec_json)
                .ok()
                .and_then(|spec| {
                    stale.iter().position(|(t, point, id)| {
                        *t == stored.tenant
                            && point.as_str() == spec.point
                            && id.as_str() == spec.id
                    })
                });
            match known {
                Some(at) => {
                    stale.swap_remove(at);
                }
                None => {
                    if let Err(error) = self.resume_experiment(stored).await {
                        tracing::error!(tenant = %stored.tenant, %error, "cannot serve a running experiment");
                    }
                }
            }
        }
        for (tenant, point, id) in stale {
            self.registry.stop_experiment(&tenant, &point, &id);
        }
        Ok(())
    }

    /// A live version: from the cache, or compiled from the store; code that
    /// no longer compiles serves the version's fallback (see
    /// [`LoadedPolicy::load_or_degrade`]).
    async fn live_version(&self, pointer: &LivePointer) -> Result<Arc<LoadedPolicy>, ServiceError> {
        if let Some(loaded) = self
            .registry
            .cached(&pointer.tenant, &pointer.name, pointer.version)
        {
            return Ok(loaded);
        }
        let stored = self
            .store
            .version(&pointer.tenant, &pointer.name, pointer.version)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!("live version {} is not stored", pointer.version))
            })?;
        let engines = self.engines.clone();
        let loaded =
            tokio::task::spawn_blocking(move || LoadedPolicy::load_or_degrade(&engines, &stored))
                .await
                .map_err(|e| ServiceError::Crashed(e.to_string()))??;
        Ok(Arc::new(loaded))
    }

    /// Serves a stored running experiment.
    async fn resume_experiment(&self, stored: &StoredExperiment) -> Result<(), ServiceError> {
        let spec: ExperimentSpec = serde_json::from_str(&stored.spec_json)
            .map_err(|e| ServiceError::Corrupt(format!("stored experiment is unreadable: {e}")))?;
        let experiment = Experiment::new(spec)
            .map_err(|e| ServiceError::Corrupt(format!("stored experiment is invalid: {e}")))?;
        let variants = self.variants(&stored.tenant, &experiment).await?;
        self.registry.start_experiment(
            &stored.tenant,
            Arc::new(RunningExperiment {
                experiment,
                variants,
            }),
        );
        Ok(())
    }

    /// Stops a running experiment; its point serves the live version again.
    pub async fn stop_experiment(&self, tenant: &Name, id: &Name) -> Result<(), ServiceError> {
        let _guard = self.writes.lock().await;
        let stored =
            self.store.experiment(tenant, id).await?.ok_or_else(|| {
                ServiceError::NotFound(format!("no experiment {:?}", id.as_str()))
            })?;
        let spec: ExperimentSpec = serde_json::from_str(&stored.spec_json)
            .map_err(|e| ServiceError::Corrupt(format!("stored experiment is unreadable: {e}")))?;
        let point = Name::parse(&spec.point)
            .map_err(|e| ServiceError::Corrupt(format!("stored experiment is invalid: {e}")))?;
        self.store.stop_experiment(tenant, id).await?;
        self.registry.stop_experiment(tenant, &point, id);
        Ok(())
    }

    async fn variants(
        &self,
        tenant: &Name,
        experiment: &Experiment,
    ) -> Result<Vec<Arc<LoadedPolicy>>, ServiceError> {
        let mut variants = Vec::with_capacity(experiment.spec.variants.len());
        for v in &experiment.spec.variants {
            let loaded = self
                .version(tenant, &experiment.point, v.version)
                .await
                .map_err(|e| match e {
                    ServiceError::NotFound(detail) => {
                        ServiceError::Invalid(format!("variant {:?}: {detail}", v.id))
                    }
                    other => other,
                })?;
            variants.push(loaded);
        }
        Ok(variants)
    }

    /// A compiled version: from the cache, or loaded from the store and cached.
    pub async fn version(
        &self,
        tenant: &Name,
        name: &Name,
        version: u32,
    ) -> Result<Arc<LoadedPolicy>, ServiceError> {
        if let Some(loaded) = self.registry.cached(tenant, name, version) {
            return Ok(loaded);
        }
        let stored = self
            .store
            .version(tenant, name, version)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "policy {:?} has no version {version}",
                    name.as_str()
                ))
            })?;
        let loaded = Arc::new(self.load(stored).await?);
        self.registry.cache(tenant, loaded.clone());
        Ok(loaded)
    }

    /// Compiles a stored version off the async workers.
    pub async fn load(&self, stored: StoredVersion) -> Result<LoadedPolicy, ServiceError> {
        let engines = self.engines.clone();
        let loaded = tokio::task::spawn_blocking(move || LoadedPolicy::load(&engines, &stored))
            .await
            .map_err(|e| ServiceError::Crashed(e.to_string()))??;
        Ok(loaded)
    }

    fn remember(&self, records: Vec<KeyRecord>) {
        for r in records {
            self.registry.add_key(
                r.hash,
                KeyInfo {
                    id: r.id,
                    tenant: r.tenant,
                    role: r.role,
                },
            );
        }
    }
}

fn new_key_id() -> String {
    format!("key_{}", uuid::Uuid::now_v7().simple())
}

fn new_keys(tenant: &Name) -> (TenantKeys, Vec<KeyRecord>) {
    let [decide, editor, admin] = Role::ALL.map(|role| (role, ApiKey::generate(role)));
    let records = [&decide, &editor, &admin]
        .into_iter()
        .map(|(role, key)| KeyRecord {
            id: new_key_id(),
            tenant: tenant.clone(),
            role: *role,
            hash: key.hash(),
        })
        .collect();
    let keys = TenantKeys {
        admin: admin.1.secret().to_owned(),
        editor: editor.1.secret().to_owned(),
        decide: decide.1.secret().to_owned(),
    };
    (keys, records)
}

fn code_of(upload: &PolicyUpload) -> Result<Vec<u8>, ServiceError> {
    let invalid = |m: &str| Err(ServiceError::Invalid(m.to_owned()));
    match (upload.engine, &upload.source, &upload.wasm) {
        (EngineKind::Rhai, Some(source), None) => Ok(source.as_bytes().to_vec()),
        (EngineKind::Rhai, _, _) => {
            invalid("engine \"rhai\" takes the script in `source` and no `wasm` field")
        }
        (EngineKind::Wasm, None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| ServiceError::Invalid(format!("`wasm` is not valid base64: {e}"))),
        (EngineKind::Wasm, _, _) => {
            invalid("engine \"wasm\" takes the base64 module in `wasm` and no `source` field")
        }
    }
}

/// What an upload whose code does not compile is told.
pub fn compile_detail(engine: EngineKind, err: &CompileError) -> String {
    match engine {
        EngineKind::Rhai => format!("the Rhai source does not compile: {err}"),
        EngineKind::Wasm => format!("the WebAssembly module is not accepted: {err}"),
    }
}
