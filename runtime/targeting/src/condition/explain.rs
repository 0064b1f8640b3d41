//! Short descriptions of why a condition did not match, for "explain".

use serde_json::Value;

use super::ast::{Clause, Clauses, ValueTest};
use super::groups::SavedGroups;
use super::js;

/// Arguments longer than this are cut, so a long `$in` list stays readable.
const MAX_ARGUMENT_CHARS: usize = 60;

impl Clauses {
    /// The first clause that does not hold, described; `None` if all hold.
    pub(crate) fn first_failure(&self, document: &Value, groups: &SavedGroups) -> Option<String> {
        self.0
            .iter()
            .find(|clause| !clause.holds(document, groups))
            .map(|clause| clause.describe_failure(document, groups))
    }
}

impl Clause {
    /// Why this clause (known not to hold) fails.
    fn describe_failure(&self, document: &Value, groups: &SavedGroups) -> String {
        match self {
            Clause::And(all) => all
                .iter()
                .enumerate()
                .find_map(|(index, condition)| {
                    condition
                        .first_failure(document, groups)
                        .map(|reason| format!("$and[{index}]: {reason}"))
                })
                .unwrap_or_else(|| "$and: a condition did not match".to_owned()),
            Clause::Or(_) => "$or: no alternative matched".to_owned(),
            Clause::Nor(any) => match any.iter().position(|c| c.matches(document, groups)) {
                Some(index) => format!("$nor: alternative {index} matched"),
                None => "$nor: the list is empty".to_owned(),
            },
            Clause::Not(_) => "$not: the negated condition matched".to_owned(),
            Clause::Field { path, test } => {
                let value = path.lookup(document);
                format!("{}: {}", path.raw, describe_test(test, &value, groups))
            }
        }
    }
}

/// The failing part of a value test: the first failing operator, or the
/// literal that was expected.
fn describe_test(test: &ValueTest, value: &Value, groups: &SavedGroups) -> String {
    match test {
        ValueTest::Text { text, .. } => render(&Value::from(text.as_str())),
        ValueTest::Number(n) => js::number_to_string(*n),
        ValueTest::Bool(b) => b.to_string(),
        ValueTest::Null => "null".to_owned(),
        ValueTest::Literal(literal) => render(literal),
        ValueTest::Operators(operators) => operators
            .iter()
            .find(|op| !op.operator.holds(value, groups))
            .map_or_else(String::new, |op| {
                format!("{} {}", op.name, render(&op.argument))
            }),
    }
}

/// Compact JSON, truncated to [`MAX_ARGUMENT_CHARS`].
fn render(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_ARGUMENT_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_ARGUMENT_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_arguments_are_truncated() {
        let long = Value::from("x".repeat(100));
        let rendered = render(&long);
        assert_eq!(rendered.chars().count(), MAX_ARGUMENT_CHARS + 1);
        assert!(rendered.ends_with('…'));
    }
}
