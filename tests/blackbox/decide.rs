//! Deciding: ranking, limits, fallback, unknown points, bad requests.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{BY_VALUE, Server, expect, ids};

#[tokio::test]
async fn ranks_attaches_payloads_and_honours_limit() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;

    let all = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "hero", "customer_id": "c-1"}),
        )
        .await;
    assert_eq!(ids(&all), ["large", "medium", "small"]);
    assert_eq!(all["fallback"], false);
    assert_eq!(all["experiment"], json!(null));
    assert_eq!(all["policy"], json!({"name": "hero", "version": 1}));
    assert_eq!(
        all["actions"][0],
        json!({"id": "large", "kind": "offer", "score": 20.0, "payload": {"headline": "20 off"}})
    );
    assert!(all["decision_id"].as_str().is_some_and(|id| !id.is_empty()));

    let one = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "hero", "customer_id": "c-1", "limit": 1}),
        )
        .await;
    assert_eq!(ids(&one), ["large"]);
}

#[tokio::test]
async fn the_policy_sees_the_documented_context() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    // Echo what the policy sees into the scores, so the test reads it back.
    let echo = r#"
        fn decide(ctx) {
            let ok = ctx.customer_id == "c-9" && ctx.stage == "at-risk" && ctx.channel == "web"
                && ctx.attributes.plan == "family" && ctx.attributes.customer_id == "c-9"
                && ctx.attributes.stage == "at-risk" && ctx.context.reason == "price"
                && ctx.candidates.len() == 4 && ctx.candidates[2].tags[0] == "premium"
                && type_of(ctx.now_ms) == "i64";
            [#{ id: if ok { "large" } else { "small" }, score: 1 }]
        }
    "#;
    server.upload_rhai(&keys.editor, "hero", echo).await;
    let body = json!({"point": "hero", "customer_id": "c-9", "stage": "at-risk", "channel": "web",
                      "attributes": {"plan": "family"}, "context": {"reason": "price"}});
    assert_eq!(ids(&server.decide_ok(&keys.decide, &body).await), ["large"]);
}

#[tokio::test]
async fn failing_policies_serve_the_fallback_and_are_counted() {
    // A small operation budget makes the looping script run out of fuel long
    // before the wall-clock deadline, even in a debug build.
    let server = Server::start_with(&["--rhai-max-operations", "20000"]);
    let keys = server.tenant("acme").await;
    let failing = [
        ("throws", r#"fn decide(ctx) { throw "boom" }"#, "trap"),
        ("loops", "fn decide(ctx) { loop {} }", "fuel"),
        ("garbage", "fn decide(ctx) { 42 }", "bad_output"),
        (
            "unknown",
            r#"fn decide(ctx) { [#{id: "ghost", score: 1}] }"#,
            "unknown_action",
        ),
    ];
    for (point, source, reason) in failing {
        server.upload_rhai(&keys.editor, point, source).await;
        let body = json!({"point": point, "customer_id": "c-1", "explain": true});
        let answer = server.decide_ok(&keys.editor, &body).await;
        assert_eq!(answer["fallback"], true, "{point}");
        assert_eq!(ids(&answer), ["welcome"], "{point}");
        assert_eq!(answer["actions"][0]["score"], json!(null));
        assert_eq!(
            answer["explain"]["small"],
            json!({"status": "policy_failed", "reason": reason}),
            "{point}"
        );
        let metrics = server.metrics().await;
        let line =
            format!("moment_policy_fallbacks_total{{engine=\"rhai\",reason=\"{reason}\"}} 1");
        assert!(
            metrics.contains(&line),
            "{point}: no `{line}` in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn explain_says_what_happened_to_every_action() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let body = json!({"point": "hero", "customer_id": "c-1", "limit": 2, "explain": true});
    let explain = server.decide_ok(&keys.editor, &body).await["explain"].clone();
    assert_eq!(
        explain,
        json!({
            "large": {"status": "returned", "rank": 1, "score": 20.0},
            "medium": {"status": "returned", "rank": 2, "score": 10.0},
            "small": {"status": "cut_by_limit", "score": 5.0},
            "welcome": {"status": "not_scored"}
        })
    );
}

#[tokio::test]
async fn bad_requests_are_refused_clearly() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;

    expect(
        server
            .decide(
                &keys.decide,
                &json!({"point": "nowhere", "customer_id": "c-1"}),
            )
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let missing = expect(
        server.decide(&keys.decide, &json!({"point": "hero"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        missing["detail"].as_str().unwrap().contains("customer_id"),
        "{missing}"
    );
    let absurd = json!({"point": "hero", "customer_id": "c-1", "limit": 100000});
    expect(
        server.decide(&keys.decide, &absurd).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let wrong_type = json!({"point": "hero", "customer_id": 42});
    expect(
        server.decide(&keys.decide, &wrong_type).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let malformed = server
        .client
        .post(server.url("/v1/decide"))
        .bearer_auth(&keys.decide)
        .header("content-type", "application/json")
        .body("{\"point\": ")
        .send()
        .await
        .unwrap();
    expect(malformed, StatusCode::BAD_REQUEST).await;

    // The server answers 413 without reading the whole body and closes the
    // connection, so the client may see the reset before the answer: retry
    // transport errors, but the answer must be a 413 problem.
    let huge = json!({"point": "hero", "customer_id": "c-1", "context": {"blob": "x".repeat(2 * 1024 * 1024)}});
    let mut answer = None;
    for _ in 0..10 {
        if let Ok(res) = server.post("/v1/decide", &keys.decide, &huge).send().await {
            answer = Some(res);
            break;
        }
    }
    let answer = answer.expect("no answer to an oversized body in 10 tries");
    expect(answer, StatusCode::PAYLOAD_TOO_LARGE).await;
}
