//! Fair share of the policy threads between tenants.
//!
//! Policies (and the screening around them) run on a small pool of OS
//! threads, never on the async workers: a policy that spins for its whole
//! deadline holds a pool thread, not the threads that accept connections and
//! answer other tenants. Each tenant has its own queue; free threads take
//! work from the tenants in turn (round robin), and at most
//! [`Shares::per_tenant`] of a tenant's calls run at once, so a tenant with
//! slow calls gets its share of the threads and no more. A tenant whose
//! queue is full, or whose call waited longer than its deadline, gets its
//! fallback at once ([`Overloaded`]): never a 5xx, never another tenant's
//! latency.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use moment_core::model::Name;
use tokio::sync::oneshot;

/// How the pool is shared.
#[derive(Clone, Copy, Debug)]
pub struct Shares {
    /// Pool threads.
    pub threads: usize,
    /// Most calls of one tenant running at once.
    pub per_tenant: usize,
    /// Most calls of one tenant waiting for a thread.
    pub queue: usize,
}

impl Shares {
    /// The default for this machine: a thread per core and one more; a
    /// tenant may use as many as there are cores (all the CPU when alone),
    /// so another tenant always finds a thread; 64 waiting calls per tenant.
    /// (Two threads per core cost a fifth of the peak WASM throughput in
    /// context switches on a 2-core machine; PERFORMANCE.md.)
    pub fn for_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            threads: cores + 1,
            per_tenant: cores,
            queue: 64,
        }
    }
}

/// The tenant's queue was full: its fallback is served without running.
#[derive(Debug, thiserror::Error)]
#[error("this tenant has too many decisions waiting for a policy thread")]
pub struct Overloaded;

type Job = Box<dyn FnOnce() + Send>;

/// The policy threads and the tenants' queues.
pub struct PolicyPool {
    shared: Arc<Shared>,
}

struct Shared {
    shares: Shares,
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    /// Each tenant's waiting calls.
    queues: HashMap<Name, VecDeque<Job>>,
    /// Tenants with waiting calls, in the order they are served.
    turns: VecDeque<Name>,
    /// Each tenant's running calls (tenants with none are absent).
    running: HashMap<Name, usize>,
}

impl PolicyPool {
    /// Starts the threads.
    pub fn start(shares: Shares) -> Self {
        let shared = Arc::new(Shared {
            shares,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
        });
        for i in 0..shares.threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("moment-policy-{i}"))
                .spawn(move || shared.work_forever())
                .expect("starting a policy thread");
        }
        Self { shared }
    }

    /// Runs `call` for `tenant` on a pool thread when its turn comes, and
    /// returns its result; [`Overloaded`] at once when the tenant's queue is
    /// full.
    pub async fn run<T: Send + 'static>(
        &self,
        tenant: &Name,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Overloaded> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(call());
        });
        {
            let mut state = self.shared.lock();
            let queue = state.queues.entry(tenant.clone()).or_default();
            if queue.len() >= self.shared.shares.queue {
                return Err(Overloaded);
            }
            queue.push_back(job);
            if queue.len() == 1 {
                state.turns.push_back(tenant.clone());
            }
        }
        self.shared.work.notify_one();
        // The sender is dropped unsent only if the call panicked.
        rx.await.map_err(|_| Overloaded)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn work_forever(&self) {
        let mut state = self.lock();
        loop {
            match state.next(self.shares.per_tenant) {
                Some((tenant, job)) => {
                    drop(state);
                    // A panicking call drops its answer channel; the caller
                    // sees it, and the thread lives on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    state = self.lock();
                    state.finished(&tenant);
                    // A tenant at its cap may now have a turn.
                    self.work.notify_one();
                }
                None => {
                    state = self
                        .work
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

impl State {
    /// The next call to run: from the first tenant in turn that is under
    /// `cap`, which goes to the back of the line if it has more waiting.
    fn next(&mut self, cap: usize) -> Option<(Name, Job)> {
        let position = self
            .turns
            .iter()
            .position(|t| self.running.get(t).copied().unwrap_or(0) < cap)?;
        let tenant = self.turns.remove(position)?;
        let queue = self.queues.get_mut(&tenant)?;
        let job = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&tenant);
        } else {
            self.turns.push_back(tenant.clone());
        }
        *self.running.entry(tenant.clone()).or_default() += 1;
        Some((tenant, job))
    }

    fn finished(&mut self, tenant: &Name) {
        if let Some(n) = self.running.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_tenant_runs_at_most_its_share_at_once() {
        let pool = PolicyPool::start(Shares {
            threads: 4,
            per_tenant: 2,
            queue: 64,
        });
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let busy = name("busy");
        let calls = (0..12).map(|_| {
            let (running, peak) = (running.clone(), peak.clone());
            pool.run(&busy, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for result in futures::future::join_all(calls).await {
            result.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn another_tenant_runs_while_one_is_at_its_cap() {
        let pool = Arc::new(PolicyPool::start(Shares {
            threads: 2,
            per_tenant: 1,
            queue: 64,
        }));
        let slow: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.run(&name("slow"), || {
                        std::thread::sleep(Duration::from_millis(200))
                    })
                    .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        pool.run(&name("quick"), || ()).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "waited {:?} behind another tenant",
            started.elapsed()
        );
        for call in slow {
            call.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let pool = Arc::new(PolicyPool::start(Shares {
            threads: 1,
            per_tenant: 1,
            queue: 2,
        }));
        let mut waiting = Vec::new();
        for _ in 0..3 {
            let pool = pool.clone();
            waiting.push(tokio::spawn(async move {
                pool.run(&name("t"), || {
                    std::thread::sleep(Duration::from_millis(100))
                })
                .await
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // One running, two waiting: the fourth is refused.
        assert!(pool.run(&name("t"), || ()).await.is_err());
        for call in waiting {
            call.await.unwrap().unwrap();
        }
    }
}
