//! Tenant walls and roles across every route, and key rotation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{BY_VALUE, Keys, Server, expect, rhai_bundle};

/// A tenant with a policy, a customer, a decision and an experiment.
async fn populated(server: &Server, id: &str) -> (Keys, String) {
    let keys = server.tenant(id).await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let patch = server.patch(
        "/v1/customers/c-1",
        &keys.editor,
        &json!({"attributes": {"a": 1}}),
    );
    expect(patch.send().await.unwrap(), StatusCode::OK).await;
    let decision = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "hero", "customer_id": "c-1"}),
        )
        .await;
    let experiment = json!({"id": "exp", "point": "hero", "goal": "convert",
        "variants": [{"id": "a", "version": 1, "weight": 0.5}, {"id": "b", "version": 2, "weight": 0.5}]});
    expect(
        server
            .post("/v1/experiments", &keys.editor, &experiment)
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    (keys, decision["decision_id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_route_checks_role_and_tenant() {
    let server = Server::start();
    let (acme, decision) = populated(&server, "acme").await;
    let (rival, _) = populated(&server, "rival").await;
    let _ = rival;
    let intruder = server.tenant("intruder").await;

    // (method, path, body, least role) for routes that touch acme's resources.
    let routes: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::GET,
            "/v1/policies/hero".into(),
            Value::Null,
            "editor",
        ),
        (
            Method::POST,
            "/v1/policies/hero/activate".into(),
            json!({"version": 1}),
            "editor",
        ),
        (
            Method::GET,
            "/v1/customers/c-1".into(),
            Value::Null,
            "editor",
        ),
        (
            Method::GET,
            "/v1/experiments/exp".into(),
            Value::Null,
            "editor",
        ),
        (
            Method::GET,
            "/v1/experiments/exp/results".into(),
            Value::Null,
            "editor",
        ),
        (
            Method::POST,
            "/v1/decide".into(),
            json!({"point": "hero", "customer_id": "c-1"}),
            "decide",
        ),
        (
            Method::POST,
            "/v1/outcomes".into(),
            json!({"decision_id": decision, "action_id": "large", "type": "click"}),
            "decide",
        ),
        (Method::GET, "/v1/experiments".into(), Value::Null, "editor"),
        (
            Method::PATCH,
            "/v1/customers/c-1".into(),
            json!({"attributes": {"b": 2}}),
            "editor",
        ),
        (
            Method::PATCH,
            "/v1/tenant".into(),
            json!({"cors_origins": ["*"]}),
            "admin",
        ),
        (
            Method::POST,
            "/v1/experiments/exp/stop".into(),
            json!({}),
            "editor",
        ),
        (Method::GET, "/v1/keys".into(), Value::Null, "admin"),
        // Last: for the intruder it creates its own `hero`.
        (
            Method::POST,
            "/v1/policies/hero/versions".into(),
            rhai_bundle(BY_VALUE),
            "editor",
        ),
    ];
    let rank = |role: &str| {
        ["decide", "editor", "admin"]
            .iter()
            .position(|r| *r == role)
            .unwrap()
    };
    for (method, path, body, least) in &routes {
        for (role, key) in [
            ("decide", &acme.decide),
            ("editor", &acme.editor),
            ("admin", &acme.admin),
        ] {
            let mut request = server
                .client
                .request(method.clone(), server.url(path))
                .bearer_auth(key);
            if !body.is_null() {
                request = request.json(body);
            }
            let status = request.send().await.unwrap().status();
            if rank(role) < rank(least) {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} on {method} {path}");
            } else {
                assert!(status.is_success(), "{role} on {method} {path}: {status}");
            }
        }
        // A key of another tenant with every right it could have: the resource does not exist for it.
        let key = match *least {
            "decide" => &intruder.decide,
            "editor" => &intruder.editor,
            _ => &intruder.admin,
        };
        let mut request = server
            .client
            .request(method.clone(), server.url(path))
            .bearer_auth(key);
        if !body.is_null() {
            request = request.json(body);
        }
        let status = request.send().await.unwrap().status();
        let expected = match (method.as_str(), path.as_str()) {
            // These act on the intruder's own tenant: its own policy, customer,
            // settings, experiments and keys.
            ("POST", "/v1/policies/hero/versions") => StatusCode::CREATED,
            ("GET", "/v1/keys" | "/v1/experiments")
            | ("PATCH", "/v1/customers/c-1" | "/v1/tenant") => StatusCode::OK,
            _ => StatusCode::NOT_FOUND,
        };
        assert_eq!(status, expected, "intruder on {method} {path}");
    }
    // No key at all: 401 everywhere.
    for (method, path, _, _) in &routes {
        let status = server
            .client
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "anonymous {method} {path}"
        );
    }
    // The intruder's own listings show nothing of acme's.
    let policies = expect(
        server
            .get("/v1/policies", &intruder.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        policies,
        json!([{"name": "hero", "live_version": 1, "latest_version": 1}])
    );
    let customer = expect(
        server
            .get("/v1/customers/c-1", &intruder.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        customer["attributes"],
        json!({"b": 2}),
        "acme's attributes must not show"
    );
    let experiments = expect(
        server
            .get("/v1/experiments", &intruder.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(experiments, json!([]));
}

#[tokio::test]
async fn keys_can_be_issued_listed_and_revoked_at_once() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let ask = json!({"point": "hero", "customer_id": "c-1"});

    expect(
        server
            .post("/v1/keys", &keys.editor, &json!({"role": "decide"}))
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let issued = expect(
        server
            .post("/v1/keys", &keys.admin, &json!({"role": "decide"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let (id, secret) = (
        issued["id"].as_str().unwrap(),
        issued["key"].as_str().unwrap(),
    );
    server.decide_ok(secret, &ask).await;

    let revoke = |key: &str, id: &str| {
        server
            .client
            .delete(server.url(&format!("/v1/keys/{id}")))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(
        revoke(&keys.admin, id).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    expect(server.decide(secret, &ask).await, StatusCode::UNAUTHORIZED).await;
    expect(
        revoke(&keys.admin, id).await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;

    let listed = expect(
        server.get("/v1/keys", &keys.admin).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter()
            .any(|k| k["id"] == id && k["revoked_at_ms"].is_u64())
    );
    assert!(
        rows.iter()
            .all(|k| k.get("key").is_none() && k.get("hash").is_none())
    );
    let own = rows.iter().find(|k| k["role"] == "admin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect(
        revoke(&keys.admin, &own).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // Another tenant cannot revoke acme's keys.
    let rival = server.tenant("rival").await;
    let editor_id = rows.iter().find(|k| k["role"] == "editor").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect(
        revoke(&rival.admin, &editor_id).await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    // Revocation survives a restart.
    let server = server.kill_and_restart();
    expect(server.decide(secret, &ask).await, StatusCode::UNAUTHORIZED).await;
    server.decide_ok(&keys.decide, &ask).await;
}
