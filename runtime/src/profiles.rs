//! Customer profiles with an LRU in front of the store.
//!
//! A hot customer's profile (or the fact that it has none) is answered from
//! memory, so the decide path does no disk read for it. Every write goes to
//! the store first; the cache then takes the profile the store returned.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use serde_json::{Map, Value};

use crate::model::Name;
use crate::model::outcome::OutcomeEvent;
use crate::model::profile::Profile;
use crate::store::{RecordedOutcomes, Store, StoreError};

type Key = (Name, String);

/// Profiles, cached.
pub struct Profiles {
    store: Arc<dyn Store>,
    cache: Mutex<LruCache<Key, Option<Arc<Profile>>>>,
}

impl Profiles {
    /// A cache of `capacity` customers over `store`.
    pub fn new(store: Arc<dyn Store>, capacity: NonZeroUsize) -> Self {
        Self {
            store,
            cache: Mutex::new(LruCache::new(capacity)),
        }
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
        self.lock().put(key, loaded.clone());
        Ok(loaded)
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
        self.lock()
            .put((tenant.clone(), customer.to_owned()), Some(profile.clone()));
        Ok(profile)
    }

    /// Stores outcomes and refreshes the profiles they changed.
    pub async fn record(
        &self,
        tenant: &Name,
        events: &[OutcomeEvent],
    ) -> Result<RecordedOutcomes, StoreError> {
        let report = self.store.record_outcomes(tenant, events).await?;
        let mut cache = self.lock();
        for (customer, profile) in &report.profiles {
            cache.put(
                (tenant.clone(), customer.clone()),
                Some(Arc::new(profile.clone())),
            );
        }
        Ok(report)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Option<Arc<Profile>>>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
