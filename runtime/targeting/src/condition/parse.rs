//! Compiles condition JSON into the tree in [`super::ast`], in strict or
//! lenient mode (see [`Mode`]).

use serde_json::{Map, Value};

use super::ast::{
    Clause, Clauses, Comparison, ElemMatch, JsType, Operator, OperatorTest, Path, ValueTest,
};
use super::error::ConditionError;
use super::groups::ScalarSet;
use super::js::{self, Primitive};
use super::{js_regex, version};

/// How deeply conditions may nest (objects inside `$and`, `$not`,
/// `$elemMatch`, …). Real targeting rules use a handful of levels; the limit
/// keeps evaluation's recursion bounded.
pub(crate) const MAX_DEPTH: usize = 32;

/// Every field operator, for rejecting them where a path is expected.
const FIELD_OPERATORS: &[&str] = &[
    "$veq",
    "$vne",
    "$vgt",
    "$vgte",
    "$vlt",
    "$vlte",
    "$eq",
    "$ne",
    "$lt",
    "$lte",
    "$gt",
    "$gte",
    "$exists",
    "$in",
    "$nin",
    "$ini",
    "$nini",
    "$inGroup",
    "$notInGroup",
    "$not",
    "$size",
    "$elemMatch",
    "$all",
    "$alli",
    "$regex",
    "$regexi",
    "$type",
];

/// The allowed `$type` names, for messages.
const TYPE_NAMES: &str =
    "one of \"string\", \"number\", \"boolean\", \"object\", \"array\", \"null\"";

/// How to treat conditions GrowthBook would accept but evaluate to a fixed
/// or surprising result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reject them with a [`ConditionError`].
    Strict,
    /// Compile them to exactly what the GrowthBook JS SDK evaluates them to
    /// (mostly an always-false operator). Malformed structure is still an
    /// error.
    Lenient,
}

/// Compiles a whole condition.
pub(crate) fn compile(condition: &Value, mode: Mode) -> Result<Clauses, ConditionError> {
    Compiler { mode }.clauses(condition, "", 0)
}

/// `at` as shown in messages.
fn shown(at: &str) -> String {
    if at.is_empty() {
        "the top level".to_owned()
    } else {
        at.to_owned()
    }
}

/// `at` extended by one step.
fn join(at: &str, step: &str) -> String {
    if at.is_empty() {
        step.to_owned()
    } else {
        format!("{at}/{step}")
    }
}

/// The JSON type of `value`, with an article, for messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// GrowthBook's `isOperatorObject`: non-empty, every key starts with `$`.
fn is_operator_object(map: &Map<String, Value>) -> bool {
    !map.is_empty() && map.keys().all(|key| key.starts_with('$'))
}

struct Compiler {
    mode: Mode,
}

impl Compiler {
    fn check_depth(depth: usize, at: &str) -> Result<(), ConditionError> {
        if depth > MAX_DEPTH {
            return Err(ConditionError::TooDeep {
                limit: MAX_DEPTH,
                at: shown(at),
            });
        }
        Ok(())
    }

    /// In strict mode `error`; in lenient mode the always-false operator.
    fn never(&self, error: ConditionError) -> Result<Operator, ConditionError> {
        match self.mode {
            Mode::Strict => Err(error),
            Mode::Lenient => Ok(Operator::Never),
        }
    }

    fn clauses(&self, value: &Value, at: &str, depth: usize) -> Result<Clauses, ConditionError> {
        Self::check_depth(depth, at)?;
        let Value::Object(map) = value else {
            return Err(ConditionError::NotAnObject {
                at: shown(at),
                found: type_name(value),
            });
        };
        map.iter()
            .map(|(key, argument)| self.clause(key, argument, at, depth))
            .collect::<Result<Vec<_>, _>>()
            .map(Clauses)
    }

    fn clause(
        &self,
        key: &str,
        argument: &Value,
        at: &str,
        depth: usize,
    ) -> Result<Clause, ConditionError> {
        let here = join(at, key);
        match key {
            "$and" => Ok(Clause::And(self.list(key, argument, at, depth)?)),
            "$or" => Ok(Clause::Or(self.list(key, argument, at, depth)?)),
            "$nor" => Ok(Clause::Nor(self.list(key, argument, at, depth)?)),
            "$not" => Ok(Clause::Not(Box::new(self.clauses(
                argument,
                &here,
                depth + 1,
            )?))),
            _ if self.mode == Mode::Strict && FIELD_OPERATORS.contains(&key) => {
                Err(ConditionError::MisplacedOperator {
                    operator: key.to_owned(),
                    at: shown(at),
                })
            }
            _ => Ok(Clause::Field {
                path: Path::new(key),
                test: self.value_test(argument, &here, depth + 1)?,
            }),
        }
    }

    /// The array of conditions `$and`, `$or` and `$nor` take.
    fn list(
        &self,
        key: &str,
        argument: &Value,
        at: &str,
        depth: usize,
    ) -> Result<Vec<Clauses>, ConditionError> {
        let Value::Array(items) = argument else {
            return Err(ConditionError::BadArgument {
                operator: key.to_owned(),
                at: shown(at),
                expected: "an array of conditions",
            });
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                self.clauses(item, &join(at, &format!("{key}[{index}]")), depth + 1)
            })
            .collect()
    }

    /// GrowthBook's `evalConditionValue` argument: a literal or an operator
    /// object.
    fn value_test(
        &self,
        value: &Value,
        at: &str,
        depth: usize,
    ) -> Result<ValueTest, ConditionError> {
        Self::check_depth(depth, at)?;
        Ok(match value {
            Value::String(text) => ValueTest::Text {
                text: text.clone(),
                lowered: text.to_lowercase(),
            },
            Value::Number(n) => ValueTest::Number(js::number(n)),
            Value::Bool(b) => ValueTest::Bool(*b),
            Value::Null => ValueTest::Null,
            Value::Array(_) => ValueTest::Literal(value.clone()),
            Value::Object(map) if is_operator_object(map) => ValueTest::Operators(
                map.iter()
                    .map(|(name, argument)| {
                        Ok(OperatorTest {
                            name: name.clone(),
                            argument: argument.clone(),
                            operator: self.operator(name, argument, at, depth)?,
                        })
                    })
                    .collect::<Result<_, ConditionError>>()?,
            ),
            Value::Object(map) => {
                if self.mode == Mode::Strict && map.keys().any(|key| key.starts_with('$')) {
                    return Err(ConditionError::MixedKeys { at: shown(at) });
                }
                ValueTest::Literal(value.clone())
            }
        })
    }

    fn operator(
        &self,
        name: &str,
        argument: &Value,
        at: &str,
        depth: usize,
    ) -> Result<Operator, ConditionError> {
        let bad = |expected: &'static str| ConditionError::BadArgument {
            operator: name.to_owned(),
            at: shown(at),
            expected,
        };
        let strict = self.mode == Mode::Strict;
        let nested = join(at, name);
        match name {
            "$veq" | "$vne" | "$vgt" | "$vgte" | "$vlt" | "$vlte" => {
                if strict && !matches!(argument, Value::String(_) | Value::Number(_)) {
                    return Err(bad("a version string"));
                }
                Ok(Operator::Version {
                    comparison: comparison(&name[2..]),
                    padded: version::padded_value(argument),
                })
            }
            "$eq" | "$ne" => {
                if strict && !is_scalar(argument) {
                    return Err(bad("a string, number, boolean or null"));
                }
                Ok(if name == "$eq" {
                    Operator::Eq(argument.clone())
                } else {
                    Operator::Ne(argument.clone())
                })
            }
            "$lt" | "$lte" | "$gt" | "$gte" => {
                if strict && !is_scalar(argument) {
                    return Err(bad("a string, number, boolean or null"));
                }
                Ok(Operator::Relational {
                    comparison: comparison(&name[1..]),
                    expected: Primitive::of(argument).into_owned(),
                })
            }
            "$exists" => match argument {
                Value::Bool(b) => Ok(Operator::Exists(*b)),
                _ if strict => Err(bad("true or false")),
                other => Ok(Operator::Exists(js::truthy(other))),
            },
            "$in" | "$nin" | "$ini" | "$nini" => match argument {
                Value::Array(items) if strict && !items.iter().all(is_scalar) => {
                    Err(bad("an array of strings, numbers, booleans or nulls"))
                }
                Value::Array(items) => {
                    let case_insensitive = name.ends_with('i');
                    Ok(Operator::In {
                        set: ScalarSet::new(items, case_insensitive),
                        negated: name.starts_with("$n"),
                        case_insensitive,
                    })
                }
                _ => self.never(bad("an array")),
            },
            "$inGroup" | "$notInGroup" => {
                let group = match argument {
                    Value::String(id) => id.clone(),
                    _ if strict => return Err(bad("a saved group id (a string)")),
                    other => js::to_string(other).into_owned(),
                };
                Ok(Operator::InGroup {
                    group,
                    negated: name == "$notInGroup",
                })
            }
            "$not" => Ok(Operator::Not(Box::new(self.value_test(
                argument,
                &nested,
                depth + 1,
            )?))),
            "$size" => Ok(Operator::Size(Box::new(self.value_test(
                argument,
                &nested,
                depth + 1,
            )?))),
            "$elemMatch" => match argument {
                Value::Object(map) if is_operator_object(map) => Ok(Operator::ElemMatch(
                    ElemMatch::Value(Box::new(self.value_test(argument, &nested, depth + 1)?)),
                )),
                _ => Ok(Operator::ElemMatch(ElemMatch::Condition(Box::new(
                    self.clauses(argument, &nested, depth + 1)?,
                )))),
            },
            "$all" | "$alli" => match argument {
                Value::Array(items) => Ok(Operator::All {
                    tests: items
                        .iter()
                        .enumerate()
                        .map(|(index, item)| {
                            let here = join(at, &format!("{name}[{index}]"));
                            self.value_test(item, &here, depth + 1)
                        })
                        .collect::<Result<_, _>>()?,
                    case_insensitive: name == "$alli",
                }),
                _ => self.never(bad("an array")),
            },
            "$regex" | "$regexi" => match argument {
                Value::String(pattern) => match js_regex::compile(pattern, name == "$regexi") {
                    Ok(regex) => Ok(Operator::Regex(regex)),
                    Err(reason) => self.never(ConditionError::InvalidRegex {
                        operator: name.to_owned(),
                        at: shown(at),
                        reason,
                    }),
                },
                _ => self.never(bad("a pattern string")),
            },
            "$type" => match argument.as_str().and_then(JsType::named) {
                Some(js_type) => Ok(Operator::Type(js_type)),
                None => self.never(bad(TYPE_NAMES)),
            },
            _ => self.never(ConditionError::UnknownOperator {
                operator: name.to_owned(),
                at: shown(at),
            }),
        }
    }
}

/// The comparison named by an operator suffix (`eq`, `gte`, …).
fn comparison(suffix: &str) -> Comparison {
    match suffix {
        "eq" => Comparison::Eq,
        "ne" => Comparison::Ne,
        "gt" => Comparison::Gt,
        "gte" => Comparison::Gte,
        "lt" => Comparison::Lt,
        _ => Comparison::Lte,
    }
}
