//! What both benchmarks build: the reference telco catalog at any size and
//! a loaded policy version over it.

use std::sync::Arc;

use moment_core::breaker::Breaker;
use moment_core::model::Name;
use moment_core::model::policy::{Action, Bundle, EngineKind, StoredBundle};
use moment_engines::Engines;
use moment_policy_artifacts::TELCO_RETENTION_BUNDLE;
use moment_server::registry::LoadedPolicy;

/// Decision time of every benchmarked decision.
pub const NOW_MS: u64 = 1_800_000_000_000;

/// The telco catalog repeated with suffixed ids until it has `n` actions.
pub fn actions(n: usize) -> Vec<Action> {
    let stored: StoredBundle = serde_json::from_str(TELCO_RETENTION_BUNDLE).unwrap();
    (0..n)
        .map(|i| {
            let mut a = stored.catalog[i % stored.catalog.len()].clone();
            a.id = format!("{}-{i}", a.id);
            a
        })
        .collect()
}

/// Version 1 of `retention-call`: `code` compiled for `engine` over `bundle`.
pub fn loaded(
    engines: &Engines,
    engine: EngineKind,
    code: &[u8],
    bundle: Bundle,
) -> Arc<LoadedPolicy> {
    Arc::new(LoadedPolicy {
        name: Name::parse("retention-call").unwrap(),
        version: 1,
        bundle: Arc::new(bundle),
        program: engines.compile(engine, code).unwrap(),
        breaker: Breaker::default(),
    })
}
