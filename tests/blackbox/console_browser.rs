//! The console in a real browser: Debian's headless Chromium driven through
//! chromedriver (named by `MOMENT_TEST_CHROMEDRIVER`; `.ci/run` installs
//! both), against the real server. Each step saves a screenshot under
//! `target/tmp/console-screenshots/` for a reviewer to look at.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;

use moment_policy_artifacts::TELCO_RETENTION_WASM;

use crate::helpers::{BY_VALUE, Server, expect};

/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";

/// chromedriver on a free port, and a headless Chromium session on it.
struct Browser {
    driver: Child,
    client: Client,
    shots: PathBuf,
    taken: AtomicUsize,
}

impl Browser {
    async fn start() -> Browser {
        let chromedriver = std::env::var("MOMENT_TEST_CHROMEDRIVER").unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        // The test build has two rustls providers (ring for the CLI's
        // reqwest, aws-lc-rs for fantoccini's hyper-rustls), so rustls
        // cannot pick one by itself: name it. Only the first call installs.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut client = None;
        for _ in 0..100 {
            let connected = ClientBuilder::rustls()
                .unwrap()
                .capabilities(caps.clone())
                .connect(&url)
                .await;
            if let Ok(c) = connected {
                client = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // This run's screenshots only.
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            driver,
            client: client.expect("chromedriver did not accept a session"),
            shots,
            taken: AtomicUsize::new(0),
        }
    }

    async fn open(&self, server: &Server, path: &str) {
        self.client.goto(&server.url(path)).await.unwrap();
    }

    /// Saves a screenshot of the page as `NN-name.png`, numbered in order.
    async fn shot(&self, name: &str) {
        let n = self.taken.fetch_add(1, Ordering::Relaxed) + 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{n:02}-{name}.png")), png).unwrap();
    }

    async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    async fn fill(&self, selector: &str, text: &str) {
        let field = self.client.find(Locator::Css(selector)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks what `selector` finds and waits for the page it leads to.
    async fn click(&self, selector: &str) {
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        self.navigating(element.click()).await;
    }

    /// Runs `act`, which leaves the page, and waits until the next page
    /// has replaced it.
    async fn navigating<T>(
        &self,
        act: impl std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        act.await.unwrap();
        for _ in 0..1200 {
            if old.text().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the page did not change");
    }

    async fn sign_in(&self, server: &Server, key: &str) {
        self.open(server, "/console").await;
        // Typed into the key field; Enter sends the form.
        let field = self.client.find(Locator::Css("#key")).await.unwrap();
        self.navigating(field.send_keys(&format!("{key}{ENTER}")))
            .await;
        assert_eq!(self.path().await, "/console/overview");
    }

    async fn close(mut self) {
        self.client.close().await.unwrap();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn a_marketer_writes_tries_activates_rolls_back_and_experiments_in_the_browser() {
    let server = &Server::start();
    let keys = &server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let patched = server
        .patch(
            "/v1/customers/c-1",
            &keys.editor,
            &json!({"attributes": {"tier": "gold"}, "stage": "purchase"}),
        )
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success());
    let browser = Browser::start().await;

    browser.open(server, "/console").await;
    assert_eq!(browser.path().await, "/console/sign-in");
    browser.shot("sign-in").await;
    browser.sign_in(server, &keys.editor).await;
    assert!(browser.text().await.contains("hero"));
    browser.shot("overview").await;
    browser.open(server, "/console/policies").await;
    browser.shot("policies").await;

    // A draft with a syntax error is refused with its line.
    browser.open(server, "/console/policies/hero/new").await;
    assert!(browser.text().await.contains("Starting from version 1"));
    browser
        .fill("#source", "fn decide(ctx) {\n  let out = ;\n  out\n}")
        .await;
    browser.click("button[value=save]").await;
    let refused = browser.text().await;
    assert!(refused.contains("line 2"), "{refused}");
    browser.shot("editor-syntax-error").await;

    // Fixed, and tried on a stored customer: the explain table.
    browser
        .fill(
            "#source",
            "fn decide(ctx) {\n  [#{id: \"small\", score: 3}, #{id: \"medium\", score: 2}]\n}",
        )
        .await;
    browser.fill("#customer_id", "c-1").await;
    browser.click("button[value=try]").await;
    let tried = browser.text().await;
    assert!(
        tried.contains("Why each action was or was not chosen"),
        "{tried}"
    );
    assert!(tried.contains("returned at rank 1, score 3"), "{tried}");
    browser.shot("editor-try").await;

    // Saved and made live: version 2.
    browser.click("button[value=save_live]").await;
    assert_eq!(browser.path().await, "/console/policies/hero");
    browser.shot("policy-v2-live").await;
    let live = |v: u64| async move {
        let detail = expect(
            server
                .get("/v1/policies/hero", &keys.editor)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(detail["live_version"], v);
    };
    live(2).await;

    // Rolled back to version 1, after a confirmation that says so.
    browser
        .click("a[href='/console/policies/hero/activate?version=1']")
        .await;
    let confirm = browser.text().await;
    assert!(
        confirm.contains("Roll hero back to version 1?"),
        "{confirm}"
    );
    browser.shot("confirm-rollback").await;
    browser.click("button.danger").await;
    live(1).await;
    browser
        .open(server, "/console/policies/hero/versions/2")
        .await;
    browser.shot("version").await;

    // The two versions compared line by line.
    browser.open(server, "/console/policies/hero").await;
    browser
        .click("form[action='/console/policies/hero/diff'] button")
        .await;
    let diff = browser.text().await;
    assert!(diff.contains("version 1 → version 2"), "{diff}");
    browser
        .client
        .find(Locator::Css("pre.diff span.ins"))
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css("pre.diff span.del"))
        .await
        .unwrap();
    browser.shot("diff").await;

    // A WebAssembly module uploaded from a file, for a new point.
    let module = std::env::temp_dir().join(format!("console-{}.wasm", std::process::id()));
    std::fs::write(&module, TELCO_RETENTION_WASM).unwrap();
    browser.open(server, "/console/policies/telco/new").await;
    browser
        .client
        .find(Locator::Css("#module"))
        .await
        .unwrap()
        .send_keys(module.to_str().unwrap())
        .await
        .unwrap();
    browser
        .click("form[action='/console/policies/telco/wasm'] button")
        .await;
    std::fs::remove_file(&module).unwrap();
    assert_eq!(browser.path().await, "/console/policies/telco");
    browser
        .open(server, "/console/policies/telco/versions/1")
        .await;
    let version = browser.text().await;
    assert!(
        version.contains(&format!("{} bytes", TELCO_RETENTION_WASM.len())),
        "{version}"
    );

    // An experiment between the two versions, set up in the page.
    browser.open(server, "/console/experiments").await;
    browser.shot("experiments").await;
    browser
        .click("form[action='/console/new-experiment'] button")
        .await;
    browser.fill("#id", "hero-test").await;
    browser.fill("#seed", "hero-test").await;
    let treatment = browser
        .client
        .find(Locator::Css("#v1_version"))
        .await
        .unwrap();
    treatment.select_by_value("2").await.unwrap();
    browser.shot("experiment-new").await;
    browser
        .click("form[action='/console/experiments'] > button")
        .await;
    assert_eq!(browser.path().await, "/console/experiments/hero-test");
    // Traffic through the API from a caller that drops most of treatment's
    // customers, and conversions for a third of them.
    let (mut control, mut treated) = (0, 0);
    for i in 0.. {
        let customer = format!("x-{i}");
        let wanted = match crate::experiments::expected_variant("hero-test", &customer) {
            "control" if control < 120 => {
                control += 1;
                true
            }
            "treatment" if treated < 30 => {
                treated += 1;
                true
            }
            _ => false,
        };
        if wanted {
            let answer = server
                .decide_ok(
                    &keys.decide,
                    &json!({"point": "hero", "customer_id": customer}),
                )
                .await;
            if i % 3 == 0 {
                let outcome = json!({"decision_id": answer["decision_id"],
                                     "action_id": answer["actions"][0]["id"], "type": "convert"});
                let res = server
                    .post("/v1/outcomes", &keys.decide, &outcome)
                    .send()
                    .await
                    .unwrap();
                assert!(res.status().is_success());
            }
        }
        if control == 120 && treated == 30 {
            break;
        }
    }
    browser.open(server, "/console/overview").await;
    let overview = browser.text().await;
    assert!(overview.contains("sample ratio mismatch"), "{overview}");
    browser.shot("overview-warning").await;
    browser.open(server, "/console/experiments/hero-test").await;
    let results = browser.text().await;
    assert!(results.contains("Sample ratio mismatch"), "{results}");
    assert!(results.contains("control 120 customers"), "{results}");
    browser
        .client
        .find(Locator::Css("svg.chart circle"))
        .await
        .unwrap();
    assert!(
        results.contains("Cumulative conversion rate, day by day"),
        "{results}"
    );
    browser
        .client
        .find(Locator::Css("svg.chart polyline"))
        .await
        .unwrap();
    browser.shot("experiment-results").await;
    browser
        .click("a[href='/console/experiments/hero-test/stop']")
        .await;
    browser.click("button.danger").await;
    assert!(browser.text().await.contains("stopped"));

    // Try a stored version from its page.
    browser
        .open(server, "/console/policies/hero/try?version=2")
        .await;
    browser.fill("#attributes", "{\"tier\": \"silver\"}").await;
    browser.click("form button[type=submit]:not(.quiet)").await;
    assert!(browser.text().await.contains("Version 2"));
    browser.shot("try").await;

    browser.open(server, "/console/customers?id=x-0").await;
    let customer = browser.text().await;
    assert!(customer.contains("Last decisions"), "{customer}");
    assert!(customer.contains("convert"), "x-0's conversion: {customer}");
    browser.shot("customer").await;

    // An admin issues a key (shown once) and revokes it.
    browser.click("button.quiet").await;
    browser.sign_in(server, &keys.admin).await;
    browser.open(server, "/console/keys").await;
    browser.click("form[action='/console/keys'] button").await;
    let issued = browser.text().await;
    assert!(issued.contains("it is not shown again"), "{issued}");
    browser.shot("keys-issued").await;
    let revoke = browser
        .client
        .find(Locator::Css("td.actions a"))
        .await
        .unwrap();
    browser.navigating(revoke.click()).await;
    browser.click("button.danger").await;
    assert!(browser.text().await.contains("revoked"));
    browser.shot("keys-revoked").await;

    // A tablet's width.
    browser.client.set_window_size(820, 1180).await.unwrap();
    browser.open(server, "/console/policies/hero").await;
    browser.shot("tablet-policy").await;

    // Signed out, the pages are closed.
    browser.click("button.quiet").await;
    browser.open(server, "/console/policies").await;
    assert_eq!(browser.path().await, "/console/sign-in");
    browser.close().await;
}
