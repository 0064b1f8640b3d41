//! Experiments: split one decision point's traffic between policy versions
//! by a deterministic hash of the customer id, GrowthBook-compatible.

use moment_targeting::{
    Condition, ConditionError, SavedGroups, choose_variation, get_bucket_ranges, hash, in_namespace,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::name::{Name, NameError};
use super::outcome::OutcomeType;
use super::text::check_id;

/// How far weights may stray from summing to 1.
const WEIGHT_TOLERANCE: f64 = 1e-6;
/// Longest variant id, in bytes.
pub const MAX_VARIANT_ID_LEN: usize = 64;

/// An experiment as the owner defines it (body of `POST /v1/experiments`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Experiment id.
    pub id: String,
    /// The decision point (policy name) whose traffic is split.
    pub point: String,
    /// Hash seed; defaults to the id. Use GrowthBook's seed to share assignments.
    #[serde(default)]
    pub seed: Option<String>,
    /// GrowthBook hash version, 1 or 2 (default 2).
    #[serde(default = "default_hash_version")]
    pub hash_version: u32,
    /// Share of customers included, 0–1 (default 1).
    #[serde(default = "full_coverage")]
    pub coverage: f64,
    /// Targeting condition on the customer's attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub condition: Option<Value>,
    /// Namespace range, for mutually exclusive experiments on one point.
    #[serde(
        default,
        deserialize_with = "super::objects::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace: Option<Namespace>,
    /// Variants; the first is the control.
    #[serde(deserialize_with = "super::objects::many")]
    pub variants: Vec<VariantSpec>,
    /// The outcome type that counts as a conversion.
    pub goal: OutcomeType,
}

/// A GrowthBook namespace range: customers whose namespace hash falls in
/// `[start, end)` may enter.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Namespace id (hash seed).
    pub id: String,
    /// Start of the range, 0–1.
    pub start: f64,
    /// End of the range, 0–1.
    pub end: f64,
}

/// One arm of an experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Variant id (`control`, `treatment` …).
    pub id: String,
    /// The policy version this variant runs.
    pub version: u32,
    /// Share of included traffic; weights sum to 1.
    pub weight: f64,
}

fn default_hash_version() -> u32 {
    2
}

fn full_coverage() -> f64 {
    1.0
}

/// Why an experiment definition was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExperimentError {
    /// The id is not a valid name.
    #[error("id {0}")]
    Id(NameError),
    /// The point is not a valid name.
    #[error("point {0}")]
    Point(NameError),
    /// Fewer than two variants.
    #[error("an experiment needs at least two variants")]
    TooFewVariants,
    /// A variant id is empty or repeated.
    #[error(
        "variant ids must be unique, 1 to {MAX_VARIANT_ID_LEN} bytes of printable text; {0:?} is not"
    )]
    VariantId(String),
    /// A weight outside (0, 1].
    #[error("variants[{0}].weight must be above 0 and at most 1")]
    Weight(usize),
    /// Weights do not sum to 1.
    #[error("variant weights sum to {0}, not 1")]
    WeightSum(f64),
    /// Coverage outside 0–1.
    #[error("coverage must be between 0 and 1")]
    Coverage,
    /// Hash version other than 1 or 2.
    #[error("hash_version must be 1 or 2")]
    HashVersion,
    /// The namespace range is not within 0–1 or is empty.
    #[error("namespace range must satisfy 0 <= start < end <= 1")]
    Namespace,
    /// The condition does not parse.
    #[error("condition is invalid: {0}")]
    Condition(ConditionError),
}

/// A checked experiment, ready to assign customers.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// Experiment id.
    pub id: Name,
    /// Decision point.
    pub point: Name,
    /// The definition, with the seed filled in.
    pub spec: ExperimentSpec,
    condition: Option<Condition>,
    ranges: Vec<(f64, f64)>,
}

impl Experiment {
    /// Checks a definition and precomputes its bucket ranges.
    pub fn new(mut spec: ExperimentSpec) -> Result<Self, ExperimentError> {
        let id = Name::parse(&spec.id).map_err(ExperimentError::Id)?;
        let point = Name::parse(&spec.point).map_err(ExperimentError::Point)?;
        if spec.variants.len() < 2 {
            return Err(ExperimentError::TooFewVariants);
        }
        for (i, v) in spec.variants.iter().enumerate() {
            if check_id("variant id", &v.id, MAX_VARIANT_ID_LEN).is_err()
                || spec.variants[..i].iter().any(|w| w.id == v.id)
            {
                return Err(ExperimentError::VariantId(v.id.clone()));
            }
            if !(v.weight > 0.0 && v.weight <= 1.0) {
                return Err(ExperimentError::Weight(i));
            }
        }
        let sum: f64 = spec.variants.iter().map(|v| v.weight).sum();
        if (sum - 1.0).abs() > WEIGHT_TOLERANCE {
            return Err(ExperimentError::WeightSum(sum));
        }
        if !(0.0..=1.0).contains(&spec.coverage) {
            return Err(ExperimentError::Coverage);
        }
        if !matches!(spec.hash_version, 1 | 2) {
            return Err(ExperimentError::HashVersion);
        }
        if let Some(ns) = &spec.namespace
            && !(0.0 <= ns.start && ns.start < ns.end && ns.end <= 1.0)
        {
            return Err(ExperimentError::Namespace);
        }
        let condition = spec
            .condition
            .as_ref()
            .map(Condition::parse)
            .transpose()
            .map_err(ExperimentError::Condition)?;
        spec.seed.get_or_insert_with(|| spec.id.clone());
        let weights: Vec<f64> = spec.variants.iter().map(|v| v.weight).collect();
        let ranges = get_bucket_ranges(weights.len(), spec.coverage, Some(&weights));
        Ok(Self {
            id,
            point,
            spec,
            condition,
            ranges,
        })
    }

    /// The variant (index) `customer_id` is in, or `None` when the customer is
    /// outside the namespace, fails the condition, or falls outside coverage.
    pub fn assign(
        &self,
        customer_id: &str,
        attributes: &Value,
        groups: &SavedGroups,
    ) -> Option<usize> {
        if let Some(ns) = &self.spec.namespace
            && !in_namespace(customer_id, &(ns.id.as_str(), ns.start, ns.end))
        {
            return None;
        }
        if let Some(condition) = &self.condition
            && !condition.eval(attributes, groups)
        {
            return None;
        }
        let seed = self.spec.seed.as_deref().unwrap_or(&self.spec.id);
        let n = hash(seed, customer_id, self.spec.hash_version)?;
        choose_variation(n, &self.ranges)
    }

    /// Whether this experiment and `other` can run on one point at once:
    /// only in the same namespace with disjoint ranges.
    pub fn excludes(&self, other: &Experiment) -> bool {
        match (&self.spec.namespace, &other.spec.namespace) {
            (Some(a), Some(b)) => a.id == b.id && (a.end <= b.start || b.end <= a.start),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn spec(v: Value) -> ExperimentSpec {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({"id": "hero-test", "point": "hero", "goal": "convert",
               "variants": [{"id": "control", "version": 1, "weight": 0.5}, {"id": "treatment", "version": 2, "weight": 0.5}]})
    }

    #[test]
    fn assignment_is_growthbooks() {
        let e = Experiment::new(spec(base())).unwrap();
        let groups = SavedGroups::default();
        for id in ["c-1", "c-2", "alice", "bob", "émile", "用户"] {
            let n = hash("hero-test", id, 2).unwrap();
            let expected = if n < 0.5 { 0 } else { 1 };
            assert_eq!(e.assign(id, &json!({}), &groups), Some(expected), "{id}");
        }
    }

    #[test]
    fn condition_coverage_and_namespace_exclude() {
        let mut v = base();
        v["condition"] = json!({"country": "NL"});
        let e = Experiment::new(spec(v)).unwrap();
        let groups = SavedGroups::default();
        assert_eq!(e.assign("c-1", &json!({"country": "BE"}), &groups), None);
        assert!(
            e.assign("c-1", &json!({"country": "NL"}), &groups)
                .is_some()
        );
        let mut v = base();
        v["coverage"] = json!(0.0);
        assert_eq!(
            Experiment::new(spec(v))
                .unwrap()
                .assign("c-1", &json!({}), &groups),
            None
        );
        let mut a = base();
        a["namespace"] = json!({"id": "hero", "start": 0.0, "end": 0.5});
        let mut b = base();
        b["namespace"] = json!({"id": "hero", "start": 0.5, "end": 1.0});
        let (a, b) = (
            Experiment::new(spec(a)).unwrap(),
            Experiment::new(spec(b)).unwrap(),
        );
        assert!(a.excludes(&b));
        for id in ["c-1", "c-2", "c-3", "c-4", "c-5", "c-6"] {
            assert!(
                a.assign(id, &json!({}), &groups).is_none()
                    || b.assign(id, &json!({}), &groups).is_none()
            );
        }
    }

    #[test]
    fn refuses_bad_definitions() {
        let bad = |patch: fn(&mut Value)| {
            let mut v = base();
            patch(&mut v);
            Experiment::new(spec(v)).err().unwrap()
        };
        assert!(matches!(
            bad(|v| v["variants"][1]["weight"] = json!(0.6)),
            ExperimentError::WeightSum(_)
        ));
        assert_eq!(
            bad(|v| v["variants"][1]["id"] = json!("control")),
            ExperimentError::VariantId("control".into())
        );
        assert_eq!(
            bad(|v| v["hash_version"] = json!(3)),
            ExperimentError::HashVersion
        );
        assert_eq!(
            bad(|v| v["coverage"] = json!(1.5)),
            ExperimentError::Coverage
        );
        assert!(matches!(
            bad(|v| v["condition"] = json!({"a": {"$nope": 1}})),
            ExperimentError::Condition(_)
        ));
        assert_eq!(
            bad(|v| v["variants"] = json!([{"id": "a", "version": 1, "weight": 1.0}])),
            ExperimentError::TooFewVariants
        );
    }
}
