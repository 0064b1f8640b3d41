//! Replays `cases.json` against the Rust policy, and checks that
//! `policy.rhai` ranks every case (and variants with history and integer
//! values) exactly as the Rust policy does.

#![allow(clippy::unwrap_used)]

use moment_policy_telco_retention::decide;
use moment_sdk::testing::{
    Bundle, Case, assert_cases, assert_no_ties_at_the_cut, assert_well_formed, ids, rank,
};
use moment_sdk::{Context, Ranked};
use serde_json::{Value, json};

const BUNDLE: &str = include_str!("../bundle.json");
const CASES: &str = include_str!("../cases.json");
const RHAI: &str = include_str!("../policy.rhai");

fn load() -> (Bundle, Vec<Case>) {
    moment_sdk::testing::load(BUNDLE, CASES)
}

fn rust(input: &Value) -> Vec<Ranked> {
    let ctx: Context = serde_json::from_value(input.clone()).unwrap();
    decide(&ctx)
}

/// Runs `policy.rhai` the way the host does: `ctx` is the input document
/// converted with `rhai::serde::to_dynamic`.
struct Rhai {
    engine: rhai::Engine,
    ast: rhai::AST,
}

impl Rhai {
    fn new() -> Self {
        let engine = rhai::Engine::new();
        let ast = engine.compile(RHAI).unwrap();
        Self { engine, ast }
    }

    fn decide(&self, input: &Value) -> Vec<Ranked> {
        let ctx = rhai::serde::to_dynamic(input).unwrap();
        let out: rhai::Array = self
            .engine
            .call_fn(&mut rhai::Scope::new(), &self.ast, "decide", (ctx,))
            .unwrap();
        out.into_iter()
            .map(|item| {
                let map = item.cast::<rhai::Map>();
                let id = map["id"].clone().into_string().unwrap();
                let score = map["score"].as_float().unwrap();
                Ranked::new(id, score)
            })
            .collect()
    }
}

#[test]
fn every_case_ranks_as_expected() {
    let (bundle, cases) = load();
    assert!(cases.len() >= 8);
    assert_cases(&bundle, &cases, decide);
}

#[test]
fn cases_have_no_ties_at_the_cut() {
    let (bundle, cases) = load();
    assert_no_ties_at_the_cut(&bundle, &cases, decide);
}

#[test]
fn bundle_is_well_formed() {
    let (bundle, cases) = load();
    assert_eq!(bundle.fallback, ["generic-welcome"]);
    assert_well_formed(&bundle, &cases);
}

/// Every case's input, plus variants that stress the Rhai twin: history,
/// integer values, missing costs and tags, nulls and odd attribute types.
fn parity_inputs() -> Vec<Value> {
    let (bundle, cases) = load();
    let mut inputs = Vec::new();
    for case in &cases {
        let input = case.input(&bundle);
        let mut seen = input.clone();
        seen["history"] = json!({
            "retention-20": {"impressions": 1, "last_shown_ms": 1_699_999_000_000_u64},
            "plan-review": {"impressions": 3},
            "no-such-action": {"impressions": 9}
        });
        let mut ints = input.clone();
        for c in ints["candidates"].as_array_mut().unwrap() {
            let value = c["value"].as_f64().unwrap();
            c["value"] = json!(value.round() as i64);
            match c["cost"].as_f64() {
                Some(0.0) => {
                    c.as_object_mut().unwrap().remove("cost");
                }
                Some(cost) => c["cost"] = json!(cost.round() as i64),
                None => {}
            }
            if c["tags"].as_array().unwrap().is_empty() {
                c.as_object_mut().unwrap().remove("tags");
            }
        }
        inputs.extend([input, seen, ints]);
    }
    let odd = json!({"customer_id": "odd", "stage": null, "channel": null,
        "attributes": {"tenure_months": -5, "complaints_90d": 12.5, "device_age_months": true},
        "context": {"reason": 7}, "candidates": cases[0].input(&bundle)["candidates"],
        "history": {}, "now_ms": 0});
    inputs.push(odd);
    inputs.push(json!({"customer_id": "empty"}));
    inputs
}

#[test]
fn rhai_twin_ranks_identically() {
    let rhai = Rhai::new();
    for input in parity_inputs() {
        let from_rust = rank(rust(&input), usize::MAX);
        let from_rhai = rank(rhai.decide(&input), usize::MAX);
        assert_eq!(ids(&from_rhai), ids(&from_rust), "input {input}");
        for (a, b) in from_rhai.iter().zip(&from_rust) {
            assert!(
                (a.score - b.score).abs() <= 1e-9,
                "{a:?} vs {b:?} on {input}"
            );
        }
    }
}

#[test]
fn rhai_twin_passes_the_cases() {
    let (bundle, cases) = load();
    let rhai = Rhai::new();
    for case in &cases {
        let got = rank(rhai.decide(&case.input(&bundle)), case.limit());
        assert_eq!(ids(&got), case.expect, "case {:?}", case.name);
    }
}

/// The script stays well inside tight engine limits, so a host's limits
/// (or Rhai's debug-build defaults: call depth 8, function expression depth
/// 16) never break it.
#[test]
fn rhai_twin_fits_tight_limits() {
    let mut engine = rhai::Engine::new();
    engine.set_max_call_levels(5);
    engine.set_max_expr_depths(32, 11);
    engine.set_max_operations(4_000);
    let ast = engine.compile(RHAI).unwrap();
    for input in parity_inputs() {
        let ctx = rhai::serde::to_dynamic(&input).unwrap();
        let out: Result<rhai::Array, _> =
            engine.call_fn(&mut rhai::Scope::new(), &ast, "decide", (ctx,));
        assert!(out.is_ok(), "{out:?} on {input}");
    }
}
