//! Keeps a cluster replica in step with the others.
//!
//! A replica that writes the shared store updates its own memory and
//! announces the change ([`Change`]: PostgreSQL `LISTEN/NOTIFY` for tenants,
//! keys, policies and experiments; Redis pub/sub for profiles). Every replica,
//! the writer included, applies the notices within milliseconds. A full
//! reconcile of what PostgreSQL holds every [`RECONCILE_EVERY`] heals a lost
//! tenant notice; a lost subscription sends [`Change::Everything`], which
//! also empties the profile cache. The two followers fall behind alone: a
//! slow tenant sync that misses notices resyncs tenants and leaves the
//! profile cache to its own follower.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::profiles::Profiles;
use crate::service::Service;
use moment_core::model::Name;
use moment_store::{Change, Store};

/// How often a replica reloads everything, whatever the notices said.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// Two subscriptions to a shared store's change notices: one for tenant
/// syncs, one for profile evictions. Take them before loading the store, so
/// no change made meanwhile is missed.
pub fn subscribe(store: &dyn Store) -> Option<(Receiver<Change>, Receiver<Change>)> {
    store.changes().zip(store.changes())
}

/// Starts following change notices, if the store is shared. Tenant syncs and
/// profile evictions run in tasks of their own, so a slow sync never delays
/// an eviction.
pub fn start(
    changes: Option<(Receiver<Change>, Receiver<Change>)>,
    service: Arc<Service>,
    profiles: Arc<Profiles>,
) {
    let Some((tenants, customers)) = changes else {
        return;
    };
    tokio::spawn(follow_tenants(tenants, service));
    tokio::spawn(follow_profiles(customers, profiles));
}

async fn follow_tenants(mut changes: Receiver<Change>, service: Arc<Service>) {
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            _ = reconcile.tick() => {
                sync(&service, None).await;
                continue;
            }
        };
        match change {
            Ok(Change::Tenant(tenant)) => sync(&service, Some(&tenant)).await,
            Ok(Change::Profile { .. }) => {}
            Ok(Change::Everything) => sync(&service, None).await,
            Err(RecvError::Lagged(missed)) => {
                // Most notices are profiles', which the profile follower
                // sees on its own subscription.
                tracing::warn!(
                    missed,
                    "fell behind on change notices; reloading every tenant"
                );
                sync(&service, None).await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn follow_profiles(mut changes: Receiver<Change>, profiles: Arc<Profiles>) {
    loop {
        match changes.recv().await {
            Ok(Change::Profile {
                tenant,
                customer,
                revision,
            }) => profiles.evict(&tenant, &customer, revision),
            Ok(Change::Everything) | Err(RecvError::Lagged(_)) => profiles.clear(),
            Ok(Change::Tenant(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

async fn sync(service: &Service, tenant: Option<&Name>) {
    if let Err(error) = service.sync(tenant).await {
        tracing::warn!(%error, tenant = tenant.map(Name::as_str), "cannot sync with the shared store; retrying later");
    }
}
