//! In-process decide pipeline for the reference telco retention policy, WASM
//! and Rhai, at 100 candidates with ~1 KB of attributes: building the input,
//! a fresh instance (WASM) or a script call (Rhai), copying in and out,
//! parsing the output, ranking and building the response and decision record.
//! The `with_rules` group adds an eligibility condition and a contact rule to
//! every action and a profile with contact history for each.
//!
//! Run: `cargo bench -p moment-runtime --bench decide`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use moment_policy_artifacts::{TELCO_RETENTION_BUNDLE, TELCO_RETENTION_RHAI, TELCO_RETENTION_WASM};
use moment_runtime::breaker::Breaker;
use moment_runtime::engine::{Engines, Limits};
use moment_runtime::model::Name;
use moment_runtime::model::contact::{ContactRule, Period};
use moment_runtime::model::outcome::OutcomeType;
use moment_runtime::model::policy::{Bundle, EngineKind, StoredBundle};
use moment_runtime::model::profile::Profile;
use moment_runtime::pipeline::{self, DecideRequest, Subject};
use moment_runtime::registry::LoadedPolicy;
use moment_targeting::SavedGroups;
use serde_json::json;

const NOW_MS: u64 = 1_800_000_000_000;

/// The telco catalog repeated with suffixed ids until it has `n` actions,
/// optionally each with an eligibility condition and a contact rule.
fn catalog(n: usize, rules: bool) -> Bundle {
    let stored: StoredBundle = serde_json::from_str(TELCO_RETENTION_BUNDLE).unwrap();
    let actions = (0..n)
        .map(|i| {
            let mut a = stored.catalog[i % stored.catalog.len()].clone();
            a.id = format!("{}-{i}", a.id);
            if rules {
                a.eligibility = Some(json!({"stage": {"$in": ["at-risk", "evaluation"]}, "tenure_months": {"$gte": 3}}));
                a.contact = Some(ContactRule {
                    max_impressions: Some(3),
                    per: Some(Period::Week),
                    cooldown_after_reject: Some(7.0),
                    suppress_after_accept: true,
                });
            }
            a
        })
        .collect();
    Bundle::new(actions, &[]).unwrap()
}

/// One impression a day ago for every action.
fn profile(bundle: &Bundle) -> Profile {
    let mut profile = Profile::default();
    for a in bundle.actions() {
        profile.record(&a.id, OutcomeType::Impression, NOW_MS - 86_400_000);
    }
    profile
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
    let groups = SavedGroups::default();
    let request = request();
    for (group_name, rules) in [
        ("decide_100_candidates", false),
        ("decide_100_candidates_with_rules", true),
    ] {
        let mut group = c.benchmark_group(group_name);
        for (engine, code) in [
            (EngineKind::Wasm, TELCO_RETENTION_WASM),
            (EngineKind::Rhai, TELCO_RETENTION_RHAI.as_bytes()),
        ] {
            let policy = LoadedPolicy {
                name: Name::parse("retention-call").unwrap(),
                version: 1,
                bundle: catalog(100, rules),
                program: engines.compile(engine, code).unwrap(),
                breaker: Breaker::default(),
            };
            let profile = profile(&policy.bundle);
            let subject = Subject {
                tenant: &tenant,
                groups: &groups,
                profile: Some(&profile),
                now_ms: NOW_MS,
                limits: engines.limits(),
            };
            let sample = pipeline::decide(&engines, &subject, &policy, &[], &request, 3).response;
            assert!(
                !sample.fallback && sample.actions.len() == 3,
                "{engine:?} policy fell back"
            );
            group.bench_function(engine.as_str(), |b| {
                b.iter(|| {
                    pipeline::decide(&engines, &subject, &policy, &[], black_box(&request), 3)
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
