//! The compiled form of a condition: operators are enum variants, regexes
//! are compiled, paths are split and `$in` lists are hashed, so evaluating
//! does no parsing.

use std::cmp::Ordering;

use regex::Regex;
use serde_json::Value;

use super::groups::ScalarSet;
use super::js::Primitive;

/// Every clause must hold (the keys of one condition object).
#[derive(Debug, Clone, Default)]
pub(crate) struct Clauses(pub(crate) Vec<Clause>);

/// One key of a condition object.
#[derive(Debug, Clone)]
pub(crate) enum Clause {
    /// `$and`: every sub-condition holds.
    And(Vec<Clauses>),
    /// `$or`: some sub-condition holds, or there are none.
    Or(Vec<Clauses>),
    /// `$nor`: `$or` does not hold (so an empty `$nor` never holds).
    Nor(Vec<Clauses>),
    /// `$not`: the sub-condition does not hold.
    Not(Box<Clauses>),
    /// An attribute path and the test its value must pass.
    Field {
        /// Where the value is.
        path: Path,
        /// What it must satisfy.
        test: ValueTest,
    },
}

/// A dotted attribute path, split once.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    /// The path as written, for messages.
    pub(crate) raw: String,
    /// Its `.`-separated segments.
    pub(crate) segments: Vec<String>,
}

impl Path {
    /// Splits `raw` on dots.
    pub(crate) fn new(raw: &str) -> Self {
        Self {
            raw: raw.to_owned(),
            segments: raw.split('.').map(str::to_owned).collect(),
        }
    }
}

/// What a value is tested against (GrowthBook's `evalConditionValue`).
#[derive(Debug, Clone)]
pub(crate) enum ValueTest {
    /// A string: the value's JS string form equals it (case-insensitively
    /// when evaluated inside `$alli`).
    Text {
        /// The string as written.
        text: String,
        /// Its lowercase form.
        lowered: String,
    },
    /// A number: the value's JS number form equals it.
    Number(f64),
    /// A boolean: the value is not null and its truthiness equals it.
    Bool(bool),
    /// `null`: the value is null or missing.
    Null,
    /// An array or a non-operator object: structural equality.
    Literal(Value),
    /// An operator object: every operator holds.
    Operators(Vec<OperatorTest>),
}

/// One `$operator: argument` entry.
#[derive(Debug, Clone)]
pub(crate) struct OperatorTest {
    /// The operator key as written, for messages.
    pub(crate) name: String,
    /// The argument as written, for messages.
    pub(crate) argument: Value,
    /// The compiled operator.
    pub(crate) operator: Operator,
}

/// A compiled field operator.
#[derive(Debug, Clone)]
pub(crate) enum Operator {
    /// `$veq` … `$vlte`: compare padded version strings.
    Version {
        /// Which comparison.
        comparison: Comparison,
        /// The argument's padded form.
        padded: String,
    },
    /// `$eq`: JS `===`.
    Eq(Value),
    /// `$ne`: JS `!==`.
    Ne(Value),
    /// `$lt`, `$lte`, `$gt`, `$gte`: JS relational comparison.
    Relational {
        /// Which comparison.
        comparison: Comparison,
        /// The argument as a JS primitive.
        expected: Primitive<'static>,
    },
    /// `$exists`: whether the value is non-null.
    Exists(bool),
    /// `$in`, `$nin`, `$ini`, `$nini`.
    In {
        /// The list.
        set: ScalarSet,
        /// `$nin`/`$nini`.
        negated: bool,
        /// `$ini`/`$nini`.
        case_insensitive: bool,
    },
    /// `$inGroup`, `$notInGroup`.
    InGroup {
        /// The saved group id.
        group: String,
        /// `$notInGroup`.
        negated: bool,
    },
    /// `$not`: the nested test fails.
    Not(Box<ValueTest>),
    /// `$size`: the value is an array whose length passes the nested test.
    Size(Box<ValueTest>),
    /// `$elemMatch`: some non-null element of an array value passes.
    ElemMatch(ElemMatch),
    /// `$all`, `$alli`: every test is passed by some element.
    All {
        /// One test per listed item.
        tests: Vec<ValueTest>,
        /// `$alli`: string items compare case-insensitively.
        case_insensitive: bool,
    },
    /// `$regex`, `$regexi`: the value's string form matches somewhere.
    Regex(Regex),
    /// `$type`.
    Type(JsType),
    /// An operator GrowthBook evaluates to false (lenient parsing only).
    Never,
}

/// What `$elemMatch` tests each element with.
#[derive(Debug, Clone)]
pub(crate) enum ElemMatch {
    /// An operator object, applied to the element itself.
    Value(Box<ValueTest>),
    /// A condition, applied with the element as the document.
    Condition(Box<Clauses>),
}

/// A comparison between two ordered things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater.
    Gt,
    /// Greater or equal.
    Gte,
    /// Less.
    Lt,
    /// Less or equal.
    Lte,
}

impl Comparison {
    /// Whether the comparison holds for `ordering` (`None`: unordered, as
    /// with `NaN`, where only `Ne` holds).
    pub(crate) fn holds(self, ordering: Option<Ordering>) -> bool {
        match (self, ordering) {
            (Self::Ne, ordering) => ordering != Some(Ordering::Equal),
            (_, None) => false,
            (Self::Eq, Some(o)) => o == Ordering::Equal,
            (Self::Gt, Some(o)) => o == Ordering::Greater,
            (Self::Gte, Some(o)) => o != Ordering::Less,
            (Self::Lt, Some(o)) => o == Ordering::Less,
            (Self::Lte, Some(o)) => o != Ordering::Greater,
        }
    }
}

/// The JSON types `$type` distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsType {
    /// `"string"`.
    String,
    /// `"number"`.
    Number,
    /// `"boolean"`.
    Boolean,
    /// `"object"`.
    Object,
    /// `"array"`.
    Array,
    /// `"null"` (also what a missing attribute is).
    Null,
}

impl JsType {
    /// The type named `name`, if it is one of the six.
    pub(crate) fn named(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "object" => Self::Object,
            "array" => Self::Array,
            "null" => Self::Null,
            _ => return None,
        })
    }

    /// The type of `value`.
    pub(crate) fn of(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(_) => Self::Boolean,
            Value::Number(_) => Self::Number,
            Value::String(_) => Self::String,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
        }
    }
}
