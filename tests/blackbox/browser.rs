//! A real browser for the black-box tests: Debian's headless Chromium
//! driven through chromedriver (named by `MOMENT_TEST_CHROMEDRIVER`;
//! `.ci/run` installs both). Each test saves screenshots under
//! `target/tmp/` for a reviewer to look at.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::helpers::Server;

/// WebDriver's Enter key.
pub const ENTER: &str = "\u{E007}";

/// chromedriver on a free port, and a headless Chromium session on it.
pub struct Browser {
    driver: Child,
    /// The WebDriver session, for what the helpers below do not cover.
    pub client: Client,
    shots: PathBuf,
    taken: AtomicUsize,
}

impl Browser {
    /// Starts chromedriver and a session; screenshots go to
    /// `target/tmp/<shots>/`, emptied first.
    pub async fn start(shots: &str) -> Browser {
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
            let connected = ClientBuilder::new(HttpConnector::new())
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
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(shots);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            driver,
            client: client.expect("chromedriver did not accept a session"),
            shots,
            taken: AtomicUsize::new(0),
        }
    }

    /// Loads `path` on `server`.
    pub async fn open(&self, server: &Server, path: &str) {
        self.client.goto(&server.url(path)).await.unwrap();
    }

    /// Saves a screenshot of the page as `NN-name.png`, numbered in order.
    pub async fn shot(&self, name: &str) {
        let n = self.taken.fetch_add(1, Ordering::Relaxed) + 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{n:02}-{name}.png")), png).unwrap();
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The path of the page's URL.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Replaces the text of the field `selector` finds.
    pub async fn fill(&self, selector: &str, text: &str) {
        let field = self.client.find(Locator::Css(selector)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks what `selector` finds and waits for the page it leads to.
    pub async fn click(&self, selector: &str) {
        let element = self.client.find(Locator::Css(selector)).await.unwrap();
        self.navigating(element.click()).await;
    }

    /// Runs `act`, which leaves the page, and waits until the next page
    /// has replaced it.
    pub async fn navigating<T>(
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

    /// Ends the session; dropping the browser stops chromedriver.
    pub async fn close(self) {
        self.client.clone().close().await.unwrap();
    }
}

/// chromedriver goes with the browser, also when a test fails midway.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
