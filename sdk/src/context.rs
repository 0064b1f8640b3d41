//! The typed input of a decision: who the customer is, where they are, and
//! which actions the policy may rank.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Everything the host knows at the moment of a decision: the input document
/// of ABI v1, deserialized.
///
/// Only `customer_id` is required in the JSON; every other field falls back to
/// empty (`None`, `{}`, `[]` or `0`), whether absent or `null`. Unknown fields
/// are ignored, so a policy built against this SDK keeps working when the
/// host adds fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// The customer the decision is for.
    pub customer_id: String,
    /// The customer's life-cycle stage (`consideration`, `at-risk`, …), if known.
    #[serde(default)]
    pub stage: Option<String>,
    /// The channel asking (`web`, `kiosk`, `call-center`, …), if given.
    #[serde(default)]
    pub channel: Option<String>,
    /// The customer's profile attributes, overlaid by the request's.
    #[serde(default, deserialize_with = "nullable")]
    pub attributes: Map<String, Value>,
    /// What is happening right now: the caller's reason, the basket, the page.
    #[serde(default, deserialize_with = "nullable")]
    pub context: Map<String, Value>,
    /// The actions this policy may return, already filtered by eligibility and
    /// contact rules. Returning any other id is a policy error.
    #[serde(default, deserialize_with = "nullable")]
    pub candidates: Vec<Candidate>,
    /// Contact history per action id: how often and when each was shown.
    #[serde(default, deserialize_with = "nullable")]
    pub history: BTreeMap<String, History>,
    /// The decision time in milliseconds since the Unix epoch. Policies have no
    /// clock of their own; use this.
    #[serde(default, deserialize_with = "nullable")]
    pub now_ms: u64,
}

/// One action from the catalog that the policy may rank.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Candidate {
    /// The action id, unique within the catalog.
    pub id: String,
    /// `offer`, `message` or `service`.
    pub kind: String,
    /// The business value of the action when it succeeds.
    #[serde(deserialize_with = "nullable")]
    pub value: f64,
    /// What it costs to serve the action, if the catalog says.
    pub cost: Option<f64>,
    /// Free-form tags the catalog gives the action.
    #[serde(deserialize_with = "nullable")]
    pub tags: Vec<String>,
}

/// How often and when one action was shown to this customer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    /// How many times the action was shown.
    #[serde(deserialize_with = "nullable")]
    pub impressions: u32,
    /// When it was last shown, in milliseconds since the Unix epoch.
    pub last_shown_ms: Option<u64>,
}

/// Reads `null` as the type's default, like an absent field.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl Context {
    /// The raw attribute `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }

    /// The attribute `key` as a number; integers and floats both count,
    /// anything else (strings included) is `None`.
    pub fn attr_f64(&self, key: &str) -> Option<f64> {
        self.attr(key).and_then(Value::as_f64)
    }

    /// The attribute `key` as a string, if it is one.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(Value::as_str)
    }

    /// The attribute `key` as a boolean, if it is one.
    pub fn attr_bool(&self, key: &str) -> Option<bool> {
        self.attr(key).and_then(Value::as_bool)
    }

    /// The attribute `key` deserialized as `T`; `None` if absent or of
    /// another shape.
    pub fn attr_as<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.attr(key).and_then(|v| T::deserialize(v).ok())
    }

    /// The raw context value `key`, if present.
    pub fn context_value(&self, key: &str) -> Option<&Value> {
        self.context.get(key)
    }

    /// The context value `key` as a number (integer or float).
    pub fn context_f64(&self, key: &str) -> Option<f64> {
        self.context_value(key).and_then(Value::as_f64)
    }

    /// The context value `key` as a string, if it is one.
    pub fn context_str(&self, key: &str) -> Option<&str> {
        self.context_value(key).and_then(Value::as_str)
    }

    /// The context value `key` as a boolean, if it is one.
    pub fn context_bool(&self, key: &str) -> Option<bool> {
        self.context_value(key).and_then(Value::as_bool)
    }

    /// The context value `key` deserialized as `T` (e.g. a basket as
    /// `Vec<Line>`); `None` if absent or of another shape.
    pub fn context_as<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.context_value(key).and_then(|v| T::deserialize(v).ok())
    }

    /// Whether the customer is in life-cycle stage `stage`.
    pub fn in_stage(&self, stage: &str) -> bool {
        self.stage.as_deref() == Some(stage)
    }

    /// Whether the decision is asked for on `channel`.
    pub fn on_channel(&self, channel: &str) -> bool {
        self.channel.as_deref() == Some(channel)
    }

    /// How many times action `id` was shown to this customer (0 if never).
    pub fn impressions(&self, id: &str) -> u32 {
        self.history.get(id).map_or(0, |h| h.impressions)
    }

    /// Milliseconds since action `id` was last shown, if it ever was.
    pub fn ms_since_shown(&self, id: &str) -> Option<u64> {
        let last = self.history.get(id)?.last_shown_ms?;
        Some(self.now_ms.saturating_sub(last))
    }
}

impl Candidate {
    /// Whether the catalog tagged this action with `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The cost to serve, or 0 when the catalog gives none.
    pub fn cost_or_zero(&self) -> f64 {
        self.cost.unwrap_or(0.0)
    }

    /// Value minus cost to serve: what the business keeps when it succeeds.
    pub fn margin(&self) -> f64 {
        self.value - self.cost_or_zero()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{Candidate, Context};
    use serde_json::json;

    fn ctx(doc: serde_json::Value) -> Context {
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn only_customer_id_is_needed() {
        let c = ctx(json!({"customer_id": "c-1"}));
        assert_eq!(c.customer_id, "c-1");
        assert_eq!(c.stage, None);
        assert!(c.candidates.is_empty());
        assert_eq!(c.now_ms, 0);
    }

    #[test]
    fn nulls_and_unknown_fields_are_accepted() {
        let c = ctx(
            json!({"customer_id": "c", "stage": null, "channel": null, "extra": 1,
            "candidates": [{"id": "a", "kind": "offer", "value": 2, "cost": null}]}),
        );
        assert_eq!(c.stage, None);
        assert_eq!(c.candidates[0].value, 2.0);
        assert_eq!(c.candidates[0].cost, None);
        assert!(c.candidates[0].tags.is_empty());
    }

    #[test]
    fn null_reads_as_empty() {
        let c = ctx(
            json!({"customer_id": "c", "attributes": null, "context": null,
            "candidates": [{"id": "a", "kind": "offer", "value": null, "tags": null}],
            "history": {"a": {"impressions": null}}, "now_ms": null}),
        );
        assert!(c.attributes.is_empty() && c.context.is_empty());
        assert_eq!(c.candidates[0].value, 0.0);
        assert!(c.candidates[0].tags.is_empty());
        assert_eq!(c.impressions("a"), 0);
        assert_eq!(c.now_ms, 0);
        assert!(serde_json::from_value::<Context>(json!({"stage": "x"})).is_err());
    }

    #[test]
    fn typed_getters_accept_ints_and_floats_and_nothing_else() {
        let c = ctx(json!({"customer_id": "c",
            "attributes": {"n": 14, "f": 2.5, "s": "14", "b": true, "l": [1, 2]},
            "context": {"reason": "price", "n": 3}}));
        assert_eq!(c.attr_f64("n"), Some(14.0));
        assert_eq!(c.attr_f64("f"), Some(2.5));
        assert_eq!(c.attr_f64("s"), None);
        assert_eq!(c.attr_str("s"), Some("14"));
        assert_eq!(c.attr_bool("b"), Some(true));
        assert_eq!(c.attr_as::<Vec<u8>>("l"), Some(vec![1, 2]));
        assert_eq!(c.attr_as::<Vec<u8>>("s"), None);
        assert_eq!(c.context_str("reason"), Some("price"));
        assert_eq!(c.context_f64("n"), Some(3.0));
        assert_eq!(c.context_f64("missing"), None);
    }

    #[test]
    fn history_helpers() {
        let c = ctx(json!({"customer_id": "c", "now_ms": 5_000,
            "history": {"a": {"impressions": 2, "last_shown_ms": 1_000}, "b": {"impressions": 1}}}));
        assert_eq!(c.impressions("a"), 2);
        assert_eq!(c.impressions("zzz"), 0);
        assert_eq!(c.ms_since_shown("a"), Some(4_000));
        assert_eq!(c.ms_since_shown("b"), None);
    }

    #[test]
    fn candidate_helpers() {
        let c = Candidate {
            id: "a".into(),
            kind: "offer".into(),
            value: 20.0,
            cost: Some(5.0),
            tags: vec!["price".into()],
        };
        assert!(c.has_tag("price"));
        assert!(!c.has_tag("service"));
        assert_eq!(c.margin(), 15.0);
        assert_eq!(Candidate { cost: None, ..c }.margin(), 20.0);
    }
}
