//! The cluster store: what many `moment serve` replicas share.
//!
//! PostgreSQL ([`postgres`]) holds tenants, keys, policy versions, live
//! pointers, experiments and the decision and outcome logs; Redis ([`redis`])
//! holds customer profiles with their contact history. Both announce changes
//! ([`Change`]), which each replica applies to its in-memory registry and
//! profile cache.

mod postgres;
mod redis;

use std::collections::HashSet;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use self::postgres::Postgres;
use self::redis::Redis;
use moment_core::model::Name;
use moment_core::model::outcome::OutcomeEvent;
use moment_core::model::profile::Profile;
use moment_store::{
    Activity, Admit, Change, CustomerDecision, DecisionRecord, DecisionRef, KeyListing, KeyRecord,
    NewVersion, PolicyHistory, PolicySummary, RecordedOutcomes, Snapshot, Store, StoreError,
    StoredExperiment, StoredVersion, VariantCounts, VariantDay,
};

/// Notices buffered per subscriber; one that falls further behind reloads everything.
const CHANGES_BUFFER: usize = 4096;

/// [`Store`] on PostgreSQL and Redis.
pub struct ClusterStore {
    postgres: Postgres,
    redis: Redis,
    changes: broadcast::Sender<Change>,
}

impl ClusterStore {
    /// Connects to PostgreSQL (which must be up: the schema is applied now)
    /// and to Redis (which may come up later), keys under `redis_prefix`,
    /// and starts listening for other replicas' changes.
    pub async fn connect(
        postgres_url: &str,
        redis_url: &str,
        redis_prefix: &str,
    ) -> Result<Self, StoreError> {
        let postgres = Postgres::connect(postgres_url).await?;
        let redis = Redis::new(redis_url, redis_prefix)?;
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        postgres.listen(changes.clone());
        redis.listen(changes.clone());
        Ok(Self {
            postgres,
            redis,
            changes,
        })
    }
}

#[async_trait]
impl Store for ClusterStore {
    async fn snapshot(&self, tenant: Option<&Name>) -> Result<Snapshot, StoreError> {
        self.postgres.snapshot(tenant).await
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    async fn create_tenant(
        &self,
        tenant: &Name,
        settings_json: &str,
        keys: &[KeyRecord],
    ) -> Result<(), StoreError> {
        self.postgres
            .create_tenant(tenant, settings_json, keys)
            .await
    }

    async fn add_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        self.postgres.add_keys(keys).await
    }

    async fn keys(&self, tenant: &Name) -> Result<Vec<KeyListing>, StoreError> {
        self.postgres.keys(tenant).await
    }

    async fn revoke_key(&self, tenant: &Name, id: &str) -> Result<bool, StoreError> {
        self.postgres.revoke_key(tenant, id).await
    }

    async fn missing(&self) -> Vec<String> {
        let (postgres, redis) = tokio::join!(self.postgres.missing(), self.redis.missing());
        postgres.into_iter().chain(redis).collect()
    }

    async fn patch_tenant_settings(
        &self,
        tenant: &Name,
        patch_json: &str,
    ) -> Result<String, StoreError> {
        self.postgres
            .patch_tenant_settings(tenant, patch_json)
            .await
    }

    async fn create_version(&self, version: NewVersion) -> Result<u32, StoreError> {
        self.postgres.create_version(version).await
    }

    async fn version(
        &self,
        tenant: &Name,
        name: &Name,
        version: u32,
    ) -> Result<Option<StoredVersion>, StoreError> {
        self.postgres.version(tenant, name, version).await
    }

    async fn activate(
        &self,
        tenant: &Name,
        name: &Name,
        version: u32,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.postgres.activate(tenant, name, version, actor).await
    }

    async fn policies(&self, tenant: &Name) -> Result<Vec<PolicySummary>, StoreError> {
        self.postgres.policies(tenant).await
    }

    async fn profile(&self, tenant: &Name, customer: &str) -> Result<Option<Profile>, StoreError> {
        self.redis.profile(tenant, customer).await
    }

    async fn patch_profile(
        &self,
        tenant: &Name,
        customer: &str,
        attributes: Map<String, Value>,
        stage: Option<String>,
    ) -> Result<Profile, StoreError> {
        self.redis
            .update(tenant, customer, |profile| {
                profile
                    .merge(attributes.clone(), stage.clone())
                    .map_err(|e| StoreError::Invalid(e.to_string()))
            })
            .await
    }

    /// One PostgreSQL transaction inserts the outcomes and stays open while
    /// the new ones are applied to their customers' profiles in Redis; it
    /// commits only once they all are. If Redis fails, it rolls back and
    /// nothing is stored, so the client's retry stores them. A client retry
    /// racing this call waits on the rows' unique keys until it ends, so an
    /// outcome is never applied twice by concurrent retries. The one way to
    /// count an outcome twice is a failure after some of the batch's Redis
    /// writes (at a later customer, or at the commit) followed by a retry:
    /// the count errs high, which keeps contact caps safe.
    async fn record_outcomes(
        &self,
        tenant: &Name,
        events: &[OutcomeEvent],
    ) -> Result<RecordedOutcomes, StoreError> {
        let mut tx = self.postgres.begin().await?;
        let new = Postgres::insert_outcomes(&mut tx, tenant, events).await?;
        // An event is new if its key was inserted, and only its first time in the batch.
        let mut unclaimed: HashSet<&str> = new.iter().map(String::as_str).collect();
        let fresh: Vec<&OutcomeEvent> = events
            .iter()
            .filter(|e| unclaimed.remove(e.dedup_key.as_str()))
            .collect();
        let mut customers: Vec<&str> = fresh.iter().map(|e| e.customer_id.as_str()).collect();
        customers.sort_unstable();
        customers.dedup();
        let mut report = RecordedOutcomes {
            accepted: fresh.len(),
            duplicates: events.len() - fresh.len(),
            profiles: Vec::with_capacity(customers.len()),
        };
        for customer in customers {
            let theirs = fresh.iter().filter(|e| e.customer_id == customer);
            let profile = self
                .redis
                .update(tenant, customer, |profile| {
                    for e in theirs.clone() {
                        profile.record(&e.action_id, e.kind, e.at_ms);
                    }
                    Ok(())
                })
                .await?;
            report.profiles.push((customer.to_owned(), profile));
        }
        Postgres::commit(tx).await?;
        Ok(report)
    }

    async fn record_impressions(
        &self,
        tenant: &Name,
        customer: &str,
        seen: Option<&Profile>,
        actions: &[String],
        at_ms: u64,
    ) -> Result<Profile, StoreError> {
        // The decision read `seen` already: write on it, and let the
        // compare-and-set say whether it is still the stored one.
        let mut profile = seen.cloned().unwrap_or_default();
        profile.record_impressions(actions, at_ms);
        match self
            .redis
            .compare_and_set(tenant, customer, &mut profile)
            .await?
        {
            true => Ok(profile),
            false => Err(StoreError::Stale),
        }
    }

    async fn log_decisions(&self, records: &[DecisionRecord]) -> Result<(), StoreError> {
        self.postgres.log_decisions(records).await
    }

    async fn decision(&self, tenant: &Name, id: &str) -> Result<Option<DecisionRef>, StoreError> {
        self.postgres.decision(tenant, id).await
    }

    async fn experiment_days(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
        day_ms: i64,
    ) -> Result<Vec<VariantDay>, StoreError> {
        self.postgres
            .experiment_days(tenant, id, goal, day_ms)
            .await
    }

    async fn activity(
        &self,
        tenant: &Name,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<Activity>, StoreError> {
        self.postgres.activity(tenant, since_ms, bucket_ms).await
    }

    async fn customer_decisions(
        &self,
        tenant: &Name,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<CustomerDecision>, StoreError> {
        self.postgres
            .customer_decisions(tenant, customer, limit)
            .await
    }

    async fn prune_logs(&self, before_ms: u64, limit: usize) -> Result<u64, StoreError> {
        self.postgres.prune_logs(before_ms, limit).await
    }

    async fn create_experiment(
        &self,
        tenant: &Name,
        id: &Name,
        point: &Name,
        spec_json: &str,
        admit: &Admit<'_>,
    ) -> Result<(), StoreError> {
        self.postgres
            .create_experiment(tenant, id, point, spec_json, admit)
            .await
    }

    async fn experiments(&self, tenant: &Name) -> Result<Vec<StoredExperiment>, StoreError> {
        self.postgres.experiments(tenant).await
    }

    async fn experiment(
        &self,
        tenant: &Name,
        id: &Name,
    ) -> Result<Option<StoredExperiment>, StoreError> {
        self.postgres.experiment(tenant, id).await
    }

    async fn stop_experiment(&self, tenant: &Name, id: &Name) -> Result<(), StoreError> {
        self.postgres.stop_experiment(tenant, id).await
    }

    async fn experiment_counts(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
    ) -> Result<Vec<(String, VariantCounts)>, StoreError> {
        self.postgres.experiment_counts(tenant, id, goal).await
    }

    async fn history(
        &self,
        tenant: &Name,
        name: &Name,
    ) -> Result<Option<PolicyHistory>, StoreError> {
        self.postgres.history(tenant, name).await
    }
}
