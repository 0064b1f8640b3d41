//! Behaviour of the public condition API beyond the conformance suite.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::{Condition, ConditionError, SavedGroups};

fn strict(condition: Value) -> Result<Condition, ConditionError> {
    Condition::parse(&condition)
}

fn error(condition: Value) -> String {
    strict(condition).unwrap_err().to_string()
}

fn matches(condition: Value, document: Value) -> bool {
    strict(condition)
        .unwrap()
        .eval(&document, &SavedGroups::default())
}

fn lenient(condition: Value, document: Value) -> bool {
    Condition::parse_lenient(&condition)
        .unwrap()
        .eval(&document, &SavedGroups::default())
}

#[test]
fn always_matches_everything() {
    let always = Condition::always();
    assert!(always.eval(&json!({}), &SavedGroups::default()));
    assert!(always.eval(&json!(null), &SavedGroups::default()));
    assert_eq!(
        always.first_failure(&json!({}), &SavedGroups::default()),
        None
    );
}

#[test]
fn strict_errors_name_the_operator_and_place() {
    assert_eq!(
        error(json!({"name": {"$regx": "hello"}})),
        "unknown operator $regx at name"
    );
    assert_eq!(
        error(json!({"$and": [{"a": 1}, {"b.c": {"$regex": "("}}]}))
            .split(':')
            .next(),
        Some("invalid pattern for $regex at $and[1]/b.c")
    );
    assert_eq!(
        error(json!({"$and": {"a": 1}})),
        "$and at the top level expects an array of conditions"
    );
    assert_eq!(
        error(json!({"num": {"$in": 1}})),
        "$in at num expects an array"
    );
    assert_eq!(
        error(json!({"$or": [{"a": 1}, 5]})),
        "expected a condition object at $or[1], found a number"
    );
    assert_eq!(
        error(json!({"tags": {"$elemMatch": {"name": {"$nope": 1}}}})),
        "unknown operator $nope at tags/$elemMatch/name"
    );
    assert_eq!(
        error(json!({"a": {"$eq": 1, "b": 2}})),
        "operators are mixed with plain keys at a"
    );
    assert!(
        error(json!({"$in": [1]})).starts_with("operator $in at the top level must be applied")
    );
    assert_eq!(
        error(json!([])),
        "expected a condition object at the top level, found an array"
    );
}

#[test]
fn error_messages_are_lowercase_without_trailing_period() {
    let conditions = [
        json!({"a": {"$type": "date"}}),
        json!({"a": {"$exists": 1}}),
        json!({"a": {"$inGroup": 1}}),
        json!({"a": {"$vgt": []}}),
        json!({"a": {"$eq": [1]}}),
        json!({"a": {"$in": [[1]]}}),
        json!({"a": {"$regex": "(?=x)"}}),
    ];
    for condition in conditions {
        let message = error(condition.clone());
        assert!(!message.ends_with('.'), "{message}");
        assert!(
            message.starts_with(|c: char| !c.is_uppercase()),
            "{message}"
        );
        assert!(
            Condition::parse_lenient(&condition).is_ok(),
            "lenient rejected {condition}"
        );
    }
}

#[test]
fn too_deep_nesting_is_rejected_in_both_modes() {
    let mut condition = json!({"a": 1});
    for _ in 0..40 {
        condition = json!({"$not": condition});
    }
    assert!(matches!(
        strict(condition.clone()),
        Err(ConditionError::TooDeep { .. })
    ));
    assert!(Condition::parse_lenient(&condition).is_err());
}

#[test]
fn top_level_dollar_keys_are_paths() {
    assert!(matches(
        json!({"$groups": {"$elemMatch": {"$eq": "a"}}}),
        json!({"$groups": ["a"]})
    ));
}

#[test]
fn lenient_mode_follows_javascript() {
    assert!(!lenient(json!({"a": {"$regx": 1}}), json!({"a": 1})));
    assert!(lenient(
        json!({"a": {"$not": {"$regx": 1}}}),
        json!({"a": 1})
    ));
    assert!(!lenient(json!({"a": {"$eq": [1]}}), json!({"a": [1]})));
    assert!(lenient(json!({"a": {"$ne": [1]}}), json!({"a": [1]})));
    assert!(lenient(json!({"a": {"$exists": 1}}), json!({"a": 0})));
    assert!(lenient(json!({"a": {"$vgt": null}}), json!({"a": "0.1"})));
    assert!(lenient(
        json!({"a": {"$eq": 1, "b": 2}}),
        json!({"a": {"b": 2, "$eq": 1}})
    ));
}

#[test]
fn javascript_coercions() {
    // `null * 1 === 0`: a missing attribute equals the number 0.
    assert!(matches(json!({"n": 0}), json!({})));
    // `String(value) === condition`.
    assert!(matches(json!({"n": "10"}), json!({"n": 10})));
    assert!(matches(json!({"tags": "a,b"}), json!({"tags": ["a", "b"]})));
    assert!(matches(json!({"n": 2}), json!({"n": [2]})));
    assert!(matches(json!({"flag": true}), json!({"flag": "yes"})));
    // `$regex` tests the string form, so a missing attribute is "null".
    assert!(matches(json!({"x": {"$regex": "^null$"}}), json!({})));
    assert!(matches(
        json!({"n": {"$regex": "^1e\\+21$"}}),
        json!({"n": 1e21})
    ));
    // String comparisons are by UTF-16 code unit.
    assert!(matches(
        json!({"s": {"$gt": "\u{1F600}"}}),
        json!({"s": "\u{FF61}"})
    ));
    assert!(!matches(json!({"n": {"$lt": 5}}), json!({"n": "abc"})));
    assert!(!matches(json!({"n": {"$gte": 5}}), json!({"n": "abc"})));
}

#[test]
fn empty_nor_never_matches() {
    assert!(!matches(json!({"$nor": []}), json!({})));
}

#[test]
fn elem_match_tests_falsy_elements_but_skips_null() {
    assert!(matches(
        json!({"xs": {"$elemMatch": {"$lt": 1}}}),
        json!({"xs": [0]})
    ));
    assert!(matches(
        json!({"xs": {"$elemMatch": {}}}),
        json!({"xs": [0, ""]})
    ));
    assert!(!matches(
        json!({"xs": {"$elemMatch": {}}}),
        json!({"xs": [null]})
    ));
    assert!(!matches(
        json!({"xs": {"$elemMatch": {"$eq": null}}}),
        json!({"xs": [null]})
    ));
}

#[test]
fn all_items_can_be_operators() {
    let condition = json!({"xs": {"$all": [{"$gt": 5}, "a"]}});
    assert!(matches(condition.clone(), json!({"xs": [1, 9, "a"]})));
    assert!(!matches(condition, json!({"xs": [1, "a"]})));
}

#[test]
fn saved_groups_are_looked_up_at_eval_time() {
    let condition = strict(json!({"id": {"$inGroup": "beta"}})).unwrap();
    let mut groups = SavedGroups::new();
    assert!(!condition.eval(&json!({"id": "u1"}), &groups));
    groups.insert("beta", &[json!("u1")]);
    assert!(condition.eval(&json!({"id": "u1"}), &groups));
    assert!(condition.eval(&json!({"id": ["u9", "u1"]}), &groups));
}

#[test]
fn first_failure_describes_the_first_failing_clause() {
    let groups = SavedGroups::default();
    let condition = strict(json!({
        "country": "FR",
        "stage": {"$exists": true, "$eq": "at-risk"},
        "$or": [{"a": 1}, {"b": 1}],
    }))
    .unwrap();
    let failure = |document: Value| condition.first_failure(&document, &groups);
    assert_eq!(
        failure(json!({"country": "FR", "stage": "new", "a": 1})),
        Some(r#"stage: $eq "at-risk""#.to_owned())
    );
    assert_eq!(
        failure(json!({"country": "FR", "stage": "at-risk"})),
        Some("$or: no alternative matched".to_owned())
    );
    assert_eq!(
        failure(json!({"country": "DE", "a": 1})),
        Some(r#"country: "FR""#.to_owned())
    );
    assert_eq!(
        failure(json!({"country": "FR", "stage": "at-risk", "b": 1})),
        None
    );

    let nested = strict(json!({"$and": [{"a": 1}, {"b": {"$gt": 3}}]})).unwrap();
    assert_eq!(
        nested.first_failure(&json!({"a": 1, "b": 2}), &groups),
        Some("$and[1]: b: $gt 3".to_owned())
    );
}

#[test]
fn eval_never_panics_on_odd_documents() {
    let condition =
        strict(json!({"a.b.c": {"$size": {"$gt": 1}}, "x": {"$elemMatch": {"y": 1}}})).unwrap();
    for document in [
        json!(null),
        json!(5),
        json!("s"),
        json!([1, 2]),
        json!({"a": [1]}),
    ] {
        assert!(!condition.eval(&document, &SavedGroups::default()));
    }
}
