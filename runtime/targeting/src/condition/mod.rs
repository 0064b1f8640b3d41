//! GrowthBook's MongoDB-style condition language, compiled once and
//! evaluated many times.
//!
//! Semantics follow the GrowthBook JavaScript SDK (`mongrule.ts`, checked
//! against conformance spec 0.8.0 and against `@growthbook/growthbook` 1.8)
//! exactly, JavaScript coercions included: a missing attribute is `null`,
//! `{"n": {"$gt": 5}}` matches `{"n": "8"}`, `{"n": 0}` matches a missing
//! `n` (`null * 1 === 0`), `$regex` searches anywhere in the value's string
//! form, `$elemMatch` skips null elements, and an empty `$nor` never
//! matches. Saved groups are plain id lists (`$inGroup`, `$notInGroup`);
//! the newer `$savedGroup` references are not supported.
//!
//! # Strict and lenient parsing
//!
//! [`Condition::parse`] is **strict**: it is what uploads go through, and it
//! rejects anything GrowthBook would accept but silently evaluate to a fixed
//! or surprising result, so the author hears about it:
//!
//! | problem | [`parse`](Condition::parse) | [`parse_lenient`](Condition::parse_lenient) (GrowthBook's behaviour) |
//! |---|---|---|
//! | unknown `$operator` under an attribute | error | operator is false |
//! | `$regex`/`$regexi` not a string, not compiling, or using look-around / back-references | error | operator is false |
//! | `$in`/`$nin`/`$ini`/`$nini`/`$all`/`$alli` argument not an array | error | operator is false |
//! | `$type` name not one of the six | error | operator is false |
//! | `$in` list holding arrays/objects | error | those members never match |
//! | `$eq`/`$ne`/`$lt`/… argument an array/object | error | JS `===` / `<` on it |
//! | `$exists` argument not a boolean | error | its truthiness |
//! | `$inGroup` argument not a string | error | its string form |
//! | `$veq`/… argument not a string/number | error | version `"0"` |
//! | `$`-operators mixed with plain keys | error | literal object equality |
//! | field operator (`$eq`, …) as a top-level key | error | read as an attribute path |
//!
//! Both modes reject malformed structure, where the JS SDK throws or
//! iterates string characters: a condition that is not an object (whole,
//! inside `$and`/`$or`/`$nor`/`$not`, or as `$elemMatch`'s argument),
//! `$and`/`$or`/`$nor` without an array, and nesting deeper than 32 levels.
//! Top-level `$`-keys other than `$and`/`$or`/`$nor`/`$not` and the field
//! operators are attribute paths in both modes (GrowthBook targets
//! `{"$groups": …}` that way).
//!
//! [`Condition::parse_lenient`] exists to evaluate conditions written for
//! GrowthBook exactly as GrowthBook would, and is what the conformance suite
//! runs through.
//!
//! # Known differences from the JS SDK
//!
//! Object equality ignores key order (JS compares `JSON.stringify` output),
//! regexes match per code point rather than per UTF-16 unit, and properties
//! JS objects inherit (`toString`, …) are not attributes.

mod ast;
mod error;
mod eval;
mod explain;
mod groups;
mod js;
mod js_regex;
mod parse;
mod version;

use serde_json::Value;

pub use self::error::ConditionError;
pub use self::groups::SavedGroups;

use self::ast::Clauses;
use self::parse::Mode;

/// A compiled targeting condition, such as
/// `{"country": {"$in": ["FR", "DE"]}, "age": {"$gte": 18}}`.
///
/// Parse once (regexes compiled, paths split, lists hashed), evaluate many
/// times; evaluation never panics and never fails.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    clauses: Clauses,
}

impl Condition {
    /// The empty condition `{}`, which matches every document.
    #[must_use]
    pub fn always() -> Self {
        Self::default()
    }

    /// Compiles `condition` strictly, rejecting anything GrowthBook would
    /// evaluate to a fixed or surprising result (see the module docs).
    ///
    /// # Errors
    ///
    /// A [`ConditionError`] naming the problem and where it is.
    pub fn parse(condition: &Value) -> Result<Self, ConditionError> {
        parse::compile(condition, Mode::Strict).map(|clauses| Self { clauses })
    }

    /// Compiles `condition` the way the GrowthBook JS SDK reads it: unknown
    /// operators, invalid regexes and wrongly-typed operator arguments
    /// compile to what GrowthBook evaluates them to (usually false).
    ///
    /// # Errors
    ///
    /// A [`ConditionError`] for malformed structure only: a condition that
    /// is not an object, `$and`/`$or`/`$nor` without an array, or nesting
    /// that is too deep.
    pub fn parse_lenient(condition: &Value) -> Result<Self, ConditionError> {
        parse::compile(condition, Mode::Lenient).map(|clauses| Self { clauses })
    }

    /// Whether `attributes` satisfy the condition; `groups` supplies the
    /// saved groups `$inGroup` and `$notInGroup` refer to.
    #[must_use]
    pub fn eval(&self, attributes: &Value, groups: &SavedGroups) -> bool {
        self.clauses.matches(attributes, groups)
    }

    /// A short description of the first top-level clause `attributes` fail,
    /// such as `stage: $eq "at-risk"`, or `None` when the condition matches.
    #[must_use]
    pub fn first_failure(&self, attributes: &Value, groups: &SavedGroups) -> Option<String> {
        self.clauses.first_failure(attributes, groups)
    }
}

#[cfg(test)]
mod tests;
