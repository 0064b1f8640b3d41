//! A data directory written by the last release before versioned
//! migrations (`tests/fixtures/release-0.1-data`, made by the script beside
//! it) opens after the upgrade: the migrations run, and everything it held
//! is served as before.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Server, expect, ids};

fn fixture() -> (std::path::PathBuf, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/release-0.1-data");
    let keys = std::fs::read_to_string(dir.join("keys.json")).unwrap();
    (dir, serde_json::from_str(&keys).unwrap())
}

#[tokio::test]
async fn a_data_directory_from_the_previous_release_opens_and_serves() {
    let (dir, keys) = fixture();
    let (editor, decide) = (
        keys["editor"].as_str().unwrap(),
        keys["decide"].as_str().unwrap(),
    );
    let server = Server::start_on_copy_of(&dir);

    // Policies, versions and their audit trail.
    let hero = expect(
        server
            .get("/v1/policies/hero", editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(hero["live_version"], 1, "{hero}");
    assert_eq!(hero["versions"].as_array().unwrap().len(), 2, "{hero}");

    // The profile, with the contact history the old release recorded.
    let customer = expect(
        server
            .get("/v1/customers/c-1", editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(customer["attributes"]["tier"], "gold", "{customer}");
    assert_eq!(customer["stage"], "at-risk");
    let shown: u64 = customer["history"]
        .as_object()
        .unwrap()
        .values()
        .map(|h| h["impressions"].as_u64().unwrap())
        .sum();
    assert_eq!(
        shown, 3,
        "one decide recorded the impressions of 3 actions: {customer}"
    );

    // The experiment still runs and its results count the old decisions and
    // outcomes (three customers, each converting).
    let results = expect(
        server
            .get("/v1/experiments/hero-test/results", editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let exposures: u64 = results["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["exposures"].as_u64().unwrap())
        .sum();
    let conversions: u64 = results["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["conversions"].as_u64().unwrap())
        .sum();
    assert_eq!((exposures, conversions), (3, 3), "{results}");

    // An old decision still takes outcomes (a retry of a stored one counts once).
    let decisions = keys["decisions"].as_str().unwrap();
    let mut old = decisions.split(' ');
    let (id, action) = (old.next().unwrap(), old.next().unwrap());
    let retry = json!({"decision_id": id, "action_id": action, "type": "convert", "value": 3.0});
    let answer = expect(
        server
            .post("/v1/outcomes", decide, &retry)
            .send()
            .await
            .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(answer, json!({"accepted": 0, "duplicates": 1}));

    // And the old keys decide, on the migrated log.
    let answer = server
        .decide_ok(decide, &json!({"point": "hero", "customer_id": "c-9"}))
        .await;
    assert!(!ids(&answer).is_empty(), "{answer}");
}
