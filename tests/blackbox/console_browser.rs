//! The console in a real browser: Debian's headless Chromium driven through
//! chromedriver (named by `MOMENT_TEST_CHROMEDRIVER`; `.ci/run` installs
//! both), against the real server. Each step saves a screenshot under
//! `target/tmp/console-screenshots/` for a reviewer to look at.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{BY_VALUE, Server, expect};

/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";

/// chromedriver on a free port, and a headless Chromium session on it.
struct Browser {
    driver: Child,
    client: Client,
    shots: PathBuf,
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
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            driver,
            client: client.expect("chromedriver did not accept a session"),
            shots,
        }
    }

    async fn open(&self, server: &Server, path: &str) {
        self.client.goto(&server.url(path)).await.unwrap();
    }

    /// Saves a screenshot of the page as `name.png`.
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
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
        for _ in 0..200 {
            if old.text().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the page did not change");
    }

    async fn sign_in(&self, server: &Server, key: &str) {
        self.open(server, "/console").await;
        // The key field has the focus; Enter sends the form.
        let field = self.client.active_element().await.unwrap();
        self.navigating(field.send_keys(&format!("{key}{ENTER}")))
            .await;
        assert_eq!(self.path().await, "/console/policies");
    }

    async fn close(mut self) {
        self.client.close().await.unwrap();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn a_marketer_writes_tries_activates_and_rolls_back_a_policy_in_the_browser() {
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
    browser.shot("01-sign-in").await;
    browser.sign_in(server, &keys.editor).await;
    assert!(browser.text().await.contains("hero"));
    browser.shot("02-policies").await;

    // A draft with a syntax error is refused with its line.
    browser.open(server, "/console/policies/hero/new").await;
    assert!(browser.text().await.contains("Starting from version 1"));
    browser
        .fill("#source", "fn decide(ctx) {\n  let out = ;\n  out\n}")
        .await;
    browser.click("button[value=save]").await;
    let refused = browser.text().await;
    assert!(refused.contains("line 2"), "{refused}");
    browser.shot("03-editor-syntax-error").await;

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
    browser.shot("04-editor-try").await;

    // Saved and made live: version 2.
    browser.click("button[value=save_live]").await;
    assert_eq!(browser.path().await, "/console/policies/hero");
    browser.shot("05-policy-v2-live").await;
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
    browser.shot("06-confirm-rollback").await;
    browser.click("button.danger").await;
    live(1).await;
    browser
        .open(server, "/console/policies/hero/versions/2")
        .await;
    browser.shot("07-version").await;

    // Try a stored version from its page.
    browser
        .open(server, "/console/policies/hero/try?version=2")
        .await;
    browser.fill("#attributes", "{\"tier\": \"silver\"}").await;
    browser.click("form button[type=submit]:not(.quiet)").await;
    assert!(browser.text().await.contains("Version 2"));
    browser.shot("08-try").await;

    browser.open(server, "/console/customers?id=c-1").await;
    assert!(browser.text().await.contains("purchase"));
    browser.shot("09-customer").await;

    // An admin issues a key (shown once) and revokes it.
    browser.click("button.quiet").await;
    browser.sign_in(server, &keys.admin).await;
    browser.open(server, "/console/keys").await;
    browser.click("form[action='/console/keys'] button").await;
    let issued = browser.text().await;
    assert!(issued.contains("it is not shown again"), "{issued}");
    browser.shot("10-keys-issued").await;
    let revoke = browser
        .client
        .find(Locator::Css("td.actions a"))
        .await
        .unwrap();
    browser.navigating(revoke.click()).await;
    browser.click("button.danger").await;
    assert!(browser.text().await.contains("revoked"));
    browser.shot("11-keys-revoked").await;

    // Signed out, the pages are closed.
    browser.click("button.quiet").await;
    browser.open(server, "/console/policies").await;
    assert_eq!(browser.path().await, "/console/sign-in");
    browser.close().await;
}
