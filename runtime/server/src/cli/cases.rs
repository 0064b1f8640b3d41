//! Test cases of a policy: what goes in, what must come out, and the
//! readable difference when it does not.
//!
//! A case file is a JSON or YAML list of cases:
//!
//! ```json
//! [{"name": "price call, at-risk: the 20% discount first",
//!   "request": {"customer_id": "c-1", "stage": "at-risk", "channel": "call-center",
//!               "attributes": {"tenure_months": 14}, "context": {"reason": "price"}, "limit": 3},
//!   "history": {"retention-20": {"shown_at_ms": [1699990000000], "outcomes": {"reject": [1699990060000]}}},
//!   "now_ms": 1700000000000,
//!   "expect": ["retention-20", "plan-review", "retention-10"]}]
//! ```
//!
//! `request` is a decide request without `point`. `expect` is the action
//! ids in order; or `{"actions": [{"id": "a", "score": 0.42}, …],
//! "tolerance": 1e-6}` to check scores too; or `{"fallback": "trap"}` for a
//! policy that must fail with that reason (and `"actions"` beside it for
//! the fallback actions served).

use std::collections::BTreeMap;

use moment_core::model::outcome::OutcomeType;
use moment_core::model::profile::{ContactHistory, IMPRESSION_WINDOW_MS, Profile};
use moment_core::pipeline::DecideResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The decision time of a case that names none (2023-11-14T22:13:20Z).
pub const DEFAULT_NOW_MS: u64 = 1_700_000_000_000;

/// Score tolerance when a case gives none.
pub const DEFAULT_TOLERANCE: f64 = 1e-9;

/// One test case.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows, in words.
    pub name: String,
    /// A decide request without `point`.
    pub request: Map<String, Value>,
    /// The customer's contact history with each action.
    #[serde(default)]
    pub history: BTreeMap<String, Contacts>,
    /// Decision time, ms since the Unix epoch ([`DEFAULT_NOW_MS`] if absent).
    #[serde(default)]
    pub now_ms: Option<u64>,
    /// What must come out.
    pub expect: Expect,
}

/// A customer's contacts with one action.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contacts {
    /// When the action was shown, ms since the Unix epoch.
    #[serde(default)]
    pub shown_at_ms: Vec<u64>,
    /// When each kind of outcome was recorded, ms since the Unix epoch.
    #[serde(default)]
    pub outcomes: BTreeMap<OutcomeType, Vec<u64>>,
}

impl Case {
    /// The stored profile the case describes: its history, no attributes
    /// (the request carries those). None without history.
    pub fn profile(&self, now_ms: u64) -> Option<Profile> {
        if self.history.is_empty() {
            return None;
        }
        let history = self
            .history
            .iter()
            .map(|(id, contacts)| (id.clone(), contacts.history(now_ms)))
            .collect();
        Some(Profile {
            history,
            ..Profile::default()
        })
    }
}

impl Contacts {
    /// The history the server would have built from these contacts.
    fn history(&self, now_ms: u64) -> ContactHistory {
        let mut shown = self.shown_at_ms.clone();
        shown.sort_unstable();
        let since = now_ms.saturating_sub(IMPRESSION_WINDOW_MS);
        ContactHistory {
            impressions: u32::try_from(shown.len()).unwrap_or(u32::MAX),
            last_shown_ms: shown.last().copied(),
            recent_impressions_ms: shown.into_iter().filter(|&t| t >= since).collect(),
            counts: self
                .outcomes
                .iter()
                .map(|(kind, at)| (*kind, u32::try_from(at.len()).unwrap_or(u32::MAX)))
                .collect(),
            last_ms: self
                .outcomes
                .iter()
                .filter_map(|(kind, at)| Some((*kind, *at.iter().max()?)))
                .collect(),
        }
    }
}

/// What a case must get.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "Value")]
pub struct Expect {
    /// The actions, in order, with scores when they are checked.
    pub actions: Option<Vec<Expected>>,
    /// How far a score may be from the expected one.
    pub tolerance: f64,
    /// The reason the policy must fail with (its fallback is served).
    pub fallback: Option<String>,
}

/// One expected action.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// Action id.
    pub id: String,
    /// Its score, when checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

const EXPECT_FORMS: &str = "`expect` must be a list of action ids, \
    {\"actions\": [{\"id\": …, \"score\": …}, …], \"tolerance\": 1e-9}, \
    or {\"fallback\": \"reason\"} (optionally with \"actions\")";

impl TryFrom<Value> for Expect {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Detailed {
            #[serde(default)]
            actions: Option<Vec<Item>>,
            #[serde(default)]
            tolerance: Option<f64>,
            #[serde(default)]
            fallback: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Item {
            Id(String),
            Scored(Expected),
        }
        let expected = |items: Vec<Item>| {
            items
                .into_iter()
                .map(|item| match item {
                    Item::Id(id) => Expected { id, score: None },
                    Item::Scored(scored) => scored,
                })
                .collect()
        };
        let detailed = match value {
            Value::Array(_) => Detailed {
                actions: Some(
                    serde_json::from_value(value).map_err(|e| format!("{EXPECT_FORMS}: {e}"))?,
                ),
                tolerance: None,
                fallback: None,
            },
            Value::Object(_) => {
                serde_json::from_value(value).map_err(|e| format!("{EXPECT_FORMS}: {e}"))?
            }
            _ => return Err(EXPECT_FORMS.to_owned()),
        };
        if detailed.actions.is_none() && detailed.fallback.is_none() {
            return Err(EXPECT_FORMS.to_owned());
        }
        Ok(Expect {
            actions: detailed.actions.map(expected),
            tolerance: detailed.tolerance.unwrap_or(DEFAULT_TOLERANCE),
            fallback: detailed.fallback,
        })
    }
}

/// What a case got: the answer, and why it fell back if it did.
pub struct Got<'a> {
    /// The decide answer.
    pub response: &'a DecideResponse,
    /// The failure's reason label and message, when the fallback was served.
    pub failed: Option<(&'static str, String)>,
}

/// Compares what a case got with what it expects: no lines when they
/// agree, else a readable account of the difference.
pub fn compare(expect: &Expect, got: &Got<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    match (&expect.fallback, &got.failed) {
        (None, Some((reason, message))) => lines.push(format!(
            "the policy failed ({reason}: {message}) and its fallback was served"
        )),
        (Some(want), None) => lines.push(format!(
            "expected the policy to fail ({want}), but it ranked the actions"
        )),
        (Some(want), Some((reason, message))) if want != reason => lines.push(format!(
            "expected the policy to fail with {want}, but it failed with {reason}: {message}"
        )),
        _ => {}
    }
    if let Some(actions) = &expect.actions {
        lines.extend(ranking(actions, expect.tolerance, got.response));
    }
    lines
}

/// The ranking's difference, line by line (`-` expected, `+` got).
fn ranking(expected: &[Expected], tolerance: f64, got: &DecideResponse) -> Vec<String> {
    let want: Vec<&str> = expected.iter().map(|e| e.id.as_str()).collect();
    let have: Vec<&str> = got.actions.iter().map(|a| a.id.as_str()).collect();
    let score = |id: &str| {
        got.actions
            .iter()
            .find(|a| a.id == id)
            .and_then(|a| a.score)
    };
    let shown = |s: Option<f64>| s.map_or("fallback".to_owned(), |s| format!("{s:.6}"));
    if want != have {
        let got_list: Vec<String> = got
            .actions
            .iter()
            .map(|a| format!("{} ({})", a.id, shown(a.score)))
            .collect();
        let mut lines = vec![
            format!("expected  {}", want.join(", ")),
            format!("got       {}", got_list.join(", ")),
            "ranking differs (- expected, + got):".to_owned(),
        ];
        let diff = similar::TextDiff::configure().diff_slices(&want, &have);
        for change in diff.iter_all_changes() {
            let id = change.value();
            let line = match change.tag() {
                similar::ChangeTag::Equal => format!("    {id:<28} {}", shown(score(id))),
                similar::ChangeTag::Delete => format!("  - {id}"),
                similar::ChangeTag::Insert => format!("  + {id:<28} {}", shown(score(id))),
            };
            lines.push(line);
        }
        return lines;
    }
    let off: Vec<String> = expected
        .iter()
        .filter_map(|e| {
            let want = e.score?;
            let have = score(&e.id);
            let close = have.is_some_and(|h| (h - want).abs() <= tolerance);
            (!close).then(|| {
                format!(
                    "  {:<28} expected {want} ± {tolerance}, got {}",
                    e.id,
                    shown(have)
                )
            })
        })
        .collect();
    match off.is_empty() {
        true => Vec::new(),
        false => std::iter::once("scores differ:".to_owned())
            .chain(off)
            .collect(),
    }
}
