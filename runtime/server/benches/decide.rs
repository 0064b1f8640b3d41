//! In-process decide pipeline for the reference telco retention policy, WASM
//! and Rhai: profile merge, eligibility, contact rules, the policy call,
//! ranking, arbitration and building the response and decision record.
//!
//! - `decide/{wasm,rhai}/{10,100,1000}`: the whole pipeline at 10, 100 and
//!   1,000 candidates (the telco catalog repeated with suffixed ids), ~1 KB
//!   of attributes and one past impression of every action.
//! - `decide_with_rules/{wasm,rhai}`: 100 candidates, each with an
//!   eligibility condition and a contact rule.
//! - `pieces/…`: the parts that dominate, alone: a fresh WASM instance
//!   called on an empty document; the telco policy call alone (WASM, Rhai);
//!   encoding the WASM input; the guest's own work (parse, score, answer)
//!   compiled natively; decoding its output; one condition; the worst
//!   screening the default bounds allow (2,000 actions each scanning a
//!   1,000-item array); serializing the response.
//!
//! The limits are the defaults except a 1 s deadline, so that a slow engine
//! at 1,000 candidates is measured rather than cut off by its fallback.
//!
//! Run: `cargo bench -p moment-server --bench decide`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use moment_core::call::{History, Limits, PolicyInput};
use moment_core::model::Name;
use moment_core::model::contact::{ContactRule, Period};
use moment_core::model::outcome::OutcomeType;
use moment_core::model::policy::{Bundle, EngineKind};
use moment_core::model::profile::Profile;
use moment_core::pipeline::{DecideRequest, Subject, screen};
use moment_engines::Engines;
use moment_engines::wasm_engine::{decode_output, encode_input};
use moment_policy_artifacts::{TELCO_RETENTION_RHAI, TELCO_RETENTION_WASM};
use moment_server::pipeline;
use moment_server::registry::LoadedPolicy;
use moment_targeting::{Condition, SavedGroups};
use serde_json::{Map, Value, json};

use telco::NOW_MS;

mod telco;

const ENGINES: [EngineKind; 2] = [EngineKind::Wasm, EngineKind::Rhai];
/// `{"actions":[]}` from a module that ignores its input.
const EMPTY_POLICY: &str = r#"(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"actions\":[]}")
  (func (export "moment_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "moment_decide") (param i32 i32) (result i64) (i64.const 14)))"#;

fn limits() -> Limits {
    Limits {
        deadline: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// The telco catalog at `n` actions, optionally each with an eligibility
/// condition and a contact rule.
fn catalog(n: usize, rules: bool) -> Bundle {
    let actions = telco::actions(n)
        .into_iter()
        .map(|mut a| {
            if rules {
                a.eligibility = Some(rule_condition());
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

fn rule_condition() -> Value {
    json!({"stage": {"$in": ["at-risk", "evaluation"]}, "tenure_months": {"$gte": 3}})
}

fn policy(engines: &Engines, engine: EngineKind, bundle: Bundle) -> Arc<LoadedPolicy> {
    let code = match engine {
        EngineKind::Wasm => TELCO_RETENTION_WASM,
        EngineKind::Rhai => TELCO_RETENTION_RHAI.as_bytes(),
    };
    telco::loaded(engines, engine, code, bundle)
}

/// One impression a day ago for every action.
fn profile(bundle: &Bundle) -> Arc<Profile> {
    let mut profile = Profile::default();
    for a in bundle.actions() {
        profile.record(&a.id, OutcomeType::Impression, NOW_MS - 86_400_000);
    }
    Arc::new(profile)
}

/// ~1 KB of attributes, as a profile merged from a few channels would give.
fn attributes() -> Map<String, Value> {
    let mut attributes = Map::new();
    attributes.insert("tenure_months".into(), json!(40));
    attributes.insert("complaints_90d".into(), json!(2));
    attributes.insert("device_age_months".into(), json!(30));
    for i in 0..30 {
        attributes.insert(
            format!("segment_{i:02}"),
            json!(format!("value-{i:04}-abcdef")),
        );
    }
    attributes.insert("stage".into(), json!("at-risk"));
    attributes
}

fn request() -> DecideRequest {
    serde_json::from_value(json!({
        "point": "retention-call", "customer_id": "c-42", "stage": "at-risk", "channel": "call-center",
        "attributes": attributes(), "context": {"reason": "price"}, "limit": 3
    }))
    .unwrap()
}

fn pipeline(c: &mut Criterion) {
    let engines = Engines::new(limits()).unwrap();
    let tenant = Name::parse("bench").unwrap();
    let groups = SavedGroups::default();
    let request = request();
    let mut run = |group: &str, engine: EngineKind, n: usize, rules: bool| {
        let policy = policy(&engines, engine, catalog(n, rules));
        let profile = profile(&policy.bundle);
        let subject = Subject {
            tenant: &tenant,
            groups: &groups,
            profile: Some(&profile),
            history_unavailable: None,
            now_ms: NOW_MS,
            limits: engines.limits(),
        };
        let sample = pipeline::decide(&engines, &subject, &policy, &[], &request, 3).response;
        assert!(
            !sample.fallback && sample.actions.len() == 3,
            "{engine:?} policy fell back at {n} candidates"
        );
        c.benchmark_group(group).bench_with_input(
            BenchmarkId::new(engine.as_str(), n),
            &request,
            |b, request| {
                b.iter(|| pipeline::decide(&engines, &subject, &policy, &[], black_box(request), 3))
            },
        );
    };
    for engine in ENGINES {
        for n in [10, 100, 1000] {
            run("decide", engine, n, false);
        }
    }
    for engine in ENGINES {
        run("decide_with_rules", engine, 100, true);
    }
}

fn pieces(c: &mut Criterion) {
    let engines = Engines::new(limits()).unwrap();
    let mut group = c.benchmark_group("pieces");
    let bundle = catalog(100, false);
    let attributes = attributes();
    let context = Map::from_iter([("reason".to_owned(), json!("price"))]);
    let seen = profile(&bundle);
    let input = PolicyInput {
        customer_id: "c-42",
        stage: Some("at-risk"),
        channel: Some("call-center"),
        attributes: &attributes,
        context: &context,
        candidates: bundle.candidates().iter().collect(),
        history: History::new(Some(&seen), bundle.actions()),
        now_ms: NOW_MS,
    };
    let limits = engines.limits();

    let empty = engines
        .compile(EngineKind::Wasm, &wat::parse_str(EMPTY_POLICY).unwrap())
        .unwrap();
    let nothing = PolicyInput {
        candidates: Vec::new(),
        ..input.clone()
    };
    assert_eq!(engines.run(&empty, &nothing, limits), Ok(vec![]));
    group.bench_function("wasm_instantiate_and_call_empty", |b| {
        b.iter(|| engines.run(&empty, black_box(&nothing), limits))
    });

    for engine in ENGINES {
        let policy = policy(&engines, engine, catalog(1, false));
        assert!(engines.run(&policy.program, &input, limits).is_ok());
        group.bench_function(format!("{}_policy_call_100", engine.as_str()), |b| {
            b.iter(|| engines.run(&policy.program, black_box(&input), limits))
        });
    }

    group.bench_function("wasm_encode_input_100", |b| {
        b.iter(|| encode_input(black_box(&input)))
    });

    // What the WASM call spends inside the guest, compiled natively instead:
    // parse the input, score, serialize the answer.
    let encoded = encode_input(&input).unwrap();
    group.bench_function("telco_guest_native_100", |b| {
        b.iter(|| {
            moment_sdk::abi::decide_json(black_box(&encoded), moment_policy_telco_retention::decide)
        })
    });

    let output = serde_json::to_vec(&json!({"actions": bundle.actions().iter().enumerate()
        .map(|(i, a)| json!({"id": a.id, "score": i as f64 * 0.37}))
        .collect::<Vec<_>>()}))
    .unwrap();
    group.bench_function("wasm_decode_output_100", |b| {
        b.iter(|| decode_output(black_box(&output)))
    });

    let condition = Condition::parse(&rule_condition()).unwrap();
    let document = Value::Object(attributes.clone());
    let groups = SavedGroups::default();
    assert!(condition.eval(&document, &groups));
    group.bench_function("condition_eval", |b| {
        b.iter(|| condition.eval(black_box(&document), &groups))
    });

    let tenant = Name::parse("bench").unwrap();
    // The most screening one decide can cost within the default bounds:
    // 2,000 actions (the catalog quota), each with a condition that scans a
    // 1,000-item array attribute (the request bound) to its end. Here under
    // the bench's 1 s deadline; a decision stops screening at its own.
    let scan = json!({"scores": {"$elemMatch": {"$gt": 1000}}});
    let heavy = Bundle::new(
        telco::actions(2000)
            .into_iter()
            .map(|mut a| {
                a.eligibility = Some(scan.clone());
                a
            })
            .collect(),
        &[],
    )
    .unwrap();
    let mut scores = attributes.clone();
    scores.insert("scores".into(), json!((0..1000).collect::<Vec<_>>()));
    let scores = Value::Object(scores);
    let nobody = Subject {
        tenant: &tenant,
        groups: &groups,
        profile: None,
        history_unavailable: None,
        now_ms: NOW_MS,
        limits,
    };
    let screened = screen(&heavy, &nobody, &scores, false);
    assert!(!screened.out_of_time && screened.allowed.iter().all(|ok| !ok));
    group.bench_function("screen_2000_conditions_over_1000_items", |b| {
        b.iter(|| screen(&heavy, &nobody, black_box(&scores), false))
    });

    let wasm = policy(&engines, EngineKind::Wasm, catalog(100, false));
    let subject = Subject {
        tenant: &tenant,
        groups: &groups,
        profile: Some(&seen),
        history_unavailable: None,
        now_ms: NOW_MS,
        limits,
    };
    let response = pipeline::decide(&engines, &subject, &wasm, &[], &request(), 3).response;
    group.bench_function("response_json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&response)))
    });
    group.finish();
}

criterion_group!(benches, pipeline, pieces);
criterion_main!(benches);
