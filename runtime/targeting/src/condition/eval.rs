//! Evaluates a compiled condition against an attribute document, following
//! the GrowthBook JS SDK's `evalCondition` rule for rule.

use std::borrow::Cow;

use serde_json::Value;

use super::ast::{Clause, Clauses, ElemMatch, JsType, Operator, Path, ValueTest};
use super::groups::SavedGroups;
use super::js::{self, Primitive};
use super::version;

impl Clauses {
    /// Whether every clause holds for `document`.
    pub(crate) fn matches(&self, document: &Value, groups: &SavedGroups) -> bool {
        self.0.iter().all(|clause| clause.holds(document, groups))
    }
}

impl Clause {
    /// Whether this clause holds for `document`.
    pub(crate) fn holds(&self, document: &Value, groups: &SavedGroups) -> bool {
        match self {
            Clause::And(all) => all.iter().all(|c| c.matches(document, groups)),
            Clause::Or(any) => any_or_empty(any, document, groups),
            Clause::Nor(any) => !any_or_empty(any, document, groups),
            Clause::Not(inner) => !inner.matches(document, groups),
            Clause::Field { path, test } => test.holds(&path.lookup(document), groups, false),
        }
    }
}

/// GrowthBook's `evalOr`: true when empty, else when any condition holds.
fn any_or_empty(conditions: &[Clauses], document: &Value, groups: &SavedGroups) -> bool {
    conditions.is_empty() || conditions.iter().any(|c| c.matches(document, groups))
}

impl Path {
    /// The value at this path, or null when any step is missing.
    ///
    /// Like the JS SDK's `getPath` (`part in current`), a step can enter an
    /// object by key or an array by index, and `length` on an array is its
    /// length.
    pub(crate) fn lookup<'a>(&self, document: &'a Value) -> Cow<'a, Value> {
        let mut current = document;
        let last = self.segments.len().saturating_sub(1);
        for (index, segment) in self.segments.iter().enumerate() {
            let next = match current {
                Value::Object(map) => map.get(segment),
                Value::Array(items) => match array_index(segment) {
                    Some(i) => items.get(i),
                    None if segment == "length" && index == last => {
                        return Cow::Owned(Value::from(items.len()));
                    }
                    None => None,
                },
                _ => None,
            };
            match next {
                Some(value) => current = value,
                None => return Cow::Owned(Value::Null),
            }
        }
        Cow::Borrowed(current)
    }
}

/// A canonical array index (`"0"`, `"12"`, not `"01"` or `"+1"`).
fn array_index(segment: &str) -> Option<usize> {
    let canonical = segment == "0" || (!segment.starts_with('0') && !segment.is_empty());
    if canonical && segment.bytes().all(|b| b.is_ascii_digit()) {
        segment.parse().ok()
    } else {
        None
    }
}

impl ValueTest {
    /// Whether `value` passes (`case_insensitive` only affects string
    /// literals, as in `$alli`).
    pub(crate) fn holds(
        &self,
        value: &Value,
        groups: &SavedGroups,
        case_insensitive: bool,
    ) -> bool {
        match self {
            ValueTest::Text { text, lowered } => {
                let actual = js::to_string(value);
                if case_insensitive {
                    actual.to_lowercase() == *lowered
                } else {
                    actual == text.as_str()
                }
            }
            ValueTest::Number(n) => js::to_number(value) == *n,
            ValueTest::Bool(b) => !value.is_null() && js::truthy(value) == *b,
            ValueTest::Null => value.is_null(),
            ValueTest::Literal(literal) => js::json_equals(value, literal),
            ValueTest::Operators(operators) => operators
                .iter()
                .all(|test| test.operator.holds(value, groups)),
        }
    }
}

impl Operator {
    /// Whether `actual` satisfies this operator.
    pub(crate) fn holds(&self, actual: &Value, groups: &SavedGroups) -> bool {
        match self {
            Operator::Version { comparison, padded } => {
                let actual = version::padded_value(actual);
                comparison.holds(Some(js::cmp_utf16(&actual, padded)))
            }
            Operator::Eq(expected) => js::strict_equals(actual, expected),
            Operator::Ne(expected) => !js::strict_equals(actual, expected),
            Operator::Relational {
                comparison,
                expected,
            } => comparison.holds(js::relational(&Primitive::of(actual), expected)),
            Operator::Exists(wanted) => actual.is_null() != *wanted,
            Operator::In {
                set,
                negated,
                case_insensitive,
            } => set.matches(actual, *case_insensitive) != *negated,
            Operator::InGroup { group, negated } => {
                let member = groups
                    .get(group)
                    .is_some_and(|members| members.matches(actual, false));
                member != *negated
            }
            Operator::Not(test) => !test.holds(actual, groups, false),
            Operator::Size(test) => match actual {
                Value::Array(items) => test.holds(&Value::from(items.len()), groups, false),
                _ => false,
            },
            Operator::ElemMatch(element_test) => match actual {
                Value::Array(items) => items
                    .iter()
                    // Null elements are skipped. (GrowthBook SDKs before 1.x
                    // skipped every falsy element, so `0` never matched.)
                    .filter(|item| !item.is_null())
                    .any(|item| match element_test {
                        ElemMatch::Value(test) => test.holds(item, groups, false),
                        ElemMatch::Condition(condition) => condition.matches(item, groups),
                    }),
                _ => false,
            },
            Operator::All {
                tests,
                case_insensitive,
            } => match actual {
                Value::Array(items) => tests.iter().all(|test| {
                    items
                        .iter()
                        .any(|item| test.holds(item, groups, *case_insensitive))
                }),
                _ => false,
            },
            Operator::Regex(regex) => regex.is_match(&js::to_string(actual)),
            Operator::Type(expected) => JsType::of(actual) == *expected,
            Operator::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lookup_walks_objects_and_arrays() {
        let doc = json!({"a": {"b": [10, {"c": 3}]}, "n": null});
        assert_eq!(*Path::new("a.b.1.c").lookup(&doc), json!(3));
        assert_eq!(*Path::new("a.b.0").lookup(&doc), json!(10));
        assert_eq!(*Path::new("a.b.length").lookup(&doc), json!(2));
        assert_eq!(*Path::new("a.b.01").lookup(&doc), json!(null));
        assert_eq!(*Path::new("a.x.c").lookup(&doc), json!(null));
        assert_eq!(*Path::new("n.c").lookup(&doc), json!(null));
        assert_eq!(*Path::new("a.b.1.c.d").lookup(&doc), json!(null));
    }

    #[test]
    fn canonical_indexes_only() {
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("7"), Some(7));
        assert_eq!(array_index("07"), None);
        assert_eq!(array_index(""), None);
        assert_eq!(array_index("-1"), None);
        assert_eq!(array_index("99999999999999999999999"), None);
    }
}
