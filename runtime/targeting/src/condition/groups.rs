//! Membership sets: the lists behind `$in`/`$nin`/`$ini`/`$nini` and the
//! saved groups behind `$inGroup`/`$notInGroup`, hashed for O(1) lookups.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::js;

/// A JSON scalar as JS `===` sees it. Arrays and objects have no key: in JS
/// they are only `===` to themselves, so they never match a list member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ScalarKey {
    Null,
    Bool(bool),
    /// The bits of the double, with `-0` folded into `0`.
    Number(u64),
    String(String),
}

impl ScalarKey {
    /// The key of `value`, lowercasing strings when `case_insensitive`.
    fn of(value: &Value, case_insensitive: bool) -> Option<Self> {
        match value {
            Value::Null => Some(Self::Null),
            Value::Bool(b) => Some(Self::Bool(*b)),
            Value::Number(n) => {
                let n = js::number(n);
                Some(Self::Number(if n == 0.0 { 0 } else { n.to_bits() }))
            }
            Value::String(s) if case_insensitive => Some(Self::String(s.to_lowercase())),
            Value::String(s) => Some(Self::String(s.clone())),
            Value::Array(_) | Value::Object(_) => None,
        }
    }
}

/// A set of scalars tested the way the JS SDK's `isIn` tests a list.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScalarSet {
    keys: HashSet<ScalarKey>,
}

impl ScalarSet {
    /// The set of `members` (arrays and objects among them can never match).
    pub(crate) fn new<'a>(
        members: impl IntoIterator<Item = &'a Value>,
        case_insensitive: bool,
    ) -> Self {
        let keys = members
            .into_iter()
            .filter_map(|member| ScalarKey::of(member, case_insensitive))
            .collect();
        Self { keys }
    }

    /// JS `isIn`: an array matches when any element is a member (set
    /// intersection), anything else when it is a member itself.
    pub(crate) fn matches(&self, actual: &Value, case_insensitive: bool) -> bool {
        let member = |value: &Value| {
            ScalarKey::of(value, case_insensitive).is_some_and(|key| self.keys.contains(&key))
        };
        match actual {
            Value::Array(items) => items.iter().any(member),
            other => member(other),
        }
    }
}

/// Saved groups: named lists of ids that `$inGroup` / `$notInGroup` refer
/// to, supplied at evaluation time so groups can change without
/// recompiling conditions.
///
/// Deserializes from a JSON object of arrays, `{"group_id": [1, "2"]}`.
/// Members are compared with JS `===`: `"2"` and `2` are different members.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "HashMap<String, Vec<Value>>")]
pub struct SavedGroups {
    groups: HashMap<String, ScalarSet>,
}

impl SavedGroups {
    /// No groups; `$inGroup` fails and `$notInGroup` passes for every id.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces group `id`.
    pub fn insert<'a>(
        &mut self,
        id: impl Into<String>,
        members: impl IntoIterator<Item = &'a Value>,
    ) {
        self.groups
            .insert(id.into(), ScalarSet::new(members, false));
    }

    /// Whether group `id` is defined.
    #[must_use]
    pub fn contains_group(&self, id: &str) -> bool {
        self.groups.contains_key(id)
    }

    /// How many groups are defined.
    #[must_use]
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group is defined.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The members of group `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&ScalarSet> {
        self.groups.get(id)
    }
}

impl From<HashMap<String, Vec<Value>>> for SavedGroups {
    fn from(groups: HashMap<String, Vec<Value>>) -> Self {
        groups.into_iter().collect()
    }
}

impl FromIterator<(String, Vec<Value>)> for SavedGroups {
    fn from_iter<I: IntoIterator<Item = (String, Vec<Value>)>>(iter: I) -> Self {
        let groups = iter
            .into_iter()
            .map(|(id, members)| (id, ScalarSet::new(&members, false)))
            .collect();
        Self { groups }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_compare_strictly() {
        let set = ScalarSet::new(&[json!(1), json!("2"), json!(null)], false);
        assert!(set.matches(&json!(1.0), false));
        assert!(set.matches(&json!("2"), false));
        assert!(!set.matches(&json!(2), false));
        assert!(!set.matches(&json!("1"), false));
        assert!(set.matches(&json!(null), false));
    }

    #[test]
    fn arrays_intersect_and_never_match_as_members() {
        let set = ScalarSet::new(&[json!("a"), json!(["b"])], false);
        assert!(set.matches(&json!(["x", "a"]), false));
        assert!(!set.matches(&json!(["b"]), false));
        assert!(!set.matches(&json!([["b"]]), false));
    }

    #[test]
    fn negative_zero_is_zero() {
        let set = ScalarSet::new(&[json!(-0.0)], false);
        assert!(set.matches(&json!(0), false));
    }

    #[test]
    fn case_insensitive_sets_fold_both_sides() {
        let set = ScalarSet::new(&[json!("US")], true);
        assert!(set.matches(&json!("us"), true));
        assert!(!set.matches(&json!(1), true));
    }

    #[test]
    fn saved_groups_deserialize_from_json() {
        let groups: SavedGroups = serde_json::from_value(json!({"g": [1, "2"]})).unwrap();
        assert!(groups.contains_group("g"));
        assert_eq!(groups.len(), 1);
        assert!(groups.get("g").unwrap().matches(&json!("2"), false));
    }
}
