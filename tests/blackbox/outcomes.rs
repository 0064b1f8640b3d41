//! Outcomes, contact rules built from them, and customer history.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Keys, Server, expect, ids};

const ALL: &str = r#"fn decide(ctx) { let out = []; for c in ctx.candidates { out.push(#{id: c.id, score: c.value}); } out }"#;

async fn setup(server: &Server, contact: Value) -> Keys {
    let keys = server.tenant("acme").await;
    let bundle = json!({
        "engine": "rhai", "source": ALL, "activate": true, "fallback": ["welcome"],
        "catalog": [
            {"id": "promo", "kind": "offer", "value": 10.0, "contact": contact},
            {"id": "welcome", "kind": "message", "value": 1.0}
        ]
    });
    expect(
        server.upload(&keys.editor, "kiosk", &bundle).await,
        StatusCode::CREATED,
    )
    .await;
    keys
}

async fn outcome(server: &Server, key: &str, body: Value) -> reqwest::Response {
    server
        .post("/v1/outcomes", key, &body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cap_of_two_impressions_a_day_holds_on_the_third_decide() {
    let server = Server::start();
    let keys = setup(&server, json!({"max_impressions": 2, "per": "day"})).await;
    let ask = json!({"point": "kiosk", "customer_id": "c-1", "record_impressions": true, "explain": true});
    for _ in 0..2 {
        assert_eq!(
            ids(&server.decide_ok(&keys.editor, &ask).await),
            ["promo", "welcome"]
        );
    }
    let third = server.decide_ok(&keys.editor, &ask).await;
    assert_eq!(ids(&third), ["welcome"]);
    assert_eq!(third["explain"]["promo"]["status"], "contact_rule");

    let customer = expect(
        server
            .get("/v1/customers/c-1", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(customer["history"]["promo"]["impressions"], 2);
    assert_eq!(customer["history"]["welcome"]["impressions"], 3);
    // Another customer is not capped.
    let other = json!({"point": "kiosk", "customer_id": "c-2"});
    assert_eq!(
        ids(&server.decide_ok(&keys.decide, &other).await),
        ["promo", "welcome"]
    );
}

#[tokio::test]
async fn a_reject_starts_the_cooldown_across_channels() {
    let server = Server::start();
    let keys = setup(&server, json!({"cooldown_after_reject": 7})).await;
    let web = json!({"point": "kiosk", "customer_id": "c-1", "channel": "web"});
    let first = server.decide_ok(&keys.decide, &web).await;
    assert_eq!(ids(&first), ["promo", "welcome"]);
    let reject =
        json!({"decision_id": first["decision_id"], "action_id": "promo", "type": "reject"});
    let accepted = expect(
        outcome(&server, &keys.decide, reject).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(accepted, json!({"accepted": 1, "duplicates": 0}));

    let kiosk =
        json!({"point": "kiosk", "customer_id": "c-1", "channel": "kiosk", "explain": true});
    let after = server.decide_ok(&keys.editor, &kiosk).await;
    assert_eq!(ids(&after), ["welcome"]);
    assert_eq!(after["explain"]["promo"]["status"], "contact_rule");
}

#[tokio::test]
async fn outcomes_are_checked_idempotent_and_visible_in_the_profile() {
    let server = Server::start();
    let keys = setup(&server, json!({"suppress_after_accept": true})).await;
    let decision = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "kiosk", "customer_id": "c-1"}),
        )
        .await;
    let id = decision["decision_id"].clone();

    let unknown = json!({"decision_id": "no-such-decision", "action_id": "promo", "type": "click"});
    expect(
        outcome(&server, &keys.decide, unknown).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let not_returned = json!({"decision_id": id, "action_id": "ghost", "type": "click"});
    expect(
        outcome(&server, &keys.decide, not_returned).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let bad_type = json!({"decision_id": id, "action_id": "promo", "type": "purchase"});
    let problem = expect(
        outcome(&server, &keys.decide, bad_type).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("purchase"),
        "{problem}"
    );

    // A client retry of the same click is stored once.
    let click = json!({"decision_id": id, "action_id": "promo", "type": "click"});
    assert_eq!(
        expect(
            outcome(&server, &keys.decide, click.clone()).await,
            StatusCode::ACCEPTED
        )
        .await["accepted"],
        1
    );
    assert_eq!(
        expect(
            outcome(&server, &keys.decide, click).await,
            StatusCode::ACCEPTED
        )
        .await["duplicates"],
        1
    );
    // Two purchases with their own idempotency keys are both stored; a batch is accepted whole.
    let batch = json!({"events": [
        {"decision_id": id, "action_id": "promo", "type": "convert", "value": 30.0, "idempotency_key": "order-1"},
        {"decision_id": id, "action_id": "promo", "type": "convert", "value": 12.5, "idempotency_key": "order-2"},
        {"decision_id": id, "action_id": "promo", "type": "accept"}
    ]});
    assert_eq!(
        expect(
            outcome(&server, &keys.decide, batch).await,
            StatusCode::ACCEPTED
        )
        .await["accepted"],
        3
    );

    let customer = expect(
        server
            .get("/v1/customers/c-1", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let promo = &customer["history"]["promo"];
    assert_eq!(
        promo["counts"],
        json!({"click": 1, "accept": 1, "convert": 2})
    );
    assert!(promo["last_ms"]["accept"].as_u64().is_some());
    // Accepted: suppressed from now on.
    let again = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "kiosk", "customer_id": "c-1"}),
        )
        .await;
    assert_eq!(ids(&again), ["welcome"]);
}

#[tokio::test]
async fn customers_and_outcomes_are_walled_off_by_tenant_and_role() {
    let server = Server::start();
    let keys = setup(&server, json!({})).await;
    let rival = server.tenant("rival").await;
    let decision = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "kiosk", "customer_id": "c-1"}),
        )
        .await;
    let click =
        json!({"decision_id": decision["decision_id"], "action_id": "promo", "type": "click"});
    expect(
        outcome(&server, &rival.decide, click.clone()).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        server
            .get("/v1/customers/c-1", &rival.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        server
            .get("/v1/customers/c-1", &keys.decide)
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let patch = server.patch(
        "/v1/customers/c-1",
        &keys.decide,
        &json!({"attributes": {}}),
    );
    expect(patch.send().await.unwrap(), StatusCode::FORBIDDEN).await;
    expect(
        outcome(&server, &keys.decide, click).await,
        StatusCode::ACCEPTED,
    )
    .await;
}

#[tokio::test]
async fn acknowledged_outcomes_and_profiles_survive_sigkill() {
    let server = Server::start();
    let keys = setup(&server, json!({"max_impressions": 1, "per": "week"})).await;
    let patch = server.patch(
        "/v1/customers/c-1",
        &keys.editor,
        &json!({"attributes": {"plan": "family"}}),
    );
    expect(patch.send().await.unwrap(), StatusCode::OK).await;
    let decision = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "kiosk", "customer_id": "c-1"}),
        )
        .await;
    let shown =
        json!({"decision_id": decision["decision_id"], "action_id": "promo", "type": "impression"});
    expect(
        outcome(&server, &keys.decide, shown).await,
        StatusCode::ACCEPTED,
    )
    .await;

    let server = server.kill_and_restart();
    let customer = expect(
        server
            .get("/v1/customers/c-1", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(customer["attributes"], json!({"plan": "family"}));
    assert_eq!(customer["history"]["promo"]["impressions"], 1);
    // The weekly cap still holds after the restart.
    let again = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "kiosk", "customer_id": "c-1"}),
        )
        .await;
    assert_eq!(ids(&again), ["welcome"]);
}

#[tokio::test]
async fn concurrent_decides_cannot_pass_a_cap_together() {
    let server = Server::start();
    let keys = setup(&server, json!({"max_impressions": 2, "per": "day"})).await;
    let ask = json!({"point": "kiosk", "customer_id": "c-1", "record_impressions": true});
    let answers =
        futures::future::join_all((0..8).map(|_| server.decide_ok(&keys.decide, &ask))).await;
    let shown = answers
        .iter()
        .filter(|a| ids(a).contains(&"promo".to_owned()))
        .count();
    assert_eq!(shown, 2);
}

/// Browsers' beacons cannot set headers: `POST /v1/outcomes` alone takes a
/// publishable key as `?key=` and a `text/plain` body, and nothing else does.
#[tokio::test]
async fn beacons_report_with_the_publishable_key_in_the_url_on_that_route_only() {
    let server = Server::start();
    let keys = setup(&server, json!({})).await;
    let decision = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "kiosk", "customer_id": "c-b"}),
        )
        .await;
    let id = decision["decision_id"].as_str().unwrap();
    let events = json!({"events": [
        {"decision_id": id, "action_id": "promo", "type": "click", "idempotency_key": "k-1"}
    ]})
    .to_string();
    let beacon = |key: &str, content_type: &str, origin: Option<&str>| {
        let mut request = server
            .client
            .post(server.url("/v1/outcomes"))
            .query(&[("key", key)])
            .header("Content-Type", content_type)
            .body(events.clone());
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };

    let sent = beacon(&keys.decide, "text/plain;charset=UTF-8", None)
        .await
        .unwrap();
    assert_eq!(
        expect(sent, StatusCode::ACCEPTED).await,
        json!({"accepted": 1, "duplicates": 0})
    );
    // The same beacon again (a page that hid twice) counts once.
    let again = beacon(&keys.decide, "text/plain", None).await.unwrap();
    assert_eq!(
        expect(again, StatusCode::ACCEPTED).await,
        json!({"accepted": 0, "duplicates": 1})
    );

    // Only the publishable key: an editor's or admin's key in a URL would
    // end up in browser history and proxy logs.
    for key in [&keys.editor, &keys.admin] {
        let refused = expect(
            beacon(key, "text/plain", None).await.unwrap(),
            StatusCode::FORBIDDEN,
        )
        .await;
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("only a publishable"),
            "{refused}"
        );
    }
    expect(
        beacon("not-a-key", "text/plain", None).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // A body that is not JSON is refused like any other.
    let garbled = server
        .client
        .post(server.url("/v1/outcomes"))
        .query(&[("key", keys.decide.as_str())])
        .header("Content-Type", "text/plain")
        .body("clicked!")
        .send()
        .await
        .unwrap();
    expect(garbled, StatusCode::BAD_REQUEST).await;

    // A page's script may read how long to wait after a 429 or 503.
    let cors = server
        .client
        .post(server.url("/v1/outcomes"))
        .bearer_auth(&keys.decide)
        .header("Origin", "https://shop.example")
        .json(&json!({"events": [
            {"decision_id": id, "action_id": "promo", "type": "click", "idempotency_key": "k-1"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        cors.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase(),
        "retry-after"
    );

    // The tenant's CORS origins still apply.
    let patch = json!({"cors_origins": ["https://shop.example"]});
    expect(
        server
            .patch("/v1/tenant", &keys.admin, &patch)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    expect(
        beacon(&keys.decide, "text/plain", Some("https://evil.example"))
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        beacon(&keys.decide, "text/plain", Some("https://shop.example"))
            .await
            .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;

    // No other route reads a key from the URL or a text/plain body.
    let decide_by_url = server
        .client
        .post(server.url("/v1/decide"))
        .query(&[("key", keys.decide.as_str())])
        .json(&json!({"point": "kiosk", "customer_id": "c-b"}))
        .send()
        .await
        .unwrap();
    expect(decide_by_url, StatusCode::UNAUTHORIZED).await;
    let decide_as_text = server
        .client
        .post(server.url("/v1/decide"))
        .bearer_auth(&keys.decide)
        .header("Content-Type", "text/plain")
        .body(json!({"point": "kiosk", "customer_id": "c-b"}).to_string())
        .send()
        .await
        .unwrap();
    expect(decide_as_text, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    let customer = expect(
        server
            .get("/v1/customers/c-b", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(customer["history"]["promo"]["counts"]["click"], 1);
}
