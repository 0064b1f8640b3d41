//! Property: no condition and no document make parsing or evaluation panic.
#![allow(clippy::unwrap_used)]

use moment_targeting::{Condition, SavedGroups};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Every operator the language knows, plus the logical ones.
const OPERATORS: &[&str] = &[
    "$and",
    "$or",
    "$nor",
    "$not",
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
    "$size",
    "$elemMatch",
    "$all",
    "$alli",
    "$regex",
    "$regexi",
    "$type",
];

/// Keys: known operators, random `$`-operators, plain and dotted paths.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(OPERATORS).prop_map(str::to_owned),
        1 => "\\$[a-zA-Z]{0,6}",
        3 => "[a-c]{1,2}(\\.[a-c0-2]{1,2}){0,2}",
        1 => "(length|0|1|g)",
    ]
}

/// Scalars, including regex-ish and version-ish strings.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-3..4_i64).prop_map(Value::from),
        "[a-c]{0,3}".prop_map(Value::from),
        "[\\\\()\\[\\]{}*+?.^$|0-9a-z,-]{0,8}".prop_map(Value::from),
        "v?[0-9]{1,2}(\\.[0-9a-z]{1,2}){0,4}(-[a-z0-9.]{1,4})?(\\+[a-z]{1,3})?"
            .prop_map(Value::from),
        proptest::sample::select(vec!["string", "number", "array", "null", "g", "é😀"])
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

/// JSON values shaped like conditions and documents.
fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn groups() -> impl Strategy<Value = SavedGroups> {
    proptest::collection::hash_map("[a-c]|g", proptest::collection::vec(scalar(), 0..4), 0..3)
        .prop_map(SavedGroups::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_and_eval_never_panic(condition in json(), document in json(), groups in groups()) {
        let strict = Condition::parse(&condition);
        let lenient = Condition::parse_lenient(&condition);
        if let Ok(strict) = &strict {
            let matched = strict.eval(&document, &groups);
            // Whatever strict accepts, lenient accepts and agrees on.
            let lenient = lenient.as_ref().unwrap();
            prop_assert_eq!(matched, lenient.eval(&document, &groups));
            prop_assert_eq!(matched, strict.first_failure(&document, &groups).is_none());
        }
        if let Ok(lenient) = &lenient {
            let matched = lenient.eval(&document, &groups);
            prop_assert_eq!(matched, lenient.first_failure(&document, &groups).is_none());
        }
    }

    #[test]
    fn conditions_over_their_own_documents(condition in json()) {
        if let Ok(compiled) = Condition::parse_lenient(&condition) {
            let _ = compiled.eval(&condition, &SavedGroups::default());
        }
    }
}
