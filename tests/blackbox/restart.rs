//! Durability: what was acknowledged survives `kill -9`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{BY_VALUE, Keys, Server, expect, ids, rhai_bundle};

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
    let server = server.kill_and_restart_with(&[], |store| {
        let changed = store.execute(
            "UPDATE policy_versions SET code = CAST('fn decide(ctx) {' AS BLOB) WHERE tenant = 'acme'",
            "UPDATE policy_versions SET code = convert_to('fn decide(ctx) {', 'UTF8') WHERE tenant = 'acme'",
        );
        assert_eq!(changed, 1);
    });
    let ask = json!({"point": "hero", "customer_id": "c-1", "explain": true});
    let answer = server.decide_ok(&acme.editor, &ask).await;
    assert_eq!(answer["fallback"], true);
    assert_eq!(answer["explain"]["small"]["reason"], "unloadable");
    assert_eq!(
        server.decide_ok(&other.editor, &ask).await["fallback"],
        false
    );
}

/// What the load below had acknowledged when the server was killed.
#[derive(Default)]
struct Acknowledged {
    /// Policy versions answered 201: (point, version).
    versions: Vec<(String, u64)>,
    /// Profile patches answered 200: (customer, the `seq` attribute set).
    patches: Vec<(String, u64)>,
    /// Outcomes answered 202: (decision id, idempotency key).
    outcomes: Vec<(String, String)>,
}

/// Uploads, profile patches and decide + outcome pairs, as fast as the
/// server answers, until it stops answering. Records what was acknowledged.
async fn load(base: String, keys: Keys, round: usize, acked: Arc<Mutex<Acknowledged>>) {
    let client = reqwest::Client::new();
    let post = |path: &str, key: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let uploads = async {
        for n in 0.. {
            let point = format!("p{round}");
            let source = format!(r#"fn decide(ctx) {{ [#{{id: "small", score: {n}}}] }}"#);
            let Ok(res) = post(
                &format!("/v1/policies/{point}/versions"),
                &keys.editor,
                rhai_bundle(&source),
            )
            .await
            else {
                break;
            };
            if res.status() != StatusCode::CREATED {
                break;
            }
            let Ok(body) = res.json::<Value>().await else {
                break;
            };
            acked
                .lock()
                .unwrap()
                .versions
                .push((point, body["version"].as_u64().unwrap()));
        }
    };
    let patches = async {
        for n in 0u64.. {
            let customer = format!("c-{round}-{}", n % 50);
            let patch = json!({"attributes": {"seq": n}});
            let sent = client
                .patch(format!("{base}/v1/customers/{customer}"))
                .bearer_auth(&keys.editor)
                .json(&patch)
                .send()
                .await;
            let Ok(res) = sent else { break };
            if res.status() != StatusCode::OK {
                break;
            }
            acked.lock().unwrap().patches.push((customer, n));
        }
    };
    let outcomes = async {
        for n in 0.. {
            let ask = json!({"point": "hero", "customer_id": format!("d-{round}-{n}")});
            let Ok(res) = post("/v1/decide", &keys.decide, ask).await else {
                break;
            };
            let Ok(decision) = res.json::<Value>().await else {
                break;
            };
            let id = decision["decision_id"].as_str().unwrap().to_owned();
            let key = format!("k-{round}-{n}");
            let outcome = json!({"decision_id": id, "action_id": "large", "type": "convert", "value": 1.0, "idempotency_key": key});
            let Ok(res) = post("/v1/outcomes", &keys.decide, outcome).await else {
                break;
            };
            if res.status() != StatusCode::ACCEPTED {
                break;
            }
            acked.lock().unwrap().outcomes.push((id, key));
        }
    };
    tokio::join!(uploads, patches, outcomes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_under_load() {
    let mut server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    for round in 0..3 {
        let writers = tokio::spawn(load(
            server.base.clone(),
            keys.clone(),
            round,
            acked.clone(),
        ));
        let after = Duration::from_millis(rand::random_range(300..900));
        tokio::time::sleep(after).await;
        let data = server.data_dir();
        let embedded = server.cluster.is_none();
        server = tokio::task::block_in_place(|| server.kill_and_restart());
        writers.await.unwrap();

        // The embedded database is intact (PostgreSQL looks after its own).
        if embedded {
            let db = rusqlite::Connection::open(data.join("moment.sqlite3")).unwrap();
            let check: String = db
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok", "round {round}");
        }
    }

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        !acked.versions.is_empty() && !acked.patches.is_empty() && !acked.outcomes.is_empty(),
        "the load acknowledged too little to test: {} versions, {} patches, {} outcomes",
        acked.versions.len(),
        acked.patches.len(),
        acked.outcomes.len()
    );
    // Every acknowledged version is listed, the live one is at least the
    // last acknowledged, and version numbers have no holes.
    for round in 0..3 {
        let point = format!("p{round}");
        let last = acked
            .versions
            .iter()
            .filter(|(p, _)| *p == point)
            .map(|(_, v)| *v)
            .max();
        let Some(last) = last else { continue };
        let detail = expect(
            server
                .get(&format!("/v1/policies/{point}"), &keys.editor)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let listed: Vec<u64> = detail["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        assert!(listed.len() as u64 >= last, "{point}: {listed:?}");
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (1..=listed.len() as u64).collect::<Vec<_>>(),
            "{point}"
        );
        assert!(detail["live_version"].as_u64().unwrap() >= last, "{detail}");
    }
    // Each customer holds the last acknowledged patch, or a later one whose
    // answer the kill cut off.
    let mut last_patch: HashMap<String, u64> = HashMap::new();
    for (customer, n) in &acked.patches {
        last_patch.insert(customer.clone(), *n);
    }
    for (customer, n) in &last_patch {
        let profile = expect(
            server
                .get(&format!("/v1/customers/{customer}"), &keys.editor)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let seq = profile["attributes"]["seq"].as_u64().unwrap();
        assert!(seq >= *n, "{customer}: acknowledged {n}, stored {seq}");
    }
    // Every acknowledged outcome is stored: sent again, it is a duplicate.
    for chunk in acked.outcomes.chunks(500) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|(id, key)| json!({"decision_id": id, "action_id": "large", "type": "convert", "value": 1.0, "idempotency_key": key}))
            .collect();
        let res = server
            .post("/v1/outcomes", &keys.decide, &json!({"events": events}))
            .send()
            .await
            .unwrap();
        let report = expect(res, StatusCode::ACCEPTED).await;
        assert_eq!(report["accepted"], 0, "{report}");
        assert_eq!(report["duplicates"], chunk.len(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_decisions_and_flushes_the_log() {
    let mut server = Server::start();
    let keys = server.tenant("acme").await;
    // A few ms of work per decision (well under the deadline, so the
    // breaker stays closed), so that many are in flight at once.
    let slow =
        r#"fn decide(ctx) { let n = 0; for i in 0..10000 { n += i; } [#{id: "small", score: n}] }"#;
    server.upload_rhai(&keys.editor, "slow", slow).await;

    let mut in_flight = tokio::task::JoinSet::new();
    for n in 0..48 {
        let ask = server.post(
            "/v1/decide",
            &keys.decide,
            &json!({"point": "slow", "customer_id": format!("c-{n}")}),
        );
        in_flight.spawn(async move {
            // A request the server had not started reading when it stopped
            // accepting is refused or closed unanswered: the client may retry.
            let res = ask.send().await.ok()?;
            let answered_at = Instant::now();
            Some((
                res.status(),
                res.json::<Value>().await.unwrap(),
                answered_at,
            ))
        });
    }
    // Let the requests reach the server, then ask it to stop.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let signalled = Instant::now();
    let exited_cleanly = tokio::task::block_in_place(|| server.terminate());
    assert!(exited_cleanly, "the server did not exit cleanly");
    let mut answered = Vec::new();
    let mut after_the_signal = 0;
    while let Some(done) = in_flight.join_next().await {
        if let Some((status, body, at)) = done.unwrap() {
            assert_eq!(status, StatusCode::OK, "{body}");
            let id = body["decision_id"].as_str().unwrap().to_owned();
            answered.push((id, body["actions"][0]["id"].clone()));
            after_the_signal += usize::from(at > signalled);
        }
    }
    assert!(
        after_the_signal > 0,
        "no request was answered after SIGTERM"
    );

    // Every answered decision reached the log before the process exited.
    let server = tokio::task::block_in_place(|| server.kill_and_restart());
    for (id, action) in answered {
        let outcome = json!({"decision_id": id, "action_id": action, "type": "click"});
        let res = server
            .post("/v1/outcomes", &keys.decide, &outcome)
            .send()
            .await
            .unwrap();
        expect(res, StatusCode::ACCEPTED).await;
    }
}
