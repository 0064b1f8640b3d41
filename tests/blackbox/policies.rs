//! Uploading, validating, listing and activating policy versions.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{BY_VALUE, Server, catalog, expect, ids, rhai_bundle};

const SMALL_FIRST: &str =
    r#"fn decide(ctx) { [#{id: "small", score: 3}, #{id: "medium", score: 2}] }"#;

#[tokio::test]
async fn activation_and_rollback_switch_the_live_version() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let ask = json!({"point": "hero", "customer_id": "c-1"});
    assert_eq!(server.upload_rhai(&keys.editor, "hero", BY_VALUE).await, 1);
    let v1 = server.decide_ok(&keys.decide, &ask).await;
    assert_eq!(
        (v1["policy"]["version"].as_u64(), ids(&v1)),
        (
            Some(1),
            vec!["large".into(), "medium".into(), "small".into()]
        )
    );

    // An inactive upload changes nothing live.
    let mut inactive = rhai_bundle(SMALL_FIRST);
    inactive["activate"] = json!(false);
    let created = expect(
        server.upload(&keys.editor, "hero", &inactive).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        created,
        json!({"name": "hero", "version": 2, "active": false})
    );
    assert_eq!(
        server.decide_ok(&keys.decide, &ask).await["policy"]["version"],
        1
    );

    let activate = |v: u64| {
        server
            .post(
                "/v1/policies/hero/activate",
                &keys.editor,
                &json!({"version": v}),
            )
            .send()
    };
    expect(activate(2).await.unwrap(), StatusCode::OK).await;
    let v2 = server.decide_ok(&keys.decide, &ask).await;
    assert_eq!(
        (v2["policy"]["version"].as_u64(), ids(&v2)),
        (Some(2), vec!["small".into(), "medium".into()])
    );

    // Rollback is activating the older version.
    expect(activate(1).await.unwrap(), StatusCode::OK).await;
    assert_eq!(
        server.decide_ok(&keys.decide, &ask).await["policy"]["version"],
        1
    );
    expect(activate(9).await.unwrap(), StatusCode::NOT_FOUND).await;

    let detail = expect(
        server
            .get("/v1/policies/hero", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(detail["live_version"], 1);
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    let events: Vec<_> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("uploaded", 1),
        ("activated", 1),
        ("uploaded", 2),
        ("activated", 2),
        ("activated", 1),
    ];
    assert_eq!(events, expected.map(|(e, v)| (e.to_owned(), v)));
    let list = expect(
        server
            .get("/v1/policies", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        list,
        json!([{"name": "hero", "live_version": 1, "latest_version": 2}])
    );
}

#[tokio::test]
async fn invalid_uploads_get_422_with_what_to_fix_and_change_nothing() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let syntax = server
        .upload(
            &keys.editor,
            "hero",
            &rhai_bundle("fn decide(ctx) {\n    let x = ;\n}"),
        )
        .await;
    let problem = expect(syntax, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("line 2, column"),
        "{problem}"
    );

    let no_decide = server
        .upload(&keys.editor, "hero", &rhai_bundle("fn other(ctx) { [] }"))
        .await;
    expect(no_decide, StatusCode::UNPROCESSABLE_ENTITY).await;

    let mut dup = rhai_bundle(BY_VALUE);
    dup["catalog"][1]["id"] = json!("small");
    expect(
        server.upload(&keys.editor, "hero", &dup).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let mut bad_fallback = rhai_bundle(BY_VALUE);
    bad_fallback["fallback"] = json!(["nope"]);
    expect(
        server.upload(&keys.editor, "hero", &bad_fallback).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let mut unknown_field = rhai_bundle(BY_VALUE);
    unknown_field["catalog"][0]["colour"] = json!("red");
    let problem = expect(
        server.upload(&keys.editor, "hero", &unknown_field).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("colour"),
        "{problem}"
    );

    let wrong_engine = json!({"engine": "rhai", "wasm": "AGFzbQ==", "catalog": catalog()});
    expect(
        server.upload(&keys.editor, "hero", &wrong_engine).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    expect(
        server
            .upload(&keys.editor, "Bad Name", &rhai_bundle(BY_VALUE))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // Nothing was stored.
    expect(
        server
            .get("/v1/policies/hero", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}
