//! What the decide path reads, held in memory: keys, tenant settings, the live
//! version of every policy, and an LRU of compiled versions.
//!
//! **The decide path reads keys, settings, policies and experiments only from
//! here.** Write handlers update the store first and the registry second, so
//! memory never runs ahead of disk. (Profiles have their own cache in
//! [`profiles`](crate::profiles).)

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use lru::LruCache;
use moment_targeting::SavedGroups;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use moment_core::breaker::Breaker;
use moment_core::call::TenantLimits;
use moment_core::model::contact::WhenUnavailable;
use moment_core::model::experiment::Experiment;
use moment_core::model::policy::{Bundle, BundleError, StoredBundle};
use moment_core::model::{KeyHash, Name, Role};
use moment_engines::{CompileError, Engines, Program};
use moment_store::StoredVersion;

/// A key as the registry knows it.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Public key id (goes into audit trails).
    pub id: String,
    /// Owning tenant.
    pub tenant: Name,
    /// What the key may do.
    pub role: Role,
}

/// A tenant's own settings.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Origins browsers may call decide and outcomes from; `["*"]` allows any.
    #[serde(default = "any_origin")]
    pub cors_origins: Vec<String>,
    /// Life-cycle stages customers may be in.
    #[serde(default = "default_stages")]
    pub stages: Vec<String>,
    /// Saved groups for `$inGroup` / `$notInGroup` conditions: id → members.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub groups: BTreeMap<String, Vec<Value>>,
    /// Policy limits tighter than the operator's, for this tenant's calls.
    #[serde(default, deserialize_with = "moment_core::model::objects::one")]
    pub limits: TenantLimits,
    /// What contact rules do while the contact history cannot be read:
    /// `closed` (hide ruled actions, the default) or `open`.
    #[serde(default)]
    pub contact_rules_when_unavailable: WhenUnavailable,
    /// The request attributes a publishable `decide` key may set; others it
    /// sends are ignored (and counted). Unset, it may set any: a browser can
    /// then claim `"tier": "gold"`, so set this for tenants with web pages.
    /// Editor and admin keys may always set any attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_attributes: Option<Vec<String>>,
}

fn any_origin() -> Vec<String> {
    vec!["*".to_owned()]
}

/// The stages a tenant gets unless it defines its own.
pub fn default_stages() -> Vec<String> {
    [
        "consideration",
        "evaluation",
        "purchase",
        "post-purchase",
        "at-risk",
    ]
    .map(str::to_owned)
    .to_vec()
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            cors_origins: any_origin(),
            stages: default_stages(),
            groups: BTreeMap::new(),
            limits: TenantLimits::default(),
            contact_rules_when_unavailable: WhenUnavailable::default(),
            caller_attributes: None,
        }
    }
}

/// Body of `PATCH /v1/tenant`: only the fields given change. Serialised,
/// it holds only those fields, as the stored settings name them, and is
/// merged into them by the store.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// New CORS origins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_origins: Option<Vec<String>>,
    /// New stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<String>>,
    /// New saved groups (replaces them all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub groups: Option<BTreeMap<String, Vec<Value>>>,
    /// New policy limits (replaces them all).
    #[serde(
        default,
        deserialize_with = "moment_core::model::objects::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub limits: Option<TenantLimits>,
    /// New behaviour of contact rules while the history cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_rules_when_unavailable: Option<WhenUnavailable>,
    /// New list of attributes a decide key may set (replaces it); `[]`
    /// allows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_attributes: Option<Vec<String>>,
}

impl TenantSettings {
    /// These settings with `patch` applied.
    pub fn patched(&self, patch: SettingsPatch) -> Self {
        Self {
            cors_origins: patch
                .cors_origins
                .unwrap_or_else(|| self.cors_origins.clone()),
            stages: patch.stages.unwrap_or_else(|| self.stages.clone()),
            groups: patch.groups.unwrap_or_else(|| self.groups.clone()),
            limits: patch.limits.unwrap_or_else(|| self.limits.clone()),
            contact_rules_when_unavailable: patch
                .contact_rules_when_unavailable
                .unwrap_or(self.contact_rules_when_unavailable),
            caller_attributes: patch
                .caller_attributes
                .or_else(|| self.caller_attributes.clone()),
        }
    }

    /// Whether a publishable decide key may set request attribute `name`.
    pub fn caller_may_set(&self, name: &str) -> bool {
        self.caller_attributes
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|a| a == name))
    }

    /// Whether a browser page from `origin` may call this tenant's decide route.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == "*" || o == origin)
    }

    /// Whether `stage` is one of this tenant's stages.
    pub fn has_stage(&self, stage: &str) -> bool {
        self.stages.iter().any(|s| s == stage)
    }
}

/// A tenant's settings with its saved groups compiled for condition evaluation.
#[derive(Debug, Default)]
pub struct Tenant {
    /// The settings as stored.
    pub settings: TenantSettings,
    /// The saved groups, indexed.
    pub groups: SavedGroups,
}

impl Tenant {
    /// Compiles `settings`.
    pub fn new(settings: TenantSettings) -> Self {
        let groups = SavedGroups::from(
            settings
                .groups
                .clone()
                .into_iter()
                .collect::<HashMap<_, _>>(),
        );
        Self { settings, groups }
    }
}

/// A policy version compiled and indexed, ready for the decide path.
pub struct LoadedPolicy {
    /// Policy name (the decision point).
    pub name: Name,
    /// Version number.
    pub version: u32,
    /// Catalog and fallback.
    pub bundle: Arc<Bundle>,
    /// Compiled code.
    pub program: Program,
    /// Pauses the program after repeated failures.
    pub breaker: Breaker,
}

/// Why a stored version could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The stored bundle JSON does not parse.
    #[error("stored bundle is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    /// The stored bundle is invalid.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The stored code no longer compiles.
    #[error(transparent)]
    Compile(#[from] CompileError),
}

impl LoadedPolicy {
    /// Compiles a stored version.
    pub fn load(engines: &Engines, stored: &StoredVersion) -> Result<Self, LoadError> {
        let mut loaded = Self::load_bundle(stored)?;
        loaded.program = engines.compile(stored.engine, &stored.code)?;
        Ok(loaded)
    }

    /// Like [`LoadedPolicy::load`], but code that no longer compiles (after
    /// an engine upgrade, say) gives an [`Program::Unloadable`] program that
    /// serves the version's fallback instead of an error. Used at start, so
    /// one tenant's stored version can never keep the server down.
    pub fn load_or_degrade(engines: &Engines, stored: &StoredVersion) -> Result<Self, LoadError> {
        let mut loaded = Self::load_bundle(stored)?;
        match engines.compile(stored.engine, &stored.code) {
            Ok(program) => loaded.program = program,
            Err(error) => tracing::error!(
                tenant = %stored.tenant, policy = %stored.name, version = stored.version, %error,
                "live policy version no longer compiles; serving its fallback"
            ),
        }
        Ok(loaded)
    }

    /// The version's bundle, with an [`Program::Unloadable`] program.
    fn load_bundle(stored: &StoredVersion) -> Result<Self, LoadError> {
        let bundle =
            Bundle::from_stored(serde_json::from_str::<StoredBundle>(&stored.bundle_json)?)?;
        Ok(Self {
            name: stored.name.clone(),
            version: stored.version,
            bundle: Arc::new(bundle),
            program: Program::Unloadable(stored.engine),
            breaker: Breaker::default(),
        })
    }
}

/// A running experiment with the compiled policy of each variant.
pub struct RunningExperiment {
    /// The checked definition.
    pub experiment: Experiment,
    /// Variant policies, in the definition's order.
    pub variants: Vec<Arc<LoadedPolicy>>,
}

/// The running experiments of one decision point.
pub type PointExperiments = Arc<Vec<Arc<RunningExperiment>>>;

type PolicyKey = (Name, Name);
type VersionKey = (Name, Name, u32);

/// In-memory view of everything the decide path needs.
pub struct Registry {
    keys: RwLock<HashMap<KeyHash, Arc<KeyInfo>>>,
    tenants: RwLock<HashMap<Name, Arc<Tenant>>>,
    live: RwLock<HashMap<PolicyKey, Arc<LoadedPolicy>>>,
    experiments: RwLock<HashMap<PolicyKey, PointExperiments>>,
    versions: Mutex<LruCache<VersionKey, Arc<LoadedPolicy>>>,
}

impl Registry {
    /// An empty registry whose compiled-version cache holds `cache_versions` entries.
    pub fn new(cache_versions: NonZeroUsize) -> Self {
        Self {
            keys: RwLock::default(),
            tenants: RwLock::default(),
            live: RwLock::default(),
            experiments: RwLock::default(),
            versions: Mutex::new(LruCache::new(cache_versions)),
        }
    }

    /// Looks a presented key up by its hash.
    pub fn key(&self, hash: &KeyHash) -> Option<Arc<KeyInfo>> {
        read(&self.keys).get(hash).cloned()
    }

    /// Adds a key.
    pub fn add_key(&self, hash: KeyHash, key: KeyInfo) {
        write(&self.keys).insert(hash, Arc::new(key));
    }

    /// Replaces the keys of `tenant` (of every tenant if `None`) with `keys`,
    /// in one step, so no request sees a key missing in between.
    pub fn replace_keys(&self, tenant: Option<&Name>, keys: Vec<(KeyHash, KeyInfo)>) {
        let mut map = write(&self.keys);
        map.retain(|_, k| tenant.is_some_and(|t| k.tenant != *t));
        map.extend(keys.into_iter().map(|(hash, key)| (hash, Arc::new(key))));
    }

    /// Forgets a key of `tenant` by id, so it stops working at once.
    pub fn remove_key(&self, tenant: &Name, id: &str) {
        write(&self.keys).retain(|_, k| !(k.tenant == *tenant && k.id == id));
    }

    /// Whether a tenant exists.
    pub fn has_tenant(&self, tenant: &Name) -> bool {
        read(&self.tenants).contains_key(tenant)
    }

    /// A tenant's settings and saved groups.
    pub fn tenant(&self, tenant: &Name) -> Arc<Tenant> {
        read(&self.tenants).get(tenant).cloned().unwrap_or_default()
    }

    /// Adds a tenant or replaces its settings.
    pub fn set_tenant(&self, tenant: Name, settings: TenantSettings) {
        write(&self.tenants).insert(tenant, Arc::new(Tenant::new(settings)));
    }

    /// The live version of a tenant's policy.
    pub fn live(&self, tenant: &Name, policy: &Name) -> Option<Arc<LoadedPolicy>> {
        // Cloning two Arc'd names to build the key is cheaper than a second map level.
        read(&self.live)
            .get(&(tenant.clone(), policy.clone()))
            .cloned()
    }

    /// Makes `policy` the live version of its name, and caches it.
    pub fn set_live(&self, tenant: &Name, policy: Arc<LoadedPolicy>) {
        self.cache(tenant, policy.clone());
        write(&self.live).insert((tenant.clone(), policy.name.clone()), policy);
    }

    /// The running experiments of a decision point.
    pub fn experiments(&self, tenant: &Name, point: &Name) -> Option<PointExperiments> {
        read(&self.experiments)
            .get(&(tenant.clone(), point.clone()))
            .cloned()
    }

    /// The running experiments of `tenant` (of every tenant if `None`), as
    /// (tenant, point, experiment id).
    pub fn running_experiments(&self, tenant: Option<&Name>) -> Vec<(Name, Name, Name)> {
        read(&self.experiments)
            .iter()
            .filter(|((t, _), _)| tenant.is_none_or(|only| t == only))
            .flat_map(|((t, point), running)| {
                running
                    .iter()
                    .map(|r| (t.clone(), point.clone(), r.experiment.id.clone()))
            })
            .collect()
    }

    /// Starts serving an experiment.
    pub fn start_experiment(&self, tenant: &Name, running: Arc<RunningExperiment>) {
        let mut map = write(&self.experiments);
        let slot = map
            .entry((tenant.clone(), running.experiment.point.clone()))
            .or_default();
        let mut next = slot.as_ref().clone();
        next.push(running);
        *slot = Arc::new(next);
    }

    /// Stops serving an experiment.
    pub fn stop_experiment(&self, tenant: &Name, point: &Name, id: &Name) {
        let mut map = write(&self.experiments);
        let key = (tenant.clone(), point.clone());
        if let Some(slot) = map.get_mut(&key) {
            let next: Vec<_> = slot
                .iter()
                .filter(|r| r.experiment.id != *id)
                .cloned()
                .collect();
            if next.is_empty() {
                map.remove(&key);
            } else {
                *slot = Arc::new(next);
            }
        }
    }

    /// A compiled version, if cached.
    pub fn cached(&self, tenant: &Name, policy: &Name, version: u32) -> Option<Arc<LoadedPolicy>> {
        lock(&self.versions)
            .get(&(tenant.clone(), policy.clone(), version))
            .cloned()
    }

    /// Caches a compiled version.
    pub fn cache(&self, tenant: &Name, policy: Arc<LoadedPolicy>) {
        let key = (tenant.clone(), policy.name.clone(), policy.version);
        lock(&self.versions).put(key, policy);
    }
}

// A poisoned lock only means another thread panicked mid-update of a map whose
// every update is a single insert, so the data is still consistent.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}
