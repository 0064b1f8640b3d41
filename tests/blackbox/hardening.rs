//! What an attacker with ordinary keys tried, and what now happens: a Rhai
//! policy that hides data from Rhai's size checks, a decide request carrying
//! a huge array, a slow client, a NUL in an id, a publishable key asking for
//! `explain` or claiming attributes the tenant keeps, a tenant flooding the
//! server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use moment_policy_artifacts::{CORPUS_DIR, TELCO_RETENTION_BUNDLE};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{BY_VALUE, Server, catalog, expect, rhai_upload};

/// The most the server may hold at its peak while serving the memory probes:
/// start-up, and the probes' heap budgets (32 MiB a call, and at most as
/// much again within one operation) on every policy thread. The probe that
/// once killed the process reached 3 GiB in seconds.
const PEAK_RSS_BYTES: u64 = 512 << 20;

fn corpus(file: &str) -> String {
    std::fs::read_to_string(format!("{CORPUS_DIR}/{file}")).unwrap()
}

#[tokio::test]
async fn rhai_memory_probes_are_refused_or_fall_back_while_the_process_stays_small() {
    let server = Server::start();
    let keys = server.tenant("probe").await;
    // The curry probe from the report: refused at upload, before it can run.
    let curry = rhai_upload(TELCO_RETENTION_BUNDLE, &corpus("curry_pad.rhai"));
    let refused = expect(
        server.upload(&keys.editor, "curry", &curry).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("curry"),
        "{refused}"
    );
    // Long map keys, cloned by `pad` and grown in a loop: the memory fallback.
    let keys_probe = rhai_upload(TELCO_RETENTION_BUNDLE, &corpus("map_keys.rhai"));
    expect(
        server.upload(&keys.editor, "map-keys", &keys_probe).await,
        StatusCode::CREATED,
    )
    .await;
    let ask = json!({"point": "map-keys", "customer_id": "c-1", "explain": true});
    let calls = (0..8).map(|_| server.decide_ok(&keys.editor, &ask));
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer["fallback"], true, "{answer}");
        let reason = &answer["explain"]["plan-review"]["reason"];
        // Eight at once on a small machine: some run out of time, or wait
        // their whole deadline for the tenant's share of the threads.
        assert!(
            ["memory", "deadline", "circuit_open", "overloaded"]
                .contains(&reason.as_str().unwrap()),
            "{answer}"
        );
    }
    let peak = server.peak_rss_bytes();
    assert!(peak < PEAK_RSS_BYTES, "peak RSS {} MiB", peak >> 20);
    // And the server still decides.
    let ok = server.upload_rhai(&keys.editor, "fine", BY_VALUE).await;
    assert_eq!(ok, 1);
    let answer = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "fine", "customer_id": "c-1"}),
        )
        .await;
    assert_eq!(answer["fallback"], false);
}

#[tokio::test]
async fn request_documents_are_bounded_and_ids_are_text() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let conditioned: Vec<Value> = (0..300)
        .map(|i| json!({"id": format!("a{i}"), "kind": "offer", "value": i, "eligibility": {"scores": {"$gt": 5}}}))
        .chain([json!({"id": "welcome", "kind": "message"})])
        .collect();
    let bundle = json!({"engine": "rhai", "source": BY_VALUE, "catalog": conditioned,
                        "fallback": ["welcome"], "activate": true});
    expect(
        server.upload(&keys.editor, "hero", &bundle).await,
        StatusCode::CREATED,
    )
    .await;
    // The report's request: a 300,000-item array against 300 conditions.
    let huge = json!({"point": "hero", "customer_id": "c-1",
                      "attributes": {"scores": vec![7; 300_000]}});
    let started = Instant::now();
    let refused = expect(
        server.decide(&keys.decide, &huge).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains("attributes.scores") && detail.contains("1000"),
        "{detail}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    for (what, body, field) in [
        (
            "long string",
            json!({"point": "hero", "customer_id": "c-1", "context": {"note": "x".repeat(5000)}}),
            "context.note",
        ),
        (
            "NUL customer",
            json!({"point": "hero", "customer_id": "c\u{0}1"}),
            "customer_id",
        ),
        (
            "newline customer",
            json!({"point": "hero", "customer_id": "c\n1"}),
            "customer_id",
        ),
    ] {
        let refused = expect(
            server.decide(&keys.decide, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            refused["detail"].as_str().unwrap().contains(field),
            "{what}: {refused}"
        );
    }
    let patch = server
        .patch(
            "/v1/customers/c%001",
            &keys.editor,
            &json!({"attributes": {"plan": "x"}}),
        )
        .send()
        .await
        .unwrap();
    expect(patch, StatusCode::UNPROCESSABLE_ENTITY).await;
    // An outcome's idempotency key and value.
    let decision = server
        .decide_ok(
            &keys.decide,
            &json!({"point": "hero", "customer_id": "c-1", "attributes": {"scores": 7}}),
        )
        .await;
    let id = decision["decision_id"].as_str().unwrap();
    let action = decision["actions"][0]["id"].as_str().unwrap();
    for (event, field) in [
        (
            json!({"decision_id": id, "action_id": action, "type": "accept", "idempotency_key": "k\u{0}"}),
            "idempotency_key",
        ),
        (
            json!({"decision_id": id, "action_id": action, "type": "accept", "value": 1e300}),
            "value",
        ),
    ] {
        let res = server
            .post("/v1/outcomes", &keys.decide, &event)
            .send()
            .await
            .unwrap();
        let refused = expect(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            refused["detail"].as_str().unwrap().contains(field),
            "{refused}"
        );
    }
    // Nothing of it was stored: the customer has no profile yet.
    expect(
        server
            .get("/v1/customers/c-1", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_publishable_key_gets_no_explain_and_only_the_attributes_it_may_set() {
    let server = Server::start();
    let keys = server.tenant("shop").await;
    let mut gold_only = catalog();
    gold_only[2]["eligibility"] = json!({"tier": "gold"});
    let bundle = json!({"engine": "rhai", "source": BY_VALUE, "catalog": gold_only,
                        "fallback": ["welcome"], "activate": true});
    expect(
        server.upload(&keys.editor, "hero", &bundle).await,
        StatusCode::CREATED,
    )
    .await;
    let explain = json!({"point": "hero", "customer_id": "c-1", "explain": true});
    let refused = expect(
        server.decide(&keys.decide, &explain).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("editor"),
        "{refused}"
    );
    server.decide_ok(&keys.editor, &explain).await;

    // Unset, a decide key may still claim any attribute (today's behaviour).
    let claim = json!({"point": "hero", "customer_id": "c-1", "limit": 1,
                       "attributes": {"tier": "gold", "page": "home"}});
    assert_eq!(
        server.decide_ok(&keys.decide, &claim).await["actions"][0]["id"],
        "large"
    );
    let set = server
        .patch(
            "/v1/tenant",
            &keys.admin,
            &json!({"caller_attributes": ["page"]}),
        )
        .send()
        .await
        .unwrap();
    let settings = expect(set, StatusCode::OK).await;
    assert_eq!(settings["caller_attributes"], json!(["page"]));
    assert_eq!(
        server.decide_ok(&keys.decide, &claim).await["actions"][0]["id"],
        "medium",
        "the browser's claim to gold is ignored"
    );
    assert_eq!(
        server.decide_ok(&keys.editor, &claim).await["actions"][0]["id"],
        "large",
        "an editor key may set any attribute"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("moment_caller_attributes_ignored_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_policy_that_spins_then_throws_is_paused_by_its_breaker() {
    // A deadline far past the spin, so every call throws (`trap`) however
    // busy the machine running the suite is.
    let server = Server::start_with(&["--policy-deadline-ms", "1000"]);
    let keys = server.tenant("acme").await;
    let spin_then_throw = r#"
fn decide(ctx) {
    let n = 0;
    while n < 20000 { n += 1; }
    throw "gave up";
}"#;
    server
        .upload_rhai(&keys.editor, "spin", spin_then_throw)
        .await;
    let ask = json!({"point": "spin", "customer_id": "c-1", "explain": true});
    let mut reasons = Vec::new();
    for _ in 0..5 {
        let answer = server.decide_ok(&keys.editor, &ask).await;
        assert_eq!(answer["fallback"], true);
        reasons.push(
            answer["explain"]["small"]["reason"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        reasons,
        ["trap", "trap", "trap", "circuit_open", "circuit_open"]
    );
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_an_idle_one_let_go() {
    let server = Server::start_with(&["--header-read-timeout-ms", "1000"]);
    // Headers a byte at a time, never finished.
    let mut slow = TcpStream::connect(server.socket_addr()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let dribble = std::thread::spawn(move || {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " {
            if slow.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        rest
    });
    let answer = dribble.join().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "held for {took:?}");
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).contains("408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A keep-alive connection that has finished its request and sits idle.
    let mut idle = TcpStream::connect(server.socket_addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut all = Vec::new();
    idle.read_to_end(&mut all).unwrap();
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(4));

    // Meanwhile the server answers others.
    let res = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_over_its_share_of_the_policy_threads_gets_its_fallback_not_its_neighbours_latency()
 {
    let server = Server::start_with(&[
        "--policy-threads",
        "2",
        "--tenant-policy-threads",
        "1",
        "--tenant-queue",
        "2",
    ]);
    let (heavy, light) = (server.tenant("heavy").await, server.tenant("light").await);
    // Succeeds, but spends 15 ms of its 20 ms deadline on every call.
    let slow = r#"
fn decide(ctx) {
    let started = timestamp();
    while started.elapsed < 0.015 {}
    [#{id: "small", score: 1.0}]
}"#;
    server.upload_rhai(&heavy.editor, "slow", slow).await;
    server.upload_rhai(&light.editor, "quick", BY_VALUE).await;
    let flood = async {
        let ask = json!({"point": "slow", "customer_id": "c-1", "explain": true});
        let calls = (0..24).map(|_| server.decide_ok(&heavy.editor, &ask));
        futures::future::join_all(calls).await
    };
    let neighbour = async {
        let ask = json!({"point": "quick", "customer_id": "c-1"});
        let mut answers = Vec::new();
        for _ in 0..10 {
            answers.push(server.decide_ok(&light.decide, &ask).await);
        }
        answers
    };
    let (flooded, quick) = tokio::join!(flood, neighbour);
    for answer in &quick {
        assert_eq!(
            answer["fallback"], false,
            "the neighbour was crowded out: {answer}"
        );
    }
    let reasons: Vec<&str> = flooded
        .iter()
        .filter_map(|a| a["explain"]["medium"]["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"overloaded"), "{reasons:?}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("moment_policy_fallbacks_total{engine=\"rhai\",reason=\"overloaded\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_tenant_over_its_request_rate_gets_429_and_its_neighbour_does_not() {
    let server = Server::start_with(&["--tenant-rate-limit", "5"]);
    let (flood, calm) = (server.tenant("flood").await, server.tenant("calm").await);
    server.upload_rhai(&flood.editor, "hero", BY_VALUE).await;
    server.upload_rhai(&calm.editor, "hero", BY_VALUE).await;
    let ask = json!({"point": "hero", "customer_id": "c-1"});
    let mut answered = Vec::new();
    for _ in 0..30 {
        answered.push(
            server
                .post("/v1/decide", &flood.decide, &ask)
                .send()
                .await
                .unwrap(),
        );
    }
    let ok = answered
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    // The upload took one of the burst of five; the rest and what refilled
    // while the decides went out are allowed.
    assert!(ok >= 4, "the burst of one second's worth is allowed: {ok}");
    let refused = answered
        .into_iter()
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .expect("30 decides at once are over 5 a second");
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let problem = expect(refused, StatusCode::TOO_MANY_REQUESTS).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("--tenant-rate-limit"), "{detail}");

    // The other tenant's rate is its own.
    let answer = server.decide_ok(&calm.decide, &ask).await;
    assert_eq!(answer["fallback"], false, "{answer}");
    // And the flood's resumes once its rate allows.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    server.decide_ok(&flood.decide, &ask).await;
}

#[tokio::test]
async fn quotas_answer_422_naming_themselves_and_store_nothing() {
    let server = Server::start_with(&[
        "--max-policies",
        "2",
        "--max-versions",
        "2",
        "--max-catalog-actions",
        "4",
        "--max-experiments",
        "1",
        "--max-keys",
        "4",
    ]);
    let keys = server.tenant("acme").await;
    let refused = |res: reqwest::Response, flag: &'static str| async move {
        let problem = expect(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        let detail = problem["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(flag), "{detail}");
    };
    server.upload_rhai(&keys.editor, "one", BY_VALUE).await;
    server.upload_rhai(&keys.editor, "one", BY_VALUE).await;
    refused(
        server
            .upload(&keys.editor, "one", &crate::helpers::rhai_bundle(BY_VALUE))
            .await,
        "--max-versions",
    )
    .await;
    server.upload_rhai(&keys.editor, "two", BY_VALUE).await;
    refused(
        server
            .upload(
                &keys.editor,
                "three",
                &crate::helpers::rhai_bundle(BY_VALUE),
            )
            .await,
        "--max-policies",
    )
    .await;
    let mut big = crate::helpers::rhai_bundle(BY_VALUE);
    big["catalog"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "extra", "kind": "offer", "value": 1}));
    refused(
        server.upload(&keys.editor, "two", &big).await,
        "--max-catalog-actions",
    )
    .await;

    let experiment = |id: &str| {
        json!({"id": id, "point": "one", "seed": id, "hash_version": 2, "coverage": 1.0,
               "goal": "convert", "variants": [{"id": "a", "version": 1, "weight": 0.5},
                                               {"id": "b", "version": 2, "weight": 0.5}]})
    };
    let first = server
        .post("/v1/experiments", &keys.editor, &experiment("first"))
        .send()
        .await
        .unwrap();
    expect(first, StatusCode::CREATED).await;
    let stop = server
        .post("/v1/experiments/first/stop", &keys.editor, &json!({}))
        .send()
        .await
        .unwrap();
    assert!(stop.status().is_success());
    let second = server
        .post("/v1/experiments", &keys.editor, &experiment("second"))
        .send()
        .await
        .unwrap();
    refused(second, "--max-experiments").await;

    // Three keys came with the tenant; one more fits.
    let key = |role: &str| {
        server
            .post("/v1/keys", &keys.admin, &json!({ "role": role }))
            .send()
    };
    expect(key("decide").await.unwrap(), StatusCode::CREATED).await;
    refused(key("decide").await.unwrap(), "--max-keys").await;

    // Nothing refused was stored.
    let policies = expect(
        server
            .get("/v1/policies", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(policies.as_array().map(Vec::len), Some(2), "{policies}");
    let one = expect(
        server
            .get("/v1/policies/one", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(one["versions"].as_array().map(Vec::len), Some(2), "{one}");
}

#[tokio::test]
async fn decisions_and_outcomes_past_retention_are_pruned() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let ask = json!({"point": "hero", "customer_id": "c-1"});
    let old = server.decide_ok(&keys.decide, &ask).await;
    let new = server.decide_ok(&keys.decide, &ask).await;
    let outcome = |decision: &Value| {
        json!({"decision_id": decision["decision_id"], "action_id": decision["actions"][0]["id"],
               "type": "click"})
    };
    // Stored (an outcome waits for its decision to be written).
    let res = server
        .post("/v1/outcomes", &keys.decide, &outcome(&old))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::ACCEPTED).await;
    let old_id = old["decision_id"].as_str().unwrap().to_owned();
    let server = server.kill_and_restart_with(
        &["--log-retention-days", "1", "--log-prune-every-s", "1"],
        |stored| {
            let two_days = 2 * 86_400_000;
            for table in ["decisions", "outcomes"] {
                let column = if table == "decisions" {
                    "id"
                } else {
                    "decision_id"
                };
                let sql =
                    format!("UPDATE {table} SET at = at - {two_days} WHERE {column} = '{old_id}'");
                assert_eq!(stored.execute(&sql, &sql), 1, "{sql}");
            }
        },
    );
    let started = Instant::now();
    while !server.metrics().await.contains("moment_log_pruned_total 2") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            server.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = server
        .post("/v1/outcomes", &keys.decide, &outcome(&old))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::NOT_FOUND).await;
    let res = server
        .post("/v1/outcomes", &keys.decide, &outcome(&new))
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::ACCEPTED).await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let server = Server::start_with(&["--max-connections", "1"]);
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let read_some = |stream: &mut TcpStream| {
        let mut buf = [0u8; 512];
        stream
            .read(&mut buf)
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    // The one connection allowed: answered, then kept alive.
    let mut first = TcpStream::connect(server.socket_addr()).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    first.write_all(request).unwrap();
    assert!(read_some(&mut first).unwrap().starts_with("HTTP/1.1 200"));
    // A second one is accepted by the kernel but not served while the first is open.
    let mut second = TcpStream::connect(server.socket_addr()).unwrap();
    second.write_all(request).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(read_some(&mut second).is_err(), "served past the cap");
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(read_some(&mut second).unwrap().starts_with("HTTP/1.1 200"));
}
