//! Policy bundles: the catalog of actions a policy ranks and its fallback.
//!
//! A [`Bundle`] is built only through [`Bundle::new`], which checks the
//! catalog, so the pipeline can index it without further checks.

use std::collections::HashMap;

use moment_targeting::Condition;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::contact::ContactRule;
use super::text::{TextError, check_id};

/// Most actions one catalog may hold.
pub const MAX_CATALOG_LEN: usize = 10_000;
/// Longest action id accepted, in bytes.
pub const MAX_ACTION_ID_LEN: usize = 128;

/// Which engine runs a policy's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// A Rhai script defining `fn decide(ctx)`.
    Rhai,
    /// A WebAssembly module following ABI v1.
    Wasm,
}

impl EngineKind {
    /// The engine's name, as in JSON, metrics labels and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Rhai => "rhai",
            EngineKind::Wasm => "wasm",
        }
    }

    /// Parses the stored name of an engine.
    pub fn parse(s: &str) -> Option<Self> {
        [EngineKind::Rhai, EngineKind::Wasm]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// What an action is, for the caller deciding how to render it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// A commercial offer.
    Offer,
    /// A message with no commercial terms.
    Message,
    /// A service action (fix, explain, escalate).
    Service,
}

impl ActionKind {
    /// The kind's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Offer => "offer",
            ActionKind::Message => "message",
            ActionKind::Service => "service",
        }
    }
}

/// One catalog entry, as a tenant uploads it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Unique within the catalog; what policies return and outcomes name.
    pub id: String,
    /// Offer, message or service action.
    pub kind: ActionKind,
    /// Business value of the action being taken up.
    #[serde(default)]
    pub value: f64,
    /// Cost to serve, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// Free-form tags a policy may use.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What the caller renders (any JSON); returned as is.
    #[serde(default)]
    pub payload: Value,
    /// Condition on the customer's attributes (GrowthBook/MongoDB syntax);
    /// the action is a candidate only when it matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub eligibility: Option<Value>,
    /// Caps, cooldowns and suppression from the contact history.
    #[serde(
        default,
        deserialize_with = "super::objects::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub contact: Option<ContactRule>,
}

/// The part of an [`Action`] a policy sees: everything but the payload.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    /// This candidate as JSON, serialized once when the bundle is built, so
    /// a WASM policy's input is assembled from it rather than re-encoded on
    /// every decision.
    #[serde(skip)]
    json: Box<RawValue>,
    /// The action's id.
    pub id: String,
    /// The action's kind.
    pub kind: ActionKind,
    /// The action's business value.
    pub value: f64,
    /// The action's cost to serve, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// The action's tags.
    pub tags: Vec<String>,
}

impl Candidate {
    fn new(action: &Action) -> Self {
        let mut candidate = Candidate {
            json: Box::default(),
            id: action.id.clone(),
            kind: action.kind,
            value: action.value,
            cost: action.cost,
            tags: action.tags.clone(),
        };
        // Strings, finite numbers (checked by the caller) and an enum:
        // serializing cannot fail.
        candidate.json = serde_json::value::to_raw_value(&candidate).unwrap_or_default();
        candidate
    }

    /// This candidate as the JSON object a policy receives.
    pub fn json(&self) -> &RawValue {
        &self.json
    }
}

/// Why a catalog or fallback list was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BundleError {
    /// No actions at all.
    #[error("catalog must have at least one action")]
    EmptyCatalog,
    /// More actions than [`MAX_CATALOG_LEN`].
    #[error("catalog has {0} actions; at most {MAX_CATALOG_LEN} are allowed")]
    TooManyActions(usize),
    /// An id is empty, too long or not text.
    #[error("catalog[{index}]: {error}")]
    BadActionId {
        /// Position of the action.
        index: usize,
        /// What is wrong with its id.
        error: TextError,
    },
    /// Two actions share an id.
    #[error("catalog[{index}].id {id:?} is used by an earlier action; action ids must be unique")]
    DuplicateAction {
        /// Position of the second occurrence.
        index: usize,
        /// The repeated id.
        id: String,
    },
    /// A value or cost is NaN or infinite.
    #[error("catalog[{0}] has a value or cost that is not a finite number")]
    NonFiniteNumber(usize),
    /// An eligibility condition does not parse.
    #[error("catalog[{index}].eligibility is invalid: {error}")]
    Eligibility {
        /// Position of the action.
        index: usize,
        /// What is wrong with the condition.
        error: moment_targeting::ConditionError,
    },
    /// A contact rule makes no sense.
    #[error("catalog[{index}].contact is invalid: {error}")]
    Contact {
        /// Position of the action.
        index: usize,
        /// What is wrong with the rule.
        error: super::contact::ContactRuleError,
    },
    /// A fallback id is listed twice.
    #[error("fallback lists {0:?} twice")]
    DuplicateFallback(String),
    /// A fallback id names no catalog action.
    #[error("fallback names {0:?}, which is not in the catalog")]
    UnknownFallback(String),
}

/// A checked catalog with its fallback, indexed for the decide path.
#[derive(Clone, Debug)]
pub struct Bundle {
    actions: Vec<Action>,
    candidates: Vec<Candidate>,
    eligibility: Vec<Option<Condition>>,
    index: HashMap<String, usize>,
    fallback: Vec<usize>,
}

/// The stored form of a bundle: exactly what the tenant uploaded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredBundle {
    /// The catalog.
    pub catalog: Vec<Action>,
    /// Fallback action ids.
    pub fallback: Vec<String>,
}

impl Bundle {
    /// Checks a catalog and fallback list and indexes them.
    pub fn new(catalog: Vec<Action>, fallback: &[String]) -> Result<Self, BundleError> {
        if catalog.is_empty() {
            return Err(BundleError::EmptyCatalog);
        }
        if catalog.len() > MAX_CATALOG_LEN {
            return Err(BundleError::TooManyActions(catalog.len()));
        }
        let mut index = HashMap::with_capacity(catalog.len());
        for (i, action) in catalog.iter().enumerate() {
            check_id("id", &action.id, MAX_ACTION_ID_LEN)
                .map_err(|error| BundleError::BadActionId { index: i, error })?;
            if !action.value.is_finite() || action.cost.is_some_and(|c| !c.is_finite()) {
                return Err(BundleError::NonFiniteNumber(i));
            }
            if let Some(rule) = &action.contact {
                rule.check()
                    .map_err(|error| BundleError::Contact { index: i, error })?;
            }
            if index.insert(action.id.clone(), i).is_some() {
                return Err(BundleError::DuplicateAction {
                    index: i,
                    id: action.id.clone(),
                });
            }
        }
        let mut positions = Vec::with_capacity(fallback.len());
        for id in fallback {
            let i = index
                .get(id)
                .copied()
                .ok_or_else(|| BundleError::UnknownFallback(id.clone()))?;
            if positions.contains(&i) {
                return Err(BundleError::DuplicateFallback(id.clone()));
            }
            positions.push(i);
        }
        let fallback = positions;
        let eligibility = catalog
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.eligibility
                    .as_ref()
                    .map(Condition::parse)
                    .transpose()
                    .map_err(|error| BundleError::Eligibility { index: i, error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let candidates = catalog.iter().map(Candidate::new).collect();
        Ok(Self {
            actions: catalog,
            candidates,
            eligibility,
            index,
            fallback,
        })
    }

    /// Rebuilds a bundle from its stored form.
    pub fn from_stored(stored: StoredBundle) -> Result<Self, BundleError> {
        Self::new(stored.catalog, &stored.fallback)
    }

    /// The stored form of this bundle.
    pub fn to_stored(&self) -> StoredBundle {
        StoredBundle {
            catalog: self.actions.clone(),
            fallback: self
                .fallback
                .iter()
                .map(|&i| self.actions[i].id.clone())
                .collect(),
        }
    }

    /// All actions, in catalog order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// What a policy sees of each action, in catalog order.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The compiled eligibility condition of the action at `i`, if it has one.
    pub fn eligibility(&self, i: usize) -> Option<&Condition> {
        self.eligibility.get(i).and_then(Option::as_ref)
    }

    /// Position of the action with this id.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Positions of the fallback actions, in the order the tenant listed them.
    pub fn fallback(&self) -> &[usize] {
        &self.fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: &str) -> Action {
        Action {
            id: id.into(),
            kind: ActionKind::Offer,
            value: 1.0,
            cost: None,
            tags: vec![],
            payload: Value::Null,
            eligibility: None,
            contact: None,
        }
    }

    #[test]
    fn checks_catalog() {
        assert_eq!(
            Bundle::new(vec![], &[]).err(),
            Some(BundleError::EmptyCatalog)
        );
        assert!(matches!(
            Bundle::new(vec![action("a"), action("a")], &[]),
            Err(BundleError::DuplicateAction { index: 1, .. })
        ));
        assert_eq!(
            Bundle::new(vec![action("a")], &["b".into()]).err(),
            Some(BundleError::UnknownFallback("b".into()))
        );
        let mut nan = action("a");
        nan.value = f64::NAN;
        assert_eq!(
            Bundle::new(vec![nan], &[]).err(),
            Some(BundleError::NonFiniteNumber(0))
        );
        assert_eq!(
            Bundle::new(vec![action("")], &[]).err(),
            Some(BundleError::BadActionId {
                index: 0,
                error: TextError::Empty { field: "id" }
            })
        );
    }

    #[test]
    fn indexes_and_round_trips() {
        let bundle = Bundle::new(vec![action("a"), action("b")], &["b".into()]).expect("valid");
        assert_eq!(bundle.position("b"), Some(1));
        assert_eq!(bundle.fallback(), [1]);
        assert_eq!(
            Bundle::new(vec![action("a")], &["a".into(), "a".into()]).err(),
            Some(BundleError::DuplicateFallback("a".into()))
        );
        let again = Bundle::from_stored(bundle.to_stored()).expect("valid");
        assert_eq!(again.actions(), bundle.actions());
    }
}
