//! The middle tier: the whole router over a store in a temporary directory,
//! driven request by request with `tower::ServiceExt::oneshot`, no socket
//! and no process. Faster than the black-box suite and closer to the
//! handlers: every status a route answers, and the problem+json it answers
//! with.

#![allow(clippy::unwrap_used, missing_docs)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use moment_server::app::Assembled;
use moment_server::settings::Settings;
use serde_json::{Value, json};
use tower::ServiceExt;

const ROOT: &str = "root-token-for-router-tests";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    settings: Settings,
}

/// A router on a fresh data directory (kept alive by the returned guard).
async fn router() -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Args::try_parse_from(["moment", "--data", dir.path().to_str().unwrap()])
        .unwrap()
        .settings;
    // The environment may name an operator's cluster or other limits
    // (`MOMENT_*`): these tests run on their own store, with the defaults.
    settings.postgres = None;
    settings.redis = None;
    settings.max_body_bytes = 1024 * 1024;
    settings.max_code_bytes = 4 * 1024 * 1024;
    settings.demo = false;
    settings.root_token = Some(ROOT.to_owned());
    let assembled = Assembled::new(&settings, None).await.unwrap();
    (assembled.router, dir)
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        content_type,
        body,
    }
}

fn json_request(method: &str, path: &str, key: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(path: &str, key: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap()
}

/// Asserts a problem+json answer with `status` and a detail containing `says`.
fn problem(answer: &Answer, status: StatusCode, says: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["status"], status.as_u16());
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(detail.contains(says), "{detail:?} does not say {says:?}");
}

struct Keys {
    editor: String,
    decide: String,
}

async fn tenant(router: &Router, id: &str) -> Keys {
    let answer = send(
        router,
        json_request("POST", "/v1/tenants", ROOT, &json!({"id": id})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let keys = &answer.body["keys"];
    Keys {
        editor: keys["editor"].as_str().unwrap().to_owned(),
        decide: keys["decide"].as_str().unwrap().to_owned(),
    }
}

fn hero() -> Value {
    json!({
        "engine": "rhai",
        "source": "fn decide(ctx) { let out = []; for c in ctx.candidates { out.push(#{id: c.id, score: c.value}); } out }",
        "catalog": [
            {"id": "big", "kind": "offer", "value": 20.0},
            {"id": "small", "kind": "offer", "value": 5.0},
            {"id": "hello", "kind": "message"}
        ],
        "fallback": ["hello"],
        "activate": true
    })
}

#[tokio::test]
async fn a_decision_and_its_outcome_through_the_router() {
    let (router, _dir) = router().await;
    let keys = tenant(&router, "acme").await;
    let uploaded = send(
        &router,
        json_request("POST", "/v1/policies/hero/versions", &keys.editor, &hero()),
    )
    .await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    assert_eq!(
        uploaded.body,
        json!({"name": "hero", "version": 1, "active": true})
    );

    let ask = json!({"point": "hero", "customer_id": "c-1", "limit": 2});
    let decided = send(
        &router,
        json_request("POST", "/v1/decide", &keys.decide, &ask),
    )
    .await;
    assert_eq!(decided.status, StatusCode::OK, "{}", decided.body);
    let ids: Vec<&str> = decided.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["big", "small"]);
    assert_eq!(decided.body["fallback"], false);

    let click =
        json!({"decision_id": decided.body["decision_id"], "action_id": "big", "type": "click"});
    let first = send(
        &router,
        json_request("POST", "/v1/outcomes", &keys.decide, &click),
    )
    .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.body, json!({"accepted": 1, "duplicates": 0}));
    let retry = send(
        &router,
        json_request("POST", "/v1/outcomes", &keys.decide, &click),
    )
    .await;
    assert_eq!(retry.body, json!({"accepted": 0, "duplicates": 1}));

    let customer = send(&router, get("/v1/customers/c-1", &keys.editor)).await;
    assert_eq!(customer.status, StatusCode::OK);
    assert_eq!(customer.body["history"]["big"]["counts"]["click"], 1);
}

#[tokio::test]
async fn keys_and_roles_are_checked_before_anything_else() {
    let (router, _dir) = router().await;
    let keys = tenant(&router, "acme").await;

    let anonymous = Request::builder()
        .uri("/v1/policies")
        .body(Body::empty())
        .unwrap();
    let answer = send(&router, anonymous).await;
    problem(&answer, StatusCode::UNAUTHORIZED, "");
    let unknown = send(&router, get("/v1/policies", "mk_editor_nope")).await;
    problem(&unknown, StatusCode::UNAUTHORIZED, "");
    // The publishable key decides; it does not read policies.
    let answer = send(&router, get("/v1/policies", &keys.decide)).await;
    problem(&answer, StatusCode::FORBIDDEN, "");
    // Tenants are the operator's: a tenant key cannot create one.
    let answer = send(
        &router,
        json_request("POST", "/v1/tenants", &keys.editor, &json!({"id": "other"})),
    )
    .await;
    problem(&answer, StatusCode::UNAUTHORIZED, "");
}

#[tokio::test]
async fn bad_bodies_get_the_status_that_says_what_to_fix() {
    let (router, _dir) = router().await;
    let keys = tenant(&router, "acme").await;
    send(
        &router,
        json_request("POST", "/v1/policies/hero/versions", &keys.editor, &hero()),
    )
    .await;

    let no_type = Request::builder()
        .method("POST")
        .uri("/v1/decide")
        .header(header::AUTHORIZATION, format!("Bearer {}", keys.decide))
        .body(Body::from(r#"{"point":"hero","customer_id":"c"}"#))
        .unwrap();
    problem(
        &send(&router, no_type).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    );

    let malformed = Request::builder()
        .method("POST")
        .uri("/v1/decide")
        .header(header::AUTHORIZATION, format!("Bearer {}", keys.decide))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"point\":"))
        .unwrap();
    problem(&send(&router, malformed).await, StatusCode::BAD_REQUEST, "");

    let unknown_field = json!({"point": "hero", "customer_id": "c", "colour": "red"});
    problem(
        &send(
            &router,
            json_request("POST", "/v1/decide", &keys.decide, &unknown_field),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "colour",
    );

    let bad_limit = json!({"point": "hero", "customer_id": "c", "limit": 0});
    problem(
        &send(
            &router,
            json_request("POST", "/v1/decide", &keys.decide, &bad_limit),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit",
    );

    let nowhere = json!({"point": "nowhere", "customer_id": "c"});
    problem(
        &send(
            &router,
            json_request("POST", "/v1/decide", &keys.decide, &nowhere),
        )
        .await,
        StatusCode::NOT_FOUND,
        "no live policy",
    );

    let huge =
        json!({"point": "hero", "customer_id": "c", "context": {"blob": "x".repeat(2 << 20)}});
    problem(
        &send(
            &router,
            json_request("POST", "/v1/decide", &keys.decide, &huge),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "",
    );

    let stranger = json!({"decision_id": "no-such-decision", "action_id": "big", "type": "click"});
    problem(
        &send(
            &router,
            json_request("POST", "/v1/outcomes", &keys.decide, &stranger),
        )
        .await,
        StatusCode::NOT_FOUND,
        "no decision",
    );
    let empty = json!({"events": []});
    problem(
        &send(
            &router,
            json_request("POST", "/v1/outcomes", &keys.decide, &empty),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "1 to 1000 events",
    );
}

#[tokio::test]
async fn operations_routes_answer_without_a_key() {
    let (router, _dir) = router().await;
    for (path, status) in [
        ("/healthz", StatusCode::OK),
        ("/readyz", StatusCode::OK),
        ("/openapi.json", StatusCode::OK),
    ] {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        assert_eq!(send(&router, request).await.status, status, "{path}");
    }
    let request = Request::builder()
        .uri("/openapi.json")
        .body(Body::empty())
        .unwrap();
    let document = send(&router, request).await.body;
    assert!(document["paths"]["/v1/decide"]["post"].is_object());
}
