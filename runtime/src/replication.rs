//! Keeps a cluster replica in step with the others.
//!
//! Each replica writes the shared store and updates its own memory; the
//! others learn of the write from a [`Change`] notice (PostgreSQL
//! `LISTEN/NOTIFY` for tenants, keys, policies and experiments; Redis pub/sub
//! for profiles) and apply it within milliseconds. A full reconcile every
//! [`RECONCILE_EVERY`] heals whatever a lost notice left behind.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::model::Name;
use crate::profiles::Profiles;
use crate::service::Service;
use crate::store::Change;

/// How often a replica reloads everything, whatever the notices said.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// Applies `changes` to this replica's registry and profile cache until the
/// store goes away.
pub async fn follow(
    mut changes: broadcast::Receiver<Change>,
    service: Arc<Service>,
    profiles: Arc<Profiles>,
) {
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
            Ok(Change::Profile {
                tenant,
                customer,
                revision,
            }) => profiles.evict(&tenant, &customer, revision),
            Ok(Change::Everything) => {
                profiles.clear();
                sync(&service, None).await;
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "fell behind on change notices; reloading everything"
                );
                profiles.clear();
                sync(&service, None).await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn sync(service: &Service, tenant: Option<&Name>) {
    if let Err(error) = service.sync(tenant).await {
        tracing::warn!(%error, tenant = tenant.map(Name::as_str), "cannot sync with the shared store; retrying later");
    }
}
