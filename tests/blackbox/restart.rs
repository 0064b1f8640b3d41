//! Durability: what was acknowledged survives `kill -9`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{BY_VALUE, Server, expect, ids};

#[tokio::test]
async fn tenants_keys_and_live_versions_survive_sigkill() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let second = r#"fn decide(ctx) { [#{id: "small", score: 1}] }"#;
    server.upload_rhai(&keys.editor, "hero", second).await;
    let rollback = server.post(
        "/v1/policies/hero/activate",
        &keys.editor,
        &json!({"version": 1}),
    );
    expect(rollback.send().await.unwrap(), StatusCode::OK).await;

    let server = server.kill_and_restart();
    let ask = json!({"point": "hero", "customer_id": "c-1"});
    let answer = server.decide_ok(&keys.decide, &ask).await;
    assert_eq!(answer["policy"]["version"], 1);
    assert_eq!(ids(&answer), ["large", "medium", "small"]);
    let detail = expect(
        server
            .get("/v1/policies/hero", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    // Version numbering continues after the restart.
    assert_eq!(server.upload_rhai(&keys.editor, "hero", BY_VALUE).await, 3);
}

#[tokio::test]
async fn a_stored_version_that_no_longer_compiles_serves_its_fallback() {
    let server = Server::start();
    let acme = server.tenant("acme").await;
    let other = server.tenant("other").await;
    server.upload_rhai(&acme.editor, "hero", BY_VALUE).await;
    server.upload_rhai(&other.editor, "hero", BY_VALUE).await;
    // Break acme's stored code behind the server's back, as an engine upgrade might.
    let server = server.kill_and_restart_after(|data| {
        let db = rusqlite::Connection::open(data.join("moment.sqlite3")).unwrap();
        let sql = "UPDATE policy_versions SET code = CAST('fn decide(ctx) {' AS BLOB) WHERE tenant = 'acme'";
        assert_eq!(db.execute(sql, []).unwrap(), 1);
    });
    let ask = json!({"point": "hero", "customer_id": "c-1", "explain": true});
    let answer = server.decide_ok(&acme.decide, &ask).await;
    assert_eq!(answer["fallback"], true);
    assert_eq!(answer["explain"]["small"]["reason"], "unloadable");
    assert_eq!(
        server.decide_ok(&other.decide, &ask).await["fallback"],
        false
    );
}
