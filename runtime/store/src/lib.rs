//! Durable storage behind one interface.
//!
//! [`Store`] is what the server needs from a database. The embedded
//! implementation ([`sqlite::SqliteStore`]) is the default; the cluster
//! implementation (`moment-cluster`) keeps the same data on PostgreSQL and
//! Redis, shared by every replica.
//!
//! Keys, settings, policies and experiments are loaded into the server's
//! registry at start and kept current by the
//! write handlers (and, in a cluster, by [`Change`] notices from the other
//! replicas), so the decide path never reads them from here. It reads a
//! profile from here only for a customer not in the profile cache, and writes
//! here only for `record_impressions`.

pub mod sqlite;

use async_trait::async_trait;
use tokio::sync::broadcast;

use serde_json::{Map, Value};

use moment_core::model::outcome::OutcomeEvent;
use moment_core::model::policy::EngineKind;
use moment_core::model::profile::Profile;
use moment_core::model::{KeyHash, Name, Role};

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing being created exists already.
    #[error("already exists")]
    Conflict,
    /// The write was refused as invalid; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// The database failed or returned something unreadable.
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// A backend cannot be reached now; nothing was written. Retrying later
    /// may work. `backend` names it to callers; `cause` is for the log only.
    #[error("cannot reach {backend}: {cause}")]
    Unavailable {
        /// What cannot be reached, as callers may be told it ("PostgreSQL").
        backend: &'static str,
        /// The backend's own error, which may hold internal details.
        cause: String,
    },
    /// A conditional write found the profile changed since it was read; nothing was written.
    #[error("the profile changed while the decision was made")]
    Stale,
}

impl StoreError {
    /// [`StoreError::Unavailable`] for `backend`, failing with `cause`.
    pub fn unavailable(backend: &'static str, cause: impl std::fmt::Display) -> Self {
        StoreError::Unavailable {
            backend,
            cause: cause.to_string(),
        }
    }
}

/// Decides whether an experiment may start beside those running on its
/// point (their specs as JSON); `Err` says why not.
pub type Admit<'a> = dyn Fn(&[String]) -> Result<(), String> + Send + Sync + 'a;

/// Something another replica changed in a shared store.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A tenant's settings, keys, live versions or experiments changed.
    Tenant(Name),
    /// A customer's profile was written, reaching `revision`.
    Profile {
        /// Owning tenant.
        tenant: Name,
        /// The customer.
        customer: String,
        /// The profile's revision after the write.
        revision: u64,
    },
    /// Notices may have been missed (a connection dropped): reload everything.
    Everything,
}

/// A name read back from a store.
pub fn stored_name(s: String) -> Result<Name, StoreError> {
    Name::parse(&s).map_err(|e| StoreError::Backend(format!("stored name {s:?} is invalid: {e}")))
}

/// An engine name read back from a store.
pub fn stored_engine(s: &str) -> Result<EngineKind, StoreError> {
    EngineKind::parse(s)
        .ok_or_else(|| StoreError::Backend(format!("stored engine {s:?} is unknown")))
}

/// A key's role read back from a store.
pub fn stored_role(key_id: &str, role: &str) -> Result<Role, StoreError> {
    Role::parse(role)
        .ok_or_else(|| StoreError::Backend(format!("key {key_id} has unknown role {role:?}")))
}

/// A key read back from a store, from its id, tenant, role and hex hash.
pub fn stored_key(
    id: String,
    tenant: String,
    role: &str,
    hash: &str,
) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        tenant: stored_name(tenant)?,
        role: stored_role(&id, role)?,
        hash: KeyHash::from_hex(hash)
            .ok_or_else(|| StoreError::Backend(format!("key {id} has a malformed hash")))?,
        id,
    })
}

/// A version number read back from a store.
pub fn stored_version(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Backend(format!("stored version {v} is out of range")))
}

/// A row of a policy's version list read back from a store.
pub fn stored_version_info(
    version: i64,
    engine: &str,
    created_at_ms: i64,
    created_by: String,
) -> Result<VersionInfo, StoreError> {
    Ok(VersionInfo {
        version: stored_version(version)?,
        engine: stored_engine(engine)?,
        created_at_ms,
        created_by,
    })
}

/// A row of a policy's audit trail read back from a store.
pub fn stored_event(
    event: String,
    version: i64,
    at_ms: i64,
    by: String,
) -> Result<PolicyEvent, StoreError> {
    Ok(PolicyEvent {
        event,
        version: stored_version(version)?,
        at_ms,
        by,
    })
}

/// An experiment row read back from a store.
pub fn stored_experiment(
    tenant: String,
    spec_json: String,
    running: bool,
    created_at_ms: i64,
    stopped_at_ms: Option<i64>,
) -> Result<StoredExperiment, StoreError> {
    Ok(StoredExperiment {
        tenant: stored_name(tenant)?,
        spec_json,
        running,
        created_at_ms,
        stopped_at_ms,
    })
}

/// One variant's newly exposed and newly converted customers on one day.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantDay {
    /// Variant id.
    pub variant: String,
    /// Start of the day, ms since the Unix epoch (UTC).
    pub day_ms: i64,
    /// Customers first exposed that day.
    pub exposed: u64,
    /// Exposed customers whose first goal outcome came that day.
    pub converted: u64,
}

/// [`Store::experiment_days`] from the two queries each store runs: per
/// variant and day, first exposures and first conversions.
pub fn variant_days(
    exposed: Vec<(String, i64, i64)>,
    converted: Vec<(String, i64, i64)>,
) -> Vec<VariantDay> {
    let mut days: Vec<VariantDay> = exposed
        .into_iter()
        .map(|(variant, day_ms, n)| VariantDay {
            variant,
            day_ms,
            exposed: n as u64,
            converted: 0,
        })
        .collect();
    for (variant, day_ms, n) in converted {
        match days
            .iter_mut()
            .find(|d| d.variant == variant && d.day_ms == day_ms)
        {
            Some(day) => day.converted = n as u64,
            None => days.push(VariantDay {
                variant,
                day_ms,
                exposed: 0,
                converted: n as u64,
            }),
        }
    }
    days.sort_by(|a, b| (&a.variant, a.day_ms).cmp(&(&b.variant, b.day_ms)));
    days
}

/// [`Store::experiment_counts`] from the two queries each store runs:
/// unique customers per variant, and per variant the unique customers with
/// a goal outcome and the sum of its values.
pub fn variant_counts(
    exposures: Vec<(String, i64)>,
    conversions: &[(String, i64, f64)],
) -> Vec<(String, VariantCounts)> {
    exposures
        .into_iter()
        .map(|(variant, exposed)| {
            let (converted, value) = conversions
                .iter()
                .find(|(v, _, _)| *v == variant)
                .map_or((0, 0.0), |&(_, c, value)| (c, value));
            let counts = VariantCounts {
                exposures: exposed.unsigned_abs(),
                conversions: converted.unsigned_abs(),
                value,
            };
            (variant, counts)
        })
        .collect()
}

/// A logged decision read back from a store, its actions as stored JSON.
pub fn stored_decision(
    tenant: &Name,
    id: &str,
    customer_id: String,
    actions: &str,
) -> Result<DecisionRef, StoreError> {
    let actions = serde_json::from_str(actions)
        .map_err(|e| StoreError::Backend(format!("decision {id} has unreadable actions: {e}")))?;
    Ok(DecisionRef {
        tenant: tenant.clone(),
        customer_id,
        actions,
    })
}

/// A stored API key (never the secret itself).
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// Public identifier of the key.
    pub id: String,
    /// The tenant the key belongs to.
    pub tenant: Name,
    /// What the key may do.
    pub role: Role,
    /// SHA-256 of the secret.
    pub hash: KeyHash,
}

/// A key as listed to its tenant's admins.
#[derive(Clone, Debug)]
pub struct KeyListing {
    /// Public key id.
    pub id: String,
    /// What the key may do.
    pub role: Role,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Revocation time, if revoked.
    pub revoked_at_ms: Option<i64>,
}

/// A policy version to store.
#[derive(Clone, Debug)]
pub struct NewVersion {
    /// Owning tenant.
    pub tenant: Name,
    /// Policy (decision point) name.
    pub name: Name,
    /// Engine that runs `code`.
    pub engine: EngineKind,
    /// Rhai source bytes or the WASM module.
    pub code: Vec<u8>,
    /// The bundle's stored JSON form.
    pub bundle_json: String,
    /// Whether to make this version live in the same transaction.
    pub activate: bool,
    /// Id of the key that uploaded it.
    pub actor: String,
}

/// A stored policy version.
#[derive(Clone, Debug)]
pub struct StoredVersion {
    /// Owning tenant.
    pub tenant: Name,
    /// Policy name.
    pub name: Name,
    /// Version number, from 1.
    pub version: u32,
    /// Engine that runs `code`.
    pub engine: EngineKind,
    /// Rhai source bytes or the WASM module.
    pub code: Vec<u8>,
    /// The bundle's stored JSON form.
    pub bundle_json: String,
}

/// One version in a policy's history.
#[derive(Clone, Debug)]
pub struct VersionInfo {
    /// Version number.
    pub version: u32,
    /// Engine.
    pub engine: EngineKind,
    /// Upload time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Key id of the uploader.
    pub created_by: String,
}

/// One entry of a policy's audit trail.
#[derive(Clone, Debug)]
pub struct PolicyEvent {
    /// `uploaded` or `activated`.
    pub event: String,
    /// The version concerned.
    pub version: u32,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Key id of the actor.
    pub by: String,
}

/// Everything stored about one policy name.
#[derive(Clone, Debug)]
pub struct PolicyHistory {
    /// Live version, if any.
    pub live: Option<u32>,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Audit trail, oldest first.
    pub events: Vec<PolicyEvent>,
}

/// A row of the policy list.
#[derive(Clone, Debug)]
pub struct PolicySummary {
    /// Policy name.
    pub name: Name,
    /// Live version, if any.
    pub live: Option<u32>,
    /// Newest version.
    pub latest: u32,
}

/// A decision as logged, enough to join outcomes to it and to replay it.
#[derive(Clone, Debug)]
pub struct DecisionRecord {
    /// Decision id.
    pub id: String,
    /// Owning tenant.
    pub tenant: Name,
    /// Decision point.
    pub point: Name,
    /// Policy version that decided.
    pub version: u32,
    /// The customer.
    pub customer_id: String,
    /// Action ids returned, in order.
    pub actions: Vec<String>,
    /// Whether the fallback was served.
    pub fallback: bool,
    /// Whether an impression of every returned action was recorded; the log
    /// then also stores those impressions as outcomes.
    pub impressions: bool,
    /// Experiment id and variant id, when the customer was in one.
    pub experiment: Option<(String, String)>,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// The policy's input document (without candidates), the eligible
    /// candidate ids, and the ranking returned.
    pub document: moment_core::pipeline::DecisionDocument,
}

/// Decisions at one decision point within one time bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Activity {
    /// The decision point.
    pub point: String,
    /// Start of the bucket, ms since the Unix epoch.
    pub bucket_ms: i64,
    /// Decisions made.
    pub decisions: u64,
    /// Of those, answered with the fallback actions.
    pub fallbacks: u64,
}

/// A decision logged for a customer, with the outcomes reported for it.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerDecision {
    /// Decision id.
    pub id: String,
    /// The decision point.
    pub point: String,
    /// The version that decided.
    pub version: u32,
    /// Action ids returned, best first.
    pub actions: Vec<String>,
    /// Whether these were the fallback actions.
    pub fallback: bool,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Outcomes reported for it: action id and type, oldest first.
    pub outcomes: Vec<(String, String)>,
}

/// Reads a customer's decisions (`id, point, version, actions JSON,
/// fallback, at`) and their outcomes (`decision id, action id, type`) into
/// [`CustomerDecision`]s, newest first.
pub fn customer_decisions(
    decisions: Vec<(String, String, i64, String, bool, i64)>,
    outcomes: Vec<(String, String, String)>,
) -> Result<Vec<CustomerDecision>, StoreError> {
    decisions
        .into_iter()
        .map(|(id, point, version, actions, fallback, at_ms)| {
            let actions = serde_json::from_str(&actions).map_err(|e| {
                StoreError::Backend(format!("decision {id} has unreadable actions: {e}"))
            })?;
            let outcomes = outcomes
                .iter()
                .filter(|(decision, _, _)| *decision == id)
                .map(|(_, action, kind)| (action.clone(), kind.clone()))
                .collect();
            Ok(CustomerDecision {
                version: u32::try_from(version).unwrap_or_default(),
                id,
                point,
                actions,
                fallback,
                at_ms,
                outcomes,
            })
        })
        .collect()
}

/// What outcomes need to know about a logged decision.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRef {
    /// Owning tenant.
    pub tenant: Name,
    /// The customer.
    pub customer_id: String,
    /// Action ids returned.
    pub actions: Vec<String>,
}

/// Result of storing a batch of outcomes.
#[derive(Clone, Debug, Default)]
pub struct RecordedOutcomes {
    /// Outcomes stored for the first time.
    pub accepted: usize,
    /// Outcomes already stored (client retries), ignored.
    pub duplicates: usize,
    /// The updated profile of every customer concerned.
    pub profiles: Vec<(String, Profile)>,
}

/// A stored experiment.
#[derive(Clone, Debug)]
pub struct StoredExperiment {
    /// Owning tenant.
    pub tenant: Name,
    /// The definition as JSON (`ExperimentSpec`).
    pub spec_json: String,
    /// Whether it still runs.
    pub running: bool,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Stop time, if stopped.
    pub stopped_at_ms: Option<i64>,
}

/// Exposure and conversion counts of one variant, from the logs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantCounts {
    /// Unique customers who got a decision in the variant.
    pub exposures: u64,
    /// Unique exposed customers with a goal outcome on a decision of the experiment.
    pub conversions: u64,
    /// Sum of the goal outcomes' values.
    pub value: f64,
}

/// Which version of a policy is live.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePointer {
    /// Owning tenant.
    pub tenant: Name,
    /// Policy name.
    pub name: Name,
    /// The live version.
    pub version: u32,
}

/// What the server keeps in memory, for every tenant or one.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Tenants with their settings JSON.
    pub tenants: Vec<(Name, String)>,
    /// Keys that are not revoked.
    pub keys: Vec<KeyRecord>,
    /// The live version of every policy.
    pub live: Vec<LivePointer>,
    /// Running experiments.
    pub experiments: Vec<StoredExperiment>,
}

/// Durable storage for tenants, keys and policies.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads what the server keeps in memory: of `tenant` only, or of all.
    async fn snapshot(&self, tenant: Option<&Name>) -> Result<Snapshot, StoreError>;
    /// Notices of what other replicas change, for a store shared by several;
    /// `None` for a store only this process writes.
    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        None
    }
    /// Creates a tenant with its first keys; [`StoreError::Conflict`] if the id is taken.
    async fn create_tenant(
        &self,
        tenant: &Name,
        settings_json: &str,
        keys: &[KeyRecord],
    ) -> Result<(), StoreError>;
    /// Adds keys to an existing tenant.
    async fn add_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError>;
    /// A tenant's keys (revoked ones included), oldest first.
    async fn keys(&self, tenant: &Name) -> Result<Vec<KeyListing>, StoreError>;
    /// Revokes a key of `tenant`; `false` if there is no such unrevoked key.
    async fn revoke_key(&self, tenant: &Name, id: &str) -> Result<bool, StoreError>;
    /// What the store cannot reach now, one line per missing backend;
    /// empty when everything answers.
    async fn missing(&self) -> Vec<String>;
    /// Replaces the top-level fields of a tenant's settings that
    /// `patch_json` (an object) holds, keeping the others, in one atomic
    /// step (two replicas patching different fields at once both stick);
    /// returns the settings as stored.
    async fn patch_tenant_settings(
        &self,
        tenant: &Name,
        patch_json: &str,
    ) -> Result<String, StoreError>;
    /// Stores a new version (numbered one past the newest) and returns its number.
    async fn create_version(&self, version: NewVersion) -> Result<u32, StoreError>;
    /// Reads one version.
    async fn version(
        &self,
        tenant: &Name,
        name: &Name,
        version: u32,
    ) -> Result<Option<StoredVersion>, StoreError>;
    /// Makes an existing version live.
    async fn activate(
        &self,
        tenant: &Name,
        name: &Name,
        version: u32,
        actor: &str,
    ) -> Result<(), StoreError>;
    /// Lists a tenant's policies.
    async fn policies(&self, tenant: &Name) -> Result<Vec<PolicySummary>, StoreError>;
    /// A customer's profile, if one exists.
    async fn profile(&self, tenant: &Name, customer: &str) -> Result<Option<Profile>, StoreError>;
    /// Merges attributes (`null` removes) and an optional stage into a profile,
    /// creating it if needed; returns the result.
    async fn patch_profile(
        &self,
        tenant: &Name,
        customer: &str,
        attributes: Map<String, Value>,
        stage: Option<String>,
    ) -> Result<Profile, StoreError>;
    /// Stores outcomes (ignoring ones already stored under the same dedup key)
    /// and applies the new ones to their customers' contact history, atomically.
    async fn record_outcomes(
        &self,
        tenant: &Name,
        events: &[OutcomeEvent],
    ) -> Result<RecordedOutcomes, StoreError>;
    /// Records an impression of each of `actions` at `at_ms` in a customer's
    /// contact history, if the stored profile is still `seen`, the one the
    /// decision read (`None`: the customer had none); [`StoreError::Stale`]
    /// if another write came first. Returns the profile. The impressions
    /// reach the outcome log with the decision's record.
    async fn record_impressions(
        &self,
        tenant: &Name,
        customer: &str,
        seen: Option<&Profile>,
        actions: &[String],
        at_ms: u64,
    ) -> Result<Profile, StoreError>;
    /// Appends decisions to the decision log, with the impressions of those
    /// that recorded them (skipping ones already stored).
    async fn log_decisions(&self, records: &[DecisionRecord]) -> Result<(), StoreError>;
    /// Deletes up to `limit` logged decisions and up to `limit` outcomes
    /// (impressions included) from before `before_ms`, of every tenant;
    /// returns how many. Contact history lives in profiles and stays.
    async fn prune_logs(&self, before_ms: u64, limit: usize) -> Result<u64, StoreError>;
    /// Finds a logged decision of `tenant`.
    async fn decision(&self, tenant: &Name, id: &str) -> Result<Option<DecisionRef>, StoreError>;
    /// `tenant`'s decisions since `since_ms`, counted per decision point and
    /// per bucket of `bucket_ms`, by point then time.
    async fn activity(
        &self,
        tenant: &Name,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<Activity>, StoreError>;
    /// The latest `limit` decisions logged for one customer of `tenant`,
    /// newest first, with their outcomes.
    async fn customer_decisions(
        &self,
        tenant: &Name,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<CustomerDecision>, StoreError>;
    /// Stores a new running experiment on `point`; [`StoreError::Conflict`]
    /// if the id is taken. First `admit` is shown the specs (JSON) of the
    /// tenant's experiments running on `point`, read while no other
    /// experiment can start there (in a cluster, under a lock held until this
    /// one is stored); its refusal is returned as [`StoreError::Invalid`].
    async fn create_experiment(
        &self,
        tenant: &Name,
        id: &Name,
        point: &Name,
        spec_json: &str,
        admit: &Admit<'_>,
    ) -> Result<(), StoreError>;
    /// A tenant's experiments, oldest first.
    async fn experiments(&self, tenant: &Name) -> Result<Vec<StoredExperiment>, StoreError>;
    /// One experiment.
    async fn experiment(
        &self,
        tenant: &Name,
        id: &Name,
    ) -> Result<Option<StoredExperiment>, StoreError>;
    /// Marks an experiment stopped.
    async fn stop_experiment(&self, tenant: &Name, id: &Name) -> Result<(), StoreError>;
    /// Exposures and conversions per variant id, counted from the decision and outcome logs.
    async fn experiment_counts(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
    ) -> Result<Vec<(String, VariantCounts)>, StoreError>;
    /// Per variant and day (`day_ms` long), the customers first exposed and
    /// first converted (with a `goal` outcome), for cumulative charts.
    async fn experiment_days(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
        day_ms: i64,
    ) -> Result<Vec<VariantDay>, StoreError>;
    /// A policy's versions and audit trail; `None` if it has no versions.
    async fn history(
        &self,
        tenant: &Name,
        name: &Name,
    ) -> Result<Option<PolicyHistory>, StoreError>;
}
