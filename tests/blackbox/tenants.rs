//! Tenants, keys and the walls between tenants.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{BY_VALUE, ROOT_TOKEN, Server, expect, rhai_bundle};

#[tokio::test]
async fn root_token_creates_tenants_with_three_keys() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    assert!(keys.admin.starts_with("mk_admin_") && keys.editor.starts_with("mk_editor_"));
    assert!(keys.decide.starts_with("mk_decide_"));

    let again = server
        .post("/v1/tenants", ROOT_TOKEN, &json!({"id": "acme"}))
        .send()
        .await
        .unwrap();
    expect(again, StatusCode::CONFLICT).await;
    let bad = server
        .post("/v1/tenants", ROOT_TOKEN, &json!({"id": "Not Valid"}))
        .send()
        .await
        .unwrap();
    expect(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let not_root = server
        .post("/v1/tenants", &keys.admin, &json!({"id": "other"}))
        .send()
        .await
        .unwrap();
    expect(not_root, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn keys_are_checked_for_presence_and_role() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let anonymous = server
        .client
        .get(server.url("/v1/policies"))
        .send()
        .await
        .unwrap();
    assert!(anonymous.headers().contains_key("www-authenticate"));
    expect(anonymous, StatusCode::UNAUTHORIZED).await;
    expect(
        server
            .get("/v1/policies", "mk_editor_forged")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // The publishable decide key can neither upload nor list policies.
    expect(
        server
            .upload(&keys.decide, "hero", &rhai_bundle(BY_VALUE))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        server
            .get("/v1/policies", &keys.decide)
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    // The role is refused before the body is read: a bad body still gets 403.
    let garbage = server
        .client
        .post(server.url("/v1/policies/hero/versions"))
        .bearer_auth(&keys.decide)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect(garbage, StatusCode::FORBIDDEN).await;
    // Tenant settings need admin.
    let patch = server.patch("/v1/tenant", &keys.editor, &json!({"cors_origins": ["*"]}));
    expect(patch.send().await.unwrap(), StatusCode::FORBIDDEN).await;
    // Admin can do what editors can.
    expect(
        server
            .get("/v1/policies", &keys.admin)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn another_tenants_policies_look_missing() {
    let server = Server::start();
    let acme = server.tenant("acme").await;
    let rival = server.tenant("rival").await;
    server.upload_rhai(&acme.editor, "hero", BY_VALUE).await;

    let list = expect(
        server
            .get("/v1/policies", &rival.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list, json!([]));
    expect(
        server
            .get("/v1/policies/hero", &rival.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let activate = server.post(
        "/v1/policies/hero/activate",
        &rival.editor,
        &json!({"version": 1}),
    );
    expect(activate.send().await.unwrap(), StatusCode::NOT_FOUND).await;
    let decide = server
        .decide(
            &rival.decide,
            &json!({"point": "hero", "customer_id": "c-1"}),
        )
        .await;
    expect(decide, StatusCode::NOT_FOUND).await;

    // The rival's own upload under the same name is its own version 1.
    assert_eq!(server.upload_rhai(&rival.editor, "hero", BY_VALUE).await, 1);
}
