//! Eligibility conditions, profiles overlaid by request attributes, stages,
//! per-kind caps and explain.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Server, expect, ids};

/// Scores every candidate by its value, so the answer lists all eligible ones.
const ALL_BY_VALUE: &str = r#"
fn decide(ctx) {
    let out = [];
    for c in ctx.candidates { out.push(#{ id: c.id, score: priority(1, c.value, 1) }); }
    out
}
"#;

fn bundle() -> Value {
    json!({
        "engine": "rhai", "source": ALL_BY_VALUE, "activate": true, "fallback": ["welcome"],
        "catalog": [
            {"id": "winback", "kind": "offer", "value": 40.0, "eligibility": {"stage": "at-risk"}},
            {"id": "agent-callback", "kind": "service", "value": 30.0, "eligibility": {"channel": "call-center"}},
            {"id": "family-bundle", "kind": "offer", "value": 20.0, "eligibility": {"plan": {"$in": ["family", "family-plus"]}}},
            {"id": "welcome", "kind": "message", "value": 1.0}
        ]
    })
}

#[tokio::test]
async fn eligibility_uses_stage_channel_profile_and_request_attributes() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    expect(
        server.upload(&keys.editor, "hero", &bundle()).await,
        StatusCode::CREATED,
    )
    .await;

    let stranger = json!({"point": "hero", "customer_id": "c-new", "stage": "consideration", "channel": "web", "limit": 10});
    assert_eq!(
        ids(&server.decide_ok(&keys.decide, &stranger).await),
        ["welcome"]
    );

    let patch = json!({"attributes": {"plan": "family"}, "stage": "at-risk"});
    let profile = server.patch("/v1/customers/c-1", &keys.editor, &patch);
    expect(profile.send().await.unwrap(), StatusCode::OK).await;

    // Stage comes from the profile, plan from the stored attributes.
    let caller =
        json!({"point": "hero", "customer_id": "c-1", "channel": "call-center", "limit": 10});
    assert_eq!(
        ids(&server.decide_ok(&keys.decide, &caller).await),
        ["winback", "agent-callback", "family-bundle", "welcome"]
    );

    // The request's attributes and stage override the profile's.
    let overridden = json!({"point": "hero", "customer_id": "c-1", "channel": "web", "stage": "purchase",
                            "attributes": {"plan": "single"}, "limit": 10, "explain": true});
    let answer = server.decide_ok(&keys.editor, &overridden).await;
    assert_eq!(ids(&answer), ["welcome"]);
    let explain = &answer["explain"];
    assert_eq!(explain["winback"]["status"], "ineligible");
    let condition = explain["family-bundle"]["condition"].as_str().unwrap();
    assert!(condition.contains("plan"), "{condition}");
    assert_eq!(explain["agent-callback"]["status"], "ineligible");
    assert_eq!(
        explain["welcome"],
        json!({"status": "returned", "rank": 1, "score": 1.0})
    );
}

#[tokio::test]
async fn max_per_kind_caps_offers() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    expect(
        server.upload(&keys.editor, "hero", &bundle()).await,
        StatusCode::CREATED,
    )
    .await;
    let body = json!({"point": "hero", "customer_id": "c-1", "stage": "at-risk", "channel": "call-center",
                      "attributes": {"plan": "family"}, "limit": 3, "max_per_kind": {"offer": 1}, "explain": true});
    let answer = server.decide_ok(&keys.editor, &body).await;
    assert_eq!(ids(&answer), ["winback", "agent-callback", "welcome"]);
    assert_eq!(
        answer["explain"]["family-bundle"]["status"],
        "cut_by_kind_cap"
    );
}

#[tokio::test]
async fn stages_are_the_tenants_own() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    expect(
        server.upload(&keys.editor, "hero", &bundle()).await,
        StatusCode::CREATED,
    )
    .await;
    let unknown = json!({"point": "hero", "customer_id": "c-1", "stage": "dormant"});
    expect(
        server.decide(&keys.decide, &unknown).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let settings = json!({"stages": ["new", "dormant"]});
    let patch = server.patch("/v1/tenant", &keys.admin, &settings);
    expect(patch.send().await.unwrap(), StatusCode::OK).await;
    expect(server.decide(&keys.decide, &unknown).await, StatusCode::OK).await;
    let bad = server.patch(
        "/v1/customers/c-1",
        &keys.editor,
        &json!({"stage": "at-risk"}),
    );
    expect(bad.send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn invalid_conditions_and_contact_rules_are_refused_at_upload() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let mut bad = bundle();
    bad["catalog"][0]["eligibility"] = json!({"stage": {"$eqq": "at-risk"}});
    let problem = expect(
        server.upload(&keys.editor, "hero", &bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("catalog[0].eligibility"),
        "{problem}"
    );
    let mut bad = bundle();
    bad["catalog"][0]["contact"] = json!({"per": "week"});
    expect(
        server.upload(&keys.editor, "hero", &bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    bad["catalog"][0]["contact"] = json!({"max_impressions": 2, "per": "fortnight"});
    expect(
        server.upload(&keys.editor, "hero", &bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}
