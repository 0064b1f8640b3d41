//! Cluster mode: replicas on one PostgreSQL and Redis behave as one service,
//! and decide keeps answering while Redis is away.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Cluster, Keys, Server, expect, ids};

/// How soon a change made on one replica must be served by the others.
const PROPAGATION: Duration = Duration::from_secs(1);

/// Polls `check` until it holds or `limit` passes; returns how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Offers `capped` (at most 2 impressions a day), `gold-only` (for
/// customers whose profile says tier gold) and `plain`, by value.
fn bundle(version_note: i64) -> Value {
    let source = format!(
        r#"fn decide(ctx) {{ let out = []; for c in ctx.candidates {{ out.push(#{{ id: c.id, score: c.value + {version_note} }}); }} out }}"#
    );
    json!({"engine": "rhai", "source": source, "fallback": ["plain"], "activate": true, "catalog": [
        {"id": "capped", "kind": "offer", "value": 30.0, "contact": {"max_impressions": 2, "per": "day"}},
        {"id": "gold-only", "kind": "offer", "value": 20.0, "eligibility": {"tier": "gold"}},
        {"id": "plain", "kind": "message", "value": 1.0}
    ]})
}

/// The value of an unlabelled counter (0 until first counted).
async fn counter(server: &Server, name: &str) -> f64 {
    let metrics = server.metrics().await;
    let line = metrics.lines().find(|l| l.split(' ').next() == Some(name));
    line.map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

async fn decide(server: &Server, keys: &Keys, body: &Value) -> (StatusCode, Value) {
    let res = server.decide(&keys.decide, body).await;
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_tenants_policies_profiles_caps_and_experiments() {
    // Two replicas start at once on a fresh database: both apply the schema.
    let cluster = Arc::new(Cluster::fresh());
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start_in(Some(cluster.clone()), &[]));
        let b = s.spawn(|| Server::start_in(Some(cluster.clone()), &[]));
        (a.join().unwrap(), b.join().unwrap())
    });

    // A tenant and a policy created through A serve decisions on B.
    let keys = a.tenant("acme").await;
    expect(
        a.upload(&keys.editor, "hero", &bundle(0)).await,
        StatusCode::CREATED,
    )
    .await;
    let ask = json!({"point": "hero", "customer_id": "c-1"});
    let took = within(PROPAGATION, "A's tenant and policy on B", || async {
        decide(&b, &keys, &ask).await.0 == StatusCode::OK
    })
    .await;
    eprintln!("tenant and policy from A served by B after {took:?}");

    // An activation on B reaches A within a second.
    let mut second = bundle(100);
    second["activate"] = json!(false);
    expect(
        b.upload(&keys.editor, "hero", &second).await,
        StatusCode::CREATED,
    )
    .await;
    let activate = b.post(
        "/v1/policies/hero/activate",
        &keys.editor,
        &json!({"version": 2}),
    );
    expect(activate.send().await.unwrap(), StatusCode::OK).await;
    let took = within(PROPAGATION, "B's activation on A", || async {
        decide(&a, &keys, &ask).await.1["policy"]["version"] == 2
    })
    .await;
    eprintln!("activation on B served by A after {took:?}");

    // A profile patched on A is used by B, even though B had cached it.
    let gold = json!({"point": "hero", "customer_id": "c-gold"});
    assert!(!ids(&decide(&b, &keys, &gold).await.1).contains(&"gold-only".to_owned()));
    let patch = a.patch(
        "/v1/customers/c-gold",
        &keys.editor,
        &json!({"attributes": {"tier": "gold"}}),
    );
    expect(patch.send().await.unwrap(), StatusCode::OK).await;
    within(PROPAGATION, "A's profile patch on B", || async {
        ids(&decide(&b, &keys, &gold).await.1).contains(&"gold-only".to_owned())
    })
    .await;

    // A contact cap of 2 holds across both replicas under concurrent requests.
    let capped = json!({"point": "hero", "customer_id": "c-cap", "record_impressions": true});
    let asks = (0..24).map(|i| {
        let (server, keys, capped) = (if i % 2 == 0 { &a } else { &b }, &keys, &capped);
        async move {
            let (status, answer) = decide(server, keys, capped).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            ids(&answer).contains(&"capped".to_owned())
        }
    });
    let shown = futures::future::join_all(asks)
        .await
        .into_iter()
        .filter(|s| *s)
        .count();
    assert_eq!(shown, 2, "the capped action was shown {shown} times");
    for (name, server) in [("A", &a), ("B", &b)] {
        let retries = counter(server, "moment_decide_retries_total").await;
        eprintln!("replica {name}: {retries} decisions made again on a fresher profile");
    }
    let profile = expect(
        b.get("/v1/customers/c-cap", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(profile["history"]["capped"]["impressions"], 2, "{profile}");
    assert_eq!(profile["history"]["plain"]["impressions"], 24, "{profile}");

    // Experiment assignments agree on both, and results count outcomes from both.
    let spec = json!({"id": "split", "point": "hero", "seed": "split", "hash_version": 2, "coverage": 1.0,
        "goal": "convert", "variants": [{"id": "one", "version": 1, "weight": 0.5}, {"id": "two", "version": 2, "weight": 0.5}]});
    let created = a
        .post("/v1/experiments", &keys.editor, &spec)
        .send()
        .await
        .unwrap();
    expect(created, StatusCode::CREATED).await;
    within(PROPAGATION, "A's experiment on B", || async {
        decide(&b, &keys, &ask).await.1["experiment"]["id"] == "split"
    })
    .await;
    let mut converted = 0;
    for i in 0..40 {
        let ask = json!({"point": "hero", "customer_id": format!("e-{i}")});
        let (on_a, on_b) = (
            decide(&a, &keys, &ask).await.1,
            decide(&b, &keys, &ask).await.1,
        );
        assert_eq!(on_a["experiment"], on_b["experiment"], "e-{i}");
        assert_eq!(on_a["policy"], on_b["policy"], "e-{i}");
        // Each replica takes the outcome of the other's decision.
        if i % 4 == 0 {
            for (decided, reporter) in [(&on_a, &b), (&on_b, &a)] {
                let convert = json!({"decision_id": decided["decision_id"], "action_id": ids(decided)[0], "type": "convert", "value": 1.0});
                let res = reporter
                    .post("/v1/outcomes", &keys.decide, &convert)
                    .send()
                    .await
                    .unwrap();
                expect(res, StatusCode::ACCEPTED).await;
            }
            converted += 1;
        }
    }
    // 40 customers plus c-1, exposed on both replicas, each counted once;
    // the replicas log decisions behind the requests, so allow a moment.
    let started = Instant::now();
    let counted = loop {
        let res = a
            .get("/v1/experiments/split/results", &keys.editor)
            .send()
            .await
            .unwrap();
        let results = expect(res, StatusCode::OK).await;
        let rows = results["variants"].as_array().unwrap();
        let sum = |field: &str| {
            rows.iter()
                .map(|r| r[field].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        let counted = (sum("exposures"), sum("conversions"));
        if counted == (41, converted) || started.elapsed() > Duration::from_secs(5) {
            break counted;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(counted, (41, converted));

    // An experiment stopped on B stops on A within a second.
    let stop = b.post("/v1/experiments/split/stop", &keys.editor, &json!({}));
    expect(stop.send().await.unwrap(), StatusCode::OK).await;
    within(PROPAGATION, "B's experiment stop on A", || async {
        decide(&a, &keys, &ask).await.1["experiment"].is_null()
    })
    .await;

    // A key revoked on A stops working on B within a second.
    let listed = expect(
        a.get("/v1/keys", &keys.admin).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let decide_key = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "decide")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = a
        .client
        .delete(a.url(&format!("/v1/keys/{decide_key}")))
        .bearer_auth(&keys.admin);
    assert!(revoke.send().await.unwrap().status().is_success());
    within(PROPAGATION, "A's key revocation on B", || async {
        decide(&b, &keys, &ask).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
}

/// A Redis server of the test's own, on a port of its own, that the test
/// can stop and start again.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("the cluster suite needs redis-server on PATH");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn ready(server: &Server) -> (StatusCode, Value) {
    let res = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_answers_without_redis_and_recovers_when_it_returns() {
    // The replica starts while its Redis is not up yet.
    let mut redis = OwnRedis {
        port: OwnRedis::free_port(),
        child: None,
    };
    let cluster = Arc::new(Cluster::fresh_with_redis(redis.url()));
    let server = Server::start_in(Some(cluster), &[]);
    let keys = server.tenant("acme").await;
    expect(
        server.upload(&keys.editor, "hero", &bundle(0)).await,
        StatusCode::CREATED,
    )
    .await;

    let (status, body) = ready(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["detail"].as_str().unwrap().contains("redis"), "{body}");
    // Decide answers from the request alone; the capped action fails closed.
    let explained =
        json!({"point": "hero", "customer_id": "c-1", "record_impressions": true, "explain": true});
    let res = server.decide(&keys.editor, &explained).await;
    let (status, answer) = (res.status(), res.json::<Value>().await.unwrap());
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(ids(&answer), ["plain"]);
    assert!(
        answer["explain"]["capped"]["rule"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{answer}"
    );
    assert!(counter(&server, "moment_profiles_unavailable_total").await >= 1.0);
    // Writes that need Redis are refused, and say why.
    let patch = server.patch(
        "/v1/customers/c-1",
        &keys.editor,
        &json!({"attributes": {"tier": "gold"}}),
    );
    let refused = expect(patch.send().await.unwrap(), StatusCode::SERVICE_UNAVAILABLE).await;
    // The backend is named; its own error text stays in the server's log.
    assert_eq!(
        refused["detail"],
        "cannot reach Redis now; nothing was changed, retry shortly"
    );

    // Redis comes up: the replica reconnects by itself.
    redis.start();
    within(Duration::from_secs(5), "ready once Redis is up", || async {
        ready(&server).await.0 == StatusCode::OK
    })
    .await;
    let ask = json!({"point": "hero", "customer_id": "c-1", "record_impressions": true});
    let shown = |answer: &Value| ids(answer).contains(&"capped".to_owned());
    assert!(shown(&decide(&server, &keys, &ask).await.1));
    assert!(shown(&decide(&server, &keys, &ask).await.1));
    assert!(
        !shown(&decide(&server, &keys, &ask).await.1),
        "the cap of 2 holds once Redis is back"
    );

    // Redis goes away mid-run: decide still answers, failing closed, then
    // open once the tenant says so.
    redis.stop();
    let c2 = json!({"point": "hero", "customer_id": "c-2"});
    let (status, answer) = decide(&server, &keys, &c2).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(!shown(&answer), "{answer}");
    let open = server.patch(
        "/v1/tenant",
        &keys.admin,
        &json!({"contact_rules_when_unavailable": "open"}),
    );
    expect(open.send().await.unwrap(), StatusCode::OK).await;
    let (status, answer) = decide(&server, &keys, &c2).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(shown(&answer), "{answer}");
    // Readiness is checked at most once a second.
    within(
        Duration::from_secs(3),
        "not ready while Redis is down",
        || async { ready(&server).await.0 == StatusCode::SERVICE_UNAVAILABLE },
    )
    .await;

    // And it comes back again.
    redis.start();
    within(
        Duration::from_secs(5),
        "profiles stored again once Redis is back",
        || async {
            let patch = server.patch(
                "/v1/customers/c-3",
                &keys.editor,
                &json!({"attributes": {"tier": "gold"}}),
            );
            patch.send().await.unwrap().status() == StatusCode::OK
        },
    )
    .await;
    let gold = decide(
        &server,
        &keys,
        &json!({"point": "hero", "customer_id": "c-3"}),
    )
    .await
    .1;
    assert!(ids(&gold).contains(&"gold-only".to_owned()), "{gold}");
}

/// A TCP proxy in front of PostgreSQL that the test can cut (closing every
/// connection through it and refusing new ones) and restore.
struct Cuttable {
    port: u16,
    target: String,
    acceptor: Option<tokio::task::JoinHandle<()>>,
}

impl Cuttable {
    async fn new(target: String) -> Cuttable {
        let mut proxy = Cuttable {
            port: OwnRedis::free_port(),
            target,
            acceptor: None,
        };
        proxy.restore().await;
        proxy
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let target = self.target.clone();
        self.acceptor = Some(tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    async fn cut(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
            let _ = acceptor.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_serves_from_memory_while_postgres_is_down_and_nothing_acknowledged_is_lost() {
    let mut cluster = Cluster::fresh();
    let direct = cluster.postgres.clone();
    let authority = direct.split('@').nth(1).unwrap().split('/').next().unwrap();
    let mut proxy = Cuttable::new(authority.to_owned()).await;
    cluster.postgres = direct.replace(authority, &format!("127.0.0.1:{}", proxy.port));
    // A reaches PostgreSQL through the proxy; B directly.
    let (redis, prefix) = (cluster.redis.clone(), cluster.prefix.clone());
    let a = Server::start_in(Some(Arc::new(cluster)), &[]);
    let b = Server::start_in(
        None,
        &[
            "--postgres",
            &direct,
            "--redis",
            &redis,
            "--redis-prefix",
            &prefix,
        ],
    );
    let keys = a.tenant("acme").await;
    expect(
        a.upload(&keys.editor, "hero", &bundle(0)).await,
        StatusCode::CREATED,
    )
    .await;

    proxy.cut().await;
    // Decide keeps answering from memory (profiles and caps are in Redis).
    let ask = json!({"point": "hero", "customer_id": "c-1", "record_impressions": true});
    let mut made = Vec::new();
    for _ in 0..3 {
        let (status, answer) = decide(&a, &keys, &ask).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        made.push(answer);
    }
    assert_eq!(
        made.iter()
            .filter(|d| ids(d).contains(&"capped".to_owned()))
            .count(),
        2
    );
    // Writes that need PostgreSQL are refused with 503, and say why.
    let refused = expect(
        a.upload(&keys.editor, "hero", &bundle(1)).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(
        refused["detail"],
        "cannot reach PostgreSQL now; nothing was changed, retry shortly"
    );
    let outcome = json!({"decision_id": made[0]["decision_id"], "action_id": ids(&made[0])[0], "type": "click"});
    let res = a
        .post("/v1/outcomes", &keys.decide, &outcome)
        .send()
        .await
        .unwrap();
    expect(res, StatusCode::SERVICE_UNAVAILABLE).await;
    let (status, body) = ready(&a).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["detail"].as_str().unwrap().contains("postgres"),
        "{body}"
    );
    // B, which still reaches PostgreSQL, keeps taking writes.
    expect(
        b.upload(&keys.editor, "hero", &bundle(100)).await,
        StatusCode::CREATED,
    )
    .await;

    // PostgreSQL returns: writes work again, and the decisions made meanwhile
    // reach the log (B, which reads them from PostgreSQL, takes their outcomes).
    proxy.restore().await;
    let plain = json!({"point": "hero", "customer_id": "c-2"});
    within(
        Duration::from_secs(10),
        "A serving B's activation made during the outage",
        || async { decide(&a, &keys, &plain).await.1["policy"]["version"] == 2 },
    )
    .await;
    within(
        Duration::from_secs(10),
        "uploads once PostgreSQL is back",
        || async {
            a.upload(&keys.editor, "hero", &bundle(1)).await.status() == StatusCode::CREATED
        },
    )
    .await;
    for decision in &made {
        let outcome = json!({"decision_id": decision["decision_id"], "action_id": ids(decision)[0], "type": "click"});
        within(
            Duration::from_secs(10),
            "an outage decision in the log",
            || async {
                let res = b
                    .post("/v1/outcomes", &keys.decide, &outcome)
                    .send()
                    .await
                    .unwrap();
                res.status() == StatusCode::ACCEPTED
            },
        )
        .await;
    }
    assert_eq!(ready(&a).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_cannot_both_start_overlapping_experiments_nor_undo_each_others_settings() {
    let cluster = Arc::new(Cluster::fresh());
    let a = Server::start_in(Some(cluster.clone()), &[]);
    let b = Server::start_in(Some(cluster.clone()), &[]);
    let keys = a.tenant("acme").await;
    for note in [0, 1] {
        expect(
            a.upload(&keys.editor, "hero", &bundle(note)).await,
            StatusCode::CREATED,
        )
        .await;
    }
    let experiment = |id: &str| {
        json!({"id": id, "point": "hero", "seed": id, "hash_version": 2, "coverage": 1.0,
               "goal": "convert", "variants": [{"id": "a", "version": 1, "weight": 0.5},
                                               {"id": "b", "version": 2, "weight": 0.5}]})
    };
    // Both replicas start an experiment on the same point at once, round
    // after round: exactly one may run.
    for round in 0..6 {
        let (on_a, on_b) = (format!("a{round}"), format!("b{round}"));
        let (ra, rb) = tokio::join!(
            a.post("/v1/experiments", &keys.editor, &experiment(&on_a))
                .send(),
            b.post("/v1/experiments", &keys.editor, &experiment(&on_b))
                .send(),
        );
        let (sa, sb) = (ra.unwrap().status(), rb.unwrap().status());
        let started: Vec<&str> = [(sa, &on_a), (sb, &on_b)]
            .into_iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .map(|(_, id)| id.as_str())
            .collect();
        assert_eq!(started.len(), 1, "round {round}: {sa} and {sb}");
        assert!(
            [sa, sb].contains(&StatusCode::CONFLICT),
            "round {round}: {sa} and {sb}"
        );
        let stop = a
            .post(
                &format!("/v1/experiments/{}/stop", started[0]),
                &keys.editor,
                &json!({}),
            )
            .send()
            .await
            .unwrap();
        assert!(stop.status().is_success());
    }
    // Two settings patches of different fields at once, one on each replica:
    // both stick, on both.
    let (ra, rb) = tokio::join!(
        a.patch(
            "/v1/tenant",
            &keys.admin,
            &json!({"cors_origins": ["https://shop.example"]})
        )
        .send(),
        b.patch(
            "/v1/tenant",
            &keys.admin,
            &json!({"stages": ["new", "loyal"]})
        )
        .send(),
    );
    assert!(ra.unwrap().status().is_success() && rb.unwrap().status().is_success());
    for server in [&a, &b] {
        // The stage is one of the tenant's, and only the new origin may call.
        let both = || async {
            let ask = json!({"point": "hero", "customer_id": "c-1", "stage": "loyal"});
            let call = |origin: &'static str| {
                server
                    .post("/v1/decide", &keys.decide, &ask)
                    .header("Origin", origin)
                    .send()
            };
            let (shop, other) = (
                call("https://shop.example").await,
                call("https://other.example").await,
            );
            shop.unwrap().status() == StatusCode::OK
                && other.unwrap().status() == StatusCode::FORBIDDEN
        };
        let started = Instant::now();
        while !both().await {
            assert!(
                started.elapsed() < PROPAGATION,
                "the two patches are not both served"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
