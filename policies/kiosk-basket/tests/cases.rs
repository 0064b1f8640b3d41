//! Replays `cases.json` against the policy, the way the host would.

#![allow(clippy::unwrap_used)]

use moment_policy_kiosk_basket::decide;
use moment_sdk::testing::{
    Bundle, Case, assert_cases, assert_no_ties_at_the_cut, assert_well_formed, ids,
};
use moment_sdk::{Context, Ranked};

const BUNDLE: &str = include_str!("../bundle.json");
const CASES: &str = include_str!("../cases.json");

fn load() -> (Bundle, Vec<Case>) {
    moment_sdk::testing::load(BUNDLE, CASES)
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

/// What `moment_decide` answers.
#[derive(serde::Deserialize)]
struct Answer {
    actions: Vec<Ranked>,
}

#[test]
fn the_abi_path_agrees_with_the_direct_call() {
    let (bundle, cases) = load();
    for case in &cases {
        let input = serde_json::to_vec(&case.input(&bundle)).unwrap();
        let output = moment_sdk::abi::decide_json(&input, decide);
        let answer: Answer = serde_json::from_slice(&output).unwrap();
        let ctx: Context = serde_json::from_value(case.input(&bundle)).unwrap();
        let direct = decide(&ctx);
        assert_eq!(ids(&answer.actions), ids(&direct), "case {:?}", case.name);
        for (a, b) in answer.actions.iter().zip(&direct) {
            // serde_json's default float parsing may be off by one ulp.
            assert!(
                (a.score - b.score).abs() <= 1e-12 * b.score.abs(),
                "{a:?} vs {b:?}"
            );
        }
    }
}
