//! The web example (`examples/web`) in a real browser ([`crate::browser`]),
//! served by `moment serve --demo`: the page loads the JavaScript client from
//! `/sdk/moment.js`, renders the hero offer `decide` chose, reports its
//! impression, and the click reaches the server though the page is left at
//! once. Screenshots under `target/tmp/web-example-screenshots/`.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::Browser;
use crate::helpers::{Server, expect};

/// The contact history of `action` for `customer`, once `done` holds for it.
async fn history_when(
    server: &Server,
    editor: &str,
    customer: &str,
    action: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..200 {
        let profile = server
            .get(&format!("/v1/customers/{customer}"), editor)
            .send()
            .await
            .unwrap();
        if profile.status() == StatusCode::OK {
            let history = expect(profile, StatusCode::OK).await["history"][action].clone();
            if done(&history) {
                return history;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{customer}'s history of {action} never got there");
}

#[tokio::test]
async fn the_web_example_renders_an_offer_and_reports_its_impression_and_click() {
    let server = &Server::start_with(&["--demo"]);
    let decide = server.banner_value("decide:");
    let editor = server.banner_value("editor:");
    let browser = Browser::start("web-example-screenshots").await;

    browser
        .open(server, &format!("/examples/web/#key={decide}"))
        .await;
    let cta = browser
        .client
        .wait()
        .for_element(Locator::Css("a.cta"))
        .await
        .unwrap();
    let action = cta.attr("data-action").await.unwrap().unwrap();
    assert_eq!(action, "spring-sale");
    assert!(!cta.attr("data-decision").await.unwrap().unwrap().is_empty());
    let page = browser.text().await;
    assert!(page.contains("The spring sale is on"), "{page}");
    assert!(page.contains("decided now"), "{page}");
    browser.shot("offer").await;
    let customer = browser
        .client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .attr("data-customer")
        .await
        .unwrap()
        .unwrap();
    assert!(customer.starts_with("anon-"), "{customer}");

    // The impression goes out with the next flush.
    let seen = history_when(server, &editor, &customer, &action, |h| {
        h["impressions"] == 1
    })
    .await;
    assert_eq!(seen["counts"].get("click"), None);

    // Clicked: the page leaves at once for the offer's link, so the click
    // goes out by beacon as it hides (or from the queue the next page finds).
    browser.click("a.cta").await;
    assert_eq!(browser.path().await, "/examples/web/thanks.html");
    browser.shot("thanks").await;
    browser.client.goto("about:blank").await.unwrap();
    let clicked = history_when(server, &editor, &customer, &action, |h| {
        h["counts"]["click"] == 1
    })
    .await;
    assert_eq!(clicked["impressions"], 1, "the impression counted once");
    browser.close().await;
}
