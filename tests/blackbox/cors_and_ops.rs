//! Operator routes and browser access.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{BY_VALUE, Server, expect};

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let server = Server::start();
    let get = |path: &str| server.client.get(server.url(path)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    let spec: serde_json::Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    for path in [
        "/v1/decide",
        "/v1/tenants",
        "/v1/policies/{name}/versions",
        "/v1/policies/{name}/activate",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(
            "moment_http_requests_total{route=\"/openapi.json\",method=\"GET\",status=\"200\"}"
        ),
        "{metrics}"
    );
    expect(get("/no/such/route").await.unwrap(), StatusCode::NOT_FOUND).await;
    let wrong_method = server
        .client
        .delete(server.url("/v1/decide"))
        .send()
        .await
        .unwrap();
    assert!(wrong_method.headers().contains_key("allow"));
    expect(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn browsers_may_call_decide_from_allowed_origins() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;

    let preflight = server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/v1/decide"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://shop.example"
    );

    let ask = json!({"point": "hero", "customer_id": "c-1"});
    let from = |origin: &'static str| {
        server
            .post("/v1/decide", &keys.decide, &ask)
            .header("origin", origin)
            .send()
    };
    let ok = from("https://shop.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    expect(ok, StatusCode::OK).await;

    let settings = json!({"cors_origins": ["https://shop.example"]});
    let patch = server.patch("/v1/tenant", &keys.admin, &settings);
    expect(patch.send().await.unwrap(), StatusCode::OK).await;
    expect(from("https://shop.example").await.unwrap(), StatusCode::OK).await;
    expect(
        from("https://evil.example").await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    // Outcomes from a page are checked the same way.
    let decision = server.decide_ok(&keys.decide, &ask).await;
    let click =
        json!({"decision_id": decision["decision_id"], "action_id": "large", "type": "click"});
    let outcome = |origin: &'static str| {
        server
            .post("/v1/outcomes", &keys.decide, &click)
            .header("origin", origin)
            .send()
    };
    expect(
        outcome("https://evil.example").await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        outcome("https://shop.example").await.unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    // A later patch of other settings keeps the origins.
    let patch = server.patch(
        "/v1/tenant",
        &keys.admin,
        &json!({"stages": ["new", "at-risk"]}),
    );
    let settings = expect(patch.send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(settings["cors_origins"], json!(["https://shop.example"]));
    expect(
        from("https://evil.example").await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
}
