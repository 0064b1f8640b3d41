//! Native test helpers: a policy's bundle and table of cases, replayed the
//! way the host would run them.
//!
//! A policy directory keeps `bundle.json` (`{"catalog":[…],"fallback":[…]}`)
//! and `cases.json` (`[{"name","request":{…,"limit":3},"expect":[ids]}]`).
//! [`Case::input`] builds the ABI input document for a case (candidates = the
//! whole catalog, history empty, a fixed clock), and [`Case::run`] calls the
//! policy and applies the host's arbitration ([`rank`]). Nothing here is
//! linked into a policy's `.wasm` unless the policy calls it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Context, Ranked};

/// The clock every case runs at: 2023-11-14T22:13:20Z.
pub const CASE_NOW_MS: u64 = 1_700_000_000_000;

/// A decide request's default `limit`.
pub const DEFAULT_LIMIT: usize = 3;

/// A policy's bundle: its catalog and fallback actions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// Every action the policy can rank.
    pub catalog: Vec<CatalogEntry>,
    /// Action ids the host serves when the policy fails.
    #[serde(default)]
    pub fallback: Vec<String>,
}

/// One action of a bundle's catalog.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Unique action id.
    pub id: String,
    /// `offer`, `message` or `service`.
    pub kind: String,
    /// Business value when the action succeeds.
    pub value: f64,
    /// Cost to serve, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Tags the policy reads.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What the caller renders; the policy never sees it.
    #[serde(default)]
    pub payload: Value,
}

/// One row of a policy's `cases.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// What the case checks, in a few words.
    pub name: String,
    /// The decide request, minus `point`.
    pub request: CaseRequest,
    /// The action ids the caller gets, in order, after `limit`.
    pub expect: Vec<String>,
}

/// The decide request of a [`Case`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseRequest {
    /// The customer.
    pub customer_id: String,
    /// Life-cycle stage, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Channel, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Request attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Request context.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// How many actions the caller wants ([`DEFAULT_LIMIT`] if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl Case {
    /// The ABI input document for this case: the request's fields, the whole
    /// catalog as candidates (payloads left out), empty history and
    /// [`CASE_NOW_MS`].
    pub fn input(&self, bundle: &Bundle) -> Value {
        let r = &self.request;
        let candidates: Vec<Value> = bundle
            .catalog
            .iter()
            .map(|a| json!({"id": a.id, "kind": a.kind, "value": a.value, "cost": a.cost, "tags": a.tags}))
            .collect();
        json!({
            "customer_id": r.customer_id, "stage": r.stage, "channel": r.channel,
            "attributes": r.attributes, "context": r.context, "candidates": candidates,
            "history": {}, "now_ms": CASE_NOW_MS,
        })
    }

    /// The request's limit, or [`DEFAULT_LIMIT`].
    pub fn limit(&self) -> usize {
        self.request.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// Runs `policy` on this case and returns what the caller would get.
    ///
    /// # Panics
    ///
    /// If the case's input is not a valid [`Context`], which only a broken
    /// bundle or case can cause.
    pub fn run(
        &self,
        bundle: &Bundle,
        policy: impl FnOnce(&Context) -> Vec<Ranked>,
    ) -> Vec<Ranked> {
        let ctx: Context =
            serde_json::from_value(self.input(bundle)).expect("case input is a valid context");
        rank(policy(&ctx), self.limit())
    }
}

/// The host's arbitration: order by score, highest first, ties keeping the
/// policy's order (a stable sort), then keep the first `limit`.
pub fn rank(mut actions: Vec<Ranked>, limit: usize) -> Vec<Ranked> {
    actions.sort_by(|a, b| b.score.total_cmp(&a.score));
    actions.truncate(limit);
    actions
}

/// The ids of `actions`, in order.
pub fn ids(actions: &[Ranked]) -> Vec<&str> {
    actions.iter().map(|a| a.id.as_str()).collect()
}

/// Parses a policy's `bundle.json` and `cases.json` texts.
///
/// # Panics
///
/// If either does not parse.
pub fn load(bundle_json: &str, cases_json: &str) -> (Bundle, Vec<Case>) {
    (
        serde_json::from_str(bundle_json).expect("bundle.json parses"),
        serde_json::from_str(cases_json).expect("cases.json parses"),
    )
}

/// Asserts that `policy` gives every case its expected ranking, after the
/// host's arbitration.
///
/// # Panics
///
/// On the first case ranked otherwise, naming it.
pub fn assert_cases(bundle: &Bundle, cases: &[Case], policy: impl Fn(&Context) -> Vec<Ranked>) {
    for case in cases {
        let got = case.run(bundle, &policy);
        assert_eq!(ids(&got), case.expect, "case {:?}: {got:?}", case.name);
    }
}

/// Asserts that, for every case, neighbouring scores up to one past the
/// case's limit differ clearly (by more than 1e-9 relative), so that float
/// parsing on the way through the host can never swap them.
///
/// # Panics
///
/// On a near tie, naming the case.
pub fn assert_no_ties_at_the_cut(
    bundle: &Bundle,
    cases: &[Case],
    policy: impl Fn(&Context) -> Vec<Ranked>,
) {
    for case in cases {
        let ctx: Context =
            serde_json::from_value(case.input(bundle)).expect("case input is a valid context");
        let all = rank(policy(&ctx), usize::MAX);
        let shown = (case.limit() + 1).min(all.len());
        for pair in all[..shown].windows(2) {
            let gap = pair[0].score - pair[1].score;
            assert!(
                gap > 1e-9 * pair[0].score,
                "case {:?}: near tie in {all:?}",
                case.name
            );
        }
    }
}

/// Asserts that the fallback and every case's expected ids are catalog ids,
/// and that every catalog entry's payload has a `headline` to render.
///
/// # Panics
///
/// On the first id or entry that breaks this.
pub fn assert_well_formed(bundle: &Bundle, cases: &[Case]) {
    let catalog: Vec<&str> = bundle.catalog.iter().map(|a| a.id.as_str()).collect();
    for id in &bundle.fallback {
        assert!(
            catalog.contains(&id.as_str()),
            "fallback {id:?} is not in the catalog"
        );
    }
    for case in cases {
        for id in &case.expect {
            assert!(
                catalog.contains(&id.as_str()),
                "case {:?} expects {id:?}, not in the catalog",
                case.name
            );
        }
    }
    for entry in &bundle.catalog {
        assert!(
            entry.payload["headline"].is_string(),
            "{} has no payload.headline",
            entry.id
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{Bundle, Case, ids, rank};
    use crate::Ranked;

    #[test]
    fn rank_is_stable_descending_and_truncates() {
        let out = rank(
            vec![
                Ranked::new("low", 0.1),
                Ranked::new("tie-first", 0.5),
                Ranked::new("high", 0.9),
                Ranked::new("tie-second", 0.5),
            ],
            3,
        );
        assert_eq!(ids(&out), ["high", "tie-first", "tie-second"]);
    }

    #[test]
    fn a_case_runs_over_the_whole_catalog() {
        let bundle: Bundle = serde_json::from_str(
            r#"{"catalog":[{"id":"a","kind":"offer","value":1,"payload":{"headline":"A"}},
                           {"id":"b","kind":"offer","value":2,"cost":1,"tags":["x"]}],
                "fallback":["a"]}"#,
        )
        .unwrap();
        let case: Case = serde_json::from_str(
            r#"{"name":"n","request":{"customer_id":"c","limit":1},"expect":["b"]}"#,
        )
        .unwrap();
        let input = case.input(&bundle);
        assert!(input["candidates"][0].get("payload").is_none());
        assert!(input["stage"].is_null());
        let out = case.run(&bundle, |ctx| {
            ctx.candidates
                .iter()
                .map(|c| Ranked::new(&c.id, c.value))
                .collect()
        });
        assert_eq!(ids(&out), case.expect);
    }
}
