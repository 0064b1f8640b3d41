//! In-process decide pipeline for the reference telco retention policy, WASM
//! and Rhai, at 100 candidates with ~1 KB of attributes: building the input,
//! a fresh instance (WASM) or a script call (Rhai), copying in and out,
//! parsing the output, ranking and building the response.
//!
//! Run: `cargo bench -p moment-runtime --bench decide`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use moment_policy_artifacts::{TELCO_RETENTION_BUNDLE, TELCO_RETENTION_RHAI, TELCO_RETENTION_WASM};
use moment_runtime::engine::{Engines, Limits};
use moment_runtime::model::Name;
use moment_runtime::model::policy::{Bundle, EngineKind, StoredBundle};
use moment_runtime::pipeline::{self, DecideRequest};
use moment_runtime::registry::LoadedPolicy;
use serde_json::json;

/// The telco catalog repeated with suffixed ids until it has `n` actions.
fn catalog(n: usize) -> Bundle {
    let stored: StoredBundle = serde_json::from_str(TELCO_RETENTION_BUNDLE).unwrap();
    let actions = (0..n)
        .map(|i| {
            let mut a = stored.catalog[i % stored.catalog.len()].clone();
            a.id = format!("{}-{i}", a.id);
            a
        })
        .collect();
    Bundle::new(actions, &[]).unwrap()
}

fn request() -> DecideRequest {
    // ~1 KB of attributes, as a profile merged from a few channels would give.
    let mut attributes = serde_json::Map::new();
    attributes.insert("tenure_months".into(), json!(40));
    attributes.insert("complaints_90d".into(), json!(2));
    attributes.insert("device_age_months".into(), json!(30));
    for i in 0..30 {
        attributes.insert(
            format!("segment_{i:02}"),
            json!(format!("value-{i:04}-abcdef")),
        );
    }
    serde_json::from_value(json!({
        "point": "retention-call", "customer_id": "c-42", "stage": "at-risk", "channel": "call-center",
        "attributes": attributes, "context": {"reason": "price"}, "limit": 3
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let engines = Engines::new(Limits::default()).unwrap();
    let tenant = Name::parse("bench").unwrap();
    let request = request();
    let mut group = c.benchmark_group("decide_100_candidates");
    for (engine, code) in [
        (EngineKind::Wasm, TELCO_RETENTION_WASM),
        (EngineKind::Rhai, TELCO_RETENTION_RHAI.as_bytes()),
    ] {
        let policy = LoadedPolicy {
            name: Name::parse("retention-call").unwrap(),
            version: 1,
            bundle: catalog(100),
            program: engines.compile(engine, code).unwrap(),
        };
        let sample = pipeline::decide(&engines, &tenant, &policy, &request, 3);
        assert!(!sample.fallback, "{engine:?} policy fell back");
        group.bench_function(engine.as_str(), |b| {
            b.iter(|| pipeline::decide(&engines, &tenant, &policy, black_box(&request), 3))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
