//! Retention of the decision and outcome logs: records older than
//! `--log-retention-days` are deleted in the background, in batches, so the
//! logs stop growing with the traffic. In a cluster every replica prunes;
//! deleting what another replica deleted already is harmless.
//!
//! Experiment results are counted from the logs, so an experiment running
//! longer than the retention period counts only its recent decisions.

use std::sync::Arc;
use std::time::Duration;

use moment_core::clock::now_ms;
use moment_store::Store;
use tokio::task::JoinHandle;

use crate::telemetry;

/// Rows deleted from each log per store call.
const BATCH: usize = 5_000;

/// Prunes `store`'s logs of records older than `keep`, now and then every
/// `every`.
pub fn start(store: Arc<dyn Store>, keep: Duration, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let before = now_ms().saturating_sub(keep.as_millis() as u64);
            prune(&*store, before).await;
        }
    })
}

/// Deletes everything before `before_ms`, a batch at a time, yielding
/// between batches so decisions keep the store.
async fn prune(store: &dyn Store, before_ms: u64) {
    let mut total = 0;
    loop {
        match store.prune_logs(before_ms, BATCH).await {
            Ok(0) => break,
            Ok(pruned) => {
                total += pruned;
                telemetry::log_pruned(pruned);
                tokio::task::yield_now().await;
            }
            Err(error) => {
                tracing::warn!(%error, "pruning the decision and outcome logs failed; retrying later");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(
            records = total,
            "pruned decision and outcome logs past retention"
        );
    }
}
