//! The decide pipeline's pure steps, in order: the request and its checks,
//! [`merged_attributes`] (profile ⊕ request), [`screen`] (eligibility and
//! contact rules), [`rank`] (the policy's output checked and ordered),
//! [`arbitrate`] (per-kind caps and the limit), [`Explained`] for every
//! catalog action, the [`DecideResponse`] and the [`DecisionDocument`] the
//! log keeps. Running the policy between screen and rank is the server's
//! `pipeline::decide`, which strings these together.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use moment_targeting::SavedGroups;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::call::{History, Limits, PolicyError, Scored};
use crate::model::Name;
use crate::model::contact::WhenUnavailable;
use crate::model::document::{DocumentError, check_document};
use crate::model::policy::{ActionKind, Bundle};
use crate::model::profile::{MAX_CUSTOMER_ID_LEN, Profile};
use crate::model::text::{TextError, check_id};

/// Largest `limit` a caller may ask for.
pub const MAX_LIMIT: usize = 100;
/// `limit` when the caller gives none.
pub const DEFAULT_LIMIT: usize = 3;

/// Body of `POST /v1/decide`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// Decision point (policy name).
    pub point: String,
    /// The customer being decided for.
    pub customer_id: String,
    /// Life-cycle stage; defaults to the profile's.
    #[serde(default)]
    pub stage: Option<String>,
    /// Channel asking (`web`, `kiosk`, `call-center` …).
    #[serde(default)]
    pub channel: Option<String>,
    /// Customer attributes known to the caller; they override the profile's.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Map<String, Value>,
    /// Context of this moment (reason for the call, basket …).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Map<String, Value>,
    /// How many actions to return (1–100, default 3).
    #[serde(default)]
    pub limit: Option<usize>,
    /// At most this many actions of a kind, e.g. `{"offer": 1}`.
    #[serde(default)]
    pub max_per_kind: BTreeMap<ActionKind, usize>,
    /// Count the returned actions as shown (kiosks and agents that always show what they get).
    #[serde(default)]
    pub record_impressions: bool,
    /// Add an `explain` object saying what happened to every catalog action.
    #[serde(default)]
    pub explain: bool,
}

/// Why a decide request was refused before any policy ran.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    /// `customer_id` is empty, too long or not text.
    #[error(transparent)]
    CustomerId(#[from] TextError),
    /// `limit` is out of range.
    #[error("limit must be between 1 and {MAX_LIMIT}")]
    Limit,
    /// `attributes` or `context` is over one of its bounds.
    #[error(transparent)]
    Document(#[from] DocumentError),
}

impl DecideRequest {
    /// Checks the fields serde cannot, returning the effective limit.
    pub fn check(&self) -> Result<usize, RequestError> {
        check_id("customer_id", &self.customer_id, MAX_CUSTOMER_ID_LEN)?;
        check_document("attributes", &self.attributes)?;
        check_document("context", &self.context)?;
        match self.limit.unwrap_or(DEFAULT_LIMIT) {
            n @ 1..=MAX_LIMIT => Ok(n),
            _ => Err(RequestError::Limit),
        }
    }
}

/// Body of a decide answer.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecideResponse {
    /// Id to report outcomes against.
    pub decision_id: String,
    /// The decision point asked.
    pub point: String,
    /// The policy version that decided.
    pub policy: PolicyRef,
    /// The experiment and variant, when the customer is in one.
    pub experiment: Option<ExperimentRef>,
    /// Ranked actions, best first.
    pub actions: Vec<DecidedAction>,
    /// True when the policy failed and these are its fallback actions.
    pub fallback: bool,
    /// Present when the request asked for `explain`: catalog action id → what happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<BTreeMap<String, Explained>>,
}

/// The experiment a customer is in.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentRef {
    /// Experiment id.
    pub id: String,
    /// Variant id.
    pub variant: String,
}

/// Which policy version decided.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRef {
    /// Policy name.
    pub name: String,
    /// Version number.
    pub version: u32,
}

/// One action in a decide answer.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecidedAction {
    /// Action id.
    pub id: String,
    /// Offer, message or service action.
    pub kind: ActionKind,
    /// The policy's score; null for fallback actions.
    pub score: Option<f64>,
    /// What to render (any JSON; null when the action has none).
    pub payload: Value,
}

/// What happened to one catalog action, for `explain`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Explained {
    /// Returned, at this 1-based rank.
    Returned {
        /// Position in the answer.
        rank: usize,
        /// The policy's score (null for fallback actions).
        score: Option<f64>,
    },
    /// Scored, but below the `limit` cut.
    CutByLimit {
        /// The policy's score.
        score: f64,
    },
    /// Scored, but its kind had reached its `max_per_kind` cap.
    CutByKindCap {
        /// The policy's score.
        score: f64,
    },
    /// Its eligibility condition did not match.
    Ineligible {
        /// The first clause that failed.
        condition: String,
    },
    /// A contact rule hid it.
    ContactRule {
        /// The rule that fired.
        rule: String,
    },
    /// A candidate the policy did not score.
    NotScored,
    /// The policy failed; the fallback was served instead.
    PolicyFailed {
        /// Failure reason label.
        reason: String,
    },
}

/// What the edge resolved for this decision besides the request.
pub struct Subject<'a> {
    /// The caller's tenant.
    pub tenant: &'a Name,
    /// The tenant's saved groups, for conditions.
    pub groups: &'a SavedGroups,
    /// The customer's stored profile, if any.
    pub profile: Option<&'a Arc<Profile>>,
    /// Set when the stored profile could not be read: what contact rules do then.
    pub history_unavailable: Option<WhenUnavailable>,
    /// Decision time, ms since the Unix epoch.
    pub now_ms: u64,
    /// Policy limits for this tenant.
    pub limits: &'a Limits,
}

/// What the decision log keeps to replay a decision: the policy's input
/// (without the candidates' details, which the version holds), the eligible
/// candidates and the ranking. It holds the profile and policy version it was
/// decided with and is serialised by the log writer, off the request path, as
/// `{"stage", "channel", "attributes", "context", "history", "candidates":
/// [id…], "ranking": [[id, score]…]}`.
#[derive(Clone)]
pub struct DecisionDocument {
    /// The stage the policy saw.
    pub stage: Option<String>,
    /// The channel the policy saw.
    pub channel: Option<String>,
    /// The merged attributes the policy saw.
    pub attributes: Value,
    /// The request's context.
    pub context: Map<String, Value>,
    /// The profile decided with, for its history.
    pub profile: Option<Arc<Profile>>,
    /// The version's bundle, for action ids.
    pub bundle: Arc<Bundle>,
    /// Catalog positions of the eligible candidates.
    pub candidates: Vec<usize>,
    /// Catalog positions and scores, best first; empty after a fallback.
    pub ranking: Vec<(usize, f64)>,
}

impl Serialize for DecisionDocument {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let actions = self.bundle.actions();
        let id = |i: usize| actions[i].id.as_str();
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("stage", &self.stage)?;
        map.serialize_entry("channel", &self.channel)?;
        map.serialize_entry("attributes", &self.attributes)?;
        map.serialize_entry("context", &self.context)?;
        map.serialize_entry("history", &History::new(self.profile.as_deref(), actions))?;
        let candidates: Vec<&str> = self.candidates.iter().map(|&i| id(i)).collect();
        map.serialize_entry("candidates", &candidates)?;
        let ranking: Vec<(&str, f64)> = self.ranking.iter().map(|&(i, s)| (id(i), s)).collect();
        map.serialize_entry("ranking", &ranking)?;
        map.end()
    }
}

impl std::fmt::Debug for DecisionDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_string(self) {
            Ok(json) => f.write_str(&json),
            Err(e) => write!(f, "<unserialisable decision document: {e}>"),
        }
    }
}

/// The stored profile's attributes, overlaid by the request's, plus
/// `customer_id`, `stage` and `channel`.
pub fn merged_attributes(
    profile: Option<&Profile>,
    request: &DecideRequest,
    stage: Option<&str>,
) -> Map<String, Value> {
    let mut attributes = profile.map(|p| p.attributes.clone()).unwrap_or_default();
    attributes.extend(
        request
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    attributes.insert("customer_id".into(), request.customer_id.clone().into());
    if let Some(stage) = stage {
        attributes.insert("stage".into(), stage.into());
    }
    if let Some(channel) = &request.channel {
        attributes.insert("channel".into(), channel.clone().into());
    }
    attributes
}

/// What screening found.
pub struct Screened {
    /// Per catalog action, whether it is a candidate.
    pub allowed: Vec<bool>,
    /// When explaining, why each one that is not is not.
    pub why: Option<Vec<Explained>>,
    /// Screening used up the decision's deadline: the actions after that
    /// point were left out (fallback actions excepted), and the policy must
    /// not run.
    pub out_of_time: bool,
}

/// How many actions are screened between two looks at the clock.
const CLOCK_EVERY_ACTIONS: usize = 64;

/// Eligibility and contact rules: which catalog actions are candidates, and
/// (when explaining) why the others are not. Screening counts against the
/// decision's deadline: once it has run that long, only the fallback actions
/// are screened further, and the decision falls back.
pub fn screen(
    bundle: &Bundle,
    subject: &Subject<'_>,
    attributes: &Value,
    explain: bool,
) -> Screened {
    let stop = Instant::now() + subject.limits.deadline;
    let mut out_of_time = false;
    let mut allowed = vec![true; bundle.actions().len()];
    let mut why = explain.then(|| vec![Explained::NotScored; allowed.len()]);
    for (i, action) in bundle.actions().iter().enumerate() {
        if !out_of_time && i % CLOCK_EVERY_ACTIONS == CLOCK_EVERY_ACTIONS - 1 {
            out_of_time = Instant::now() >= stop;
        }
        if out_of_time && !bundle.fallback().contains(&i) {
            allowed[i] = false;
            continue;
        }
        let excluded = if let Some(condition) = bundle
            .eligibility(i)
            .filter(|c| !c.eval(attributes, subject.groups))
        {
            why.is_some().then(|| Explained::Ineligible {
                condition: condition
                    .first_failure(attributes, subject.groups)
                    .unwrap_or_default(),
            })
        } else if let Some(rule) =
            action
                .contact
                .as_ref()
                .and_then(|rule| match subject.history_unavailable {
                    Some(WhenUnavailable::Closed) => Some(
                        "contact history unavailable (contact_rules_when_unavailable: closed)"
                            .to_owned(),
                    ),
                    Some(WhenUnavailable::Open) | None => rule.blocks(
                        subject.profile.and_then(|p| p.history.get(&action.id)),
                        subject.now_ms,
                    ),
                })
        {
            Some(Explained::ContactRule { rule })
        } else {
            continue;
        };
        allowed[i] = false;
        if let (Some(why), Some(excluded)) = (why.as_mut(), excluded) {
            why[i] = excluded;
        }
    }
    Screened {
        allowed,
        why,
        out_of_time,
    }
}

/// Checks a policy's output against the candidates and orders it: highest
/// score first, ties in the policy's order. Returns catalog positions and scores.
pub fn rank(
    bundle: &Bundle,
    allowed: &[bool],
    scored: Vec<Scored>,
) -> Result<Vec<(usize, f64)>, PolicyError> {
    let mut seen = vec![false; bundle.actions().len()];
    let mut ranked = Vec::with_capacity(scored.len());
    for Scored { id, score } in scored {
        let Some(i) = bundle.position(&id).filter(|&i| allowed[i]) else {
            return Err(PolicyError::UnknownAction(id));
        };
        if !score.is_finite() {
            return Err(PolicyError::BadOutput(format!(
                "score of {id:?} is not a finite number"
            )));
        }
        if std::mem::replace(&mut seen[i], true) {
            return Err(PolicyError::BadOutput(format!(
                "action {id:?} is returned twice"
            )));
        }
        ranked.push((i, score));
    }
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(ranked)
}

/// Takes the best actions within `limit` and the per-kind caps.
pub fn arbitrate(
    bundle: &Bundle,
    ranked: &[(usize, f64)],
    limit: usize,
    max_per_kind: &BTreeMap<ActionKind, usize>,
    mut explain: Option<&mut Vec<Explained>>,
) -> Vec<(usize, Option<f64>)> {
    let mut chosen = Vec::with_capacity(limit.min(ranked.len()));
    let mut per_kind: BTreeMap<ActionKind, usize> = BTreeMap::new();
    for &(i, score) in ranked {
        let kind = bundle.actions()[i].kind;
        let why = if chosen.len() >= limit {
            Explained::CutByLimit { score }
        } else if max_per_kind
            .get(&kind)
            .is_some_and(|&cap| per_kind.get(&kind).copied().unwrap_or(0) >= cap)
        {
            Explained::CutByKindCap { score }
        } else {
            *per_kind.entry(kind).or_default() += 1;
            chosen.push((i, Some(score)));
            continue;
        };
        if let Some(explain) = explain.as_deref_mut() {
            explain[i] = why;
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::policy::Action;
    use serde_json::json;

    fn bundle(actions: &[(&str, ActionKind)]) -> Bundle {
        let actions = actions
            .iter()
            .map(|(id, kind)| Action {
                id: (*id).into(),
                kind: *kind,
                value: 0.0,
                cost: None,
                tags: vec![],
                payload: Value::Null,
                eligibility: None,
                contact: None,
            })
            .collect();
        Bundle::new(actions, &[]).unwrap()
    }

    fn offers(ids: &[&str]) -> Bundle {
        bundle(
            &ids.iter()
                .map(|id| (*id, ActionKind::Offer))
                .collect::<Vec<_>>(),
        )
    }

    fn scored(pairs: &[(&str, f64)]) -> Vec<Scored> {
        pairs
            .iter()
            .map(|(id, score)| Scored {
                id: (*id).into(),
                score: *score,
            })
            .collect()
    }

    #[test]
    fn screening_stops_at_the_deadline_but_for_the_fallback() {
        // 640 actions, each scanning a 1,000-item array; the last is the
        // fallback. With no time at all, only the fallback is screened.
        let scan = json!({"scores": {"$elemMatch": {"$gt": 1000}}});
        let mut actions: Vec<Action> = (0..640)
            .map(|i| Action {
                id: format!("a{i}"),
                kind: ActionKind::Offer,
                value: 0.0,
                cost: None,
                tags: vec![],
                payload: Value::Null,
                eligibility: Some(scan.clone()),
                contact: None,
            })
            .collect();
        actions[639].eligibility = None;
        let b = Bundle::new(actions, &["a639".to_owned()]).unwrap();
        let attributes = json!({"scores": (0..1000).collect::<Vec<_>>()});
        let (tenant, groups) = (Name::parse("t").unwrap(), SavedGroups::default());
        let screen_within = |deadline: std::time::Duration| {
            let limits = Limits {
                deadline,
                ..Limits::default()
            };
            let subject = Subject {
                tenant: &tenant,
                groups: &groups,
                profile: None,
                history_unavailable: None,
                now_ms: 0,
                limits: &limits,
            };
            screen(&b, &subject, &attributes, false)
        };
        let rushed = screen_within(std::time::Duration::ZERO);
        assert!(rushed.out_of_time);
        assert_eq!(rushed.allowed.iter().filter(|a| **a).count(), 1);
        assert!(rushed.allowed[639], "the fallback is still screened");
        let calm = screen_within(std::time::Duration::from_secs(10));
        assert!(!calm.out_of_time);
        assert_eq!(calm.allowed.iter().filter(|a| **a).count(), 1);
    }

    #[test]
    fn ranks_by_score_keeping_ties_in_policy_order() {
        let b = offers(&["a", "b", "c", "d"]);
        let ranked = rank(
            &b,
            &[true; 4],
            scored(&[("c", 1.0), ("a", 2.0), ("d", 1.0), ("b", 0.5)]),
        )
        .unwrap();
        assert_eq!(ranked, [(0, 2.0), (2, 1.0), (3, 1.0), (1, 0.5)]);
    }

    #[test]
    fn refuses_unknown_screened_duplicate_and_nan() {
        let b = offers(&["a", "b"]);
        assert_eq!(
            rank(&b, &[true, true], scored(&[("x", 1.0)])),
            Err(PolicyError::UnknownAction("x".into()))
        );
        assert_eq!(
            rank(&b, &[true, false], scored(&[("b", 1.0)])),
            Err(PolicyError::UnknownAction("b".into()))
        );
        assert!(matches!(
            rank(&b, &[true, true], scored(&[("a", 1.0), ("a", 2.0)])),
            Err(PolicyError::BadOutput(_))
        ));
        assert!(matches!(
            rank(&b, &[true, true], scored(&[("a", f64::NAN)])),
            Err(PolicyError::BadOutput(_))
        ));
    }

    #[test]
    fn arbitration_applies_kind_caps_then_limit() {
        let b = bundle(&[
            ("o1", ActionKind::Offer),
            ("o2", ActionKind::Offer),
            ("m1", ActionKind::Message),
            ("s1", ActionKind::Service),
        ]);
        let ranked = [(0, 4.0), (1, 3.0), (2, 2.0), (3, 1.0)];
        let caps = BTreeMap::from([(ActionKind::Offer, 1)]);
        let mut explain = vec![Explained::NotScored; 4];
        let chosen = arbitrate(&b, &ranked, 2, &caps, Some(&mut explain));
        assert_eq!(chosen, [(0, Some(4.0)), (2, Some(2.0))]);
        assert!(matches!(explain[1], Explained::CutByKindCap { .. }));
        assert!(matches!(explain[3], Explained::CutByLimit { .. }));
    }

    #[test]
    fn checks_limit_and_customer() {
        let req = |customer: &str, limit| -> DecideRequest {
            serde_json::from_value(json!({"point": "p", "customer_id": customer, "limit": limit}))
                .unwrap()
        };
        assert_eq!(req("c", None).check(), Ok(DEFAULT_LIMIT));
        assert_eq!(req("c", Some(0)).check(), Err(RequestError::Limit));
        assert_eq!(req("c", Some(101)).check(), Err(RequestError::Limit));
        assert!(matches!(
            req("", None).check(),
            Err(RequestError::CustomerId(_))
        ));
        assert!(matches!(
            req("c\u{0}1", None).check(),
            Err(RequestError::CustomerId(TextError::Control { .. }))
        ));
    }
}
