//! Per-tenant policy limits: tighter than the operator's, for that tenant only.

use base64::Engine as _;
use moment_policy_artifacts::{TELCO_RETENTION_BUNDLE, TELCO_RETENTION_WASM};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{BY_VALUE, Keys, Server, expect, rhai_bundle};

/// About 30,000 Rhai operations.
const BUSY: &str =
    r#"fn decide(ctx) { let n = 0; for i in 0..10000 { n += i; } [#{id: "small", score: n}] }"#;

async fn settings(server: &Server, keys: &Keys, patch: Value) -> reqwest::Response {
    server
        .patch("/v1/tenant", &keys.admin, &patch)
        .send()
        .await
        .unwrap()
}

fn reason(answer: &Value) -> Option<&str> {
    answer["explain"]
        .as_object()?
        .values()
        .find_map(|v| v["reason"].as_str())
}

#[tokio::test]
async fn a_tenants_limits_apply_to_it_alone() {
    let server = Server::start();
    let tight = server.tenant("tight").await;
    let roomy = server.tenant("roomy").await;
    let mut wasm: Value = serde_json::from_str(TELCO_RETENTION_BUNDLE).unwrap();
    wasm["engine"] = json!("wasm");
    wasm["wasm"] = json!(base64::engine::general_purpose::STANDARD.encode(TELCO_RETENTION_WASM));
    wasm["activate"] = json!(true);
    for keys in [&tight, &roomy] {
        server.upload_rhai(&keys.editor, "busy", BUSY).await;
        expect(
            server.upload(&keys.editor, "telco", &wasm).await,
            StatusCode::CREATED,
        )
        .await;
    }
    let limits = json!({"limits": {"rhai_max_operations": 5000, "wasm_memory_bytes": 65536}});
    expect(settings(&server, &tight, limits).await, StatusCode::OK).await;

    let busy = json!({"point": "busy", "customer_id": "c-1", "explain": true});
    let telco =
        json!({"point": "telco", "customer_id": "c-1", "stage": "at-risk", "explain": true});
    let (capped, free) = (
        server.decide_ok(&tight.editor, &busy).await,
        server.decide_ok(&roomy.editor, &busy).await,
    );
    assert_eq!(
        (capped["fallback"].as_bool(), reason(&capped)),
        (Some(true), Some("fuel"))
    );
    assert_eq!(free["fallback"], false);
    let (capped, free) = (
        server.decide_ok(&tight.editor, &telco).await,
        server.decide_ok(&roomy.editor, &telco).await,
    );
    assert_eq!(
        (capped["fallback"].as_bool(), reason(&capped)),
        (Some(true), Some("memory"))
    );
    assert_eq!(free["fallback"], false);

    // A tenant cannot loosen the operator's limits.
    for looser in [
        json!({"deadline_ms": 60000}),
        json!({"wasm_fuel": 0}),
        json!({"wasm_memory_bytes": 1_000_000_000}),
    ] {
        let problem = expect(
            settings(&server, &tight, json!({"limits": looser})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().starts_with("limits."),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn code_over_the_operators_cap_is_refused_and_nothing_is_stored() {
    let server = Server::start_with(&["--max-code-bytes", "65536"]);
    let keys = server.tenant("acme").await;
    // A valid script padded with a comment to one byte over the cap; the
    // request body itself is well within the upload limit.
    let mut source = BY_VALUE.to_owned();
    source.push_str("//");
    source.push_str(&"x".repeat(65536 - source.len()));
    source.push('\n');
    assert_eq!(source.len(), 65537);
    let refused = expect(
        server
            .upload(&keys.editor, "hero", &rhai_bundle(&source))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(
        refused["detail"],
        "the code is 65537 bytes; at most 65536 are allowed (--max-code-bytes)"
    );
    let listed = expect(
        server
            .get("/v1/policies", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed, json!([]), "nothing stored");
    // One byte less is taken.
    source.truncate(65535);
    source.push('\n');
    expect(
        server
            .upload(&keys.editor, "hero", &rhai_bundle(&source))
            .await,
        StatusCode::CREATED,
    )
    .await;
}
