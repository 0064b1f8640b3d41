//! A circuit breaker per loaded policy version.
//!
//! A failing policy still costs the CPU time it ran for: one that spins for
//! most of its deadline and then throws, or runs out of budget, costs a
//! worker thread that long on every call, and under load one tenant's
//! broken policy would crowd out every other tenant's decisions. The breaker
//! watches each version's last [`WINDOW`] calls: when [`TRIP_AT`] of them
//! failed, whatever the kind of failure, it opens, and for [`OPEN_FOR`] that
//! version serves its fallback without running (reason `circuit_open`). Then
//! one call is let through as a probe: if it ranks the breaker closes, if it
//! fails it opens again.
//!
//! Every failure counts, the cheap ones too: a version that fails three calls
//! in eight serves its fallback either way, and not running it is cheaper. A
//! new version starts with a closed breaker.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many recent calls the breaker looks at.
pub const WINDOW: u32 = 8;
/// Budget failures among the last [`WINDOW`] calls that open the breaker.
pub const TRIP_AT: u32 = 3;
/// How long an open breaker skips the policy before letting a probe through.
pub const OPEN_FOR: Duration = Duration::from_secs(5);

/// Whether a call may run the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Run it.
    Run,
    /// Do not run it: serve the fallback.
    Open,
}

/// What a call that ran the policy came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// A usable ranking.
    Ranked,
    /// Any failure: out of budget or memory, a trap, a malformed ranking.
    Failed,
}

/// The breaker state of one policy version; lock-free.
#[derive(Debug, Default)]
pub struct Breaker {
    /// The last [`WINDOW`] calls, newest in bit 0; a set bit is a failure.
    history: AtomicU32,
    /// While open: when the next probe may run, in ms on [`monotonic_ms`]'s
    /// clock (never 0). Zero while closed.
    open_until: AtomicU64,
}

impl Breaker {
    /// Whether a call at this moment may run the policy. When the open
    /// period has passed, exactly one caller gets [`Admit::Run`] (the probe);
    /// the others keep serving the fallback until the probe reports.
    pub fn admit(&self) -> Admit {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Admit::Run;
        }
        let now = monotonic_ms();
        if now < until {
            return Admit::Open;
        }
        // Claim the probe by pushing the open period on; a caller that loses
        // the race sees the new period.
        let next = now + OPEN_FOR.as_millis() as u64;
        match self
            .open_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admit::Run,
            Err(_) => Admit::Open,
        }
    }

    /// Whether the breaker is open: the version serves its fallback (or
    /// awaits its probe) instead of running.
    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// Records a call that ran. Returns true when this call opened the breaker.
    pub fn record(&self, ran: Ran) -> bool {
        let open = self.open_until.load(Ordering::Acquire) != 0;
        match ran {
            Ran::Ranked if open => {
                // The probe succeeded: close with a clean history.
                self.history.store(0, Ordering::Release);
                self.open_until.store(0, Ordering::Release);
                false
            }
            Ran::Ranked => {
                self.push(false);
                false
            }
            Ran::Failed if open => {
                // The probe failed: stay open for another period.
                self.open_until.store(
                    monotonic_ms() + OPEN_FOR.as_millis() as u64,
                    Ordering::Release,
                );
                false
            }
            Ran::Failed => {
                let history = self.push(true);
                if history.count_ones() < TRIP_AT {
                    return false;
                }
                let until = monotonic_ms() + OPEN_FOR.as_millis() as u64;
                self.open_until
                    .compare_exchange(0, until, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            }
        }
    }

    /// Shifts one call into the history; returns the new history.
    fn push(&self, failed: bool) -> u32 {
        let mask = (1 << WINDOW) - 1;
        let step = |h: u32| ((h << 1) | u32::from(failed)) & mask;
        let previous = self
            .history
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| Some(step(h)))
            .unwrap_or_else(|h| h);
        step(previous)
    }
}

/// Milliseconds on a monotonic clock that starts at 1 (so 0 can mean "closed").
fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_enough_failures_in_the_window() {
        let breaker = Breaker::default();
        for _ in 0..WINDOW {
            assert!(!breaker.record(Ran::Ranked));
        }
        assert!(!breaker.record(Ran::Failed));
        assert!(!breaker.record(Ran::Ranked));
        assert!(!breaker.record(Ran::Failed));
        assert_eq!(breaker.admit(), Admit::Run);
        assert!(breaker.record(Ran::Failed), "third failure in 8 calls");
        assert_eq!(breaker.admit(), Admit::Open);
    }

    #[test]
    fn failures_that_leave_the_window_are_forgotten() {
        let breaker = Breaker::default();
        for _ in 0..20 {
            breaker.record(Ran::Failed);
            for _ in 0..WINDOW {
                breaker.record(Ran::Ranked);
            }
        }
        assert_eq!(breaker.admit(), Admit::Run);
    }

    #[test]
    fn one_probe_after_the_open_period_decides() {
        let breaker = Breaker::default();
        for _ in 0..TRIP_AT {
            breaker.record(Ran::Failed);
        }
        assert_eq!(breaker.admit(), Admit::Open);
        // Pretend the open period is over.
        breaker.open_until.store(1, Ordering::Release);
        assert_eq!(breaker.admit(), Admit::Run, "the probe");
        assert_eq!(breaker.admit(), Admit::Open, "only one probe at a time");
        breaker.record(Ran::Failed);
        assert_eq!(breaker.admit(), Admit::Open, "a failed probe reopens");

        breaker.open_until.store(1, Ordering::Release);
        assert_eq!(breaker.admit(), Admit::Run);
        breaker.record(Ran::Ranked);
        assert_eq!(breaker.admit(), Admit::Run, "a good probe closes");
        assert_eq!(breaker.history.load(Ordering::Acquire), 0);
    }
}
