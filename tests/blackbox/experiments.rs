//! Experiments over HTTP: GrowthBook-compatible sticky assignment, exact
//! exposure and conversion counts, statistics, and the SRM alarm.

use moment_targeting::hash;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Keys, Server, expect};

const CONTROL: &str = r#"fn decide(ctx) { [#{id: "a", score: 2}, #{id: "b", score: 1}] }"#;
const TREATMENT: &str = r#"fn decide(ctx) { [#{id: "b", score: 2}, #{id: "a", score: 1}] }"#;

async fn two_versions(server: &Server, keys: &Keys, point: &str) {
    for (source, activate) in [(CONTROL, true), (TREATMENT, false)] {
        let bundle = json!({"engine": "rhai", "source": source, "activate": activate, "fallback": ["a"],
                            "catalog": [{"id": "a", "kind": "offer"}, {"id": "b", "kind": "offer"}]});
        expect(
            server.upload(&keys.editor, point, &bundle).await,
            StatusCode::CREATED,
        )
        .await;
    }
}

fn experiment(id: &str, point: &str) -> Value {
    json!({"id": id, "point": point, "seed": id, "hash_version": 2, "coverage": 1.0, "goal": "convert",
           "variants": [{"id": "control", "version": 1, "weight": 0.5}, {"id": "treatment", "version": 2, "weight": 0.5}]})
}

/// The variant GrowthBook's SDK would assign (50/50, full coverage).
pub(crate) fn expected_variant(seed: &str, customer: &str) -> &'static str {
    if hash(seed, customer, 2).unwrap() < 0.5 {
        "control"
    } else {
        "treatment"
    }
}

async fn results(server: &Server, keys: &Keys, id: &str) -> Value {
    expect(
        server
            .get(&format!("/v1/experiments/{id}/results"), &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn an_experiment_assigns_stickily_counts_exactly_and_computes_results() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    two_versions(&server, &keys, "hero").await;
    let created = server
        .post(
            "/v1/experiments",
            &keys.editor,
            &experiment("hero-test", "hero"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(created, StatusCode::CREATED).await["status"],
        "running"
    );

    let mut exposed = [0u64; 2];
    let mut converted = [0u64; 2];
    let mut value = [0.0f64; 2];
    for i in 0..300 {
        let customer = format!("cust-{i}");
        let answer = server
            .decide_ok(
                &keys.decide,
                &json!({"point": "hero", "customer_id": customer}),
            )
            .await;
        let variant = expected_variant("hero-test", &customer);
        assert_eq!(
            answer["experiment"],
            json!({"id": "hero-test", "variant": variant}),
            "{customer}"
        );
        let v = usize::from(variant == "treatment");
        assert_eq!(answer["policy"]["version"], v + 1);
        exposed[v] += 1;
        // Treatment converts every 3rd customer, control every 5th; one buys twice.
        if i % [5, 3][v] == 0 {
            converted[v] += 1;
            let times = if i == 0 { 2 } else { 1 };
            for n in 0..times {
                let convert = json!({"decision_id": answer["decision_id"], "action_id": answer["actions"][0]["id"],
                                     "type": "convert", "value": 10.0, "idempotency_key": format!("{customer}-{n}")});
                expect(
                    server
                        .post("/v1/outcomes", &keys.decide, &convert)
                        .send()
                        .await
                        .unwrap(),
                    StatusCode::ACCEPTED,
                )
                .await;
                value[v] += 10.0;
            }
        }
    }
    // Sticky: the same customers get the same variants again (and are still counted once).
    for i in 0..50 {
        let customer = format!("cust-{i}");
        let answer = server
            .decide_ok(
                &keys.decide,
                &json!({"point": "hero", "customer_id": customer}),
            )
            .await;
        assert_eq!(
            answer["experiment"]["variant"],
            expected_variant("hero-test", &customer)
        );
    }

    let r = results(&server, &keys, "hero-test").await;
    for (v, row) in r["variants"].as_array().unwrap().iter().enumerate() {
        assert_eq!(row["exposures"], exposed[v], "{row}");
        assert_eq!(row["conversions"], converted[v], "{row}");
        assert_eq!(row["value"].as_f64().unwrap(), value[v], "{row}");
        assert!(
            (row["rate"].as_f64().unwrap() - converted[v] as f64 / exposed[v] as f64).abs() < 1e-12
        );
    }
    let treatment = &r["variants"][1];
    let (lift, lo, hi) = (
        treatment["lift"].as_f64().unwrap(),
        treatment["lift_ci"][0].as_f64().unwrap(),
        treatment["lift_ci"][1].as_f64().unwrap(),
    );
    assert!(lo < lift && lift < hi && lift > 0.0, "{treatment}");
    let p = treatment["p_value"].as_f64().unwrap();
    let beat = treatment["chance_to_beat_control"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&p) && beat > 0.5 && beat <= 1.0,
        "{treatment}"
    );
    assert_eq!(r["variants"][0]["lift"], Value::Null);
    assert_eq!(r["srm_warning"], false, "{r}");

    // Assignments and counts survive a restart.
    let server = server.kill_and_restart();
    let answer = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "hero", "customer_id": "cust-7"}),
        )
        .await;
    assert_eq!(
        answer["experiment"]["variant"],
        expected_variant("hero-test", "cust-7")
    );
    assert_eq!(
        results(&server, &keys, "hero-test").await["variants"][0]["exposures"],
        exposed[0]
    );

    // Stopped: everyone gets the live version again.
    expect(
        server
            .post("/v1/experiments/hero-test/stop", &keys.editor, &json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let after = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "hero", "customer_id": "cust-7"}),
        )
        .await;
    assert_eq!(
        (
            after["experiment"].clone(),
            after["policy"]["version"].clone()
        ),
        (Value::Null, json!(1))
    );
}

#[tokio::test]
async fn a_skewed_split_trips_the_srm_alarm() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    two_versions(&server, &keys, "hero").await;
    expect(
        server
            .post("/v1/experiments", &keys.editor, &experiment("skew", "hero"))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    // A caller that drops most treatment traffic: 200 control customers, 50 treatment.
    let (mut control, mut treatment) = (0, 0);
    for i in 0.. {
        let customer = format!("c-{i}");
        let wanted = match expected_variant("skew", &customer) {
            "control" if control < 200 => {
                control += 1;
                true
            }
            "treatment" if treatment < 50 => {
                treatment += 1;
                true
            }
            _ => false,
        };
        if wanted {
            server
                .decide_ok(
                    &keys.decide,
                    &json!({"point": "hero", "customer_id": customer}),
                )
                .await;
        }
        if control == 200 && treatment == 50 {
            break;
        }
    }
    let r = results(&server, &keys, "skew").await;
    assert_eq!(
        (
            r["variants"][0]["exposures"].as_u64(),
            r["variants"][1]["exposures"].as_u64()
        ),
        (Some(200), Some(50))
    );
    assert!(r["srm_p_value"].as_f64().unwrap() < 0.001, "{r}");
    assert_eq!(r["srm_warning"], true);
}

#[tokio::test]
async fn targeting_validation_exclusivity_and_roles() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    two_versions(&server, &keys, "hero").await;
    let create = |body: Value, key: &str| server.post("/v1/experiments", key, &body).send();

    expect(
        create(experiment("x", "hero"), &keys.decide).await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let mut bad = experiment("x", "hero");
    bad["variants"][1]["weight"] = json!(0.7);
    expect(
        create(bad, &keys.editor).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let mut missing = experiment("x", "hero");
    missing["variants"][1]["version"] = json!(9);
    let problem = expect(
        create(missing, &keys.editor).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("version 9"),
        "{problem}"
    );

    let mut targeted = experiment("geo", "hero");
    targeted["condition"] = json!({"country": "NL"});
    expect(
        create(targeted, &keys.editor).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    expect(
        create(experiment("other", "hero"), &keys.editor)
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    let outside = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "hero", "customer_id": "c-1", "attributes": {"country": "BE"}}),
        )
        .await;
    assert_eq!(
        (
            outside["experiment"].clone(),
            outside["policy"]["version"].clone()
        ),
        (Value::Null, json!(1))
    );
    let inside = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "hero", "customer_id": "c-1", "attributes": {"country": "NL"}}),
        )
        .await;
    assert_eq!(inside["experiment"]["id"], "geo");

    expect(
        server
            .get("/v1/experiments/geo/results", &keys.decide)
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let rival = server.tenant("rival").await;
    expect(
        server
            .get("/v1/experiments/geo/results", &rival.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let list = expect(
        server
            .get("/v1/experiments", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_damaged_stored_experiment_is_a_logged_500_not_a_dropped_connection() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    two_versions(&server, &keys, "hero").await;
    expect(
        server
            .post(
                "/v1/experiments",
                &keys.editor,
                &experiment("broken", "hero"),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    // A stored definition without variants, as a damaged or hand-edited
    // store might hold; the server starts and serves without it.
    let mut spec = experiment("broken", "hero");
    spec["variants"] = json!([]);
    let server = server.kill_and_restart_with(&[], |stored| {
        let sql = format!("UPDATE experiments SET spec = '{spec}' WHERE id = 'broken'");
        assert_eq!(stored.execute(&sql, &sql), 1);
    });
    let answer = expect(
        server
            .get("/v1/experiments/broken/results", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert_eq!(answer["detail"], "the server failed; the error is logged");
}
