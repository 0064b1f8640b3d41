//! The console in a real browser ([`crate::browser`]), against the real
//! server. Each step saves a screenshot under
//! `target/tmp/console-screenshots/` for a reviewer to look at.

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::json;

use moment_policy_artifacts::TELCO_RETENTION_WASM;

use crate::browser::{Browser, ENTER};
use crate::helpers::{BY_VALUE, Server, expect};

/// Signs in to the console with `key`.
async fn sign_in(browser: &Browser, server: &Server, key: &str) {
    browser.open(server, "/console").await;
    // Typed into the key field; Enter sends the form.
    let field = browser.client.find(Locator::Css("#key")).await.unwrap();
    browser
        .navigating(field.send_keys(&format!("{key}{ENTER}")))
        .await;
    assert_eq!(browser.path().await, "/console/overview");
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
    let browser = Browser::start("console-screenshots").await;

    browser.open(server, "/console").await;
    assert_eq!(browser.path().await, "/console/sign-in");
    browser.shot("sign-in").await;
    sign_in(&browser, server, &keys.editor).await;
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
    sign_in(&browser, server, &keys.admin).await;
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
