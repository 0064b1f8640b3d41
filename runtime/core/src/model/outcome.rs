//! Outcomes: what happened after a decision.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OutcomeType {
    /// The action was shown.
    Impression,
    /// The customer clicked it.
    Click,
    /// The customer accepted it.
    Accept,
    /// The customer turned it down.
    Reject,
    /// The customer converted (bought, renewed, stayed).
    Convert,
}

impl OutcomeType {
    /// The type's name, as in JSON and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeType::Impression => "impression",
            OutcomeType::Click => "click",
            OutcomeType::Accept => "accept",
            OutcomeType::Reject => "reject",
            OutcomeType::Convert => "convert",
        }
    }
}

impl fmt::Display for OutcomeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The dedup key of an outcome sent without an idempotency key, and of the
/// impressions a decision records itself: `decision/action/type`.
pub fn default_dedup_key(decision_id: &str, action_id: &str, kind: OutcomeType) -> String {
    format!("{decision_id}/{action_id}/{kind}")
}

/// Largest magnitude of an outcome's value: sums of billions of them stay
/// exact enough and never overflow. The stores clamp values to it when they
/// sum, so rows stored before it was enforced cannot overflow a result.
pub const MAX_VALUE: f64 = 1e12;

/// One outcome, checked against its decision, ready to store.
#[derive(Clone, Debug)]
pub struct OutcomeEvent {
    /// The decision it follows.
    pub decision_id: String,
    /// The customer of that decision.
    pub customer_id: String,
    /// The action concerned.
    pub action_id: String,
    /// What happened.
    pub kind: OutcomeType,
    /// Business value (e.g. revenue), if any.
    pub value: Option<f64>,
    /// Deduplication key: the client's idempotency key, or
    /// `decision/action/type` when none was given.
    pub dedup_key: String,
    /// When it was received, ms since the Unix epoch.
    pub at_ms: u64,
}
