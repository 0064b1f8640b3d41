//! The decide pipeline: build the policy's input, run it, arbitrate, answer.
//!
//! No HTTP here: the edge parses and authorises, then hands a checked
//! [`DecideRequest`] and the live [`LoadedPolicy`] to [`decide`].
//! **A broken policy never becomes an error**: [`decide`] always answers,
//! with the fallback actions when the policy fails.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::{Engines, PolicyError, PolicyInput, Scored};
use crate::model::Name;
use crate::model::policy::{ActionKind, Bundle};
use crate::registry::LoadedPolicy;
use crate::telemetry;

/// Largest `limit` a caller may ask for.
pub const MAX_LIMIT: usize = 100;
/// `limit` when the caller gives none.
pub const DEFAULT_LIMIT: usize = 3;
/// Longest customer id accepted, in bytes.
pub const MAX_CUSTOMER_ID_LEN: usize = 256;

/// Body of `POST /v1/decide`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// Decision point (policy name).
    pub point: String,
    /// The customer being decided for.
    pub customer_id: String,
    /// Life-cycle stage.
    #[serde(default)]
    pub stage: Option<String>,
    /// Channel asking (`web`, `kiosk`, `call-center` …).
    #[serde(default)]
    pub channel: Option<String>,
    /// Customer attributes known to the caller.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// Context of this moment (reason for the call, basket …).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
    /// How many actions to return (1–100, default 3).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Add an `explain` object saying what happened to every catalog action.
    #[serde(default)]
    pub explain: bool,
}

/// Why a decide request was refused before any policy ran.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    /// `customer_id` is empty or too long.
    #[error("customer_id must be 1 to {MAX_CUSTOMER_ID_LEN} bytes long")]
    CustomerId,
    /// `limit` is out of range.
    #[error("limit must be between 1 and {MAX_LIMIT}")]
    Limit,
}

impl DecideRequest {
    /// Checks the fields serde cannot, returning the effective limit.
    pub fn check(&self) -> Result<usize, RequestError> {
        if self.customer_id.is_empty() || self.customer_id.len() > MAX_CUSTOMER_ID_LEN {
            return Err(RequestError::CustomerId);
        }
        match self.limit.unwrap_or(DEFAULT_LIMIT) {
            n @ 1..=MAX_LIMIT => Ok(n),
            _ => Err(RequestError::Limit),
        }
    }
}

/// Body of a decide answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecideResponse {
    /// Id to report outcomes against.
    pub decision_id: String,
    /// The decision point asked.
    pub point: String,
    /// The policy version that decided.
    pub policy: PolicyRef,
    /// The experiment and variant, when the customer is in one.
    #[schema(value_type = Option<Object>)]
    pub experiment: Option<Value>,
    /// Ranked actions, best first.
    pub actions: Vec<DecidedAction>,
    /// True when the policy failed and these are its fallback actions.
    pub fallback: bool,
    /// Present when the request asked for `explain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<BTreeMap<String, Explained>>,
}

/// Which policy version decided.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyRef {
    /// Policy name.
    pub name: String,
    /// Version number.
    pub version: u32,
}

/// One action in a decide answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecidedAction {
    /// Action id.
    pub id: String,
    /// Offer, message or service action.
    pub kind: ActionKind,
    /// The policy's score; null for fallback actions.
    pub score: Option<f64>,
    /// What to render.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// What happened to one catalog action, for `explain`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Explained {
    /// Returned, at this 1-based rank.
    Returned {
        /// Position in the answer.
        rank: usize,
        /// The policy's score.
        score: f64,
    },
    /// Scored, but below the `limit` cut.
    CutByLimit {
        /// The policy's score.
        score: f64,
    },
    /// The policy did not score it.
    NotScored,
    /// The policy failed; the reason is given.
    PolicyFailed {
        /// Failure reason label.
        reason: String,
    },
}

/// Runs the live `policy` for a checked request. Never fails: a failing
/// policy yields its fallback actions.
pub fn decide(
    engines: &Engines,
    tenant: &Name,
    policy: &LoadedPolicy,
    request: &DecideRequest,
    limit: usize,
) -> DecideResponse {
    let mut attributes = request.attributes.clone();
    attributes.insert("customer_id".into(), request.customer_id.clone().into());
    if let Some(stage) = &request.stage {
        attributes.insert("stage".into(), stage.clone().into());
    }
    if let Some(channel) = &request.channel {
        attributes.insert("channel".into(), channel.clone().into());
    }
    let history = Map::new();
    let input = PolicyInput {
        customer_id: &request.customer_id,
        stage: request.stage.as_deref(),
        channel: request.channel.as_deref(),
        attributes: &attributes,
        context: &request.context,
        candidates: policy.bundle.candidates().iter().collect(),
        history: &history,
        now_ms: now_ms(),
    };

    let engine = policy.program.engine();
    let started = Instant::now();
    let outcome = engines
        .run(&policy.program, &input)
        .and_then(|scored| rank(&policy.bundle, scored));
    telemetry::policy_call(engine, started.elapsed());

    let (actions, fallback, explain) = match outcome {
        Ok(ranked) => {
            telemetry::decision(false);
            let explain = request
                .explain
                .then(|| explain_ranked(&policy.bundle, &ranked, limit));
            let actions = ranked
                .iter()
                .take(limit)
                .map(|&(i, score)| action(&policy.bundle, i, Some(score)))
                .collect();
            (actions, false, explain)
        }
        Err(err) => {
            telemetry::decision(true);
            telemetry::fallback(engine, err.reason());
            tracing::warn!(
                tenant = %tenant, policy = %policy.name, version = policy.version,
                engine = engine.as_str(), reason = err.reason(), error = %err,
                "policy failed; serving fallback"
            );
            let explain = request.explain.then(|| {
                let why = Explained::PolicyFailed {
                    reason: err.reason().to_owned(),
                };
                policy
                    .bundle
                    .actions()
                    .iter()
                    .map(|a| (a.id.clone(), why.clone()))
                    .collect()
            });
            let actions = policy
                .bundle
                .fallback()
                .take(limit)
                .map(|a| DecidedAction {
                    id: a.id.clone(),
                    kind: a.kind,
                    score: None,
                    payload: a.payload.clone(),
                })
                .collect();
            (actions, true, explain)
        }
    };

    DecideResponse {
        decision_id: uuid::Uuid::now_v7().to_string(),
        point: policy.name.to_string(),
        policy: PolicyRef {
            name: policy.name.to_string(),
            version: policy.version,
        },
        experiment: None,
        actions,
        fallback,
        explain,
    }
}

/// Checks a policy's output against the catalog and orders it: highest score
/// first, ties in the policy's order. Returns catalog positions and scores.
pub fn rank(bundle: &Bundle, scored: Vec<Scored>) -> Result<Vec<(usize, f64)>, PolicyError> {
    let mut seen = vec![false; bundle.actions().len()];
    let mut ranked = Vec::with_capacity(scored.len());
    for Scored { id, score } in scored {
        let Some(i) = bundle.position(&id) else {
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

fn action(bundle: &Bundle, i: usize, score: Option<f64>) -> DecidedAction {
    let a = &bundle.actions()[i];
    DecidedAction {
        id: a.id.clone(),
        kind: a.kind,
        score,
        payload: a.payload.clone(),
    }
}

fn explain_ranked(
    bundle: &Bundle,
    ranked: &[(usize, f64)],
    limit: usize,
) -> BTreeMap<String, Explained> {
    let mut out: BTreeMap<String, Explained> = bundle
        .actions()
        .iter()
        .map(|a| (a.id.clone(), Explained::NotScored))
        .collect();
    for (rank, &(i, score)) in ranked.iter().enumerate() {
        let why = if rank < limit {
            Explained::Returned {
                rank: rank + 1,
                score,
            }
        } else {
            Explained::CutByLimit { score }
        };
        out.insert(bundle.actions()[i].id.clone(), why);
    }
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::policy::Action;

    fn bundle(ids: &[&str]) -> Bundle {
        let actions = ids
            .iter()
            .map(|id| Action {
                id: (*id).into(),
                kind: ActionKind::Offer,
                value: 0.0,
                cost: None,
                tags: vec![],
                payload: Value::Null,
            })
            .collect();
        Bundle::new(actions, &[]).unwrap()
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
    fn ranks_by_score_keeping_ties_in_policy_order() {
        let b = bundle(&["a", "b", "c", "d"]);
        let ranked = rank(
            &b,
            scored(&[("c", 1.0), ("a", 2.0), ("d", 1.0), ("b", 0.5)]),
        )
        .unwrap();
        assert_eq!(ranked, [(0, 2.0), (2, 1.0), (3, 1.0), (1, 0.5)]);
    }

    #[test]
    fn refuses_unknown_duplicate_and_nan() {
        let b = bundle(&["a"]);
        assert_eq!(
            rank(&b, scored(&[("x", 1.0)])),
            Err(PolicyError::UnknownAction("x".into()))
        );
        assert!(matches!(
            rank(&b, scored(&[("a", 1.0), ("a", 2.0)])),
            Err(PolicyError::BadOutput(_))
        ));
        assert!(matches!(
            rank(&b, scored(&[("a", f64::NAN)])),
            Err(PolicyError::BadOutput(_))
        ));
    }

    #[test]
    fn checks_limit_and_customer() {
        let req = |customer: &str, limit| DecideRequest {
            point: "p".into(),
            customer_id: customer.into(),
            stage: None,
            channel: None,
            attributes: Map::new(),
            context: Map::new(),
            limit,
            explain: false,
        };
        assert_eq!(req("c", None).check(), Ok(DEFAULT_LIMIT));
        assert_eq!(req("c", Some(0)).check(), Err(RequestError::Limit));
        assert_eq!(req("c", Some(101)).check(), Err(RequestError::Limit));
        assert_eq!(req("", None).check(), Err(RequestError::CustomerId));
    }
}
