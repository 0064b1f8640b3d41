//! Reading a version back in full, and trying a version or an unsaved
//! draft through the whole pipeline without writing anything.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use moment_policy_artifacts::{TELCO_RETENTION_BUNDLE, TELCO_RETENTION_WASM};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{BY_VALUE, Server, catalog, expect, ids, rhai_bundle, wasm_upload};

const SMALL_FIRST: &str =
    r#"fn decide(ctx) { [#{id: "small", score: 3}, #{id: "medium", score: 2}] }"#;

#[tokio::test]
async fn a_version_reads_back_with_its_code_catalog_limits_and_author() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let get = |path: &str, key: &str| server.get(path, key).send();

    let v1 = expect(
        get("/v1/policies/hero/versions/1", &keys.editor)
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v1["engine"], "rhai");
    assert_eq!(v1["source"], BY_VALUE);
    assert!(v1.get("wasm").is_none(), "{v1}");
    let catalog_ids: Vec<&str> = v1["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(catalog_ids, ["small", "medium", "large", "welcome"]);
    assert_eq!(v1["catalog"][2]["tags"], json!(["premium"]));
    assert_eq!(v1["fallback"], json!(["welcome"]));
    assert_eq!(v1["limits"]["deadline_ms"], 20, "the operator's default");
    assert_eq!(v1["active"], true);
    assert!(
        v1["created_by"].as_str().unwrap().starts_with("key_"),
        "{v1}"
    );
    assert!(v1["created_at_ms"].as_i64().unwrap() > 0);

    // The tenant's own tighter limits are the ones it runs under.
    let tighter = server
        .patch(
            "/v1/tenant",
            &keys.admin,
            &json!({"limits": {"deadline_ms": 5}}),
        )
        .send()
        .await
        .unwrap();
    assert!(tighter.status().is_success());
    let v1 = expect(
        get("/v1/policies/hero/versions/1", &keys.editor)
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v1["limits"]["deadline_ms"], 5);

    // A WASM version shows the module's size and hash; the module on request.
    let upload = expect(
        server
            .upload(
                &keys.editor,
                "hero",
                &wasm_upload(TELCO_RETENTION_BUNDLE, TELCO_RETENTION_WASM),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(upload["version"], 2);
    let v2 = expect(
        get("/v1/policies/hero/versions/2", &keys.editor)
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v2["engine"], "wasm");
    assert!(v2.get("source").is_none(), "{v2}");
    assert_eq!(v2["wasm"]["size_bytes"], TELCO_RETENTION_WASM.len());
    assert_eq!(
        v2["wasm"]["sha256"],
        hex::encode(Sha256::digest(TELCO_RETENTION_WASM))
    );
    assert!(v2["wasm"].get("base64").is_none(), "only when asked");
    let with_module = expect(
        get("/v1/policies/hero/versions/2?include=wasm", &keys.editor)
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let module = BASE64
        .decode(with_module["wasm"]["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(module, TELCO_RETENTION_WASM);

    // Missing versions, other tenants, bad queries and the decide key.
    for path in [
        "/v1/policies/hero/versions/3",
        "/v1/policies/hero/versions/first",
        "/v1/policies/nope/versions/1",
    ] {
        expect(
            get(path, &keys.editor).await.unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    let other = server.tenant("other").await;
    expect(
        get("/v1/policies/hero/versions/1", &other.editor)
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let problem = expect(
        get(
            "/v1/policies/hero/versions/1?include=everything",
            &keys.editor,
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("wasm"));
    expect(
        get("/v1/policies/hero/versions/1", &keys.decide)
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn trying_runs_the_whole_pipeline_and_writes_nothing() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let mut second = rhai_bundle(SMALL_FIRST);
    second["activate"] = json!(false);
    expect(
        server.upload(&keys.editor, "hero", &second).await,
        StatusCode::CREATED,
    )
    .await;
    let patched = server
        .patch(
            "/v1/customers/c-1",
            &keys.editor,
            &json!({"attributes": {"tier": "gold"}}),
        )
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success());
    let try_it = |body: Value| {
        server
            .post("/v1/policies/hero/try", &keys.editor, &body)
            .send()
    };

    // The live version, with explain, for a stored customer.
    let live = expect(
        try_it(json!({"customer_id": "c-1", "limit": 2}))
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(live["policy"]["version"], 1);
    assert_eq!(ids(&live), ["large", "medium"]);
    assert_eq!(live["explain"]["small"]["status"], "cut_by_limit");
    assert_eq!(live["explain"]["welcome"]["status"], "not_scored");

    // A stored version that is not live.
    let v2 = expect(
        try_it(json!({"version": 2, "customer_id": "c-1"}))
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v2["policy"]["version"], 2);
    assert_eq!(ids(&v2), ["small", "medium"]);

    // A draft, with eligibility over the given attributes and no customer.
    let mut draft_catalog = catalog();
    draft_catalog[2]["eligibility"] = json!({"tier": "gold"});
    let draft = json!({"engine": "rhai", "source": BY_VALUE, "catalog": draft_catalog,
                       "fallback": ["welcome"]});
    let silver = expect(
        try_it(json!({"draft": draft, "attributes": {"tier": "silver"}}))
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        silver["policy"]["version"], 0,
        "a draft answers as version 0"
    );
    assert_eq!(ids(&silver), ["medium", "small"]);
    assert_eq!(silver["explain"]["large"]["status"], "ineligible");
    let gold = expect(
        try_it(json!({"draft": draft, "customer_id": "c-1"}))
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&gold)[0], "large", "the stored profile's tier counts");

    // A draft that does not compile names the line, like an upload.
    let broken = json!({"engine": "rhai", "source": "fn decide(ctx) {\n  let x = ;\n}",
                        "catalog": catalog(), "fallback": ["welcome"]});
    let problem = expect(
        try_it(json!({"draft": broken})).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("line 2"), "{detail}");

    // Nothing was written: no decision to report an outcome against, no
    // impression, the policy list unchanged.
    let outcome = server
        .post(
            "/v1/outcomes",
            &keys.decide,
            &json!({"decision_id": live["decision_id"], "action_id": "large", "type": "click"}),
        )
        .send()
        .await
        .unwrap();
    expect(outcome, StatusCode::NOT_FOUND).await;
    let customer = expect(
        server
            .get("/v1/customers/c-1", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(customer["history"], json!({}), "{customer}");
    let policies = expect(
        server
            .get("/v1/policies", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        policies[0]["latest_version"], 2,
        "the drafts were not saved"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("moment_policy_tries_total{outcome=\"policy\",reason=\"\"} 4"),
        "{metrics}"
    );
    assert!(!metrics.contains("moment_decisions_total"), "{metrics}");

    // Refusals: both a version and a draft, an activating draft, a missing
    // version or policy, the decide key.
    let mut activating = draft.clone();
    activating["activate"] = json!(true);
    for (body, status) in [
        (
            json!({"version": 1, "draft": draft}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"draft": activating}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"version": 7}), StatusCode::NOT_FOUND),
    ] {
        expect(try_it(body).await.unwrap(), status).await;
    }
    expect(
        server
            .post("/v1/policies/nope/try", &keys.editor, &json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        server
            .post("/v1/policies/hero/try", &keys.decide, &json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn a_try_ignores_experiments_and_never_feeds_the_breaker() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let mut failing = rhai_bundle(r#"fn decide(ctx) { throw "broken" }"#);
    failing["activate"] = json!(false);
    expect(
        server.upload(&keys.editor, "hero", &failing).await,
        StatusCode::CREATED,
    )
    .await;
    let experiment = json!({"id": "all-in", "point": "hero", "seed": "s", "hash_version": 2,
        "coverage": 1.0, "goal": "convert",
        "variants": [{"id": "a", "version": 2, "weight": 0.5}, {"id": "b", "version": 2, "weight": 0.5}]});
    let created = server
        .post("/v1/experiments", &keys.editor, &experiment)
        .send()
        .await
        .unwrap();
    expect(created, StatusCode::CREATED).await;

    // Every customer is in the experiment, whose version throws; a try of
    // the live version runs the live version.
    for i in 0..20 {
        let ask = json!({"customer_id": format!("c-{i}")});
        let tried = expect(
            server
                .post("/v1/policies/hero/try", &keys.editor, &ask)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(tried["policy"]["version"], 1);
        assert!(tried["experiment"].is_null(), "{tried}");
    }
    // Twenty failing tries of version 2 leave its breaker closed: the
    // experiment's first decision still runs it (and fails as `trap`, not
    // `circuit_open`).
    for _ in 0..20 {
        let tried = expect(
            server
                .post(
                    "/v1/policies/hero/try",
                    &keys.editor,
                    &json!({"version": 2}),
                )
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(tried["fallback"], true);
    }
    let decided = server
        .decide_ok(
            &keys.editor,
            &json!({"point": "hero", "customer_id": "c-1", "explain": true}),
        )
        .await;
    assert_eq!(decided["policy"]["version"], 2);
    assert_eq!(
        decided["explain"]["small"],
        json!({"status": "policy_failed", "reason": "trap"})
    );
}
