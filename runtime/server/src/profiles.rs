//! Customer profiles with an LRU in front of the store.
//!
//! A hot customer's profile (or the fact that it has none) is answered from
//! memory, so the decide path does no disk read for it. Every write goes to
//! the store first, which bumps the profile's revision; the cache then takes
//! the profile the store returned unless it already holds a newer revision,
//! so a slow read or an out-of-order write never replaces newer history.
//!
//! In a cluster another replica may write a profile this one has cached: its
//! notice evicts the entry ([`Profiles::evict`]), and a decision that records
//! impressions re-checks the revision it saw when it writes
//! ([`Profiles::record_impressions`]), so a stale entry can never pass a
//! contact cap.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use serde_json::{Map, Value};

use moment_core::model::Name;
use moment_core::model::outcome::OutcomeEvent;
use moment_core::model::profile::Profile;
use moment_store::{RecordedOutcomes, Store, StoreError};

type Key = (Name, String);

/// Customer locks, striped: enough to serialise decides of one customer
/// without a lock per customer.
const STRIPES: usize = 256;

/// Profiles, cached.
pub struct Profiles {
    store: Arc<dyn Store>,
    cache: Mutex<LruCache<Key, Option<Arc<Profile>>>>,
    /// Revisions announced by other replicas' writes for customers not
    /// cached at the time, so a read already in flight cannot cache an
    /// older profile after the notice passed.
    announced: Mutex<LruCache<Key, u64>>,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

/// Announced revisions remembered, at most.
const ANNOUNCED: usize = 16_384;

impl Profiles {
    /// A cache of `capacity` customers over `store`.
    pub fn new(store: Arc<dyn Store>, capacity: NonZeroUsize) -> Self {
        Self {
            store,
            cache: Mutex::new(LruCache::new(capacity)),
            announced: Mutex::new(LruCache::new(
                NonZeroUsize::new(ANNOUNCED).unwrap_or(NonZeroUsize::MIN),
            )),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    /// Serialises work on one customer: hold the guard across reading the
    /// profile, deciding and recording impressions, so concurrent decides
    /// cannot both pass a contact cap.
    pub async fn lock_customer(
        &self,
        tenant: &Name,
        customer: &str,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(tenant.as_str(), customer), &mut hasher);
        let stripe = std::hash::Hasher::finish(&hasher) as usize % STRIPES;
        self.stripes[stripe].lock().await
    }

    /// A customer's profile; `None` when the customer has none.
    pub async fn get(
        &self,
        tenant: &Name,
        customer: &str,
    ) -> Result<Option<Arc<Profile>>, StoreError> {
        let key = (tenant.clone(), customer.to_owned());
        if let Some(hit) = self.lock().get(&key) {
            return Ok(hit.clone());
        }
        let loaded = self.store.profile(tenant, customer).await?.map(Arc::new);
        Ok(self.offer(key, loaded))
    }

    /// A customer's profile read from the store, bypassing the cache, which
    /// then holds it whatever it held before (the store may have lost data
    /// the cache still has, and the store is the truth).
    pub async fn reload(
        &self,
        tenant: &Name,
        customer: &str,
    ) -> Result<Option<Arc<Profile>>, StoreError> {
        let loaded = self.store.profile(tenant, customer).await?.map(Arc::new);
        self.lock()
            .put((tenant.clone(), customer.to_owned()), loaded.clone());
        Ok(loaded)
    }

    /// Records impressions of `actions` if the stored profile is still
    /// `seen`; see [`Store::record_impressions`].
    pub async fn record_impressions(
        &self,
        tenant: &Name,
        customer: &str,
        seen: Option<&Profile>,
        actions: &[String],
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let profile = self
            .store
            .record_impressions(tenant, customer, seen, actions, at_ms)
            .await?;
        self.offer(
            (tenant.clone(), customer.to_owned()),
            Some(Arc::new(profile)),
        );
        Ok(())
    }

    /// Drops a cached profile older than `revision` (another replica wrote
    /// it), and remembers the revision so a read in flight cannot cache an
    /// older one afterwards.
    pub fn evict(&self, tenant: &Name, customer: &str, revision: u64) {
        let key = (tenant.clone(), customer.to_owned());
        let mut cache = self.lock();
        match cache.peek(&key) {
            Some(held) if held.as_ref().map_or(0, |p| p.revision) < revision => {
                cache.pop(&key);
            }
            Some(_) => {}
            None => {
                lock(&self.announced).put(key, revision);
            }
        }
    }

    /// Drops every cached profile (change notices may have been missed).
    pub fn clear(&self) {
        self.lock().clear();
        lock(&self.announced).clear();
    }

    /// Merges attributes and stage into a profile.
    pub async fn patch(
        &self,
        tenant: &Name,
        customer: &str,
        attributes: Map<String, Value>,
        stage: Option<String>,
    ) -> Result<Arc<Profile>, StoreError> {
        let profile = Arc::new(
            self.store
                .patch_profile(tenant, customer, attributes, stage)
                .await?,
        );
        Ok(self
            .offer((tenant.clone(), customer.to_owned()), Some(profile))
            .unwrap_or_default())
    }

    /// Stores outcomes and refreshes the profiles they changed.
    pub async fn record(
        &self,
        tenant: &Name,
        events: &[OutcomeEvent],
    ) -> Result<RecordedOutcomes, StoreError> {
        let report = self.store.record_outcomes(tenant, events).await?;
        for (customer, profile) in &report.profiles {
            self.offer(
                (tenant.clone(), customer.clone()),
                Some(Arc::new(profile.clone())),
            );
        }
        Ok(report)
    }

    /// Caches `candidate` unless the cache already holds a newer revision
    /// (a concurrent write finished first); returns what the cache now holds.
    fn offer(&self, key: Key, candidate: Option<Arc<Profile>>) -> Option<Arc<Profile>> {
        let revision = |p: &Option<Arc<Profile>>| p.as_ref().map_or(0, |p| p.revision);
        let announced = lock(&self.announced).peek(&key).copied();
        if announced.is_some_and(|newer| revision(&candidate) < newer) {
            // Older than a write another replica announced: answer it, but
            // do not keep it.
            return candidate;
        }
        let mut cache = self.lock();
        match cache.get(&key) {
            Some(held) if revision(held) >= revision(&candidate) => held.clone(),
            _ => {
                cache.put(key, candidate.clone());
                candidate
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Option<Arc<Profile>>>> {
        lock(&self.cache)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
