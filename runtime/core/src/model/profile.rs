//! The single view of a customer: attributes merged from every channel, the
//! life-cycle stage, and the contact history that outcomes build.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::outcome::OutcomeType;

/// Longest customer id accepted, in bytes.
pub const MAX_CUSTOMER_ID_LEN: usize = 256;
/// Impressions older than this are dropped from the per-action window list
/// (the longest contact-rule period is a 30-day month).
pub const IMPRESSION_WINDOW_MS: u64 = 31 * 24 * 3600 * 1000;
/// Most impression timestamps kept per action.
pub const MAX_IMPRESSIONS_KEPT: usize = 1000;
/// Most attributes one profile keeps.
pub const MAX_ATTRIBUTES: usize = 256;
/// Largest a profile's attributes may be, in bytes of JSON.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// Why attributes were refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AttributesError {
    /// The merged profile would hold too many attributes.
    #[error(
        "the profile would have {0} attributes; at most {MAX_ATTRIBUTES} are allowed (a null value removes one)"
    )]
    TooMany(usize),
    /// The merged profile's attributes would be too large.
    #[error(
        "the profile's attributes would take {0} bytes of JSON; at most {MAX_ATTRIBUTES_BYTES} are allowed"
    )]
    TooLarge(usize),
}

/// A customer profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    /// Attributes merged from every channel.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: Map<String, Value>,
    /// Life-cycle stage, if known.
    pub stage: Option<String>,
    /// Contact history per action id.
    pub history: BTreeMap<String, ContactHistory>,
    /// Incremented by every stored write; caches keep the highest they saw.
    #[serde(default)]
    pub revision: u64,
}

/// What has happened between a customer and one action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactHistory {
    /// Impressions ever recorded.
    pub impressions: u32,
    /// Impression times within the last 31 days, oldest first (ms since the epoch).
    pub recent_impressions_ms: Vec<u64>,
    /// Time of the latest impression.
    pub last_shown_ms: Option<u64>,
    /// Count of every outcome type recorded.
    pub counts: BTreeMap<OutcomeType, u32>,
    /// Time of the latest outcome of each type.
    pub last_ms: BTreeMap<OutcomeType, u64>,
}

impl Profile {
    /// Merges `attributes` (a `null` value removes the key) and sets `stage`
    /// if given. Fails, leaving the profile part-merged (callers discard
    /// it), when the result is over [`MAX_ATTRIBUTES`] or [`MAX_ATTRIBUTES_BYTES`].
    pub fn merge(
        &mut self,
        attributes: Map<String, Value>,
        stage: Option<String>,
    ) -> Result<(), AttributesError> {
        for (key, value) in attributes {
            if value.is_null() {
                self.attributes.remove(&key);
            } else {
                self.attributes.insert(key, value);
            }
        }
        if stage.is_some() {
            self.stage = stage;
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(AttributesError::TooMany(self.attributes.len()));
        }
        let bytes = serde_json::to_vec(&self.attributes).map_or(usize::MAX, |b| b.len());
        if bytes > MAX_ATTRIBUTES_BYTES {
            return Err(AttributesError::TooLarge(bytes));
        }
        Ok(())
    }

    /// Records an impression of each of `actions` at `at_ms`.
    pub fn record_impressions(&mut self, actions: &[String], at_ms: u64) {
        for action in actions {
            self.record(action, OutcomeType::Impression, at_ms);
        }
    }

    /// Records an outcome of `kind` for `action` at `at_ms`.
    pub fn record(&mut self, action: &str, kind: OutcomeType, at_ms: u64) {
        let h = self.history.entry(action.to_owned()).or_default();
        *h.counts.entry(kind).or_default() += 1;
        let last = h.last_ms.entry(kind).or_default();
        *last = (*last).max(at_ms);
        if kind == OutcomeType::Impression {
            h.impressions += 1;
            h.last_shown_ms = Some(h.last_shown_ms.unwrap_or(0).max(at_ms));
            let cutoff = at_ms.saturating_sub(IMPRESSION_WINDOW_MS);
            h.recent_impressions_ms.retain(|&t| t >= cutoff);
            let at = h.recent_impressions_ms.partition_point(|&t| t <= at_ms);
            h.recent_impressions_ms.insert(at, at_ms);
            let excess = h
                .recent_impressions_ms
                .len()
                .saturating_sub(MAX_IMPRESSIONS_KEPT);
            h.recent_impressions_ms.drain(..excess);
        }
    }
}

impl ContactHistory {
    /// Impressions at or after `since_ms`.
    pub fn impressions_since(&self, since_ms: u64) -> usize {
        let first = self
            .recent_impressions_ms
            .partition_point(|&t| t < since_ms);
        self.recent_impressions_ms.len() - first
    }

    /// Time of the latest outcome of `kind`.
    pub fn last(&self, kind: OutcomeType) -> Option<u64> {
        self.last_ms.get(&kind).copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_sets_and_removes_attributes() {
        let mut p = Profile::default();
        let attrs = |v: Value| v.as_object().cloned().unwrap_or_default();
        p.merge(
            attrs(json!({"plan": "family", "tenure": 3})),
            Some("at-risk".into()),
        )
        .unwrap();
        p.merge(attrs(json!({"plan": null, "tenure": 4})), None)
            .unwrap();
        assert_eq!(Value::Object(p.attributes), json!({"tenure": 4}));
        assert_eq!(p.stage.as_deref(), Some("at-risk"));
    }

    #[test]
    fn merged_attributes_are_capped_in_count_and_size() {
        let mut p = Profile::default();
        let many: Map<String, Value> = (0..=MAX_ATTRIBUTES)
            .map(|i| (format!("a{i}"), json!(i)))
            .collect();
        assert_eq!(
            p.merge(many, None),
            Err(AttributesError::TooMany(MAX_ATTRIBUTES + 1))
        );
        let mut p = Profile::default();
        let big = Map::from_iter([("notes".to_owned(), json!("x".repeat(MAX_ATTRIBUTES_BYTES)))]);
        assert!(matches!(
            p.merge(big, None),
            Err(AttributesError::TooLarge(_))
        ));
    }

    #[test]
    fn impressions_keep_a_sorted_window() {
        let mut p = Profile::default();
        let day = 24 * 3600 * 1000;
        for at in [40 * day, 10 * day, 39 * day, 41 * day] {
            p.record("a", OutcomeType::Impression, at);
        }
        let h = &p.history["a"];
        assert_eq!(h.impressions, 4);
        assert_eq!(
            h.recent_impressions_ms,
            [10 * day, 39 * day, 40 * day, 41 * day]
        );
        assert_eq!(h.impressions_since(39 * day), 3);
        assert_eq!(h.last_shown_ms, Some(41 * day));
        p.record("a", OutcomeType::Reject, 42 * day);
        assert_eq!(p.history["a"].last(OutcomeType::Reject), Some(42 * day));
    }
}
