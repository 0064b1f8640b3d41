//! The decision log: every decision is remembered in memory at once and
//! written to the store behind the request, in batches.
//!
//! **The decide path never waits on the log.** [`DecisionLog::log`] puts the
//! record in a queue bounded by bytes (`--decision-log-queue-bytes`; a full
//! queue drops the write and counts it) and in an in-memory LRU of recent
//! decisions, so an outcome reported right after its decision finds it
//! before the batch reaches the store. A record's bytes are counted from
//! when it is queued until the store has it.
//!
//! While the store cannot be reached, the writer keeps what it holds (within
//! the same byte budget) and tries again every [`RETRY_AFTER`]. In a cluster an
//! outcome may name a decision another replica made and is still logging, so
//! a lookup there waits up to [`PEER_LOG_WAIT`] for it to arrive.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lru::LruCache;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::telemetry;
use moment_core::model::Name;
use moment_core::model::document::json_bytes;
use moment_store::{DecisionRecord, DecisionRef, Store, StoreError};

/// Records waiting for the writer, at most (the byte budget usually binds first).
const QUEUE: usize = 16_384;
/// Records written per store call, at most.
const BATCH: usize = 512;
/// Wait before writing again records the store could not take.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How long a lookup waits for a decision another replica may still be
/// logging, in a cluster.
const PEER_LOG_WAIT: Duration = Duration::from_secs(1);

/// What the writer receives.
enum Entry {
    /// A record and its approximate size in bytes.
    Record(Box<DecisionRecord>, usize),
    /// Answered once everything queued before it was written (`true`), or
    /// held back for a retry because the store is unreachable (`false`).
    Flush(oneshot::Sender<bool>),
}

/// Why [`DecisionLog::flush`] could not confirm every decision is stored.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Unflushed {
    /// Some decisions wait for the store to be reachable again.
    #[error("decisions are held back until the store can be reached")]
    HeldBack,
    /// The writer task has stopped (it panicked): nothing more is written.
    #[error("the decision log's writer has stopped")]
    WriterGone,
}

/// Handle to the decision log.
pub struct DecisionLog {
    tx: mpsc::Sender<Entry>,
    /// Bytes of the records queued or held back, not yet stored.
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    recent: Mutex<LruCache<String, Arc<DecisionRef>>>,
    store: Arc<dyn Store>,
    shared: bool,
}

impl DecisionLog {
    /// Starts the writer task. It ends, after writing everything queued, once
    /// every handle is dropped; await the returned task to know the log is flushed.
    /// At most `max_bytes` of records wait for the store at any time.
    pub fn start(
        store: Arc<dyn Store>,
        recent: NonZeroUsize,
        max_bytes: usize,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(write_batches(store.clone(), rx, queued_bytes.clone()));
        let log = Arc::new(Self {
            tx,
            queued_bytes,
            max_bytes,
            recent: Mutex::new(LruCache::new(recent)),
            shared: store.changes().is_some(),
            store,
        });
        (log, writer)
    }

    /// Logs a decision without waiting.
    pub fn log(&self, record: DecisionRecord) {
        let reference = DecisionRef {
            tenant: record.tenant.clone(),
            customer_id: record.customer_id.clone(),
            actions: record.actions.clone(),
        };
        self.lock().put(record.id.clone(), Arc::new(reference));
        let size = approximate_bytes(&record);
        let before = self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if before + size > self.max_bytes
            || self
                .tx
                .try_send(Entry::Record(Box::new(record), size))
                .is_err()
        {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            telemetry::decision_log_dropped();
        }
    }

    /// Waits until every decision logged so far is in the store (or was lost
    /// and counted).
    pub async fn flush(&self) -> Result<(), Unflushed> {
        let (done, written) = oneshot::channel();
        self.tx
            .send(Entry::Flush(done))
            .await
            .map_err(|_| Unflushed::WriterGone)?;
        match written.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Unflushed::HeldBack),
            Err(_) => Err(Unflushed::WriterGone),
        }
    }

    /// Finds a decision of `tenant`: recent ones from memory, older ones from the store.
    pub async fn find(
        &self,
        tenant: &Name,
        id: &str,
    ) -> Result<Option<Arc<DecisionRef>>, StoreError> {
        if let Some(hit) = self.lock().get(id) {
            return Ok((hit.tenant == *tenant).then(|| hit.clone()));
        }
        let give_up = tokio::time::Instant::now() + PEER_LOG_WAIT;
        loop {
            let found = self.store.decision(tenant, id).await?;
            if found.is_some() || !self.shared || tokio::time::Instant::now() >= give_up {
                return Ok(found.map(Arc::new));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<DecisionRef>>> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a record holds in memory, roughly: its own fields, the request's
/// attributes and context, the candidates and the ranking (the profile and
/// the policy version are shared, not copied).
fn approximate_bytes(record: &DecisionRecord) -> usize {
    let doc = &record.document;
    let context: usize = doc
        .context
        .iter()
        .map(|(k, v)| k.len() + 4 + json_bytes(v))
        .sum();
    256 + record.id.len()
        + record.customer_id.len()
        + record.actions.iter().map(|a| a.len() + 24).sum::<usize>()
        + json_bytes(&doc.attributes)
        + context
        + 16 * (doc.candidates.len() + doc.ranking.len())
}

async fn write_batches(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Entry>,
    queued_bytes: Arc<AtomicUsize>,
) {
    let mut entries = Vec::with_capacity(BATCH);
    let mut records: Vec<DecisionRecord> = Vec::with_capacity(BATCH);
    // Bytes of `records`, released from the budget once they are stored or lost.
    let mut held = 0;
    let mut waiting = Vec::new();
    loop {
        // With records held back by a failed write, wake up to retry even
        // when nothing new arrives.
        let received = if records.is_empty() {
            rx.recv_many(&mut entries, BATCH).await
        } else {
            tokio::time::timeout(RETRY_AFTER, rx.recv_many(&mut entries, BATCH))
                .await
                .unwrap_or(usize::MAX)
        };
        let closed = received == 0;
        telemetry::decision_log_queued(rx.len());
        for entry in entries.drain(..) {
            match entry {
                Entry::Record(r, size) => {
                    records.push(*r);
                    held += size;
                }
                Entry::Flush(done) => waiting.push(done),
            }
        }
        if !records.is_empty() {
            match store.log_decisions(&records).await {
                Ok(()) => records.clear(),
                // Keep them for the next attempt: their bytes stay counted,
                // so the budget bounds what is held back too.
                Err(error @ StoreError::Unavailable { .. }) if !closed => {
                    tracing::warn!(%error, records = records.len(), "decision log write failed; retrying");
                }
                Err(error) => {
                    telemetry::decision_log_failed(records.len());
                    tracing::error!(%error, records = records.len(), "decision log write failed");
                    records.clear();
                }
            }
            if records.is_empty() {
                queued_bytes.fetch_sub(held, Ordering::AcqRel);
                held = 0;
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(records.is_empty());
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use moment_store::sqlite::SqliteStore;

    fn log() -> (tempfile::TempDir, Arc<DecisionLog>, JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let (log, writer) = DecisionLog::start(store, NonZeroUsize::MIN, 1 << 20);
        (dir, log, writer)
    }

    #[tokio::test]
    async fn flush_confirms_a_running_writer() {
        let (_dir, log, _writer) = log();
        assert_eq!(log.flush().await, Ok(()));
    }

    #[tokio::test]
    async fn flush_after_the_writer_stopped_is_an_error() {
        let (_dir, log, writer) = log();
        writer.abort();
        assert!(writer.await.unwrap_err().is_cancelled());
        assert_eq!(log.flush().await, Err(Unflushed::WriterGone));
    }
}
