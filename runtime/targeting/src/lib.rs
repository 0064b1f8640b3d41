//! GrowthBook-compatible targeting for Moment: the MongoDB-style condition
//! language GrowthBook's SDKs implement ([`Condition`]) and GrowthBook's
//! experiment assignment maths ([`hashing`]), both reproducing the GrowthBook
//! JavaScript SDK's results exactly, as checked by GrowthBook's public
//! conformance suite.
//!
//! ```
//! use moment_targeting::{Condition, SavedGroups};
//! use serde_json::json;
//!
//! let condition = Condition::parse(&json!({"stage": "at-risk", "age": {"$gte": 18}}))?;
//! assert!(condition.eval(&json!({"stage": "at-risk", "age": "21"}), &SavedGroups::default()));
//! # Ok::<(), moment_targeting::ConditionError>(())
//! ```

pub mod condition;
pub mod hashing;

pub use condition::{Condition, ConditionError, SavedGroups};
pub use hashing::{choose_variation, get_bucket_ranges, get_equal_weights, hash, in_namespace};
