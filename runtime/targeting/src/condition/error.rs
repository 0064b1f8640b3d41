//! Why a condition was rejected. Messages are shown to the people who write
//! conditions, so each one names the place (`at …`) and what was expected.

use thiserror::Error;

/// A condition that cannot be compiled.
///
/// `at` is where the problem is: `the top level`, or a `/`-separated trail
/// such as `$and[1]/father.age/$gt` (attribute paths keep their dots).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConditionError {
    /// A condition (the whole thing, an `$and`/`$or`/`$nor` item, a `$not`
    /// or an `$elemMatch` argument) is not a JSON object.
    #[error("expected a condition object at {at}, found {found}")]
    NotAnObject {
        /// Where the problem is.
        at: String,
        /// The JSON type that was found instead.
        found: &'static str,
    },
    /// A `$`-key under an attribute is not an operator.
    #[error("unknown operator {operator} at {at}")]
    UnknownOperator {
        /// The offending key.
        operator: String,
        /// Where the problem is.
        at: String,
    },
    /// A field operator (`$eq`, `$in`, …) used as a top-level key, where it
    /// would be read as an attribute name.
    #[error(
        "operator {operator} at {at} must be applied to an attribute, as in {{\"attribute\": {{\"{operator}\": …}}}}"
    )]
    MisplacedOperator {
        /// The operator.
        operator: String,
        /// Where the problem is.
        at: String,
    },
    /// An object mixing `$`-operators and plain keys, which GrowthBook would
    /// silently compare as a literal object.
    #[error("operators are mixed with plain keys at {at}")]
    MixedKeys {
        /// Where the problem is.
        at: String,
    },
    /// An operator argument of the wrong shape.
    #[error("{operator} at {at} expects {expected}")]
    BadArgument {
        /// The operator.
        operator: String,
        /// Where the problem is.
        at: String,
        /// What the operator accepts.
        expected: &'static str,
    },
    /// A `$regex`/`$regexi` pattern that does not compile (or uses
    /// look-around or back-references, which are not supported).
    #[error("invalid pattern for {operator} at {at}: {reason}")]
    InvalidRegex {
        /// `$regex` or `$regexi`.
        operator: String,
        /// Where the problem is.
        at: String,
        /// The regex engine's explanation.
        reason: String,
    },
    /// Conditions nested deeper than the supported limit.
    #[error("condition nests deeper than {limit} levels at {at}")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
        /// Where the limit was hit.
        at: String,
    },
}
