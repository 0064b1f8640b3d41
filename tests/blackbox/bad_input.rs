//! Bad HTTP input: every malformed, mistyped, oversized or absurd body gets a
//! problem+json whose `detail` says what to fix, and changes nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use moment_policy_artifacts::TELCO_RETENTION_WASM;

use crate::helpers::{BY_VALUE, Keys, Server, catalog, expect, wasm_upload};

/// One bad request and what the answer must say.
struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    /// Which of the tenant's keys sends it.
    role: fn(&Keys) -> &str,
    body: Vec<u8>,
    content_type: &'static str,
    status: StatusCode,
    /// Text the `detail` must contain.
    detail: &'static str,
}

fn json_case(
    what: &'static str,
    method: &'static str,
    path: &'static str,
    role: fn(&Keys) -> &str,
    body: Value,
    status: StatusCode,
    detail: &'static str,
) -> Case {
    Case {
        what,
        method,
        path,
        role,
        body: serde_json::to_vec(&body).unwrap(),
        content_type: "application/json",
        status,
        detail,
    }
}

/// `{"k": [[[ … 1 … ]]]}` with `depth` levels of arrays.
fn nested(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = json!([value]);
    }
    json!({ "k": value })
}

/// `depth` open brackets and their closes, as raw text: past serde's own
/// recursion limit, so it never becomes a `Value`.
fn nested_text(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn decide(keys: &Keys) -> &str {
    &keys.decide
}

fn editor(keys: &Keys) -> &str {
    &keys.editor
}

fn admin(keys: &Keys) -> &str {
    &keys.admin
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    // Over the 1 MiB a WASM policy may receive: 2,000 candidates (the
    // catalog quota) of ~700 bytes.
    let tags: Vec<String> = (0..16).map(|t| format!("{t:0>30}")).collect();
    let big_catalog: Vec<Value> = (0..2000)
        .map(|i| json!({"id": format!("{i:0>120}"), "kind": "offer", "tags": tags}))
        .collect();
    let mut too_many = serde_json::Map::new();
    for i in 0..300 {
        too_many.insert(format!("a{i}"), json!(i));
    }
    vec![
        json_case(
            "decide without customer_id",
            "POST",
            "/v1/decide",
            decide,
            json!({"point": "hero"}),
            S::UNPROCESSABLE_ENTITY,
            "customer_id",
        ),
        json_case(
            "decide with a numeric customer_id",
            "POST",
            "/v1/decide",
            decide,
            json!({"point": "hero", "customer_id": 42}),
            S::UNPROCESSABLE_ENTITY,
            "customer_id",
        ),
        json_case(
            "decide with an unknown field",
            "POST",
            "/v1/decide",
            decide,
            json!({"point": "hero", "customer_id": "c-1", "limt": 2}),
            S::UNPROCESSABLE_ENTITY,
            "limt",
        ),
        json_case(
            "decide with limit 0",
            "POST",
            "/v1/decide",
            decide,
            json!({"point": "hero", "customer_id": "c-1", "limit": 0}),
            S::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        json_case(
            "decide with limit 10^12",
            "POST",
            "/v1/decide",
            decide,
            json!({"point": "hero", "customer_id": "c-1", "limit": 1_000_000_000_000u64}),
            S::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        json_case(
            "decide with a negative limit",
            "POST",
            "/v1/decide",
            decide,
            json!({"point": "hero", "customer_id": "c-1", "limit": -3}),
            S::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        json_case(
            "decide with a 10 KB customer id",
            "POST",
            "/v1/decide",
            decide,
            json!({"point": "hero", "customer_id": "c".repeat(10_000)}),
            S::UNPROCESSABLE_ENTITY,
            "customer_id",
        ),
        json_case(
            "decide with context nested 40 deep",
            "POST",
            "/v1/decide",
            decide,
            json!({"point": "hero", "customer_id": "c-1", "context": nested(40)}),
            S::UNPROCESSABLE_ENTITY,
            "context.k",
        ),
        json_case(
            "decide with attributes nested 40 deep",
            "POST",
            "/v1/decide",
            decide,
            json!({"point": "hero", "customer_id": "c-1", "attributes": nested(40)}),
            S::UNPROCESSABLE_ENTITY,
            "attributes.k",
        ),
        Case {
            what: "decide nested past the parser's limit",
            method: "POST",
            path: "/v1/decide",
            role: decide,
            body: format!(
                r#"{{"point": "hero", "customer_id": "c-1", "context": {{"k": {}}}}}"#,
                nested_text(5000)
            )
            .into_bytes(),
            content_type: "application/json",
            status: S::BAD_REQUEST,
            detail: "recursion limit",
        },
        Case {
            what: "decide with invalid UTF-8",
            method: "POST",
            path: "/v1/decide",
            role: decide,
            body: b"{\"point\": \"hero\", \"customer_id\": \"c-\xff\xfe\"}".to_vec(),
            content_type: "application/json",
            status: S::BAD_REQUEST,
            detail: "not valid JSON",
        },
        Case {
            what: "decide with truncated JSON",
            method: "POST",
            path: "/v1/decide",
            role: decide,
            body: b"{\"point\": \"hero\", ".to_vec(),
            content_type: "application/json",
            status: S::BAD_REQUEST,
            detail: "not valid JSON",
        },
        Case {
            what: "decide as text/plain",
            method: "POST",
            path: "/v1/decide",
            role: decide,
            body: br#"{"point": "hero", "customer_id": "c-1"}"#.to_vec(),
            content_type: "text/plain",
            status: S::UNSUPPORTED_MEDIA_TYPE,
            detail: "application/json",
        },
        json_case(
            "outcome of an unknown type",
            "POST",
            "/v1/outcomes",
            decide,
            json!({"decision_id": "d", "action_id": "small", "type": "purchase"}),
            S::UNPROCESSABLE_ENTITY,
            "purchase",
        ),
        json_case(
            "outcome without action_id",
            "POST",
            "/v1/outcomes",
            decide,
            json!({"decision_id": "d", "type": "click"}),
            S::UNPROCESSABLE_ENTITY,
            "action_id",
        ),
        json_case(
            "empty outcome batch",
            "POST",
            "/v1/outcomes",
            decide,
            json!({"events": []}),
            S::UNPROCESSABLE_ENTITY,
            "1 to 1000 events",
        ),
        json_case(
            "profile attributes nested 40 deep",
            "PATCH",
            "/v1/customers/c-1",
            editor,
            json!({"attributes": nested(40)}),
            S::UNPROCESSABLE_ENTITY,
            "attributes.k",
        ),
        json_case(
            "profile with 300 attributes",
            "PATCH",
            "/v1/customers/c-1",
            editor,
            json!({"attributes": too_many}),
            S::UNPROCESSABLE_ENTITY,
            "at most 256",
        ),
        json_case(
            "profile attributes of 20 KB",
            "PATCH",
            "/v1/customers/c-1",
            editor,
            json!({"attributes": {"a": "x".repeat(4000), "b": "x".repeat(4000), "c": "x".repeat(4000),
                                  "d": "x".repeat(4000), "e": "x".repeat(4000)}}),
            S::UNPROCESSABLE_ENTITY,
            "bytes of JSON",
        ),
        json_case(
            "profile attribute string of 20 KB",
            "PATCH",
            "/v1/customers/c-1",
            editor,
            json!({"attributes": {"notes": "x".repeat(20_000)}}),
            S::UNPROCESSABLE_ENTITY,
            "attributes.notes has a string or key of 20000 bytes",
        ),
        json_case(
            "profile with an unknown stage",
            "PATCH",
            "/v1/customers/c-1",
            editor,
            json!({"stage": "zombie"}),
            S::UNPROCESSABLE_ENTITY,
            "zombie",
        ),
        json_case(
            "profile with an unknown field",
            "PATCH",
            "/v1/customers/c-1",
            editor,
            json!({"attrs": {"plan": "x"}}),
            S::UNPROCESSABLE_ENTITY,
            "attrs",
        ),
        json_case(
            "bundle with an unknown field",
            "POST",
            "/v1/policies/hero/versions",
            editor,
            json!({"engine": "rhai", "source": BY_VALUE, "catalog": catalog(), "fallback": ["welcome"], "fallbacks": []}),
            S::UNPROCESSABLE_ENTITY,
            "fallbacks",
        ),
        json_case(
            "action with an unknown field",
            "POST",
            "/v1/policies/hero/versions",
            editor,
            json!({"engine": "rhai", "source": BY_VALUE, "catalog": [{"id": "a", "kind": "offer", "prize": 3}], "fallback": []}),
            S::UNPROCESSABLE_ENTITY,
            "prize",
        ),
        json_case(
            "bundle with an unknown engine",
            "POST",
            "/v1/policies/hero/versions",
            editor,
            json!({"engine": "lua", "source": "return {}", "catalog": catalog(), "fallback": []}),
            S::UNPROCESSABLE_ENTITY,
            "lua",
        ),
        json_case(
            "bundle whose fallback is not in the catalog",
            "POST",
            "/v1/policies/hero/versions",
            editor,
            json!({"engine": "rhai", "source": BY_VALUE, "catalog": catalog(), "fallback": ["ghost"]}),
            S::UNPROCESSABLE_ENTITY,
            "ghost",
        ),
        json_case(
            "WASM catalog over the policy input cap",
            "POST",
            "/v1/policies/hero/versions",
            editor,
            wasm_upload(
                &json!({"catalog": big_catalog, "fallback": []}).to_string(),
                TELCO_RETENTION_WASM,
            ),
            S::UNPROCESSABLE_ENTITY,
            "WASM policy may receive",
        ),
        json_case(
            "experiment with weights as text",
            "POST",
            "/v1/experiments",
            editor,
            json!({"point": "hero", "variants": [{"id": "a", "version": 1, "weight": "half"}]}),
            S::UNPROCESSABLE_ENTITY,
            "weight",
        ),
        json_case(
            "tenant settings with an unknown field",
            "PATCH",
            "/v1/tenant",
            admin,
            json!({"cors": ["https://example.com"]}),
            S::UNPROCESSABLE_ENTITY,
            "cors",
        ),
        json_case(
            "key of an unknown role",
            "POST",
            "/v1/keys",
            admin,
            json!({"role": "superuser"}),
            S::UNPROCESSABLE_ENTITY,
            "superuser",
        ),
    ]
}

/// Everything a tenant can read about itself, to show a refused request
/// changed nothing.
async fn snapshot(server: &Server, keys: &Keys) -> Vec<String> {
    let mut seen = Vec::new();
    for (path, key) in [
        ("/v1/policies", &keys.editor),
        ("/v1/policies/hero", &keys.editor),
        ("/v1/customers/c-1", &keys.editor),
        ("/v1/experiments", &keys.editor),
        ("/v1/keys", &keys.admin),
    ] {
        let res = server.get(path, key).send().await.unwrap();
        seen.push(format!(
            "{path} {} {}",
            res.status(),
            res.text().await.unwrap()
        ));
    }
    seen
}

#[tokio::test]
async fn bad_input_gets_a_helpful_problem_and_changes_nothing() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let patch = json!({"attributes": {"plan": "family"}, "stage": "at-risk"});
    let res = server
        .patch("/v1/customers/c-1", &keys.editor, &patch)
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::OK).await;
    let before = snapshot(&server, &keys).await;

    for case in cases() {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let res = server
            .client
            .request(method, server.url(case.path))
            .bearer_auth((case.role)(&keys))
            .header("content-type", case.content_type)
            .body(case.body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), case.status, "{}", case.what);
        let problem = expect(res, case.status).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(case.detail),
            "{}: {detail:?} does not mention {:?}",
            case.what,
            case.detail
        );
    }

    assert_eq!(snapshot(&server, &keys).await, before);
    // The server is still well.
    let ok = json!({"point": "hero", "customer_id": "c-1"});
    assert_eq!(server.decide_ok(&keys.decide, &ok).await["fallback"], false);
}
