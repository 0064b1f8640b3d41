//! How the cost of one decision (the WASM telco policy, 100 candidates)
//! grows with what the server holds:
//!
//! - `tenants_{wasm,rhai}/N`: N tenants' policies loaded, each its own
//!   compilation (the reference module with a distinct custom section, so
//!   the content-hash cache cannot share it; the reference script with a
//!   distinct comment), decisions round-robin across all N. Prints the
//!   process's resident memory once each N is loaded.
//! - `profiles/N`: N profiles in the embedded store, decisions for random
//!   customers: the profile read through the server's profile cache (100,000
//!   customers, the default) and then the pipeline.
//!
//! Run: `cargo bench -p moment-server --bench scaling`

#![allow(missing_docs, clippy::unwrap_used)]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use moment_core::call::Limits;
use moment_core::model::Name;
use moment_core::model::policy::{Bundle, EngineKind};
use moment_core::pipeline::{DecideRequest, Subject};
use moment_engines::Engines;
use moment_policy_artifacts::{TELCO_RETENTION_RHAI, TELCO_RETENTION_WASM};
use moment_server::pipeline;
use moment_server::profiles::Profiles;
use moment_server::registry::LoadedPolicy;
use moment_store::Store;
use moment_store::sqlite::SqliteStore;
use moment_targeting::SavedGroups;
use rand::Rng;
use serde_json::{Map, json};

use telco::NOW_MS;

mod telco;

const TENANTS: [usize; 4] = [1, 10, 100, 1000];
const PROFILES: [usize; 3] = [10_000, 100_000, 1_000_000];

fn catalog(n: usize) -> Bundle {
    Bundle::new(telco::actions(n), &[]).unwrap()
}

/// The reference module plus a custom section naming tenant `i`: the same
/// code, but a different module to the engine's content-hash cache.
fn module_for(i: usize) -> Vec<u8> {
    let name = b"moment-bench-tenant";
    let payload = (i as u32).to_le_bytes();
    let size = 1 + name.len() + payload.len();
    let mut bytes = TELCO_RETENTION_WASM.to_vec();
    bytes.extend([0, size as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.extend(payload);
    bytes
}

/// The reference script with a comment naming tenant `i`.
fn script_for(i: usize) -> String {
    format!("// tenant {i}\n{TELCO_RETENTION_RHAI}")
}

fn request(customer: &str) -> DecideRequest {
    serde_json::from_value(json!({
        "point": "retention-call", "customer_id": customer, "stage": "at-risk",
        "channel": "call-center", "context": {"reason": "price"}, "limit": 3
    }))
    .unwrap()
}

/// Resident memory of this process, from `/proc/self/status`.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn tenants(c: &mut Criterion) {
    for engine in [EngineKind::Wasm, EngineKind::Rhai] {
        tenants_on(c, engine);
    }
}

/// Each tenant's own compilation of the reference policy on `engine`; the
/// process starts with none (the Rhai run follows the WASM run, whose
/// modules are dropped by then, but freed memory may stay resident).
fn tenants_on(c: &mut Criterion, engine: EngineKind) {
    // As the server does: compiled modules kept as files and mapped.
    let compiled = tempfile::tempdir().unwrap();
    let engines =
        Engines::with_compiled_dir(Limits::default(), compiled.path().to_owned()).unwrap();
    let groups = SavedGroups::default();
    let tenant = Name::parse("bench").unwrap();
    let request = request("c-42");
    let mut policies: Vec<Arc<LoadedPolicy>> = Vec::new();
    let mut group = c.benchmark_group(format!("tenants_{}", engine.as_str()));
    eprintln!("{engine:?}: rss before loading: {:.1} MiB", rss_mib());
    for n in TENANTS {
        let started = Instant::now();
        let loaded = policies.len();
        for i in loaded..n {
            let code = match engine {
                EngineKind::Wasm => module_for(i),
                EngineKind::Rhai => script_for(i).into_bytes(),
            };
            policies.push(telco::loaded(&engines, engine, &code, catalog(100)));
        }
        eprintln!(
            "{engine:?}: {n} tenants' policies loaded ({} compiled in {:.1} s): rss {:.1} MiB",
            n - loaded,
            started.elapsed().as_secs_f64(),
            rss_mib()
        );
        let subject = Subject {
            tenant: &tenant,
            groups: &groups,
            profile: None,
            history_unavailable: None,
            now_ms: NOW_MS,
            limits: engines.limits(),
        };
        let mut next = 0;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                next = (next + 1) % n;
                pipeline::decide(&engines, &subject, &policies[next], &[], &request, 3)
            })
        });
    }
    group.finish();
}

fn profiles(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let tenant = Name::parse("bench").unwrap();
    runtime
        .block_on(store.create_tenant(&tenant, "{}", &[]))
        .unwrap();
    let profiles = Profiles::new(store.clone(), NonZeroUsize::new(100_000).unwrap());
    let engines = Engines::new(Limits::default()).unwrap();
    let groups = SavedGroups::default();
    let policy = telco::loaded(
        &engines,
        EngineKind::Wasm,
        TELCO_RETENTION_WASM,
        catalog(100),
    );
    let mut stored = 0;
    let mut group = c.benchmark_group("profiles");
    for n in PROFILES {
        let started = Instant::now();
        runtime.block_on(async {
            for i in stored..n {
                let attributes = Map::from_iter([
                    ("tenure_months".to_owned(), json!(i % 60)),
                    ("complaints_90d".to_owned(), json!(i % 4)),
                    ("device_age_months".to_owned(), json!(i % 36)),
                ]);
                store
                    .patch_profile(&tenant, &format!("c-{i}"), attributes, None)
                    .await
                    .unwrap();
            }
        });
        eprintln!(
            "{n} profiles stored ({} written in {:.1} s)",
            n - stored,
            started.elapsed().as_secs_f64()
        );
        stored = n;
        let mut rng = rand::rng();
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let customer = format!("c-{}", rng.random_range(0..n));
                let profile = runtime.block_on(profiles.get(&tenant, &customer)).unwrap();
                let subject = Subject {
                    tenant: &tenant,
                    groups: &groups,
                    profile: profile.as_ref(),
                    history_unavailable: None,
                    now_ms: NOW_MS,
                    limits: engines.limits(),
                };
                pipeline::decide(&engines, &subject, &policy, &[], &request(&customer), 3)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = tenants, profiles
}
criterion_main!(benches);
