//! The typed output of a decision and the arbitration helper.

use serde::{Deserialize, Serialize};

/// One scored action in a policy's answer.
///
/// The host orders the answer by `score`, highest first (ties keep the order
/// the policy returned), then keeps the caller's `limit`. Leave out an action
/// to never show it; its id must be one of the candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    /// The id of one of the candidates.
    pub id: String,
    /// Higher is better. Must be finite.
    pub score: f64,
}

impl Ranked {
    /// A scored action.
    pub fn new(id: impl Into<String>, score: f64) -> Self {
        Self {
            id: id.into(),
            score,
        }
    }
}

/// Pega-style arbitration priority: `propensity × value × weight`.
///
/// `propensity` is the chance the customer accepts (0–1), `value` what the
/// business gains when they do (often value minus cost to serve), `weight` a
/// business lever (how much this kind of action matters right now). The
/// product is computed left to right, so a script that writes
/// `p * v * w` gets bit-identical results.
pub fn priority(propensity: f64, value: f64, weight: f64) -> f64 {
    propensity * value * weight
}

#[cfg(test)]
mod tests {
    use super::{Ranked, priority};

    #[test]
    fn priority_is_the_product() {
        assert_eq!(priority(0.5, 20.0, 2.0), 20.0);
        assert_eq!(priority(0.0, 20.0, 2.0), 0.0);
    }

    #[test]
    fn ranked_new_takes_any_string() {
        assert_eq!(Ranked::new("a", 1.0), Ranked::new(String::from("a"), 1.0));
    }
}
